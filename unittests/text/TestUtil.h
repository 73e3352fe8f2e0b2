//===- TestUtil.h - Shared helpers for the RWKVText unit tests ------------===//

#ifndef RWKV_UNITTESTS_TEXT_TESTUTIL_H
#define RWKV_UNITTESTS_TEXT_TESTUTIL_H

#include "runtime/text/Tokenizer.h"

#include <memory>
#include <stdexcept>
#include <string>

namespace rwkv::test {

inline std::string sharedPath(const std::string &rel) {
  return std::string(RWKV_SHARED_DIR) + "/" + rel;
}

inline std::string worldVocabPath() {
  return sharedPath("tokenizer/rwkv_vocab_v20230424.txt");
}

/// The real World vocabulary, parsed once for the whole test binary.
inline const WorldTokenizer &worldTokenizer() {
  static std::unique_ptr<WorldTokenizer> tok =
      WorldTokenizer::fromFile(worldVocabPath());
  return *tok;
}

inline std::string fromHex(const std::string &hex) {
  if (hex.size() % 2)
    throw std::invalid_argument("odd hex length");
  std::string out;
  for (size_t i = 0; i < hex.size(); i += 2)
    out += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
  return out;
}

} // namespace rwkv::test

#endif // RWKV_UNITTESTS_TEXT_TESTUTIL_H
