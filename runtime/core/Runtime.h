//===- Runtime.h - Load a compiled RWKV model and run it --------*- C++ -*-===//
//
// MLIR-free runtime for the shared libraries that `rwkv-compile` produces
// (docs/ABI.md). Model::load dlopens the library, reads rwkv_model_info(),
// checks it against a checkpoint and binds every weight argument to a view
// into the checkpoint's mmap (no copies; bf16 stays bf16). State holds the
// recurrent state, double-buffered so that a call never reads and writes the
// same buffer. Every failure throws RuntimeError with a message naming the
// file, tensor, field or token at fault. A CUDA library (`"target":
// "cuda"`) runs on device memory instead: the weights are uploaded once,
// the state's buffers live on the device and the host sees a copy
// (docs/runtime.md "CUDA libraries").
//
//===----------------------------------------------------------------------===//

#ifndef RWKV_RUNTIME_CORE_RUNTIME_H
#define RWKV_RUNTIME_CORE_RUNTIME_H

#include "runtime/checkpoint/Checkpoint.h"

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace rwkv {

/// The ABI version this runtime implements (docs/ABI.md).
constexpr int kRuntimeAbiVersion = 1;

struct RuntimeError : std::runtime_error {
  using runtime_error::runtime_error;
};

/// A failure the CUDA driver reported while a CUDA library ran or while the
/// runtime moved its data (Cuda.h).
struct DeviceError : RuntimeError {
  DeviceError(const std::string &message, int code)
      : RuntimeError(message), code(code) {}
  /// The CUresult, or -1 when the failure was not a driver error.
  int code;
};

/// A contiguous run of floats owned by someone else.
template <typename T> struct Span {
  T *data = nullptr;
  size_t size = 0;
  T *begin() const { return data; }
  T *end() const { return data + size; }
  T &operator[](size_t i) const { return data[i]; }
  operator Span<const T>() const { return {data, size}; }
};
using FloatSpan = Span<float>;
using ConstFloatSpan = Span<const float>;

//===----------------------------------------------------------------------===//
// rwkv_model_info()
//===----------------------------------------------------------------------===//

/// One argument or result of an entry point, as rwkv_model_info() lists it.
struct ArgInfo {
  enum class Kind { Tokens, State, Weight, Logits };
  Kind kind = Kind::Weight;
  /// Checkpoint key for weights, state name ("att_shift", "wkv",
  /// "ffn_shift") for state, "tokens" / "logits" otherwise.
  std::string name;
  int64_t layer = -1; // state only
  float init = 0.0f;  // state only: every element of a fresh state
  DType dtype = DType::F32;
  std::vector<int64_t> shape; // -1 = dynamic
};

const char *argKindName(ArgInfo::Kind kind);

/// The parsed and validated rwkv_model_info() JSON.
struct ModelInfo {
  int abiVersion = 0;
  /// `target`: where the entry points run; a library without one is a CPU
  /// library.
  enum class Target { Cpu, Cuda };
  Target target = Target::Cpu;
  /// `cuda_arch` of a CUDA library ("sm_90").
  std::string cudaArch;
  /// Integer fields of `config` (n_layer, n_embd, ..., in JSON order).
  std::vector<std::pair<std::string, int64_t>> config;
  /// `config.dtype` when the library records one; empty otherwise.
  std::string configDType;
  int64_t batch = 1;
  std::vector<std::string> entryPoints;
  /// Inputs shared by every entry point: tokens, state..., weights...
  std::vector<ArgInfo> args;
  /// Per entry point: logits, then the new state in the order of the state
  /// arguments.
  std::map<std::string, std::vector<ArgInfo>> results;
  std::string json; // the text it was parsed from

  /// Parses and checks the structure (one leading tokens argument, then
  /// state, then weights; results of every entry = logits + state). Throws
  /// RuntimeError naming `source` and the offending entry.
  static ModelInfo parse(std::string_view json,
                         const std::string &source = "<info>");

  /// A config field, or `fallback` if the library does not record it.
  int64_t configValue(std::string_view key, int64_t fallback = -1) const;
  int64_t vocabSize() const;
  bool hasEntry(std::string_view name) const;
};

//===----------------------------------------------------------------------===//
// Memref descriptors and weight binding
//===----------------------------------------------------------------------===//

/// An MLIR strided memref descriptor of any rank, laid out exactly like
/// StridedMemRefType<T, R>: {T *allocated; T *aligned; int64_t offset;
/// int64_t sizes[R]; int64_t strides[R];}. Row-major contiguous.
class MemRefDesc {
public:
  MemRefDesc() = default;
  MemRefDesc(const void *data, const std::vector<int64_t> &sizes);
  /// The address to pass in the `void **` array of `<entry>_packed`.
  void *get() { return words_.data(); }
  int64_t rank() const { return int64_t(words_.size() - 3) / 2; }
  const void *data() const;
  int64_t size(int64_t dim) const { return words_[3 + dim]; }
  int64_t stride(int64_t dim) const { return words_[3 + rank() + dim]; }

private:
  std::vector<int64_t> words_{0, 0, 0};
};

/// A weight argument bound to checkpoint bytes.
struct BoundWeight {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape; // the library's (squeezed) shape
  const void *data = nullptr;
  size_t nbytes = 0;
  bool copied = false; // true when a contiguous/aligned copy had to be made
  /// `data` is a device address (a CUDA model): not readable on the host.
  bool onDevice = false;
};

/// Compares the library's config with the checkpoint's detected one. Throws
/// RuntimeError naming the first differing field and both values.
void checkConfig(const ModelInfo &info, const ModelConfig &config,
                 const std::string &libraryName,
                 const std::string &checkpointName);

/// Binds every weight argument of `info` to a tensor of `checkpoint`: same
/// dtype, same shape up to unit dimensions (or flattened to rank 1, as
/// `att.r_k` is). Non-contiguous or misaligned tensors are copied once into
/// `copies`; everything else points into the checkpoint. Throws RuntimeError
/// naming the tensor, the expected and the actual shape/dtype.
std::vector<BoundWeight> bindWeights(const ModelInfo &info,
                                     const Checkpoint &checkpoint,
                                     std::vector<std::vector<uint8_t>> &copies);

//===----------------------------------------------------------------------===//
// State
//===----------------------------------------------------------------------===//

/// The recurrent state of one model: per layer `att_shift` [B, C], `wkv`
/// [B, H, N, N] and `ffn_shift` [B, C], all f32, in the library's argument
/// order (RWKV-4: att_shift, aa, bb, pp, ffn_shift). Created by
/// Model::newState() at each tensor's initial value (zero, except RWKV-4's
/// pp = -1e30); copyable (deep copy).
///
/// A state that a CUDA model runs keeps its two buffers per tensor in
/// device memory and one host copy, which tensor() and the other accessors
/// return: it is downloaded when it is out of date, and a non-const access
/// (the caller may write) makes the next call upload it.
class State {
public:
  struct TensorInfo {
    std::string name;
    int64_t layer = 0;
    std::vector<int64_t> shape;
    size_t numel = 0;
    float init = 0.0f; // the value of every element of a fresh state
  };
  using Layout = std::vector<TensorInfo>;

  /// A zero state for `layout` (normally obtained from Model::newState()).
  explicit State(std::shared_ptr<const Layout> layout);
  State(const State &other);
  State &operator=(const State &other);
  State(State &&) noexcept;
  State &operator=(State &&) noexcept;
  ~State();

  size_t numTensors() const { return layout_->size(); }
  const TensorInfo &info(size_t index) const { return (*layout_)[index]; }
  const std::shared_ptr<const Layout> &layout() const { return layout_; }

  FloatSpan tensor(size_t index);
  ConstFloatSpan tensor(size_t index) const;
  /// By name and layer; throws RuntimeError if there is no such tensor.
  FloatSpan tensor(std::string_view name, int64_t layer);
  ConstFloatSpan tensor(std::string_view name, int64_t layer) const;
  FloatSpan attShift(int64_t layer) { return tensor("att_shift", layer); }
  FloatSpan wkv(int64_t layer) { return tensor("wkv", layer); }
  FloatSpan ffnShift(int64_t layer) { return tensor("ffn_shift", layer); }
  /// Copies `values` into a tensor; throws if the size differs.
  void set(std::string_view name, int64_t layer,
           const std::vector<float> &values);

  /// Back to the initial state.
  void reset();

  /// Whether the values live in device memory (a state of a CUDA model).
  bool onDevice() const { return device_ != nullptr; }

private:
  friend class Model;
  struct Device;
  State(std::shared_ptr<const Layout> layout, bool onDevice);
  size_t indexOf(std::string_view name, int64_t layer) const;
  /// Same layout: copies the values of `other`, on the device when only
  /// the device holds them.
  void copyValues(const State &other);
  /// Gives the state device buffers (the values stay on the host).
  Device &attachDevice();
  /// Brings the host copy up to date; `forWriting` also marks the device's
  /// out of date.
  void syncToHost(bool forWriting) const;
  float *buffer(size_t index, int which) { return bufs_[which][index].get(); }
  void swapBuffers() { cur_ ^= 1; }
  /// After swapBuffers(): tensor `index` was updated in place, in what was
  /// the current buffer; keeps that one current.
  void keepBuffer(size_t index) { std::swap(bufs_[0][index], bufs_[1][index]); }

  struct FreeDeleter {
    void operator()(float *p) const;
  };
  using Buffer = std::unique_ptr<float, FreeDeleter>;
  static Buffer allocate(size_t numel);

  std::shared_ptr<const Layout> layout_;
  std::vector<Buffer> bufs_[2]; // current + scratch for the call's output
  int cur_ = 0;
  /// Device buffers and which copy is current; null for a CPU state.
  std::unique_ptr<Device> device_;
};

//===----------------------------------------------------------------------===//
// Model
//===----------------------------------------------------------------------===//

struct ModelOptions {
  /// Worker threads for the compiled code; 0 leaves the default. Sets
  /// OMP_NUM_THREADS before dlopen and calls the library's optional
  /// `rwkv_set_num_threads(int)`.
  int threads = 0;
  /// The most `threads` accepted: far beyond any host, and low enough that
  /// a typo does not make OpenMP create a team it cannot allocate.
  static constexpr int kMaxThreads = 1024;
  /// Where the weights live while the model runs.
  enum class WeightMemory {
    /// Copied once into anonymous memory advised for transparent huge pages
    /// (2 MiB), 64-byte aligned; the checkpoint's mapped pages are released.
    /// Decode streams every weight per token, and with 4 KiB file pages it
    /// loses ~15% to TLB misses and prefetchers stopping at page
    /// boundaries (docs/PERFORMANCE.md). Falls back to `Mapped` where the
    /// kernel has transparent huge pages disabled.
    HugePages,
    /// Zero-copy views into the checkpoint's mmap.
    Mapped,
  };
  WeightMemory weightMemory = WeightMemory::HugePages;
};

class Model {
public:
  /// Loads `libraryPath` (a `.so` from rwkv-compile) and binds the weights
  /// of `checkpointPath` to it. Throws RuntimeError on any mismatch.
  static std::unique_ptr<Model> load(const std::string &libraryPath,
                                     const std::string &checkpointPath,
                                     const ModelOptions &options = {});
  ~Model();
  Model(const Model &) = delete;
  Model &operator=(const Model &) = delete;

  const ModelInfo &info() const { return info_; }
  /// The checkpoint's detected configuration.
  const ModelConfig &config() const { return config_; }
  const std::string &libraryPath() const { return libraryPath_; }
  const std::string &checkpointPath() const { return checkpointPath_; }
  int64_t vocabSize() const { return vocabSize_; }
  int64_t batch() const { return info_.batch; }
  int64_t numLayers() const { return info_.configValue("n_layer", 0); }
  int threads() const { return options_.threads; }
  bool hasEntry(std::string_view name) const { return info_.hasEntry(name); }
  const std::vector<BoundWeight> &weights() const { return weights_; }
  /// Bytes of all bound weights.
  size_t weightBytes() const;
  /// Whether the weights were copied to huge-page memory.
  bool weightsOnHugePages() const { return weightArena_ != nullptr; }
  /// Whether this is a CUDA model: weights and states in device memory.
  bool onDevice() const { return info_.target == ModelInfo::Target::Cuda; }
  /// Bytes of `emb.weight` (0 if the library has none).
  size_t embeddingBytes() const;

  /// A zeroed state for this model.
  State newState() const;

  /// RNN mode (`rwkv_step`): runs every token sequentially from `state`,
  /// which is updated, and writes the logits of the last position
  /// ([batch * V], resized). `tokens` is [batch, T] row-major, T >= 1.
  void step(const std::vector<int32_t> &tokens, State &state,
            std::vector<float> &logits) const;
  /// GPT mode (`rwkv_forward`, or `rwkv_forward_all` when `allLogits`:
  /// logits of every position, [batch, T, V]).
  void forward(const std::vector<int32_t> &tokens, State &state,
               std::vector<float> &logits, bool allLogits = false) const;

  /// The raw call behind step/forward. `logits` must hold
  /// logitsSize(entry, count) floats.
  void run(std::string_view entry, const int32_t *tokens, size_t count,
           State &state, float *logits, size_t logitsCapacity) const;
  size_t logitsSize(std::string_view entry, size_t tokenCount) const;

  /// Throws RuntimeError naming the first bad id and its position, or on an
  /// empty list / a length that is not a multiple of the batch.
  void checkTokens(const int32_t *tokens, size_t count) const;

private:
  Model() = default;
  using PackedFn = void (*)(void **);
  void moveWeightsToHugePages();
  struct Cuda;
  void bindCuda();
  void runOnDevice(PackedFn fn, std::string_view entry, const int32_t *tokens,
                   size_t count, State &state, float *logits,
                   size_t logitsCount) const;

  ModelOptions options_;
  std::string libraryPath_, checkpointPath_;
  void *handle_ = nullptr;
  std::unique_ptr<Checkpoint> checkpoint_;
  ModelInfo info_;
  ModelConfig config_;
  int64_t vocabSize_ = 0;
  std::vector<std::vector<uint8_t>> copies_;
  /// The huge-page copy of the weights (WeightMemory::HugePages).
  void *weightArena_ = nullptr;
  size_t weightArenaSize_ = 0;
  std::vector<BoundWeight> weights_;
  std::vector<MemRefDesc> weightDescs_;
  std::map<std::string, PackedFn, std::less<>> entries_;
  std::shared_ptr<const State::Layout> stateLayout_;
  /// Per state tensor: the library updates it in place and takes one buffer
  /// as both input and output (its `rwkv_in_place_states`).
  std::vector<bool> stateInPlace_;
  /// A CUDA model's library binding and device weights.
  std::unique_ptr<Cuda> cuda_;
};

//===----------------------------------------------------------------------===//
// .npy files (float32, C order)
//===----------------------------------------------------------------------===//

struct NpyArray {
  std::vector<int64_t> shape;
  std::vector<float> data;
};

/// Writes a little-endian float32 C-order .npy file (format 1.0).
void writeNpy(const std::string &path, const float *data,
              const std::vector<int64_t> &shape);
/// Reads a C-order `<f4` or `<f8` .npy file (f8 is rounded to float).
NpyArray readNpy(const std::string &path);

} // namespace rwkv

#endif // RWKV_RUNTIME_CORE_RUNTIME_H
