//===- Gguf.cpp - llama.cpp GGUF reader for RWKV-7 ------------------------===//
//
// Reads the GGUF v2/v3 files llama.cpp writes for architecture "rwkv7"
// (convert_hf_to_gguf.py, llama-quantize) and presents them as the released
// .pth state_dict: the names, shapes and layouts of spec §3.1. llama.cpp's
// conversion is undone exactly: the fused token-shift tensor is split back
// into x_r..x_g, the transposed LoRA factors are transposed back, r_k gets
// its [H, N] shape and the squeezed vectors their [1, 1, C], and layer 0's
// dummy v0/v1/v2 (copies of a0/a1/a2) are dropped.
//
// F32/F16/BF16 tensors are views of the mapping (strided where transposed).
// Q4_0 and Q8_0 projections, embedding and head are repacked, not decoded,
// into the int4 and grouped int8 layouts of rwkv-quantize (the kernels read
// the codes); other Q8_0, Q4_0 and Q6_K tensors are dequantized to bf16 into
// owned buffers. Every
// count, length, offset and shape is validated before it is used: a malformed
// file throws CheckpointError naming the file and the key or tensor.
//
//===----------------------------------------------------------------------===//

#include "runtime/checkpoint/Internal.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <optional>
#include <unordered_map>

namespace rwkv {
namespace {

//===----------------------------------------------------------------------===//
// Container
//===----------------------------------------------------------------------===//

// gguf_type (ggml/include/gguf.h).
enum ValueType : uint32_t {
  kU8,
  kI8,
  kU16,
  kI16,
  kU32,
  kI32,
  kF32,
  kBool,
  kString,
  kArray,
  kU64,
  kI64,
  kF64,
  kNumValueTypes
};

const char *valueTypeName(uint32_t t) {
  static const char *const names[] = {"u8",  "i8",  "u16",  "i16",    "u32",
                                      "i32", "f32", "bool", "string", "array",
                                      "u64", "i64", "f64"};
  return t < kNumValueTypes ? names[t] : "unknown";
}

/// Size of a fixed-size value type; 0 for string and array.
uint64_t valueSize(uint32_t t) {
  switch (t) {
  case kU8:
  case kI8:
  case kBool:
    return 1;
  case kU16:
  case kI16:
    return 2;
  case kU32:
  case kI32:
  case kF32:
    return 4;
  case kU64:
  case kI64:
  case kF64:
    return 8;
  default:
    return 0;
  }
}

// ggml_type with its block geometry (gguf-py GGML_QUANT_SIZES). Every type
// is listed so that an unsupported one can be named and its extent checked.
struct GgmlType {
  uint32_t id;
  const char *name;
  uint32_t blockSize, typeSize;
};
const GgmlType kGgmlTypes[] = {
    {0, "F32", 1, 4},         {1, "F16", 1, 2},
    {2, "Q4_0", 32, 18},      {3, "Q4_1", 32, 20},
    {6, "Q5_0", 32, 22},      {7, "Q5_1", 32, 24},
    {8, "Q8_0", 32, 34},      {9, "Q8_1", 32, 36},
    {10, "Q2_K", 256, 84},    {11, "Q3_K", 256, 110},
    {12, "Q4_K", 256, 144},   {13, "Q5_K", 256, 176},
    {14, "Q6_K", 256, 210},   {15, "Q8_K", 256, 292},
    {16, "IQ2_XXS", 256, 66}, {17, "IQ2_XS", 256, 74},
    {18, "IQ3_XXS", 256, 98}, {19, "IQ1_S", 256, 50},
    {20, "IQ4_NL", 32, 18},   {21, "IQ3_S", 256, 110},
    {22, "IQ2_S", 256, 82},   {23, "IQ4_XS", 256, 136},
    {24, "I8", 1, 1},         {25, "I16", 1, 2},
    {26, "I32", 1, 4},        {27, "I64", 1, 8},
    {28, "F64", 1, 8},        {29, "IQ1_M", 256, 56},
    {30, "BF16", 1, 2},       {34, "TQ1_0", 256, 54},
    {35, "TQ2_0", 256, 66},   {39, "MXFP4", 32, 17},
    {40, "NVFP4", 64, 36},    {41, "Q1_0", 128, 18}};
enum : uint32_t {
  kF32Type = 0,
  kF16Type = 1,
  kQ4_0 = 2,
  kQ8_0 = 8,
  kQ6_K = 14,
  kBF16Type = 30
};

const GgmlType *findGgmlType(uint32_t id) {
  for (const GgmlType &t : kGgmlTypes)
    if (t.id == id)
      return &t;
  return nullptr;
}

bool isQuantizedSupported(uint32_t id) {
  return id == kQ8_0 || id == kQ4_0 || id == kQ6_K;
}

// llama_ftype names (general.file_type), for rwkv-inspect.
const char *fileTypeName(uint64_t ft) {
  static const std::pair<uint64_t, const char *> names[] = {
      {0, "ALL_F32"},        {1, "MOSTLY_F16"},     {2, "MOSTLY_Q4_0"},
      {3, "MOSTLY_Q4_1"},    {7, "MOSTLY_Q8_0"},    {8, "MOSTLY_Q5_0"},
      {9, "MOSTLY_Q5_1"},    {10, "MOSTLY_Q2_K"},   {11, "MOSTLY_Q3_K_S"},
      {12, "MOSTLY_Q3_K_M"}, {13, "MOSTLY_Q3_K_L"}, {14, "MOSTLY_Q4_K_S"},
      {15, "MOSTLY_Q4_K_M"}, {16, "MOSTLY_Q5_K_S"}, {17, "MOSTLY_Q5_K_M"},
      {18, "MOSTLY_Q6_K"},   {32, "MOSTLY_BF16"}};
  for (const auto &[id, name] : names)
    if (id == ft)
      return name;
  return nullptr;
}

/// One metadata value. Scalars are decoded; strings point into the file;
/// arrays are only skipped (nothing this reader needs is an array).
struct Meta {
  uint32_t type = 0;
  uint64_t u = 0; // unsigned integers and bool
  int64_t i = 0;  // signed integers
  double f = 0;
  std::string_view s;
  uint32_t elemType = 0;
  uint64_t count = 0;

