//===- Checkpoint.h - RWKV checkpoint reading, writing, detection -*- C++
//-*-===//
//
// MLIR-free library that reads PyTorch `.pth` (zip + pickle), safetensors and
// llama.cpp GGUF (RWKV-7) checkpoints from an mmap, writes .pth and
// safetensors, detects the RWKV architecture from key names and shapes, and
// makes synthetic RWKV-7 weights.
// Every failure throws CheckpointError naming the file and the offending
// key/opcode/shape. See docs/checkpoints.md.
//
//===----------------------------------------------------------------------===//

#ifndef RWKV_RUNTIME_CHECKPOINT_CHECKPOINT_H
#define RWKV_RUNTIME_CHECKPOINT_CHECKPOINT_H

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace rwkv {

enum class DType { F32, F16, BF16, F64, I64, I32, I16, I8, U8, Bool };

/// Short lower-case name: "f32", "f16", "bf16", "f64", "i64", ... "bool".
const char *dtypeName(DType dtype);
/// Size of one element in bytes.
size_t dtypeSize(DType dtype);
/// Inverse of dtypeName, also accepting "fp32", "fp16", "float32", ...
/// Throws CheckpointError on an unknown name.
DType parseDType(std::string_view name);

struct CheckpointError : std::runtime_error {
  using runtime_error::runtime_error;
};

// bf16/f16 <-> f32. bf16->f32 is exact (bits << 16); f32->bf16/f16 round to
// nearest even; NaN stays NaN.
float bf16ToF32(uint16_t bits);
uint16_t f32ToBf16(float value);
float f16ToF32(uint16_t bits);
uint16_t f32ToF16(float value);

/// A strided view of one tensor. `data` points at the first element (storage
/// base + storage_offset) inside the file mapping or a buffer owned by the
/// Checkpoint; it is valid as long as the Checkpoint lives. It may be
/// unaligned (safetensors does not align payloads).
struct Tensor {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  std::vector<int64_t> strides; // in elements
  const void *data = nullptr;
  size_t nbytes = 0; // bytes spanned from `data` by the strided view

  bool isContiguous() const;
  int64_t numel() const;
  /// Element at row-major logical index `flatIndex`, converted to float.
  /// Throws CheckpointError if the index is out of range.
  float getAsFloat(int64_t flatIndex) const;
};

class Checkpoint {
public:
  enum class Format { Pth, Safetensors, Gguf };
  /// "pth", "safetensors" or "gguf".
  static const char *formatName(Format format);

  /// Opens a `.pth`, safetensors or GGUF file (detected by magic, not
  /// extension) and maps it into memory. A GGUF file's tensors are presented
  /// under the released `.pth` names and layouts (docs/checkpoints.md).
  static std::unique_ptr<Checkpoint> open(const std::string &path);
  /// Same, from a byte buffer (copied). `name` is used in error messages.
  static std::unique_ptr<Checkpoint>
  openFromMemory(const void *data, size_t size,
                 const std::string &name = "<memory>");

  ~Checkpoint();
  Checkpoint(const Checkpoint &) = delete;
  Checkpoint &operator=(const Checkpoint &) = delete;

  const std::string &path() const { return path_; }
  Format format() const { return format_; }
  /// Tensors in file order (pickle dict order / safetensors header order).
  const std::vector<Tensor> &tensors() const { return tensors_; }
  const Tensor *find(std::string_view name) const;
  /// Throws CheckpointError naming the key and the file if absent.
  const Tensor &get(std::string_view name) const;
  /// Drops this process's resident pages of the file mapping (clean page
  /// cache, re-read on the next access): for callers that copied what they
  /// need. Views stay valid.
  void releaseResidentPages() const;
  /// Archive folder inside a `.pth` zip (e.g. "archive"); empty otherwise.
  const std::string &archiveName() const { return archiveName_; }
  /// Container version: 2 or 3 for GGUF, 0 for .pth and safetensors.
  uint32_t formatVersion() const { return formatVersion_; }
  /// What a converted file says about its source, as (key, text) pairs:
  /// GGUF gives its architecture, llama.cpp file type, tensor types and
  /// which tensors were dequantized. Empty for .pth and safetensors.
  const std::vector<std::pair<std::string, std::string>> &sourceInfo() const {
    return sourceInfo_;
  }
  /// Where tensor `name` comes from when it is not stored under that name
  /// (GGUF: "blk.0.time_mix_w1.weight F32 ne [128, 32], transposed"); empty
  /// otherwise.
  std::string_view tensorSource(std::string_view name) const;

  struct Impl; // backing storage (mapping, owned buffers)

private:
  Checkpoint() = default;
  void addTensor(Tensor t);

  std::string path_;
  Format format_ = Format::Pth;
  std::string archiveName_;
  uint32_t formatVersion_ = 0;
  std::vector<std::pair<std::string, std::string>> sourceInfo_;
  std::unordered_map<std::string, std::string> tensorSources_;
  std::vector<Tensor> tensors_;
  std::unordered_map<std::string, size_t> index_;
  std::unique_ptr<Impl> impl_;

  friend struct CheckpointLoader;
};

struct ModelConfig {
  int version = 0;           // 4, 5, 6 or 7
  std::string versionString; // "x070", "x060", "5.2", "5.1", "5.0", "4"
  int64_t n_layer = 0, n_embd = 0, n_head = 0, head_size = 0, dim_ffn = 0,
          vocab_size = 0;
  // LoRA ranks (0 where the version has none). RWKV-6 keeps its decay
  // LoRA rank in lora_w and its token-shift LoRA rank in lora_mix.
  int64_t lora_w = 0, lora_a = 0, lora_v = 0, lora_g = 0, lora_mix = 0;
  DType dtype = DType::BF16;
  bool layer0HasV = false; // v7: blocks.0.att.v0/v1/v2 present
  bool quantized = false;  // some matrices are int8 or int4 (rwkv-quantize)
  bool hasInt8 = false;    // some matrices are int8
  // Some matrices are packed int4 (u8, bf16 scales per group of this many
  // inputs); 0: none.
  int64_t int4Group = 0;
  // The int8 matrices have bf16 or f32 scales per group of this many inputs
  // (all of them: one group size per file); 0: one f32 scale per row.
  int64_t int8Group = 0;
  // RWKV-5.0/5.1: the per-head bonus is `att.time_first` holding log(u)
  // rather than `att.time_faaaa` holding u.
  bool logBonus = false;
  std::string toJson() const;
};

/// Detects the architecture from key names and shapes. For RWKV-7 it also
/// checks that every expected key exists with the expected shape and that
/// every tensor is f32/f16/bf16.
ModelConfig detectConfig(const Checkpoint &checkpoint);

/// Names and shapes of every tensor a v7 model with `config` must hold, in
/// released file order.
struct TensorSpec {
  std::string name;
  DType dtype = DType::BF16;
  std::vector<int64_t> shape;
  int64_t numel() const;
  size_t nbytes() const { return size_t(numel()) * dtypeSize(dtype); }
};
std::vector<TensorSpec> rwkv7TensorSpecs(const ModelConfig &config);
/// The same for any supported version (4, 5.0-5.2, 6, 7), in the released
/// files' order. Throws CheckpointError for a version this project cannot run
/// (RWKV-5.0/5.1 previews).
std::vector<TensorSpec> tensorSpecs(const ModelConfig &config);

struct OwnedTensor {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes; // contiguous, little-endian
};

/// Fills `bytes` (resized by the callee) with tensor `index` of the spec
/// list. Lets writers stream one tensor at a time.
using TensorProducer =
    std::function<void(size_t index, std::vector<uint8_t> &bytes)>;

/// Writes the torch.save zip layout: stored entries, 64-byte aligned
/// payloads ("FB" extra field), data.pkl (protocol 2 OrderedDict of
/// _rebuild_tensor_v2), data/<i>, version "3\n", byteorder "little".
/// The archive folder is the basename of `path` without its extension.
void writePth(const std::string &path, const std::vector<TensorSpec> &specs,
              const TensorProducer &produce);
void writePth(const std::string &path, const std::vector<OwnedTensor> &tensors);
void writeSafetensors(const std::string &path,
                      const std::vector<TensorSpec> &specs,
                      const TensorProducer &produce);
void writeSafetensors(const std::string &path,
                      const std::vector<OwnedTensor> &tensors);
/// Copies a tensor (any strides) into a contiguous OwnedTensor.
OwnedTensor toOwned(const Tensor &tensor);

/// The matrices rwkv-quantize may store int8 or int4 (read by embed, linear,
/// head).
bool isQuantizableMatrix(const std::string &name);

/// The int4 group size rwkv-quantize uses unless told otherwise.
constexpr int64_t kDefaultInt4Group = 32;

struct QuantizeOptions {
  /// "int8" (symmetric, one f32 scale per row, or one bf16 scale per row
  /// and group of `group` inputs) or "int4" (symmetric, two weights per
  /// byte, one bf16 scale per row and group of `group` inputs).
  std::string type = "int8";
  /// Inputs per scale group of every int4 and int8 matrix. 0: int4 uses
  /// kDefaultInt4Group, int8 one scale per row. Must divide the input width
  /// of every quantized matrix, and be even where one is int4.
  int64_t group = 0;
  /// emb.weight: "bf16" (the default: f32 tables are rounded to bf16, a
  /// bf16/f16 table is kept), "keep" (the checkpoint's dtype), "int8" or
  /// "int4". Decode reads one row per token, so only the file size depends
  /// on it; int8 costs accuracy (golden tiny2: 0.12 instead of 0.095).
  std::string embedding = "bf16";
  /// head.weight: "" (as `type`), "keep" (the checkpoint's dtype), "int8"
  /// or "int4".
  std::string head;
  bool keepHead = false; // the same as head = "keep"
};

struct QuantizeReport {
  int quantized = 0;     // matrices written int8 or int4
  int int4 = 0;          // of which int4
  int64_t group = 0;     // the int4 group size (0: no int4 matrix)
  int64_t int8Group = 0; // the int8 group size (0: per-row or no int8)
  size_t bytesIn = 0, bytesOut = 0;
  float maxAbsError = 0; // max |dequantized - original| over all weights
};

/// Writes `in` (an RWKV-7 checkpoint) to `outPath` as safetensors with every
/// quantizable matrix int8 plus its per-row f32 scales `<name>_scale` (with
/// a group: per-group bf16 scales `[out, in / group]`), or packed int4 (u8
/// `[out, in / 2]`) plus its per-group bf16 scales `<name>_scale`
/// `[out, in / group]` (docs/checkpoints.md); other tensors are copied
/// unchanged.
QuantizeReport quantizeCheckpoint(const Checkpoint &in,
                                  const std::string &outPath,
                                  const QuantizeOptions &options);

struct SyntheticOptions {
  /// RWKV version: 7 (x070), 6 (x060), 5 or 4.
  int version = 7;
  /// RWKV-5 only: 2 (5.2), or the previews 1 (5.1: per-head decay and bonus
  /// `time_faaaa`) and 0 (5.0: per-head, bonus `time_first` as log u, no
  /// gate).
  int v5Minor = 2;
  int64_t n_layer = 2, n_embd = 128, head_size = 64, vocab_size = 512;
  int64_t dim_ffn = 0; // 0: 4 * n_embd (RWKV-5/6: 3.5 * n_embd)
  int64_t lora_w = 32, lora_a = 32, lora_v = 32, lora_g = 64;
  /// RWKV-6's token-shift LoRA rank below C = 4096 (doubled from there);
  /// its decay LoRA follows RWKV-LM (64, or 128 from C = 4096).
  int64_t lora_mix = 32;
  DType dtype = DType::BF16;
  uint64_t seed = 42;
  bool layer0HasV = false; // released files omit layer-0 v0/v1/v2
  /// Preset names: "tiny", "0.1b", "0.4b", "1.5b". Throws on others.
  static SyntheticOptions preset(const std::string &name);
};

/// The spec list of the synthetic model (validates the options).
std::vector<TensorSpec> syntheticSpecs(const SyntheticOptions &options);
/// Deterministically generates one tensor; depends only on options.seed and
/// the tensor's name, so tensors can be produced in any order.
void fillSyntheticTensor(const SyntheticOptions &options,
                         const TensorSpec &spec, std::vector<uint8_t> &bytes);
std::vector<OwnedTensor> makeSyntheticModel(const SyntheticOptions &options);

} // namespace rwkv

#endif // RWKV_RUNTIME_CHECKPOINT_CHECKPOINT_H
