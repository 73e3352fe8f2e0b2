//===- Tokenizer.h - Byte-level tokenizer interface and RWKV World
//---------===//
//
// Tokenizers map byte strings to token ids and back. They work on bytes, not
// on Unicode text: any byte string (including invalid UTF-8) can be encoded,
// and decode() returns the raw concatenated token bytes. Use
// Utf8StreamDecoder to turn those bytes into displayable text.
//
//===----------------------------------------------------------------------===//

#ifndef RWKV_RUNTIME_TEXT_TOKENIZER_H
#define RWKV_RUNTIME_TEXT_TOKENIZER_H

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace rwkv {

/// Abstract tokenizer. Implementations: WorldTokenizer (RWKV World, greedy
/// longest match) and BpeTokenizer (BpeTokenizer.h: GPT-NeoX 20B byte-level
/// BPE from a Hugging Face tokenizer.json).
class Tokenizer {
public:
  virtual ~Tokenizer();

  /// Encodes a UTF-8 string (or arbitrary bytes) into token ids.
  virtual std::vector<int32_t> encode(std::string_view bytes) const = 0;

  /// Returns the bytes of one token. Throws std::out_of_range naming the id
  /// if the id has no token.
  virtual std::string_view tokenBytes(int32_t id) const = 0;

  /// One past the largest id that decode() accepts.
  virtual size_t vocabSize() const = 0;

  /// The end-of-text / document-separator id.
  virtual int32_t endOfTextId() const { return 0; }

  /// Concatenates the bytes of the tokens (not necessarily valid UTF-8).
  virtual std::string decode(const int32_t *ids, size_t count) const;
  std::string decode(const std::vector<int32_t> &ids) const {
    return decode(ids.data(), ids.size());
  }
};

/// The RWKV World tokenizer (rwkv_vocab_v20230424.txt, spec §5.1). Id 0 is
/// <|endoftext|> and decodes to nothing; ids 1..256 are the single bytes
/// 0x00..0xFF, so every byte string is encodable.
class WorldTokenizer final : public Tokenizer {
public:
  /// Parses a vocabulary file. Throws std::runtime_error naming the file and
  /// line on a missing file, malformed line, byte-length mismatch, duplicate
  /// id or an id outside 1..INT32_MAX.
  static std::unique_ptr<WorldTokenizer> fromFile(const std::string &path);

  /// Parses vocabulary text held in memory; `name` is used in errors.
  static std::unique_ptr<WorldTokenizer> fromString(std::string_view text,
                                                    const std::string &name);

  std::vector<int32_t> encode(std::string_view bytes) const override;
  std::string_view tokenBytes(int32_t id) const override;
  size_t vocabSize() const override { return tokens.size(); }

  /// Number of entries read from the file (not counting id 0).
  size_t numEntries() const { return entries; }
  /// Length in bytes of the longest token.
  size_t maxTokenLength() const { return maxLen; }

  /// Decodes one Python literal as used in the vocab file ('..', "..",
  /// b'..', b".."). Throws std::invalid_argument describing the problem.
  static std::string parsePythonLiteral(std::string_view literal);

private:
  WorldTokenizer() = default;
  void buildTrie();

  std::vector<std::string> tokens; // by id; tokens[0] is "" (end of text)
  std::vector<bool> present;       // whether an id was defined
  size_t entries = 0;
  size_t maxLen = 0;

  // Flattened byte trie. Node 0 is the root; its children are in the dense
  // rootChild table (every byte has a token), other nodes keep their edges
  // sorted by byte in edgeBytes/edgeChild[edgeBegin[n], edgeBegin[n+1]).
  uint32_t rootChild[256] = {};
  std::vector<int32_t> nodeToken;  // token id ending at a node, or -1
  std::vector<uint32_t> edgeBegin; // size numNodes + 1
  std::vector<uint8_t> edgeBytes;
  std::vector<uint32_t> edgeChild;
};

/// Opens the tokenizer a vocabulary file describes: a Hugging Face
/// `tokenizer.json` (GPT-NeoX 20B BPE) when the file is JSON, else the RWKV
/// World vocabulary. Throws std::runtime_error naming the file.
std::unique_ptr<Tokenizer> openTokenizer(const std::string &path);

} // namespace rwkv

#endif // RWKV_RUNTIME_TEXT_TOKENIZER_H