  bool isInteger() const {
    return type == kU8 || type == kI8 || type == kU16 || type == kI16 ||
           type == kU32 || type == kI32 || type == kU64 || type == kI64;
  }
  bool isSigned() const {
    return type == kI8 || type == kI16 || type == kI32 || type == kI64;
  }
  std::string describe() const {
    if (type == kString)
      return fmt::format("the string '{}'", s);
    if (type == kArray)
      return fmt::format("an array of {} {}", count, valueTypeName(elemType));
    if (isSigned())
      return fmt::format("{} {}", valueTypeName(type), i);
    if (isInteger() || type == kBool)
      return fmt::format("{} {}", valueTypeName(type), u);
    return fmt::format("{} {}", valueTypeName(type), f);
  }
};

/// Bounds-checked little-endian reads over the file bytes.
class Cursor {
public:
  Cursor(const std::string &file, const uint8_t *data, uint64_t size)
      : file_(file), d_(data), size_(size) {}
  uint64_t pos() const { return pos_; }
  uint64_t left() const { return size_ - pos_; }

  /// `what` is a callable that makes the description, only on failure.
  template <typename What> void need(uint64_t n, const What &what) const {
    if (n > left())
      fail(file_,
           "truncated GGUF file: {} needs {} bytes at offset {}, but the "
           "file ends {} bytes later",
           what(), n, pos_, left());
  }
  template <typename T, typename What> T read(const What &what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, d_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  template <typename What> std::string_view string(const What &what) {
    uint64_t len = read<uint64_t>(what);
    need(len, what);
    std::string_view s(reinterpret_cast<const char *>(d_ + pos_), len);
    pos_ += len;
    return s;
  }
  template <typename What> void skip(uint64_t n, const What &what) {
    need(n, what);
    pos_ += n;
  }

private:
  const std::string &file_;
  const uint8_t *d_;
  uint64_t size_;
  uint64_t pos_ = 0;
};

void readValue(Cursor &c, Meta &m, std::string_view key,
               const std::string &file) {
  auto what = [&] { return fmt::format("the value of metadata '{}'", key); };
  switch (m.type) {
  case kU8:
  case kBool:
    m.u = c.read<uint8_t>(what);
    return;
  case kI8:
    m.i = c.read<int8_t>(what);
    return;
  case kU16:
    m.u = c.read<uint16_t>(what);
    return;
  case kI16:
    m.i = c.read<int16_t>(what);
    return;
  case kU32:
    m.u = c.read<uint32_t>(what);
    return;
  case kI32:
    m.i = c.read<int32_t>(what);
    return;
  case kU64:
    m.u = c.read<uint64_t>(what);
    return;
  case kI64:
    m.i = c.read<int64_t>(what);
    return;
  case kF32:
    m.f = c.read<float>(what);
    return;
  case kF64:
    m.f = c.read<double>(what);
    return;
  case kString:
    m.s = c.string(what);
    return;
  case kArray: {
    m.elemType = c.read<uint32_t>(what);
    m.count = c.read<uint64_t>(what);
    if (m.elemType == kArray)
      fail(file,
           "metadata '{}' is an array of arrays, which GGUF does not allow",
           key);
    if (m.elemType >= kNumValueTypes)
      fail(file, "metadata '{}' is an array of unknown value type {}", key,
           m.elemType);
    if (m.elemType == kString) {
      // Each string needs at least its 8-byte length: a cheap bound before
      // walking a huge count.
      if (m.count > c.left() / 8)
        fail(file,
             "truncated GGUF file: metadata '{}' claims {} strings, more "
             "than the {} bytes left can hold",
             key, m.count, c.left());
      for (uint64_t k = 0; k < m.count; ++k)
        c.string(
            [&] { return fmt::format("string {} of metadata '{}'", k, key); });
      return;
    }
    uint64_t bytes;
    if (!mulOk(m.count, valueSize(m.elemType), bytes) || bytes > c.left())
      fail(file,
           "truncated GGUF file: metadata '{}' claims {} {} values, more "
           "than the {} bytes left can hold",
           key, m.count, valueTypeName(m.elemType), c.left());
    c.skip(bytes, what);
    return;
  }
  default:
    fail(file, "metadata '{}' has unknown value type {}", key, m.type);
  }
}

struct TensorInfo {
  std::string name;
  std::vector<int64_t> ne; // ggml order: ne[0] varies fastest
  const GgmlType *type = nullptr;
  uint64_t offset = 0, nbytes = 0;
  const uint8_t *data = nullptr;

