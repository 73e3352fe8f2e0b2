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
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>

struct rwkvrt_tokenizer {
  std::unique_ptr<rwkv::Tokenizer> tokenizer;
};

namespace {

/// A bad id or size from the caller, as opposed to a failure inside.
struct ArgumentError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

int fail(int code, const std::string &message) {
  rwkv::capi::lastErrorMessage() = message;
  return code;
}

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

} // namespace

extern "C" {

int rwkvrt_tokenizer_open(const char *vocabPath,
                          rwkvrt_tokenizer **outTokenizer) {
  if (!vocabPath || !outTokenizer)
    return fail(RWKVRT_ERR_INVALID_ARGUMENT, "null argument");
  *outTokenizer = nullptr;
  return guarded(RWKVRT_ERR_LOAD, [&] {
    auto t = std::make_unique<rwkvrt_tokenizer>();
    t->tokenizer = rwkv::openTokenizer(vocabPath);
    *outTokenizer = t.release();
  });
}

int rwkvrt_tokenizer_close(rwkvrt_tokenizer *tokenizer) {
  return guarded(RWKVRT_ERR_RUNTIME, [&] { delete tokenizer; });
}

int rwkvrt_tokenizer_vocab_size(const rwkvrt_tokenizer *tokenizer,
                                size_t *outSize) {
  if (!tokenizer || !outSize)
    return fail(RWKVRT_ERR_INVALID_ARGUMENT, "null argument");
  return guarded(RWKVRT_ERR_RUNTIME,
                 [&] { *outSize = tokenizer->tokenizer->vocabSize(); });
}

int rwkvrt_tokenizer_encode(const rwkvrt_tokenizer *tokenizer,
                            const char *bytes, size_t length, int32_t *ids,
                            size_t capacity, size_t *outCount) {
  if (!tokenizer || !outCount || (!bytes && length > 0))
    return fail(RWKVRT_ERR_INVALID_ARGUMENT, "null argument");
  *outCount = 0;
  return guarded(RWKVRT_ERR_RUNTIME, [&] {
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
  if (!tokenizer || !outLength || (!ids && count > 0))
    return fail(RWKVRT_ERR_INVALID_ARGUMENT, "null argument");
  *outLength = 0;
  return guarded(RWKVRT_ERR_RUNTIME, [&] {
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
