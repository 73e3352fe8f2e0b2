//===- BpeTokenizer.h - Byte-level BPE from a Hugging Face tokenizer.json -===//
//
// The GPT-NeoX 20B tokenizer of the RWKV-4 Pile models (20B_tokenizer.json,
// spec §5.2), and any Hugging Face `tokenizers` JSON of the same shape:
// added tokens, NFC (or no) normaliser, the ByteLevel pre-tokenizer with the
// GPT-2 regex, a BPE model and the ByteLevel decoder. Anything else in the
// file is refused at load time rather than silently encoded differently.
//
//===----------------------------------------------------------------------===//

#ifndef RWKV_RUNTIME_TEXT_BPETOKENIZER_H
#define RWKV_RUNTIME_TEXT_BPETOKENIZER_H

#include "runtime/text/Tokenizer.h"

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace rwkv {

/// Encodes exactly as Hugging Face `tokenizers` does for the supported
/// subset: (1) added tokens are split out, leftmost-longest, those with
/// `normalized: false` on the raw text and the others on the normalised
/// text; (2) NFC; (3) the GPT-2 pre-tokenizer regex; (4) bytes map to the
/// GPT-2 byte-level alphabet; (5) BPE merges by rank; (6) vocabulary ids.
/// decode() maps token characters back to bytes (raw bytes, callers decode
/// UTF-8 lossily). encode() is thread-safe.
///
/// HF encodes strings, and the 20B vocabulary has no tokens for the bytes
/// that UTF-8 never uses (0xC0, 0xC1, 0xF5..0xFF). So input that is not
/// valid UTF-8 is first decoded lossily, one U+FFFD per maximal invalid
/// subpart (Utf8StreamDecoder::sanitize, Python's errors="replace"): then
/// decode(encode(b)) is the NFC form of sanitize(b).
class BpeTokenizer final : public Tokenizer {
public:
  /// Reads a tokenizer.json. Throws std::runtime_error naming the file and,
  /// for content errors, the JSON key (e.g. "normalizer.type").
  static std::unique_ptr<BpeTokenizer> fromFile(const std::string &path);

  /// Parses tokenizer JSON held in memory; `name` is used in errors.
  static std::unique_ptr<BpeTokenizer> fromString(std::string_view json,
                                                  const std::string &name);

  ~BpeTokenizer() override;

  std::vector<int32_t> encode(std::string_view bytes) const override;
  std::string_view tokenBytes(int32_t id) const override;
  size_t vocabSize() const override;
  /// The id of the `<|endoftext|>` token, or 0 if the file has none.
  int32_t endOfTextId() const override;

  /// Entries of model.vocab, model.merges and added_tokens.
  size_t numModelTokens() const;
  size_t numMerges() const;
  size_t numAddedTokens() const;

  /// Whether the PCRE2 pre-tokenizer regex runs JIT-compiled.
  bool regexJit() const;

  /// For tests: the pre-tokens of `text` (valid UTF-8, taken as already
  /// normalised and free of added tokens) as encode() splits it, or, with
  /// `regexOnly`, with PCRE2 alone (no hand-written ASCII matcher).
  std::vector<std::string_view> preTokensForTesting(std::string_view text,
                                                    bool regexOnly) const;

  struct Impl;

private:
  explicit BpeTokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl;
};

} // namespace rwkv

#endif // RWKV_RUNTIME_TEXT_BPETOKENIZER_H