  /// ne without trailing 1s (ggml pads every tensor to 4 dims with 1s).
  std::vector<int64_t> dims() const {
    std::vector<int64_t> d = ne;
    while (d.size() > 1 && d.back() == 1)
      d.pop_back();
    return d;
  }
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t x : ne)
      n *= x;
    return n;
  }
  std::string describe() const {
    return fmt::format("'{}' ({}, ggml ne {})", name, type->name, shapeStr(ne));
  }
};

//===----------------------------------------------------------------------===//
// Dequantization (ggml-quants.c dequantize_row_*, gguf-py quants.py)
//===----------------------------------------------------------------------===//

float loadF16(const uint8_t *p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return f16ToF32(h);
}

/// Decodes `n` elements (a multiple of the block size) of `type` to f32.
void dequantizeRow(uint32_t type, const uint8_t *src, int64_t n, float *out) {
  switch (type) {
  case kQ8_0: // d (f16), 32 x int8: x = d * q
    for (int64_t b = 0; b < n / 32; ++b, src += 34, out += 32) {
      float d = loadF16(src);
      for (int j = 0; j < 32; ++j)
        out[j] = d * float(int8_t(src[2 + j]));
    }
    return;
  case kQ4_0: // d (f16), 16 bytes: element j in the low nibble of byte j,
              // element j + 16 in its high nibble; x = d * (q - 8)
    for (int64_t b = 0; b < n / 32; ++b, src += 18, out += 32) {
      float d = loadF16(src);
      for (int j = 0; j < 16; ++j) {
        out[j] = d * float(int(src[2 + j] & 0x0F) - 8);
        out[j + 16] = d * float(int(src[2 + j] >> 4) - 8);
      }
    }
    return;
  case kQ6_K: // ql[128], qh[64], int8 scales[16], d (f16); per 128-half:
              // q = 4 low bits from ql | 2 high bits from qh, x = d*sc*(q-32)
    for (int64_t b = 0; b < n / 256; ++b, src += 210) {
      const uint8_t *ql = src, *qh = src + 128;
      const int8_t *sc = reinterpret_cast<const int8_t *>(src + 192);
      float d = loadF16(src + 208);
      for (int half = 0; half < 2;
           ++half, ql += 64, qh += 32, sc += 8, out += 128) {
        for (int l = 0; l < 32; ++l) {
          int is = l / 16;
          int q1 = int((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
          int q2 = int((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
          int q3 = int((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
          int q4 = int((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
          out[l + 0] = d * float(sc[is + 0]) * float(q1);
          out[l + 32] = d * float(sc[is + 2]) * float(q2);
          out[l + 64] = d * float(sc[is + 4]) * float(q3);
          out[l + 96] = d * float(sc[is + 6]) * float(q4);
        }
      }
    }
    return;
  default:
    break;
  }
}

//===----------------------------------------------------------------------===//
// rwkv7 tensor names -> released .pth names
//===----------------------------------------------------------------------===//

enum class Kind {
  Direct,     // same row-major layout: reversed ne
  Vector,     // [C]
  Vector3,    // squeezed [1, 1, C]: numel C
  RK,         // flattened r_k: [C] -> [H, N]
  Transposed, // LoRA factor: ggml ne [a, b] is torch [b, a]; want [a, b]
  LerpFused,  // [6, 1, 1, C] -> att.x_r, x_w, x_k, x_v, x_a, x_g
  Dropped,    // layer 0's dummy v0/v1/v2
};

struct Mapping {
  std::string target; // released name (LerpFused: "blocks.N.att.")
  Kind kind;
};

const std::map<std::string_view, std::pair<const char *, Kind>> &blockTable() {
  static const std::map<std::string_view, std::pair<const char *, Kind>> t = {
      {"attn_norm.weight", {"ln1.weight", Kind::Vector}},
      {"attn_norm.bias", {"ln1.bias", Kind::Vector}},
      {"attn_norm_2.weight", {"ln2.weight", Kind::Vector}},
      {"attn_norm_2.bias", {"ln2.bias", Kind::Vector}},
      {"time_mix_lerp_fused.weight", {"att.", Kind::LerpFused}},
      {"time_mix_w0.weight", {"att.w0", Kind::Vector3}},
      {"time_mix_a0.weight", {"att.a0", Kind::Vector3}},
      {"time_mix_v0.weight", {"att.v0", Kind::Vector3}},
      {"time_mix_k_k.weight", {"att.k_k", Kind::Vector3}},
      {"time_mix_k_a.weight", {"att.k_a", Kind::Vector3}},
      {"time_mix_r_k.weight", {"att.r_k", Kind::RK}},
      {"time_mix_w1.weight", {"att.w1", Kind::Transposed}},
      {"time_mix_w2.weight", {"att.w2", Kind::Transposed}},
      {"time_mix_a1.weight", {"att.a1", Kind::Transposed}},
      {"time_mix_a2.weight", {"att.a2", Kind::Transposed}},
      {"time_mix_v1.weight", {"att.v1", Kind::Transposed}},
      {"time_mix_v2.weight", {"att.v2", Kind::Transposed}},
      {"time_mix_g1.weight", {"att.g1", Kind::Transposed}},
      {"time_mix_g2.weight", {"att.g2", Kind::Transposed}},
      {"time_mix_receptance.weight", {"att.receptance.weight", Kind::Direct}},
      {"time_mix_key.weight", {"att.key.weight", Kind::Direct}},
      {"time_mix_value.weight", {"att.value.weight", Kind::Direct}},
      {"time_mix_output.weight", {"att.output.weight", Kind::Direct}},
      {"time_mix_ln.weight", {"att.ln_x.weight", Kind::Vector}},
      {"time_mix_ln.bias", {"att.ln_x.bias", Kind::Vector}},
      {"channel_mix_lerp_k.weight", {"ffn.x_k", Kind::Vector3}},
      {"channel_mix_key.weight", {"ffn.key.weight", Kind::Direct}},
      {"channel_mix_value.weight", {"ffn.value.weight", Kind::Direct}},
  };
  return t;
}

const char *const kLerpNames[] = {"x_r", "x_w", "x_k", "x_v", "x_a", "x_g"};

class GgufLoader {
public:
  explicit GgufLoader(Checkpoint &ckpt)
      : ckpt_(ckpt), file_(ckpt.path()), impl_(CheckpointLoader::impl(ckpt)) {}

  void load() {
    CheckpointLoader::setFormat(ckpt_, Checkpoint::Format::Gguf);
    Cursor c(file_, impl_.data, impl_.size);
    readHeader(c);
    readMetadata(c);
    readTensorInfos(c);
    placeData(c);
    readHyperParameters();
    mapTensors();
    checkAndAdd();
  }

private:
  Checkpoint &ckpt_;
  const std::string &file_;
  Checkpoint::Impl &impl_;
  uint64_t nTensors_ = 0, nKv_ = 0;
  std::unordered_map<std::string, Meta> meta_;
  std::vector<TensorInfo> infos_;
  int64_t C_ = 0, L_ = 0, N_ = 0;
  // Released name -> view (in GGUF order until checkAndAdd sorts them).
  std::unordered_map<std::string, Tensor> out_;
  std::unordered_map<std::string, std::string> source_;
  std::map<std::string, int> typeCounts_, dequantized_;
  int repackedInt4_ = 0, repackedInt8_ = 0;
  int dropped_ = 0;

  void readHeader(Cursor &c) {
    auto what = [] { return std::string("the GGUF header"); };
    c.skip(4, what); // magic, checked by the caller
    uint32_t version = c.read<uint32_t>(what);
    if (version == 1)
      fail(file_, "GGUF v1 (32-bit counts, 2023) is not supported; "
                  "re-convert the model with a current llama.cpp");
    if (version != 2 && version != 3) {
      uint32_t swapped = __builtin_bswap32(version);
      if (swapped >= 1 && swapped <= 3)
        fail(file_,
             "big-endian GGUF (v{}) is not supported; convert it with "
             "gguf-py's gguf_convert_endian.py",
             swapped);
      fail(file_, "unsupported GGUF version {} (supported: 2 and 3)", version);
    }
    CheckpointLoader::setFormatVersion(ckpt_, version);
    nTensors_ = c.read<uint64_t>(what);
    nKv_ = c.read<uint64_t>(what);
    // A metadata entry takes at least 8 (key length) + 4 (type) + 1 bytes,
    // a tensor info 8 (name length) + 4 (n_dims) + 4 (type) + 8 (offset):
    // reject impossible counts before allocating anything for them.
    if (nKv_ > c.left() / 13)
      fail(file_,
           "GGUF header claims {} metadata entries, more than the {}-byte "
           "file can hold",
           nKv_, impl_.size);
    if (nTensors_ > c.left() / 24)
      fail(file_,
           "GGUF header claims {} tensors, more than the {}-byte file can "
           "hold",
           nTensors_, impl_.size);
  }

  void readMetadata(Cursor &c) {
    for (uint64_t k = 0; k < nKv_; ++k) {
      std::string_view key = c.string(
          [&] { return fmt::format("the key of metadata entry {}", k); });
      Meta m;
      m.type = c.read<uint32_t>(
          [&] { return fmt::format("the type of metadata '{}'", key); });
      readValue(c, m, key, file_);
      if (!meta_.emplace(std::string(key), m).second)
        fail(file_, "duplicate metadata key '{}'", key);
    }
  }

  const Meta *find(const std::string &key) const {
    auto it = meta_.find(key);
    return it == meta_.end() ? nullptr : &it->second;
  }

  /// A non-negative integer value, or nullopt when the key is absent.
  std::optional<uint64_t> unsignedValue(const std::string &key) const {
    const Meta *m = find(key);
    if (!m)
      return std::nullopt;
    if (!m->isInteger() || (m->isSigned() && m->i < 0))
      fail(file_, "metadata '{}' is {}, expected a non-negative integer", key,
           m->describe());
    return m->isSigned() ? uint64_t(m->i) : m->u;
  }

  void readTensorInfos(Cursor &c) {
    infos_.reserve(nTensors_);
    std::unordered_map<std::string_view, size_t> seen;
    for (uint64_t k = 0; k < nTensors_; ++k) {
      TensorInfo t;
      std::string_view name = c.string(
          [&] { return fmt::format("the name of tensor info {}", k); });
      t.name = std::string(name);
      auto what = [&] { return fmt::format("tensor info '{}'", t.name); };
      uint32_t nDims = c.read<uint32_t>(what);
      if (nDims == 0 || nDims > 4)
        fail(file_, "tensor '{}' has {} dimensions; GGUF allows 1 to 4", t.name,
             nDims);
      uint64_t numel = 1;
      for (uint32_t d = 0; d < nDims; ++d) {
        int64_t n = c.read<int64_t>(what);
        if (n < 0)
          fail(file_, "tensor '{}' has a negative dimension ne[{}] = {}",
               t.name, d, n);
        // ggml allows empty tensors, but no rwkv7 weight is one, and a
        // zero dimension would let another one be arbitrarily large.
        if (n == 0)
          fail(file_, "tensor '{}' has an empty dimension ne[{}] = 0", t.name,
               d);
        t.ne.push_back(n);
        if (!mulOk(numel, uint64_t(n), numel) || numel > uint64_t(INT64_MAX))
          fail(file_,
               "tensor '{}': ggml ne {}... has more elements than fit "
               "in 64 bits",
               t.name, shapeStr(t.ne));
      }
      uint32_t type = c.read<uint32_t>(what);
      t.type = findGgmlType(type);
      if (!t.type)
        fail(file_, "tensor '{}' has unknown ggml type {}", t.name, type);
      t.offset = c.read<uint64_t>(what);
      if (t.ne[0] % t.type->blockSize != 0)
        fail(file_,
             "tensor {}: ne[0] = {} is not a multiple of the {} block size "
             "{}",
             t.describe(), t.ne[0], t.type->name, t.type->blockSize);
      if (!mulOk(numel / t.type->blockSize, t.type->typeSize, t.nbytes))
        fail(file_, "tensor {}: its size in bytes overflows", t.describe());
      if (!seen.emplace(name, k).second)
        fail(file_, "duplicate tensor name '{}'", t.name);
      infos_.push_back(std::move(t));
    }
  }

  void placeData(Cursor &c) {
    uint64_t alignment = 32; // GGUF_DEFAULT_ALIGNMENT
    if (const Meta *m = find("general.alignment")) {
      if (!m->isInteger() || m->isSigned())
        fail(file_, "metadata 'general.alignment' is {}, expected a u32",
             m->describe());
      alignment = m->u;
      if (alignment == 0 || (alignment & (alignment - 1)) != 0 ||
          alignment > (uint64_t(1) << 30))
        fail(file_,
             "metadata 'general.alignment' is {}, expected a power of two "
             "(default 32)",
             alignment);
    }
    uint64_t start;
    if (!addOk(c.pos(), alignment - 1, start))
      fail(file_, "GGUF data section offset overflows");
    start -= start % alignment;
    if (start > impl_.size) {
      if (!infos_.empty())
        fail(file_,
             "truncated GGUF file: the tensor data would start at offset {} "
             "(after padding to {} bytes), but the file has only {} bytes",
             start, alignment, impl_.size);
      start = impl_.size;
    }
    uint64_t dataSize = impl_.size - start;
    std::vector<const TensorInfo *> byOffset;
    for (TensorInfo &t : infos_) {
      if (t.offset % alignment != 0)
        fail(file_,
             "tensor {} data offset {} is not a multiple of the alignment {}",
             t.describe(), t.offset, alignment);
      uint64_t end;
      if (!addOk(t.offset, t.nbytes, end) || end > dataSize)
        fail(file_,
             "tensor {}: {} bytes at data offset {} extend past the end of "
             "the file, whose data section holds {} bytes (truncated file or "
             "bad offset)",
             t.describe(), t.nbytes, t.offset, dataSize);
      t.data = impl_.data + start + t.offset;
      if (t.nbytes > 0)
        byOffset.push_back(&t);
    }
    std::sort(byOffset.begin(), byOffset.end(),
              [](const TensorInfo *a, const TensorInfo *b) {
                return a->offset < b->offset;
              });
    for (size_t k = 1; k < byOffset.size(); ++k)
      if (byOffset[k]->offset <
          byOffset[k - 1]->offset + byOffset[k - 1]->nbytes)
        fail(file_, "tensors '{}' and '{}' overlap in the data section",
             byOffset[k - 1]->name, byOffset[k]->name);
  }

  void readHyperParameters() {
    const Meta *arch = find("general.architecture");
    if (!arch)
      fail(file_, "no 'general.architecture' metadata: not a llama.cpp model "
                  "file");
    if (arch->type != kString)
      fail(file_, "metadata 'general.architecture' is {}, expected a string",
           arch->describe());
    if (arch->s != "rwkv7") {
      bool older = arch->s == "rwkv6" || arch->s == "rwkv6qwen2";
      fail(file_,
           "general.architecture is '{}', expected 'rwkv7': only llama.cpp's "
           "RWKV-7 GGUF files can be read{}",
           arch->s,
           older ? " (for RWKV-6 use the released .pth or safetensors)" : "");
    }
    if (std::optional<uint64_t> count = unsignedValue("split.count");
        count && *count > 1)
      fail(file_,
           "this is part {} of a {}-part split GGUF; merge the parts with "
           "llama-gguf-split --merge first",
           unsignedValue("split.no").value_or(0) + 1, *count);
    auto need = [&](const std::string &key) -> int64_t {
      std::optional<uint64_t> v = unsignedValue(key);
      if (!v)
        fail(file_, "missing metadata '{}' (llama.cpp writes it for rwkv7)",
             key);
      // No model has a dimension past 2^31; refusing one keeps the
      // products of dimensions below in range.
      if (*v == 0 || *v > uint64_t(1) << 31)
        fail(file_, "metadata '{}' is {}, not a plausible size", key, *v);
      return int64_t(*v);
    };
    C_ = need("rwkv7.embedding_length");
    L_ = need("rwkv7.block_count");
    N_ = need("rwkv7.wkv.head_size");
    if (C_ % N_ != 0)
      fail(file_,
           "rwkv7.embedding_length {} is not a multiple of rwkv7.wkv."
           "head_size {}",
           C_, N_);
    // ~30 tensors per block: a count the file cannot back is an error here,
    // before per-layer lists are built.
    if (uint64_t(L_) > infos_.size())
      fail(file_,
           "rwkv7.block_count is {}, but the file holds only {} "
           "tensors",
           L_, infos_.size());
    // The compiled model's LayerNorms use eps = 1e-5 (spec §1.4).
    if (const Meta *eps = find("rwkv7.attention.layer_norm_epsilon")) {
      if (eps->type != kF32 && eps->type != kF64)
        fail(file_,
             "metadata 'rwkv7.attention.layer_norm_epsilon' is {}, expected "
             "a float",
             eps->describe());
      if (!(std::fabs(eps->f - 1e-5) <= 1e-9))
        fail(file_,
             "rwkv7.attention.layer_norm_epsilon is {:g}, but RWKV-7 (and this "
             "compiler) use 1e-5",
             eps->f);
    }
  }

  /// The released name of a GGUF tensor, or fails for a foreign one.
  Mapping mapName(const TensorInfo &t) const {
    static const std::map<std::string_view, std::pair<const char *, Kind>> top =
        {{"token_embd.weight", {"emb.weight", Kind::Direct}},
         {"token_embd_norm.weight", {"blocks.0.ln0.weight", Kind::Vector}},
         {"token_embd_norm.bias", {"blocks.0.ln0.bias", Kind::Vector}},
         {"output_norm.weight", {"ln_out.weight", Kind::Vector}},
         {"output_norm.bias", {"ln_out.bias", Kind::Vector}},
         {"output.weight", {"head.weight", Kind::Direct}}};
    if (auto it = top.find(t.name); it != top.end())
      return {it->second.first, it->second.second};
    std::string_view n = t.name;
    if (n.compare(0, 4, "blk.") == 0) {
      size_t p = 4;
      int64_t block = 0; // saturates: only compared with L_
      while (p < n.size() && n[p] >= '0' && n[p] <= '9')
        block = std::min<int64_t>(block * 10 + (n[p++] - '0'), 1ll << 40);
      if (p > 4 && p < n.size() && n[p] == '.' && (n[4] != '0' || p == 5)) {
        auto it = blockTable().find(n.substr(p + 1));
        if (it != blockTable().end()) {
          if (block >= L_)
            fail(file_,
                 "tensor '{}' belongs to block {}, but rwkv7.block_count is "
                 "{}",
                 t.name, n.substr(4, p - 4), L_);
          Kind kind = it->second.second;
          std::string suffix = it->second.first;
          if (block == 0 &&
              (suffix == "att.v0" || suffix == "att.v1" || suffix == "att.v2"))
            kind = Kind::Dropped;
          return {fmt::format("blocks.{}.{}", block, suffix), kind};
        }
      }
    }
    fail(file_,
         "unexpected tensor {} in an rwkv7 GGUF (not one that llama.cpp's "
         "RWKV-7 model reads)",
         t.describe());
  }

  static DType viewDType(uint32_t id) {
    return id == kF32Type   ? DType::F32
           : id == kF16Type ? DType::F16
                            : DType::BF16;
  }

  /// Dequantizes `t` to bf16 into an owned buffer in ggml order (row-major
  /// reversed ne), transposed to [ne0, ne1] when `transpose`.
  const uint8_t *dequantize(const TensorInfo &t, bool transpose) {
    int64_t rowLen = t.ne[0], rows = t.numel() / std::max<int64_t>(rowLen, 1);
    auto buf = std::make_unique<std::vector<uint8_t>>(size_t(t.numel()) * 2);
    uint16_t *dst = reinterpret_cast<uint16_t *>(buf->data());
    std::vector<float> row(static_cast<size_t>(rowLen));
    uint64_t rowBytes = uint64_t(rowLen) / t.type->blockSize * t.type->typeSize;
    for (int64_t r = 0; r < rows; ++r) {
      dequantizeRow(t.type->id, t.data + uint64_t(r) * rowBytes, rowLen,
                    row.data());
      for (int64_t j = 0; j < rowLen; ++j)
        dst[transpose ? j * rows + r : r * rowLen + j] =
            f32ToBf16(row[size_t(j)]);
    }
    const uint8_t *p = buf->data();
    impl_.owned.push_back(std::move(buf));
    ++dequantized_[t.type->name];
    return p;
  }

  /// Adds repacked codes `target` ([rows, codeWidth] of `codeType`) and
  /// their bf16 block scales `target_scale` ([rows, cols / 32]).
  void addRepacked(const TensorInfo &t, const std::string &target, int64_t rows,
                   DType codeType, int64_t codeWidth, int64_t cols,
                   std::unique_ptr<std::vector<uint8_t>> codes,
                   std::unique_ptr<std::vector<uint8_t>> scales) {
    const bool int4 = codeType == DType::U8;
    auto add = [&](const std::string &name, DType dtype, int64_t width,
                   std::unique_ptr<std::vector<uint8_t>> buf,
                   std::string source) {
      Tensor v;
      v.name = name;
      v.dtype = dtype;
      v.shape = {rows, width};
      v.strides = {width, 1};
      v.data = buf->data();
      v.nbytes = buf->size();
      impl_.owned.push_back(std::move(buf));
      source_[name] = std::move(source);
      out_[name] = std::move(v);
    };
    add(target, codeType, codeWidth, std::move(codes),
        fmt::format("{} ({} repacked to {}, ggml ne {})", t.name, t.type->name,
                    int4 ? "int4" : "int8", shapeStr(t.ne)));
    add(target + "_scale", DType::BF16, cols / 32, std::move(scales),
        fmt::format("{} ({} block scales, f16 rounded to bf16)", t.name,
                    t.type->name));
    ++(int4 ? repackedInt4_ : repackedInt8_);
  }

  /// Repacks the Q4_0 matrix `t` ([rows, cols] released) into the int4
  /// layout of rwkv-quantize, as `target` (u8 [rows, cols / 2]: column 2j in
  /// the low nibble of byte j, 2j + 1 in the high one, two's complement) and
  /// `target_scale` (bf16 [rows, cols / 32]). A Q4_0 block is a f16 scale d
  /// and 32 codes c (element j in the low nibble of byte j, j + 16 in the
  /// high one) worth d * (c - 8): the code becomes c - 8 = c ^ 8 (mod 16)
  /// unchanged, and d is rounded to bf16 (|relative change| <= 2^-8, as for
  /// a weight dequantized to bf16).
  void repackQ4_0(const TensorInfo &t, const std::string &target, int64_t rows,
                  int64_t cols) {
    const int64_t blocks = rows * (cols / 32);
    auto codes = std::make_unique<std::vector<uint8_t>>(size_t(blocks) * 16);
    auto scales = std::make_unique<std::vector<uint8_t>>(size_t(blocks) * 2);
    uint8_t *q = codes->data();
    uint16_t *d = reinterpret_cast<uint16_t *>(scales->data());
    const uint8_t *src = t.data;
    for (int64_t b = 0; b < blocks; ++b, src += 18) {
      d[b] = f32ToBf16(loadF16(src));
      uint8_t c[32];
      for (int j = 0; j < 16; ++j) {
        c[j] = src[2 + j] & 0x0F;
        c[j + 16] = src[2 + j] >> 4;
      }
      for (int j = 0; j < 16; ++j)
        *q++ = uint8_t((c[2 * j] ^ 8) | (c[2 * j + 1] ^ 8) << 4);
    }
    addRepacked(t, target, rows, DType::U8, cols / 2, cols, std::move(codes),
                std::move(scales));
  }

  /// Repacks the Q8_0 matrix `t` ([rows, cols] released) into the grouped
  /// int8 layout of rwkv-quantize, as `target` (i8 [rows, cols]) and
  /// `target_scale` (bf16 [rows, cols / 32]). A Q8_0 block is a f16 scale d
  /// and 32 int8 codes q worth d * q: the codes are copied unchanged and d is
  /// rounded to bf16 (|relative change| <= 2^-8, as for a weight dequantized
  /// to bf16).
  void repackQ8_0(const TensorInfo &t, const std::string &target, int64_t rows,
                  int64_t cols) {
    const int64_t blocks = rows * (cols / 32);
    auto codes = std::make_unique<std::vector<uint8_t>>(size_t(blocks) * 32);
    auto scales = std::make_unique<std::vector<uint8_t>>(size_t(blocks) * 2);
    uint16_t *d = reinterpret_cast<uint16_t *>(scales->data());
    const uint8_t *src = t.data;
    for (int64_t b = 0; b < blocks; ++b, src += 34) {
      d[b] = f32ToBf16(loadF16(src));
      std::memcpy(codes->data() + 32 * b, src + 2, 32);
    }
    addRepacked(t, target, rows, DType::I8, cols, cols, std::move(codes),
                std::move(scales));
  }

  void mapTensors() {
    for (const TensorInfo &t : infos_) {
      ++typeCounts_[t.type->name];
      Mapping m = mapName(t);
      if (m.kind == Kind::Dropped) {
        ++dropped_;
        continue;
      }
      uint32_t id = t.type->id;
      bool quantized = isQuantizedSupported(id);
      if (!quantized && id != kF32Type && id != kF16Type && id != kBF16Type)
        fail(file_,
             "tensor {} ({}) has type {}, which this reader does not "
             "support (supported: F32, F16, BF16, Q8_0, Q4_0, Q6_K); "
             "re-quantize the F16/BF16 GGUF to Q8_0 or Q4_0 with "
             "llama-quantize",
             t.describe(), m.target, t.type->name);
      std::vector<int64_t> dims = t.dims();
      // A matrix [rows, cols] is ggml ne [cols, rows(, 1, 1)].
      bool matrix = std::all_of(t.ne.begin() + std::min<size_t>(2, t.ne.size()),
                                t.ne.end(), [](int64_t d) { return d == 1; });
      std::vector<int64_t> mat = {t.ne[0], t.ne.size() > 1 ? t.ne[1] : 1};
      auto expectVector = [&](const char *what) {
        if (dims.size() != 1 || dims[0] != C_)
          fail(file_,
               "tensor {} ({}) should be {} of n_embd = {} values "
               "(rwkv7.embedding_length)",
               t.describe(), m.target, what, C_);
      };
      std::string how;
      std::vector<int64_t> shape, strides;
      switch (m.kind) {
      case Kind::Direct:
        if (!matrix)
          fail(file_, "tensor {} ({}) should be a matrix", t.describe(),
               m.target);
        shape = {mat[1], mat[0]};
        strides = {mat[0], 1};
        break;
      case Kind::Vector:
        expectVector("a vector");
        shape = {C_};
        strides = {1};
        break;
      case Kind::Vector3:
        expectVector("a vector");
        shape = {1, 1, C_};
        strides = {C_, C_, 1};
        how = ", unsqueezed";
        break;
      case Kind::RK:
        expectVector("the flattened [n_head, head_size] r_k");
        shape = {C_ / N_, N_};
        strides = {N_, 1};
        how = ", reshaped";
        break;
      case Kind::Transposed:
        if (!matrix)
          fail(file_, "tensor {} ({}) should be a matrix", t.describe(),
               m.target);
        // ggml ne [a, b] holds torch [b, a]; the released factor is its
        // transpose [a, b].
        shape = {mat[0], mat[1]};
        strides = {1, mat[0]};
        how = ", transposed";
        break;
      case Kind::LerpFused:
        if (t.ne[0] != C_ || t.numel() != 6 * C_) {
          if (t.ne[0] == C_ && t.numel() == 5 * C_)
            fail(file_,
                 "tensor {} holds 5 token-shift vectors (a model without the "
                 "output gate, such as ARWKV); RWKV-7 needs 6 (r, w, k, v, "
                 "a, g)",
                 t.describe());
          fail(file_,
               "tensor {} should hold 6 token-shift vectors of n_embd = {} "
               "(ggml ne [{}, 1, 1, 6])",
               t.describe(), C_, C_);
        }
        break;
      case Kind::Dropped:
        break;
      }
      // The kernels read int4 and int8 with bf16 group scales natively.
      if ((id == kQ4_0 || id == kQ8_0) && m.kind == Kind::Direct &&
          isQuantizableMatrix(m.target)) {
        if (id == kQ4_0)
          repackQ4_0(t, m.target, shape[0], shape[1]);
        else
          repackQ8_0(t, m.target, shape[0], shape[1]);
        continue;
      }
      const uint8_t *base = t.data;
      DType dtype = viewDType(id);
      std::string typeText = t.type->name;
      if (quantized) {
        // Dequantized straight into the released layout: contiguous.
        base = dequantize(t, m.kind == Kind::Transposed);
        dtype = DType::BF16;
        typeText += " dequantized to bf16";
      }
      if (m.kind == Kind::LerpFused) {
        for (int k = 0; k < 6; ++k) {
          std::string name = m.target + kLerpNames[k];
          Tensor v;
          v.name = name;
          v.dtype = dtype;
          v.shape = {1, 1, C_};
          v.strides = {C_, C_, 1};
          v.data = base + size_t(k) * size_t(C_) * dtypeSize(dtype);
          v.nbytes = size_t(C_) * dtypeSize(dtype);
          source_[name] = fmt::format("{}[{}] ({}, ggml ne {})", t.name, k,
                                      typeText, shapeStr(t.ne));
          out_[name] = std::move(v);
        }
        continue;
      }
      if (quantized && m.kind == Kind::Transposed)
        strides = {shape[1], 1}; // dequantize() wrote it transposed
      Tensor v;
      v.name = m.target;
      v.dtype = dtype;
      v.shape = shape;
      v.strides = strides;
      v.data = base;
      uint64_t span = 0;
      stridedSpan(v.shape, v.strides, dtypeSize(dtype), span);
      v.nbytes = size_t(span);
      source_[m.target] = fmt::format("{} ({}, ggml ne {}{})", t.name, typeText,
                                      shapeStr(t.ne), how);
      out_[m.target] = std::move(v);
    }
  }

  int64_t dimOf(const std::string &name, size_t axis) const {
    auto it = out_.find(name);
    return it == out_.end() || it->second.shape.size() <= axis
               ? 0
               : it->second.shape[axis];
  }

  /// Which GGUF tensor a released name comes from (for messages).
  static std::string ggufNameOf(const std::string &released) {
    static const std::map<std::string_view, const char *> top = {
        {"emb.weight", "token_embd.weight"},
        {"blocks.0.ln0.weight", "token_embd_norm.weight"},
        {"blocks.0.ln0.bias", "token_embd_norm.bias"},
        {"ln_out.weight", "output_norm.weight"},
        {"ln_out.bias", "output_norm.bias"},
        {"head.weight", "output.weight"}};
    if (auto it = top.find(released); it != top.end())
      return it->second;
    size_t dot = released.find('.', 7);
    std::string block = released.substr(7, dot - 7);
    std::string_view rest = std::string_view(released).substr(dot + 1);
    for (const char *x : kLerpNames)
      if (rest == std::string("att.") + x)
        return fmt::format("blk.{}.time_mix_lerp_fused.weight", block);
    for (const auto &[gguf, target] : blockTable())
      if (rest == target.first)
        return fmt::format("blk.{}.{}", block, gguf);
    return released;
  }

  void checkAndAdd() {
    ModelConfig m;
    m.version = 7;
    m.versionString = "x070";
    m.n_layer = L_;
    m.n_embd = C_;
    m.n_head = C_ / N_;
    m.head_size = N_;
    // Hyper-parameters the tensors fix; each must agree with the metadata
    // llama.cpp sizes its tensors by.
    struct Dim {
      int64_t &field;
      const char *tensor;
      size_t axis;
      const char *key;
    };
    const std::string v1 = L_ > 1 ? "blocks.1.att.v1" : "";
    const Dim dimsFromTensors[] = {
        {m.vocab_size, "emb.weight", 0, nullptr},
        {m.dim_ffn, "blocks.0.ffn.key.weight", 0, "rwkv7.feed_forward_length"},
        {m.lora_w, "blocks.0.att.w1", 1, "rwkv7.attention.decay_lora_rank"},
        {m.lora_a, "blocks.0.att.a1", 1, "rwkv7.attention.iclr_lora_rank"},
        {m.lora_v, v1.c_str(), 1,
         "rwkv7.attention.value_residual_mix_lora_rank"},
        {m.lora_g, "blocks.0.att.g1", 1, "rwkv7.attention.gate_lora_rank"}};
    for (const Dim &d : dimsFromTensors) {
      std::optional<uint64_t> meta =
          d.key ? unsignedValue(d.key) : std::nullopt;
      d.field = dimOf(d.tensor, d.axis);
      if (d.field == 0 && meta && *meta <= uint64_t(1) << 31)
        d.field = int64_t(*meta); // the spec check names the missing tensor
      if (meta && d.field != 0 && uint64_t(d.field) != *meta)
        fail(file_, "metadata '{}' is {}, but tensor '{}' has {} (ggml ne {})",
             d.key, *meta, ggufNameOf(d.tensor), d.field,
             shapeStr({dimOf(d.tensor, 1 - d.axis), d.field}));
    }
    auto emb = out_.find("emb.weight");
    m.dtype = emb == out_.end() || emb->second.dtype == DType::U8 ||
                      emb->second.dtype == DType::I8
                  ? DType::BF16
                  : emb->second.dtype;
    for (const TensorSpec &s : rwkv7TensorSpecs(m)) {
      auto it = out_.find(s.name);
      if (it == out_.end())
        fail(file_, "missing tensor '{}' ({} {} in the released layout)",
             ggufNameOf(s.name), s.name, shapeStr(s.shape));
      // Packed int4 holds two columns per byte.
      std::vector<int64_t> shape = it->second.shape;
      if (it->second.dtype == DType::U8)
        shape.back() *= 2;
      if (shape != s.shape)
        fail(file_,
             "tensor {} maps to '{}' with shape {}, expected {} (n_embd {}, "
             "head_size {}, vocab {}, dim_ffn {}, LoRA ranks w/a/v/g "
             "{}/{}/{}/{})",
             source_[s.name], s.name, shapeStr(shape), shapeStr(s.shape), C_,
             N_, m.vocab_size, m.dim_ffn, m.lora_w, m.lora_a, m.lora_v,
             m.lora_g);
      CheckpointLoader::setTensorSource(ckpt_, s.name, source_[s.name]);
      CheckpointLoader::addTensor(ckpt_, std::move(it->second));
      // A repacked Q4_0 or Q8_0 matrix's scales follow it.
      if (auto sc = out_.find(s.name + "_scale"); sc != out_.end()) {
        CheckpointLoader::setTensorSource(ckpt_, sc->first, source_[sc->first]);
        CheckpointLoader::addTensor(ckpt_, std::move(sc->second));
      }
    }

    CheckpointLoader::addSourceInfo(
        ckpt_, "format",
        fmt::format("GGUF v{} (llama.cpp)", ckpt_.formatVersion()));
    CheckpointLoader::addSourceInfo(ckpt_, "architecture", "rwkv7");
    if (const Meta *name = find("general.name"); name && name->type == kString)
      CheckpointLoader::addSourceInfo(ckpt_, "name", std::string(name->s));
    if (std::optional<uint64_t> ft = unsignedValue("general.file_type")) {
      const char *ftName = fileTypeName(*ft);
      CheckpointLoader::addSourceInfo(
          ckpt_, "file_type",
          ftName ? fmt::format("{} ({})", ftName, *ft) : std::to_string(*ft));
    }
    std::string types;
    for (const auto &[type, count] : typeCounts_)
      types += fmt::format("{}{} x{}", types.empty() ? "" : ", ", type, count);
    CheckpointLoader::addSourceInfo(ckpt_, "tensor_types", types);
    if (!dequantized_.empty()) {
      std::string deq;
      for (const auto &[type, count] : dequantized_)
        deq += fmt::format("{}{} x{}", deq.empty() ? "" : ", ", type, count);
      CheckpointLoader::addSourceInfo(ckpt_, "dequantized_to_bf16", deq);
    }
    if (repackedInt4_)
      CheckpointLoader::addSourceInfo(ckpt_, "repacked_to_int4",
                                      fmt::format("Q4_0 x{}", repackedInt4_));
    if (repackedInt8_)
      CheckpointLoader::addSourceInfo(ckpt_, "repacked_to_int8",
                                      fmt::format("Q8_0 x{}", repackedInt8_));
    if (dropped_)
      CheckpointLoader::addSourceInfo(
          ckpt_, "dropped",
          "blk.0.time_mix_v0/v1/v2 (llama.cpp's unused layer-0 copies of "
          "a0/a1/a2)");
  }
};

} // namespace

void CheckpointLoader::loadGguf(Checkpoint &ckpt) { GgufLoader(ckpt).load(); }

} // namespace rwkv
