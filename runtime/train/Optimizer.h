//===- Optimizer.h - AdamW, gradient clipping, lr schedule ------*- C++ -*-===//
//
// The optimizer of RWKV-LM's trainer (spec §2.7) as the golden Adam curve
// states it (golden/README.md "Adam curve"): Adam with bias correction,
// m = v = 0 at the start; decoupled weight decay per parameter group; a
// global L2-norm gradient clip; warm-up then cosine learning rate. The
// optimizer state (m, v, step, f32 master weights, data position) is saved
// to and restored from a checked resume file. See docs/train.md.
//
//===----------------------------------------------------------------------===//

#ifndef RWKV_RUNTIME_TRAIN_OPTIMIZER_H
#define RWKV_RUNTIME_TRAIN_OPTIMIZER_H

#include "runtime/train/Param.h"

#include <cstdint>
#include <string>
#include <vector>

namespace rwkv {

struct AdamWOptions {
  double beta1 = 0.9, beta2 = 0.99;
  double eps = 1e-18;       // RWKV-LM's default (FusedAdam eps=1e-18)
  double weightDecay = 0.0; // decoupled, only on Param::weightDecay tensors
  double gradClip = 1.0;    // global L2 norm; <= 0 disables clipping
};

/// RWKV-LM's learning rate (src/trainer.py) as a function of the number of
/// completed optimizer steps `step` (0 for the first update):
///   progress = clamp((step − warmup) / (total − warmup), 0, 1)
///   lr = lrFinal + (lrInit − lrFinal) · (1 + cos(π · progress)) / 2
///   lr ·= 0.01 + 0.99 · step / warmup            while step < warmup
/// With total <= warmup the cosine part stays at lrInit.
struct LRSchedule {
  double lrInit = 6e-4, lrFinal = 6e-4;
  int64_t warmupSteps = 0, totalSteps = 0;
  double at(int64_t step) const;
};

/// What one optimizer step did.
struct StepStats {
  double gradNorm = 0; // global L2 norm of the gradients before clipping
  double clipCoef = 1; // min(1, clip / (norm + 1e-6)), 1 without clipping
  double lr = 0;       // the base lr of this step (before Param::lrScale)
};

/// Where a resumed run continues: the data sampler's position and seed.
struct DataPosition {
  uint64_t samplesDrawn = 0;
  uint64_t seed = 0;
};

class AdamW {
public:
  AdamW(std::vector<Param *> params, AdamWOptions options);

  const AdamWOptions &options() const { return options_; }
  const std::vector<Param *> &params() const { return params_; }
  /// Number of updates done so far (Adam's t after the last step).
  int64_t stepCount() const { return step_; }

  /// One update from the gradients in Param::grad with base learning rate
  /// `lr`: clip, then per element (in float32)
  ///   m = β1·m + (1−β1)·g;  v = β2·v + (1−β2)·g²
  ///   p −= lr·s·( (m/(1−β1^t)) / (sqrt(v/(1−β2^t)) + eps) + wd·p )
  /// with s = Param::lrScale and wd = weightDecay only on decayed tensors
  /// (DeepSpeed FusedAdam's adam_w_mode; the decay uses p before the
  /// update). Then bf16/f16 params are re-rounded into Param::stored.
  /// Gradients are left unchanged. Throws TrainError naming the tensor if a
  /// gradient is non-finite or has the wrong size.
  StepStats step(double lr);

  /// Global L2 norm of the current gradients (computed in double).
  double gradNorm() const;

  /// Resume file: magic "RWKVADAM", format version, JSON header (model
  /// identity, tensor names/shapes, step, options, data position), then per
  /// tensor the f32 master value, m and v. Written atomically.
  void save(const std::string &path, const DataPosition &position) const;
  /// Restores m, v, the step count and the master values (and the rounded
  /// copies). Throws TrainError naming the file on a bad magic/version, a
  /// truncated file, or a file written for another model (naming the first
  /// tensor that differs).
  DataPosition load(const std::string &path);

private:
  std::vector<Param *> params_;
  AdamWOptions options_;
  std::vector<std::vector<float>> m_, v_;
  int64_t step_ = 0;
};

} // namespace rwkv

#endif // RWKV_RUNTIME_TRAIN_OPTIMIZER_H
