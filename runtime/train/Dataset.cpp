//===- Dataset.cpp - Token corpora and training-window sampling -----------===//

#include "runtime/train/Dataset.h"

#include "runtime/text/Tokenizer.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace rwkv {

Dataset::~Dataset() = default;

void Dataset::read(int64_t offset, int64_t count, int32_t *out) const {
  if (offset < 0 || count < 0 || offset > numTokens_ - count)
    throw DatasetError(fmt::format("{}: tokens [{}, {}) are outside the data "
                                   "({} tokens)",
                                   name_, offset, offset + count, numTokens_));
  readImpl(offset, count, out);
}

namespace {

std::string readWholeFile(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw DatasetError(
        fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool endsWith(const std::string &s, const std::string &suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

class VectorDataset final : public Dataset {
public:
  VectorDataset(std::vector<int32_t> tokens, std::string name, int64_t docs)
      : Dataset(std::move(name), int64_t(tokens.size()), docs),
        tokens_(std::move(tokens)) {}

private:
  void readImpl(int64_t offset, int64_t count, int32_t *out) const override {
    std::copy_n(tokens_.begin() + offset, count, out);
  }
  std::vector<int32_t> tokens_;
};

/// Appends one document and its end-of-document separator.
void appendDocument(std::vector<int32_t> &stream, const Tokenizer &tokenizer,
                    std::string_view text) {
  std::vector<int32_t> ids = tokenizer.encode(text);
  stream.insert(stream.end(), ids.begin(), ids.end());
  stream.push_back(tokenizer.endOfTextId());
}

//===----------------------------------------------------------------------===//
// binidx (Megatron MMapIndexedDataset, as RWKV-LM's src/binidx.py reads it)
//
// .idx: "MMIDIDX\0\0", u64 version (1), u8 dtype code, u64 number of
// sequences S, u64 number of doc-index entries D, i32 sizes[S] (tokens),
// i64 pointers[S] (byte offsets into .bin), i64 doc_idx[D]; little-endian,
// unaligned. .bin: the tokens of every sequence.
//===----------------------------------------------------------------------===//

constexpr char kIdxMagic[9] = {'M', 'M', 'I', 'D', 'I', 'D', 'X', 0, 0};
constexpr size_t kIdxHeaderSize = 9 + 8 + 1 + 8 + 8;

/// Element size of an integer dtype code; 0 for codes that are not integer
/// token types (6 and 7 are floating point in Megatron).
size_t binidxItemSize(uint8_t code) {
  switch (code) {
  case 1:
  case 2:
    return 1;
  case 3:
  case 8:
    return 2;
  case 4:
    return 4;
  case 5:
    return 8;
  default:
    return 0;
  }
}

template <typename T> T loadLE(const uint8_t *p) {
  T v;
  std::memcpy(&v, p, sizeof(T)); // x86-64 / aarch64: little-endian hosts
  return v;
}

class BinidxDataset final : public Dataset {
public:
  static std::unique_ptr<BinidxDataset> open(const std::string &prefix);
  ~BinidxDataset() override {
    if (map_ && map_ != MAP_FAILED)
      munmap(map_, mapSize_);
  }

private:
  BinidxDataset(std::string name, int64_t numTokens, int64_t docs)
      : Dataset(std::move(name), numTokens, docs) {}

  void readImpl(int64_t offset, int64_t count, int32_t *out) const override;

  std::string binPath_;
  void *map_ = nullptr;
  size_t mapSize_ = 0;
  uint8_t code_ = 8;
  size_t itemSize_ = 2;
  std::vector<int64_t> pointers_; // byte offset of each sequence in .bin
  std::vector<int64_t> starts_;   // stream offset of each sequence (+ total)
};

std::unique_ptr<BinidxDataset> BinidxDataset::open(const std::string &prefix) {
  std::string idxPath = prefix + ".idx", binPath = prefix + ".bin";
  std::string idx = readWholeFile(idxPath);
  auto bytes = reinterpret_cast<const uint8_t *>(idx.data());
  if (idx.size() < 9 || std::memcmp(idx.data(), kIdxMagic, 9) != 0)
    throw DatasetError(fmt::format(
        "{}: not a binidx index (magic 'MMIDIDX\\0\\0' missing)", idxPath));
  if (idx.size() < kIdxHeaderSize)
    throw DatasetError(fmt::format("{}: truncated header ({} bytes, need {})",
                                   idxPath, idx.size(), kIdxHeaderSize));
  uint64_t version = loadLE<uint64_t>(bytes + 9);
  if (version != 1)
    throw DatasetError(
        fmt::format("{}: unsupported binidx version {} (only 1 is known)",
                    idxPath, version));
  uint8_t code = bytes[17];
  size_t itemSize = binidxItemSize(code);
  if (itemSize == 0)
    throw DatasetError(fmt::format(
        "{}: dtype code {} is not an integer token type (known: 1 u8, 2 i8, "
        "3 i16, 4 i32, 5 i64, 8 u16)",
        idxPath, code));
  uint64_t numSeq = loadLE<uint64_t>(bytes + 18);
  uint64_t numDoc = loadLE<uint64_t>(bytes + 26);
  // Compare in long double-free integer math without overflow: each count
  // must fit the file before it is multiplied.
  uint64_t rest = idx.size() - kIdxHeaderSize;
  if (numSeq > rest / 12 || numDoc > (rest - numSeq * 12) / 8 ||
      rest != numSeq * 12 + numDoc * 8)
    throw DatasetError(fmt::format(
        "{}: {} bytes after the header, but {} sequences and {} doc-index "
        "entries need {} (truncated or corrupt)",
        idxPath, rest, numSeq, numDoc,
        numSeq <= rest && numDoc <= rest
            ? fmt::format("{}", numSeq * 12 + numDoc * 8)
            : std::string("more")));

  // The bin file: mapped read-only; only the windows touched are paged in.
  int fd = ::open(binPath.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    throw DatasetError(
        fmt::format("{}: cannot open: {}", binPath, std::strerror(errno)));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    throw DatasetError(
        fmt::format("{}: cannot stat: {}", binPath, std::strerror(err)));
  }
  size_t binSize = size_t(st.st_size);

  const uint8_t *sizes = bytes + kIdxHeaderSize;
  const uint8_t *ptrs = sizes + 4 * numSeq;
  std::vector<int64_t> pointers(numSeq), starts(numSeq + 1, 0);
  for (uint64_t i = 0; i < numSeq; ++i) {
    int32_t size = loadLE<int32_t>(sizes + 4 * i);
    int64_t ptr = loadLE<int64_t>(ptrs + 8 * i);
    if (size < 0 || ptr < 0 || uint64_t(ptr) > binSize ||
        uint64_t(size) * itemSize > binSize - uint64_t(ptr)) {
      ::close(fd);
      throw DatasetError(fmt::format(
          "{}: sequence {} ({} tokens at byte {}) lies outside {} ({} bytes; "
          "truncated?)",
          idxPath, i, size, ptr, binPath, binSize));
    }
    pointers[i] = ptr;
    starts[i + 1] = starts[i] + size;
  }
  int64_t total = starts.back();
  if (total == 0) {
    ::close(fd);
    throw DatasetError(fmt::format("{}: empty data (no tokens)", prefix));
  }

  std::unique_ptr<BinidxDataset> ds(new BinidxDataset(
      binPath, total, int64_t(numDoc > 0 ? numDoc - 1 : numSeq)));
  ds->binPath_ = binPath;
  ds->code_ = code;
  ds->itemSize_ = itemSize;
  ds->pointers_ = std::move(pointers);
  ds->starts_ = std::move(starts);
  ds->mapSize_ = binSize;
  ds->map_ = mmap(nullptr, binSize, PROT_READ, MAP_PRIVATE, fd, 0);
  int err = errno;
  ::close(fd);
  if (ds->map_ == MAP_FAILED)
    throw DatasetError(
        fmt::format("{}: cannot map: {}", binPath, std::strerror(err)));
  return ds;
}

void BinidxDataset::readImpl(int64_t offset, int64_t count,
                             int32_t *out) const {
  auto base = static_cast<const uint8_t *>(map_);
  // The sequence holding `offset`, then walk forward across boundaries.
  size_t seq = size_t(std::upper_bound(starts_.begin(), starts_.end(), offset) -
                      starts_.begin() - 1);
  while (count > 0) {
    int64_t within = offset - starts_[seq];
    int64_t n = std::min(count, starts_[seq + 1] - offset);
    const uint8_t *p = base + pointers_[seq] + size_t(within) * itemSize_;
    for (int64_t i = 0; i < n; ++i, p += itemSize_) {
      int64_t v;
      switch (code_) {
      case 1:
        v = *p;
        break;
      case 2:
        v = int8_t(*p);
        break;
      case 3:
        v = loadLE<int16_t>(p);
        break;
      case 8:
        v = loadLE<uint16_t>(p);
        break;
      case 4:
        v = loadLE<int32_t>(p);
        break;
      default:
        v = loadLE<int64_t>(p);
        break;
      }
      if (v < 0 || v > INT32_MAX)
        throw DatasetError(fmt::format("{}: token {} at stream offset {} is "
                                       "not a valid token id",
                                       binPath_, v, offset + i));
      out[i] = int32_t(v);
    }
    out += n;
    offset += n;
    count -= n;
    ++seq;
  }
}

} // namespace

std::unique_ptr<Dataset> Dataset::fromTokens(std::vector<int32_t> tokens,
                                             const std::string &name,
                                             int64_t numDocuments) {
  if (tokens.empty())
    throw DatasetError(fmt::format("{}: empty data (no tokens)", name));
  return std::make_unique<VectorDataset>(std::move(tokens), name, numDocuments);
}

std::unique_ptr<Dataset> Dataset::fromTextFile(const std::string &path,
                                               const Tokenizer &tokenizer) {
  std::string text = readWholeFile(path);
  if (text.empty())
    throw DatasetError(fmt::format("{}: empty data (the file is empty)", path));
  std::vector<int32_t> stream;
  appendDocument(stream, tokenizer, text);
  return std::make_unique<VectorDataset>(std::move(stream), path, 1);
}

std::unique_ptr<Dataset> Dataset::fromJsonlFile(const std::string &path,
                                                const Tokenizer &tokenizer) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw DatasetError(
        fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
  std::vector<int32_t> stream;
  std::string line;
  int64_t lineNo = 0, docs = 0;
  while (std::getline(in, line)) {
    ++lineNo;
    if (line.find_first_not_of(" \t\r") == std::string::npos)
      continue; // blank lines (e.g. a trailing newline) carry no document
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception &e) {
      throw DatasetError(
          fmt::format("{}:{}: not valid JSON: {}", path, lineNo, e.what()));
    }
    if (!j.is_object() || !j.contains("text") || !j["text"].is_string())
      throw DatasetError(
          fmt::format("{}:{}: expected an object with a string \"text\" member",
                      path, lineNo));
    appendDocument(stream, tokenizer, j["text"].get_ref<const std::string &>());
    ++docs;
  }
  if (docs == 0)
    throw DatasetError(fmt::format("{}: empty data (no documents)", path));
  return std::make_unique<VectorDataset>(std::move(stream), path, docs);
}

std::unique_ptr<Dataset> Dataset::fromBinidx(const std::string &prefix) {
  return BinidxDataset::open(prefix);
}

std::unique_ptr<Dataset> Dataset::open(const std::string &path,
                                       const Tokenizer *tokenizer) {
  bool text = endsWith(path, ".txt"), jsonl = endsWith(path, ".jsonl");
  if (text || jsonl) {
    if (!tokenizer)
      throw DatasetError(fmt::format(
          "{}: a text corpus needs the tokenizer vocabulary (--vocab)", path));
    return text ? fromTextFile(path, *tokenizer)
                : fromJsonlFile(path, *tokenizer);
  }
  std::string prefix = path;
  if (endsWith(prefix, ".bin") || endsWith(prefix, ".idx"))
    prefix.resize(prefix.size() - 4);
  struct stat st;
  if (stat((prefix + ".idx").c_str(), &st) != 0 && stat(path.c_str(), &st) != 0)
    throw DatasetError(
        fmt::format("{}: no such file (and no binidx pair {}.bin / {}.idx)",
                    path, prefix, prefix));
  if (stat((prefix + ".idx").c_str(), &st) != 0)
    throw DatasetError(fmt::format("{}: unknown corpus format (expected "
                                   ".txt, .jsonl or a binidx prefix)",
                                   path));
  return fromBinidx(prefix);
}

void writeBinidx(const std::string &prefix,
                 const std::vector<std::vector<int32_t>> &documents,
                 uint8_t dtypeCode) {
  size_t itemSize = binidxItemSize(dtypeCode);
  if (itemSize == 0)
    throw DatasetError(fmt::format("{}.idx: dtype code {} is not an integer "
                                   "token type",
                                   prefix, dtypeCode));
  std::string bin, idx(kIdxMagic, 9);
  auto put = [](std::string &s, auto v) {
    s.append(reinterpret_cast<const char *>(&v), sizeof(v));
  };
  std::vector<int64_t> pointers;
  for (const auto &doc : documents) {
    pointers.push_back(int64_t(bin.size()));
    for (int32_t t : doc) {
      int64_t v = t;
      bin.append(reinterpret_cast<const char *>(&v), itemSize);
    }
  }
  put(idx, uint64_t(1));
  idx.push_back(char(dtypeCode));
  put(idx, uint64_t(documents.size()));
  put(idx, uint64_t(documents.size() + 1));
  for (const auto &doc : documents)
    put(idx, int32_t(doc.size()));
  for (int64_t p : pointers)
    put(idx, p);
  for (size_t i = 0; i <= documents.size(); ++i)
    put(idx, int64_t(i));
  for (auto [path, data] :
       {std::pair{prefix + ".bin", &bin}, std::pair{prefix + ".idx", &idx}}) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(data->data(), std::streamsize(data->size()));
    if (!out)
      throw DatasetError(fmt::format("{}: cannot write", path));
  }
}

//===----------------------------------------------------------------------===//
// WindowSampler
//===----------------------------------------------------------------------===//

namespace {
uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}
} // namespace

