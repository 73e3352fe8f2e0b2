//===- FuzzWorldTokenizer.cpp - libFuzzer target for the World tokenizer --===//
//
// Three uses of one input against rwkv_vocab_v20230424.txt:
//  * encode(bytes): every id is in the vocabulary, decode gives the bytes
//    back exactly (World is byte-level: ids 1..256 are the single bytes),
//    and the ids equal a reference greedy longest match computed with hash
//    sets instead of the trie;
//  * decode(ids), the bytes read as little-endian u16 ids (0xFFFF escapes a
//    raw i32, so negative and huge ids occur): out-of-vocabulary ids throw
//    std::out_of_range and nothing else, valid ones give the concatenated
//    token bytes, and those bytes streamed token by token through
//    Utf8StreamDecoder give sanitize(bytes);
//  * parsePythonLiteral(bytes), the vocabulary file's literal parser:
//    returns or throws std::invalid_argument.
//
//===----------------------------------------------------------------------===//

#include "runtime/text/Tokenizer.h"
#include "runtime/text/Utf8StreamDecoder.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <unordered_set>

namespace {

struct Vocab {
  std::unique_ptr<rwkv::WorldTokenizer> tok;
  // The reference matcher: token bytes -> smallest id, and every prefix of
  // every token (to know when a longer match is still possible).
  std::unordered_map<std::string, int32_t> ids;
  std::unordered_set<std::string> prefixes;
};

const Vocab &vocab() {
  static Vocab *v = [] {
    auto *v = new Vocab;
    v->tok = rwkv::WorldTokenizer::fromFile(
        RWKV_SHARED_DIR "/tokenizer/rwkv_vocab_v20230424.txt");
    for (size_t id = 1; id < v->tok->vocabSize(); ++id) {
      std::string bytes;
      try {
        bytes = std::string(v->tok->tokenBytes(int32_t(id)));
      } catch (const std::out_of_range &) {
        continue; // a gap in the ids
      }
      v->ids.emplace(bytes, int32_t(id));
      for (size_t n = 1; n <= bytes.size(); ++n)
        v->prefixes.insert(bytes.substr(0, n));
    }
    return v;
  }();
  return *v;
}

void check(bool ok, const char *what) {
  if (!ok) {
    std::fprintf(stderr, "fuzz-world-tokenizer: %s\n", what);
    std::abort();
  }
}

std::vector<int32_t> referenceEncode(const Vocab &v, const std::string &in) {
  std::vector<int32_t> out;
  std::string piece;
  for (size_t i = 0; i < in.size();) {
    size_t best = 0;
    int32_t bestId = -1;
    piece.clear();
    for (size_t n = 1; i + n <= in.size(); ++n) {
      piece += in[i + n - 1];
      if (!v.prefixes.count(piece))
        break;
      auto it = v.ids.find(piece);
      if (it != v.ids.end()) {
        best = n;
        bestId = it->second;
      }
    }
    check(best > 0, "a byte with no single-byte token");
    out.push_back(bestId);
    i += best;
  }
  return out;
}

void fuzzEncode(const Vocab &v, const std::string &input) {
  std::vector<int32_t> ids = v.tok->encode(input);
  for (int32_t id : ids)
    check(id > 0 && size_t(id) < v.tok->vocabSize(), "id out of range");
  check(v.tok->decode(ids) == input, "decode(encode(x)) != x");
  check(ids == referenceEncode(v, input),
        "encode differs from the reference greedy longest match");
}

void fuzzDecode(const Vocab &v, const uint8_t *data, size_t size) {
  std::vector<int32_t> ids;
  for (size_t i = 0; i + 2 <= size;) {
    uint32_t u = uint32_t(data[i]) | uint32_t(data[i + 1]) << 8;
    i += 2;
    if (u == 0xFFFF && i + 4 <= size) {
      int32_t raw;
      std::memcpy(&raw, data + i, 4);
      i += 4;
      ids.push_back(raw);
    } else {
      ids.push_back(int32_t(u));
    }
  }
  bool valid = true;
  std::string expected;
  for (int32_t id : ids) {
    try {
      expected += v.tok->tokenBytes(id);
    } catch (const std::out_of_range &) {
      valid = false;
    }
  }
  std::string decoded;
  try {
    decoded = v.tok->decode(ids);
    check(valid, "decode accepted an id tokenBytes refuses");
  } catch (const std::out_of_range &) {
    check(!valid, "decode refused ids tokenBytes accepts");
    return;
  }
  check(decoded == expected, "decode != concatenated token bytes");
  // Generation shows text as it is produced, token by token.
  rwkv::Utf8StreamDecoder stream;
  std::string shown;
  for (int32_t id : ids)
    shown += stream.feed(v.tok->tokenBytes(id));
  shown += stream.flush();
  check(rwkv::Utf8StreamDecoder::isValid(shown), "streamed text not UTF-8");
  check(shown == rwkv::Utf8StreamDecoder::sanitize(decoded),
        "streamed text != sanitize(decoded bytes)");
  check(v.tok->decode(v.tok->encode(decoded)) == decoded,
        "decode(encode(y)) != y for decoded bytes y");
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const Vocab &v = vocab();
  std::string input(reinterpret_cast<const char *>(data), size);
  fuzzEncode(v, input);
  fuzzDecode(v, data, size);
  try {
    (void)rwkv::WorldTokenizer::parsePythonLiteral(input);
  } catch (const std::invalid_argument &) {
  }
  return 0;
}
