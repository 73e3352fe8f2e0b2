//===- TrainStep.cpp - dlopen a training library and call it --------------===//

#include "runtime/core/TrainStep.h"
#include "runtime/checkpoint/Checkpoint.h"
#include "runtime/core/Cuda.h"
#include "runtime/core/Library.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <climits>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <malloc.h>

namespace rwkv {

namespace {

TrainArg parseArg(const nlohmann::json &j, const std::string &where) {
  TrainArg a;
  std::string kind = j.value("kind", "");
  if (kind == "tokens")
    a.kind = TrainArg::Kind::Tokens;
  else if (kind == "targets")
    a.kind = TrainArg::Kind::Targets;
  else if (kind == "state")
    a.kind = TrainArg::Kind::State;
  else if (kind == "weight")
    a.kind = TrainArg::Kind::Weight;
  else
    throw RuntimeError(fmt::format("{} has unexpected kind '{}'", where, kind));
  a.name = j.value("name", kind);
  a.layer = j.value("layer", int64_t(-1));
  a.dtype = parseDType(j.value("dtype", std::string("f32")));
  a.shape = j.value("shape", std::vector<int64_t>{});
  a.numel = 1;
  for (int64_t d : a.shape) {
    if (d < 0)
      throw RuntimeError(where + " has a dynamic shape");
    a.numel *= size_t(d);
  }
  return a;
}

} // namespace

/// A CUDA training library bound to the driver, and the device memory its
/// calls reuse.
struct TrainLibrary::Device {
  /// Declared first so that it goes last: rwkv_cuda_fini() after the frees.
  std::unique_ptr<cuda::LibraryBinding> binding;
  cuda::CopyingCaller caller;
};

void TrainLibrary::reuseFreedMemory() {
  mallopt(M_MMAP_MAX, 0);
  // -1 disables trimming (mallopt(3)); INT_MAX would still give back all
  // but 2 GiB of a step's freed heap, to be faulted in again next step.
  mallopt(M_TRIM_THRESHOLD, -1);
  // One arena: blocks freed by the worker threads serve the next step's
  // allocations of any thread instead of sitting in per-thread heaps.
  mallopt(M_ARENA_MAX, 1);
}

TrainLibrary::~TrainLibrary() {
  // The device memory and rwkv_cuda_fini() go while the library is loaded.
  device_.reset();
  if (handle_)
    dlclose(handle_);
}

std::unique_ptr<TrainLibrary> TrainLibrary::load(const std::string &libraryPath,
                                                 const ModelOptions &options) {
  CompiledLibrary handle = CompiledLibrary::open(libraryPath, options.threads);
  std::unique_ptr<TrainLibrary> lib(new TrainLibrary());
  lib->path_ = libraryPath;
  lib->json_ = handle.info();
  nlohmann::json info = handle.infoObject();
  bool onDevice = info.contains("target") && info["target"] == "cuda";
  if (!onDevice)
    handle.requireCpuTarget(info, "not a target this runtime runs");
  const nlohmann::json &entries = info["entry_points"];
  if (!entries.is_object() || !entries.contains("rwkv_train_step") ||
      !entries.contains("rwkv_train_loss"))
    throw RuntimeError(fmt::format(
        "library '{}' is not a training library (no rwkv_train_step); "
        "compile one with rwkv-compile --train --ctx T",
        libraryPath));
  lib->batch_ = info.value("batch", int64_t(1));
  if (info.contains("config"))
    lib->vocab_ = info["config"].value("vocab_size", int64_t(0));
  if (info.contains("train"))
    lib->ignoreIndex_ = info["train"].value("ignore_index", int64_t(-100));
  const nlohmann::json &args = info["args"];
  for (size_t i = 0; i < args.size(); ++i) {
    TrainArg a = parseArg(args[i], fmt::format("{}: args[{}]", libraryPath, i));
    if (a.kind == TrainArg::Kind::Weight)
      lib->weightArgs_.push_back(i);
    else if (a.kind == TrainArg::Kind::State)
      lib->stateArgs_.push_back(i);
    else if ((a.kind == TrainArg::Kind::Tokens) != (i == 0) ||
             (a.kind == TrainArg::Kind::Targets) != (i == 1))
      throw RuntimeError(fmt::format(
          "{}: args[{}]: expected tokens, targets, states, then weights",
          libraryPath, i));
    lib->args_.push_back(std::move(a));
  }
  if (lib->args_.size() < 2 || lib->args_[0].shape.size() != 2)
    throw RuntimeError(libraryPath + ": tokens must be [B, T]");
  lib->context_ = lib->args_[0].shape[1];
  // The step returns the loss, then one gradient per float argument.
  size_t numResults = entries["rwkv_train_step"]["results"].size();
  if (numResults != 1 + lib->weightArgs_.size() + lib->stateArgs_.size())
    throw RuntimeError(fmt::format(
        "{}: rwkv_train_step returns {} results, expected the loss and {} "
        "gradients",
        libraryPath, numResults,
        lib->weightArgs_.size() + lib->stateArgs_.size()));
  lib->stepFn_ =
      reinterpret_cast<PackedFn>(handle.symbol("rwkv_train_step_packed"));
  lib->lossFn_ =
      reinterpret_cast<PackedFn>(handle.symbol("rwkv_train_loss_packed"));
  if (!lib->stepFn_ || !lib->lossFn_)
    throw RuntimeError(
        libraryPath +
        ": missing rwkv_train_step_packed/rwkv_train_loss_packed");
  if (onDevice) {
    cuda::requireDriver(handle.handle(), libraryPath, info, "training");
    // From here ~TrainLibrary closes the library, after rwkv_cuda_fini().
    lib->handle_ = handle.release();
    lib->device_ = std::make_unique<Device>();
    lib->device_->binding =
        cuda::LibraryBinding::bind(lib->handle_, libraryPath);
    return lib;
  }
  handle.setThreads(options.threads);
  lib->handle_ = handle.release();
  return lib;
}

const TrainArg *TrainLibrary::findWeight(const std::string &name) const {
  for (size_t i : weightArgs_)
    if (args_[i].name == name)
      return &args_[i];
  return nullptr;
}

void TrainLibrary::checkBatch(const int32_t *inputs,
                              const int32_t *targets) const {
  size_t n = size_t(batch_ * context_);
  for (size_t i = 0; i < n; ++i) {
    if (inputs[i] < 0 || inputs[i] >= vocab_)
      throw RuntimeError(fmt::format(
          "input token {} at row {}, position {} is outside the vocabulary "
          "[0, {})",
          inputs[i], i / size_t(context_), i % size_t(context_), vocab_));
    if ((targets[i] < 0 || targets[i] >= vocab_) && targets[i] != ignoreIndex_)
      throw RuntimeError(fmt::format(
          "target {} at row {}, position {} is outside the vocabulary [0, {}) "
          "and is not the ignore index {}",
          targets[i], i / size_t(context_), i % size_t(context_), vocab_,
          ignoreIndex_));
  }
}

std::vector<MemRefDesc>
TrainLibrary::inputDescs(const int32_t *inputs, const int32_t *targets,
                         const std::vector<const void *> &weights,
                         const std::vector<const float *> &states,
                         std::vector<float> &zeros) const {
  if (weights.size() != weightArgs_.size())
    throw RuntimeError(fmt::format("{} weights given, the library takes {}",
                                   weights.size(), weightArgs_.size()));
  if (!states.empty() && states.size() != stateArgs_.size())
    throw RuntimeError(fmt::format("{} initial states given, the library "
                                   "takes {} (or none)",
                                   states.size(), stateArgs_.size()));
  checkBatch(inputs, targets);
  std::vector<MemRefDesc> descs;
  descs.emplace_back(inputs, args_[0].shape);
  descs.emplace_back(targets, args_[1].shape);
  // Each layer gets its own buffer: one zero buffer shared by all layers
  // would alias arguments the compiled code treats as distinct.
  size_t total = 0;
  for (size_t l = 0; l < stateArgs_.size(); ++l)
    total += args_[stateArgs_[l]].numel;
  zeros.assign(total, 0.0f);
  size_t offset = 0;
  for (size_t l = 0; l < stateArgs_.size(); ++l) {
    const TrainArg &a = args_[stateArgs_[l]];
    const float *s = states.empty() ? nullptr : states[l];
    float *own = zeros.data() + offset;
    offset += a.numel;
    if (s)
      std::memcpy(own, s, a.numel * sizeof(float));
    descs.emplace_back(own, a.shape);
  }
  for (size_t i = 0; i < weightArgs_.size(); ++i) {
    if (!weights[i])
      throw RuntimeError("weight '" + args_[weightArgs_[i]].name +
                         "' is not bound");
    descs.emplace_back(weights[i], args_[weightArgs_[i]].shape);
  }
  return descs;
}

std::vector<cuda::CopiedArg>
TrainLibrary::hostArgs(const std::vector<MemRefDesc> &descs) const {
  // descs: the arguments (tokens, targets, states, weights: inputs), then
  // the loss and, for a step, the gradients of the states and weights.
  std::vector<cuda::CopiedArg> out;
  auto add = [&](const MemRefDesc &d, const TrainArg *arg, bool input) {
    cuda::CopiedArg a;
    a.shape = arg ? arg->shape : std::vector<int64_t>{};
    // Tokens and targets are int32, states and gradients f32.
    size_t elem = input && arg && arg->kind == TrainArg::Kind::Weight
                      ? dtypeSize(arg->dtype)
                      : sizeof(float);
    a.bytes = (arg ? arg->numel : 1) * elem;
    if (input)
      a.in = d.data();
    else
      a.out = const_cast<void *>(d.data());
    out.push_back(std::move(a));
  };
  size_t k = 0;
  add(descs[k++], &args_[0], /*input=*/true);
  add(descs[k++], &args_[1], /*input=*/true);
  for (size_t l : stateArgs_)
    add(descs[k++], &args_[l], /*input=*/true);
  for (size_t i : weightArgs_)
    add(descs[k++], &args_[i], /*input=*/true);
  add(descs[k++], nullptr, /*input=*/false);
  for (size_t l = 0; k < descs.size() && l < stateArgs_.size(); ++l)
    add(descs[k++], &args_[stateArgs_[l]], /*input=*/false);
  for (size_t i = 0; k < descs.size() && i < weightArgs_.size(); ++i)
    add(descs[k++], &args_[weightArgs_[i]], /*input=*/false);
  return out;
}

float TrainLibrary::step(const int32_t *inputs, const int32_t *targets,
                         const std::vector<const void *> &weights,
                         const std::vector<const float *> &states,
                         const std::vector<float *> &weightGrads,
                         const std::vector<float *> &stateGrads) const {
  std::vector<float> zeros;
  std::vector<MemRefDesc> descs =
      inputDescs(inputs, targets, weights, states, zeros);
  if (weightGrads.size() != weightArgs_.size())
    throw RuntimeError("one gradient buffer per weight is needed");
  float loss = 0.0f;
  descs.emplace_back(&loss, std::vector<int64_t>{});
  // Gradients come in argument order: states, then weights.
  std::vector<std::vector<float>> scratch;
  for (size_t l = 0; l < stateArgs_.size(); ++l) {
    const TrainArg &a = args_[stateArgs_[l]];
    float *g = l < stateGrads.size() ? stateGrads[l] : nullptr;
    if (!g) {
      scratch.emplace_back(a.numel);
      g = scratch.back().data();
    }
    descs.emplace_back(g, a.shape);
  }
  for (size_t i = 0; i < weightArgs_.size(); ++i) {
    if (!weightGrads[i])
      throw RuntimeError("no gradient buffer for weight '" +
                         args_[weightArgs_[i]].name + "'");
    descs.emplace_back(weightGrads[i], args_[weightArgs_[i]].shape);
  }
  if (device_) {
    device_->caller.call(
        stepFn_, fmt::format("training library '{}': rwkv_train_step", path_),
        hostArgs(descs));
    return loss;
  }
  std::vector<void *> ptrs;
  for (MemRefDesc &d : descs)
    ptrs.push_back(d.get());
  stepFn_(ptrs.data());
  return loss;
}

float TrainLibrary::loss(const int32_t *inputs, const int32_t *targets,
                         const std::vector<const void *> &weights,
                         const std::vector<const float *> &states) const {
  std::vector<float> zeros;
  std::vector<MemRefDesc> descs =
      inputDescs(inputs, targets, weights, states, zeros);
  float loss = 0.0f;
  descs.emplace_back(&loss, std::vector<int64_t>{});
  if (device_) {
    device_->caller.call(
        lossFn_, fmt::format("training library '{}': rwkv_train_loss", path_),
        hostArgs(descs));
    return loss;
  }
  std::vector<void *> ptrs;
  for (MemRefDesc &d : descs)
    ptrs.push_back(d.get());
  lossFn_(ptrs.data());
  return loss;
}

std::vector<const void *>
bindTrainWeights(const TrainLibrary &lib, const Checkpoint &checkpoint,
                 std::vector<std::vector<uint8_t>> &copies) {
  std::vector<const void *> out;
  for (size_t i : lib.weightArgs()) {
    const TrainArg &a = lib.args()[i];
    const Tensor *t = checkpoint.find(a.name);
    if (!t)
      throw RuntimeError(
          fmt::format("{}: missing tensor '{}'", checkpoint.path(), a.name));
    if (t->dtype != a.dtype || size_t(t->numel()) != a.numel)
      throw RuntimeError(fmt::format(
          "{}: tensor '{}' is {} with {} elements, the library expects {} "
          "with {}",
          checkpoint.path(), a.name, dtypeName(t->dtype), t->numel(),
          dtypeName(a.dtype), a.numel));
    if (t->isContiguous()) {
      out.push_back(t->data);
      continue;
    }
    OwnedTensor owned = toOwned(*t);
    copies.push_back(std::move(owned.bytes));
    out.push_back(copies.back().data());
  }
  return out;
}

} // namespace rwkv
