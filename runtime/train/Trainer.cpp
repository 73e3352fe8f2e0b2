//===- Trainer.cpp - The fine-tuning loop around a GradientFn -------------===//

#include "runtime/train/Trainer.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace rwkv {

TrainResult runTraining(AdamW &optimizer, WindowSampler &sampler,
                        const GradientFn &gradient, Progress *progress,
                        const TrainLoopOptions &options) {
  TrainResult result;
  const std::vector<Param *> &params = optimizer.params();
  while (optimizer.stepCount() < options.totalSteps) {
    // Between steps the parameters, moments and data position agree, so
    // this is the one place a stop can be honoured consistently.
    if (options.stopRequested && options.stopRequested()) {
      result.interrupted = true;
      if (options.save)
        options.save();
      break;
    }
    Batch batch = sampler.next(options.batchSize);
    for (Param *p : params)
      std::fill(p->grad.begin(), p->grad.end(), 0.0f);
    int64_t done = optimizer.stepCount();
    float loss = gradient(batch, params);
    if (!std::isfinite(loss))
      throw TrainError(fmt::format("step {}: the loss is {} (diverged; try a "
                                   "lower --lr or --grad-clip)",
                                   done + 1, loss));
    StepStats stats = optimizer.step(options.schedule.at(done));
    ++result.stepsDone;
    result.lastLoss = loss;
    if (progress) {
      StepRecord r;
      r.step = optimizer.stepCount();
      r.loss = loss;
      r.lr = stats.lr;
      r.gradNorm = stats.gradNorm;
      r.clipCoef = stats.clipCoef;
      r.epoch = sampler.epoch();
      progress->update(r);
    }
    if (options.saveEvery > 0 && options.save &&
        optimizer.stepCount() % options.saveEvery == 0 &&
        optimizer.stepCount() < options.totalSteps)
      options.save();
  }
  if (progress)
    progress->finish();
  return result;
}

std::vector<Param> makeStateParams(const ModelConfig &config) {
  if (config.n_layer <= 0 || config.n_head <= 0 || config.head_size <= 0)
    throw TrainError(fmt::format("state tuning needs n_layer, n_head and "
                                 "head_size (got {}, {}, {})",
                                 config.n_layer, config.n_head,
                                 config.head_size));
  std::vector<Param> params;
  for (int64_t l = 0; l < config.n_layer; ++l) {
    Param p;
    p.name = fmt::format("blocks.{}.att.time_state", l);
    p.shape = {config.n_head, config.head_size, config.head_size};
    p.dtype = DType::F32;
    p.value.assign(size_t(config.n_head * config.head_size * config.head_size),
                   0.0f);
    p.grad.assign(p.value.size(), 0.0f);
    params.push_back(std::move(p));
  }
  return params;
}

} // namespace rwkv
