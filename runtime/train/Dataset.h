//===- Dataset.h - Token corpora and training-window sampling ---*- C++ -*-===//
//
// A Dataset is one flat stream of token ids. Text and JSONL corpora are
// tokenized with the World tokenizer and every document is followed by the
// end-of-document token 0 (as RWKV-LM's make_data.py does); RWKV-LM's binidx
// corpora (Megatron MMapIndexedDataset) are memory-mapped and their documents
// concatenated in index order. A WindowSampler cuts [B, T] batches out of it.
// Every failure throws DatasetError naming the file. See docs/train.md.
//
//===----------------------------------------------------------------------===//

#ifndef RWKV_RUNTIME_TRAIN_DATASET_H
#define RWKV_RUNTIME_TRAIN_DATASET_H

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace rwkv {

class Tokenizer;

struct DatasetError : std::runtime_error {
  using runtime_error::runtime_error;
};

/// One training batch: B windows of T tokens, row-major [B, T].
struct Batch {
  int64_t B = 0, T = 0;
  std::vector<int32_t> inputs, targets;
};

class Dataset {
public:
  virtual ~Dataset();

  /// Opens `path` by its form: `*.txt` (one document), `*.jsonl` (one
  /// {"text": ...} document per line), otherwise a binidx prefix (`X` for
  /// X.bin + X.idx; `X.bin` / `X.idx` are accepted too). Text and JSONL need
  /// `tokenizer`.
  static std::unique_ptr<Dataset> open(const std::string &path,
                                       const Tokenizer *tokenizer);
  static std::unique_ptr<Dataset> fromTextFile(const std::string &path,
                                               const Tokenizer &tokenizer);
  static std::unique_ptr<Dataset> fromJsonlFile(const std::string &path,
                                                const Tokenizer &tokenizer);
  /// `prefix` without the .bin / .idx extension.
  static std::unique_ptr<Dataset> fromBinidx(const std::string &prefix);
  /// An in-memory stream (tests, tools); `name` is used in errors.
  static std::unique_ptr<Dataset> fromTokens(std::vector<int32_t> tokens,
                                             const std::string &name,
                                             int64_t numDocuments = 1);

  /// The file the tokens came from (used in every error message).
  const std::string &name() const { return name_; }
  int64_t numTokens() const { return numTokens_; }
  int64_t numDocuments() const { return numDocuments_; }
  /// Copies tokens [offset, offset + count) of the stream into `out`.
  /// Throws DatasetError naming the file on an out-of-range request or a
  /// negative stored token.
  void read(int64_t offset, int64_t count, int32_t *out) const;

protected:
  Dataset(std::string name, int64_t numTokens, int64_t numDocuments)
      : name_(std::move(name)), numTokens_(numTokens),
        numDocuments_(numDocuments) {}
  virtual void readImpl(int64_t offset, int64_t count, int32_t *out) const = 0;

private:
  std::string name_;
  int64_t numTokens_ = 0, numDocuments_ = 0;
};

/// Writes a binidx pair (`prefix`.bin + `prefix`.idx) in Megatron's
/// MMapIndexedDataset layout, one document per entry of `documents`, tokens
/// stored as `dtypeCode` (1 u8, 2 i8, 3 i16, 4 i32, 5 i64, 8 u16). Used by the
/// tests and to convert small corpora.
void writeBinidx(const std::string &prefix,
                 const std::vector<std::vector<int32_t>> &documents,
                 uint8_t dtypeCode = 8);

enum class SamplingMode {
  /// Window k starts at a pure function of (seed, k), see windowStart().
  Random,
  /// Epochs over the stream: window k starts at (k mod W)·T where
  /// W = floor((N − 1) / T) windows fit, so consecutive windows tile the data
  /// and every target token is seen once per epoch.
  Sequential,
};

/// Cuts windows of T + 1 consecutive tokens (inputs = window[:-1], targets
/// = window[1:], as RWKV-LM's dataset.py) out of a Dataset. The only state is
/// the number of windows handed out (`position`), so a resumed run continues
/// with exactly the windows it would have seen.
class WindowSampler {
public:
  /// Throws DatasetError naming the file if the data holds fewer than T + 1
  /// tokens, or T < 1.
  WindowSampler(const Dataset &data, int64_t T, SamplingMode mode,
                uint64_t seed);

  int64_t contextLength() const { return T_; }
  SamplingMode mode() const { return mode_; }
  uint64_t seed() const { return seed_; }

  /// Start offset of window `index`. Random mode: with
  /// x = splitmix64(seed + (index + 1)·0x9E3779B97F4A7C15) and
  /// S = N − T the number of possible starts, start = floor(x·S / 2^64)
  /// (a multiply-shift, so every start in [0, N − T − 1] is possible and
  /// the result does not depend on the C++ library's distributions).
  int64_t windowStart(uint64_t index) const;
  /// Number of distinct windows of an epoch in sequential mode.
  int64_t windowsPerEpoch() const { return windowsPerEpoch_; }
  /// Windows handed out so far (what a resume file stores).
  uint64_t position() const { return position_; }
  void setPosition(uint64_t position) { position_ = position; }
  /// Completed epochs, fractional (position / windowsPerEpoch).
  double epoch() const { return double(position_) / double(windowsPerEpoch_); }

  /// Rejects token ids >= vocabSize in the batches handed out (0: no check).
  void setVocabSize(int64_t vocabSize) { vocabSize_ = vocabSize; }
  /// The next B windows as a batch; advances position() by B.
  Batch next(int64_t B);

private:
  const Dataset *data_; // a pointer so samplers can be reassigned
  int64_t T_;
  SamplingMode mode_;
  uint64_t seed_;
  int64_t windowsPerEpoch_ = 0;
  uint64_t position_ = 0;
  int64_t vocabSize_ = 0;
};

} // namespace rwkv

#endif // RWKV_RUNTIME_TRAIN_DATASET_H
