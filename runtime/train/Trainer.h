//===- Trainer.h - The fine-tuning loop around a GradientFn -----*- C++ -*-===//
//
// The host side of training: batches from a WindowSampler, loss and
// gradients from a GradientFn (the compiled training step), an AdamW update,
// progress/log output and periodic resumable saves. The GradientFn is the
// only model-specific piece, so the loop is tested with toy objectives.
//
//===----------------------------------------------------------------------===//

#ifndef RWKV_RUNTIME_TRAIN_TRAINER_H
#define RWKV_RUNTIME_TRAIN_TRAINER_H

#include "runtime/train/Dataset.h"
#include "runtime/train/Optimizer.h"
#include "runtime/train/Param.h"
#include "runtime/train/Progress.h"

#include <cmath>
#include <functional>
#include <vector>

namespace rwkv {

/// Computes the mean cross-entropy of `batch` (spec §2.7: natural log,
/// averaged over all B·T positions) at the current parameters and writes
/// d loss / d param into every Param::grad (f32, the tensor's shape,
/// row-major). The trainer zeroes the gradients before each call, so an
/// implementation may accumulate. The parameters' current values are
/// Param::value (f32 master) and Param::data() (checkpoint dtype). Returns
/// the loss; throws on failure.
using GradientFn = std::function<float(const Batch &batch,
                                       const std::vector<Param *> &params)>;

struct TrainLoopOptions {
  int64_t batchSize = 1;
  int64_t totalSteps = 0; // the loop ends when AdamW::stepCount() reaches it
  LRSchedule schedule;
  /// Calls `save` every N completed steps (0: never), but not after the last
  /// step (the caller writes the final output).
  int64_t saveEvery = 0;
  std::function<void()> save;
  /// Polled before every step (e.g. a SIGINT flag); when it returns true,
  /// `save` is called and the loop returns with interrupted = true.
  std::function<bool()> stopRequested;
};

struct TrainResult {
  int64_t stepsDone = 0; // in this call
  bool interrupted = false;
  double lastLoss = NAN;
};

/// Runs optimizer steps from optimizer.stepCount() up to totalSteps. The lr
/// of the update after k completed steps is schedule.at(k). Throws
/// TrainError if the loss is not finite (naming the step).
TrainResult runTraining(AdamW &optimizer, WindowSampler &sampler,
                        const GradientFn &gradient, Progress *progress,
                        const TrainLoopOptions &options);

/// Trainable initial WKV states for state tuning: one zero
/// `blocks.<l>.att.time_state` of shape [H, N, N] (value row, key column,
/// the runtime's state layout) per layer, f32, no weight decay.
std::vector<Param> makeStateParams(const ModelConfig &config);

} // namespace rwkv

#endif // RWKV_RUNTIME_TRAIN_TRAINER_H
