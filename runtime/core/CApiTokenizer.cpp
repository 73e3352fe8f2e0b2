//===- CApiTokenizer.cpp - extern "C" wrapper over rwkv::Tokenizer --------===//
//
// rwkvrt_tokenizer_* of rwkv_runtime.h. As in CApi.cpp, every entry point
// catches everything: exceptions must not cross into C.
//
//===----------------------------------------------------------------------===//

#include "runtime/core/CApiError.h"
#include "runtime/core/rwkv_runtime.h"
#include "runtime/text/Tokenizer.h"

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>

using rwkv::capi::ArgumentError;
using rwkv::capi::CallScope;
using rwkv::capi::checkNotNull;
using rwkv::capi::fail;

struct rwkvrt_tokenizer {
  std::unique_ptr<rwkv::Tokenizer> tokenizer;
  mutable rwkv::capi::Users users; // calls in progress
};

namespace {

template <typename F> int guarded(int errorCode, F &&body) {
  rwkv::capi::lastErrorMessage().clear();
  try {
    body();
    return RWKVRT_OK;
  } catch (const std::bad_alloc &) {
    return fail(RWKVRT_ERR_OUT_OF_MEMORY, "out of memory");
  } catch (const ArgumentError &e) {
    return fail(RWKVRT_ERR_INVALID_ARGUMENT, e.what());
  } catch (const std::exception &e) {
    return fail(errorCode, e.what());
  } catch (...) {
    return fail(RWKVRT_ERR_RUNTIME, "unknown error");
  }
}

/// A size that cannot be a buffer's (a negative value converted to size_t)
/// is refused before anything is read.
void checkSize(const char *function, const char *name, size_t n,
               size_t elementSize) {
  if (n > size_t(PTRDIFF_MAX) / elementSize)
    throw ArgumentError(
        fmt::format("{}: {} = {} is larger than any buffer (a negative value "
                    "converted to size_t?)",
                    function, name, n));
}

} // namespace

extern "C" {

int rwkvrt_tokenizer_open(const char *vocabPath,
                          rwkvrt_tokenizer **outTokenizer) {
  if (int rc = checkNotNull(__func__, {{"vocab_path", vocabPath},
                                       {"out_tokenizer", outTokenizer}}))
    return rc;
  *outTokenizer = nullptr;
  return guarded(RWKVRT_ERR_LOAD, [&] {
    if (!*vocabPath)
      throw ArgumentError("rwkvrt_tokenizer_open: vocab_path is empty");
    auto t = std::make_unique<rwkvrt_tokenizer>();
    t->tokenizer = rwkv::openTokenizer(vocabPath);
    *outTokenizer = t.release();
  });
}

int rwkvrt_tokenizer_close(rwkvrt_tokenizer *tokenizer) {
  rwkv::capi::lastErrorMessage().clear();
  if (!tokenizer)
    return RWKVRT_OK;
  std::string busy = tokenizer->users.busyMessage("the tokenizer");
  if (!busy.empty())
    return fail(RWKVRT_ERR_BUSY, busy);
  delete tokenizer;
  return RWKVRT_OK;
}

int rwkvrt_tokenizer_vocab_size(const rwkvrt_tokenizer *tokenizer,
                                size_t *outSize) {
  if (int rc = checkNotNull(__func__,
                            {{"tokenizer", tokenizer}, {"out_size", outSize}}))
    return rc;
  return guarded(RWKVRT_ERR_RUNTIME,
                 [&] { *outSize = tokenizer->tokenizer->vocabSize(); });
}

int rwkvrt_tokenizer_encode(const rwkvrt_tokenizer *tokenizer,
                            const char *bytes, size_t length, int32_t *ids,
                            size_t capacity, size_t *outCount) {
  if (int rc = checkNotNull(
          __func__, {{"tokenizer", tokenizer}, {"out_count", outCount}}))
    return rc;
  if (length > 0)
    if (int rc = checkNotNull(__func__, {{"bytes", bytes}}))
      return rc;
  *outCount = 0;
  CallScope call(tokenizer->users);
  return guarded(RWKVRT_ERR_RUNTIME, [&] {
    checkSize("rwkvrt_tokenizer_encode", "length", length, 1);
    checkSize("rwkvrt_tokenizer_encode", "capacity", ids ? capacity : 0,
              sizeof(int32_t));
    std::vector<int32_t> out = tokenizer->tokenizer->encode(
        std::string_view(bytes ? bytes : "", length));
    if (ids)
      std::copy_n(out.begin(), std::min(capacity, out.size()), ids);
    *outCount = out.size();
  });
}

int rwkvrt_tokenizer_decode(const rwkvrt_tokenizer *tokenizer,
                            const int32_t *ids, size_t count, char *bytes,
                            size_t capacity, size_t *outLength) {
  if (int rc = checkNotNull(
          __func__, {{"tokenizer", tokenizer}, {"out_length", outLength}}))
    return rc;
  if (count > 0)
    if (int rc = checkNotNull(__func__, {{"ids", ids}}))
      return rc;
  *outLength = 0;
  CallScope call(tokenizer->users);
  return guarded(RWKVRT_ERR_RUNTIME, [&] {
    checkSize("rwkvrt_tokenizer_decode", "count", count, sizeof(int32_t));
    checkSize("rwkvrt_tokenizer_decode", "capacity", bytes ? capacity : 0, 1);
    const rwkv::Tokenizer &tok = *tokenizer->tokenizer;
    std::string out;
    for (size_t i = 0; i < count; ++i) {
      // Checked here so that the message can name the position.
      if (ids[i] < 0 || size_t(ids[i]) >= tok.vocabSize())
        throw ArgumentError("token id " + std::to_string(ids[i]) +
                            " at position " + std::to_string(i) +
                            " is not in the vocabulary (0.." +
                            std::to_string(tok.vocabSize() - 1) + ")");
      try {
        out += tok.tokenBytes(ids[i]);
      } catch (const std::out_of_range &e) {
        throw ArgumentError(std::string(e.what()) + " at position " +
                            std::to_string(i));
      }
    }
    if (bytes)
      std::memcpy(bytes, out.data(), std::min(capacity, out.size()));
    *outLength = out.size();
  });
}

} // extern "C"