WindowSampler::WindowSampler(const Dataset &data, int64_t T, SamplingMode mode,
                             uint64_t seed)
    : data_(&data), T_(T), mode_(mode), seed_(seed) {
  if (T < 1)
    throw DatasetError(fmt::format(
        "{}: the context length must be >= 1, not {}", data.name(), T));
  if (data.numTokens() < T + 1)
    throw DatasetError(fmt::format(
        "{}: the data holds {} tokens, fewer than one window of context {} "
        "+ 1",
        data.name(), data.numTokens(), T));
  windowsPerEpoch_ = (data.numTokens() - 1) / T;
}

int64_t WindowSampler::windowStart(uint64_t index) const {
  if (mode_ == SamplingMode::Sequential)
    return int64_t(index % uint64_t(windowsPerEpoch_)) * T_;
  uint64_t x = splitmix64(seed_ + (index + 1) * 0x9E3779B97F4A7C15ull);
  uint64_t starts = uint64_t(data_->numTokens() - T_);
  return int64_t((unsigned __int128)x * starts >> 64);
}

Batch WindowSampler::next(int64_t B) {
  Batch batch;
  batch.B = B;
  batch.T = T_;
  batch.inputs.resize(size_t(B * T_));
  batch.targets.resize(size_t(B * T_));
  std::vector<int32_t> window(size_t(T_ + 1));
  for (int64_t b = 0; b < B; ++b) {
    int64_t start = windowStart(position_ + uint64_t(b));
    data_->read(start, T_ + 1, window.data());
    if (vocabSize_ > 0)
      for (int64_t i = 0; i <= T_; ++i)
        if (window[size_t(i)] >= vocabSize_)
          throw DatasetError(fmt::format(
              "{}: token {} at offset {} is outside the model's vocabulary "
              "(size {})",
              data_->name(), window[size_t(i)], start + i, vocabSize_));
    std::copy_n(window.begin(), T_, batch.inputs.begin() + b * T_);
    std::copy_n(window.begin() + 1, T_, batch.targets.begin() + b * T_);
  }
  position_ += uint64_t(B);
  return batch;
}

} // namespace rwkv
