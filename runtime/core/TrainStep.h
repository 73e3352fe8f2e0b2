//===- TrainStep.h - Run a compiled training library ------------*- C++ -*-===//
//
// A library from `rwkv-compile --train --batch B --ctx T` exports
// `rwkv_train_loss` (the mean cross-entropy of a batch) and
// `rwkv_train_step` (the loss and the gradient of every weight and of each
// layer's initial WKV state), see docs/ABI.md "Training". TrainLibrary loads
// one, checks its description and calls it on caller-owned weight buffers,
// so an optimizer can update them in place between steps. Errors throw
// RuntimeError naming the library, tensor or token at fault.
//
//===----------------------------------------------------------------------===//

#ifndef RWKV_RUNTIME_CORE_TRAINSTEP_H
#define RWKV_RUNTIME_CORE_TRAINSTEP_H

#include "runtime/core/Cuda.h"
#include "runtime/core/Runtime.h"

#include <memory>
#include <string>
#include <vector>

namespace rwkv {

/// One argument of the training entry points.
struct TrainArg {
  enum class Kind { Tokens, Targets, State, Weight };
  Kind kind = Kind::Weight;
  std::string name; // checkpoint key, or "wkv" for states
  int64_t layer = -1;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  size_t numel = 0;
};

class TrainLibrary {
public:
  static std::unique_ptr<TrainLibrary> load(const std::string &libraryPath,
                                            const ModelOptions &options = {});
  /// Makes this process's malloc keep freed memory for reuse instead of
  /// returning large blocks to the kernel (no mmap for big blocks, no trim).
  /// A step allocates and frees the same activation buffers every time;
  /// otherwise each step faults all their pages in again. Process-wide, so
  /// the tools call it (rwkv-train, rwkv-train-bench), not the library.
  static void reuseFreedMemory();
  ~TrainLibrary();
  TrainLibrary(const TrainLibrary &) = delete;
  TrainLibrary &operator=(const TrainLibrary &) = delete;

  const std::string &libraryPath() const { return path_; }
  const std::string &infoJson() const { return json_; }
  int64_t batch() const { return batch_; }
  int64_t context() const { return context_; }
  int64_t vocabSize() const { return vocab_; }
  int64_t numLayers() const { return int64_t(stateArgs_.size()); }
  int64_t ignoreIndex() const { return ignoreIndex_; }
  const std::vector<TrainArg> &args() const { return args_; }
  /// Indices into args() of the weights and of the per-layer WKV states.
  const std::vector<size_t> &weightArgs() const { return weightArgs_; }
  const std::vector<size_t> &stateArgs() const { return stateArgs_; }
  /// The weight argument for checkpoint key `name`, or nullptr.
  const TrainArg *findWeight(const std::string &name) const;

  /// Checks a batch: `B * T` inputs in [0, V), targets in [0, V) or equal
  /// to the ignore index. Throws naming the first bad id and its position.
  void checkBatch(const int32_t *inputs, const int32_t *targets) const;

  /// Runs `rwkv_train_step` (inputs are never modified: the initial states
  /// are copied first). `weights[i]` holds weight weightArgs()[i] in its
  /// dtype, contiguous; `states[l]` the initial WKV state of layer l
  /// ([B, H, N, N] f32) or nullptr for zeros (states may be empty: all
  /// zeros). Writes f32 gradients to `weightGrads[i]` (numel floats) and,
  /// where non-null, `stateGrads[l]`. Returns the loss.
  float step(const int32_t *inputs, const int32_t *targets,
             const std::vector<const void *> &weights,
             const std::vector<const float *> &states,
             const std::vector<float *> &weightGrads,
             const std::vector<float *> &stateGrads) const;
  /// Runs `rwkv_train_loss` (forward only).
  float loss(const int32_t *inputs, const int32_t *targets,
             const std::vector<const void *> &weights,
             const std::vector<const float *> &states) const;

private:
  TrainLibrary() = default;
  using PackedFn = void (*)(void **);
  std::vector<MemRefDesc> inputDescs(const int32_t *inputs,
                                     const int32_t *targets,
                                     const std::vector<const void *> &weights,
                                     const std::vector<const float *> &states,
                                     std::vector<float> &zeros) const;

  /// CUDA libraries: the binding and the copying caller (TrainStep.cpp);
  /// hostArgs() turns a call's descriptors into its copied arguments.
  struct Device;
  std::vector<cuda::CopiedArg>
  hostArgs(const std::vector<MemRefDesc> &descs) const;

  std::string path_, json_;
  void *handle_ = nullptr;
  std::unique_ptr<Device> device_; // CUDA libraries only
  PackedFn stepFn_ = nullptr, lossFn_ = nullptr;
  int64_t batch_ = 0, context_ = 0, vocab_ = 0, ignoreIndex_ = -100;
  std::vector<TrainArg> args_;
  std::vector<size_t> weightArgs_, stateArgs_;
};

/// Pointers to the bytes of each weight argument of `lib` in `checkpoint`,
/// in weightArgs() order. Tensors must have the argument's dtype and element
/// count; non-contiguous ones are copied into `copies`. Throws naming the
/// tensor on any mismatch.
std::vector<const void *>
bindTrainWeights(const TrainLibrary &lib, const Checkpoint &checkpoint,
                 std::vector<std::vector<uint8_t>> &copies);

} // namespace rwkv

#endif // RWKV_RUNTIME_CORE_TRAINSTEP_H
