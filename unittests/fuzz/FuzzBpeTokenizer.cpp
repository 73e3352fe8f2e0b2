//===- FuzzBpeTokenizer.cpp - libFuzzer target for the 20B BPE tokenizer --===//
//
// Encodes arbitrary bytes with 20B_tokenizer.json and decodes the ids. Every
// id must be in the vocabulary. Decoding gives NFC(sanitize(input)) (invalid
// UTF-8 becomes U+FFFD): that is sanitize(input) itself when no byte can
// start a character NFC changes (all bytes below 0xCC: code points below
// U+0300), and encoding the decoded text again must reproduce it.
//
//===----------------------------------------------------------------------===//

#include "runtime/text/BpeTokenizer.h"
#include "runtime/text/Utf8StreamDecoder.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace {
const rwkv::BpeTokenizer &tokenizer() {
  static std::unique_ptr<rwkv::BpeTokenizer> tok = rwkv::BpeTokenizer::fromFile(
      RWKV_SHARED_DIR "/tokenizer/20B_tokenizer.json");
  return *tok;
}

void check(bool ok, const char *what) {
  if (!ok) {
    std::fprintf(stderr, "fuzz-bpe-tokenizer: %s\n", what);
    std::abort();
  }
}
} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const rwkv::BpeTokenizer &tok = tokenizer();
  std::string input(reinterpret_cast<const char *>(data), size);
  std::vector<int32_t> ids = tok.encode(input);
  for (int32_t id : ids)
    check(id >= 0 && size_t(id) < tok.vocabSize(), "id out of range");
  std::string decoded = tok.decode(ids);
  bool belowCombining = true;
  for (uint8_t b : input)
    belowCombining = belowCombining && b < 0xCC;
  if (belowCombining)
    check(decoded == rwkv::Utf8StreamDecoder::sanitize(input),
          "decode(encode(x)) != sanitize(x)");
  check(tok.decode(tok.encode(decoded)) == decoded,
        "decode(encode(y)) != y for y = decode(encode(x))");
  return 0;
}
