//===- CApi.cpp - extern "C" wrapper over rwkv::Model and TrainLibrary ----===//
//
// Every entry point catches everything: exceptions must not cross into C.
//
//===----------------------------------------------------------------------===//

#include "runtime/core/Batch.h"
#include "runtime/core/CApiError.h"
#include "runtime/core/CudaApi.h"
#include "runtime/core/Kernel.h"
#include "runtime/core/Runtime.h"
#include "runtime/core/TrainStep.h"
#include "runtime/core/rwkv_runtime.h"

#include <fmt/format.h>

#include <new>
#include <string>

using rwkv::capi::Access;
using rwkv::capi::AccessScope;
using rwkv::capi::ArgumentError;
using rwkv::capi::BusyError;
using rwkv::capi::CallScope;
using rwkv::capi::checkNotNull;
using rwkv::capi::fail;
using rwkv::capi::Users;

struct rwkvrt_model {
  std::unique_ptr<rwkv::Model> model;
  mutable Users users; // its states, batches and calls in progress
};

/// Counts itself as a user of its model for its lifetime.
struct rwkvrt_state {
  rwkvrt_state(rwkv::State s, const rwkvrt_model *owner)
      : state(std::move(s)), owner(owner) {
    owner->users.acquire(Users::State);
  }
  ~rwkvrt_state() { owner->users.release(Users::State); }
  rwkv::State state;
  const rwkvrt_model *owner;
  mutable Access access;
};

struct rwkvrt_batch {
  explicit rwkvrt_batch(const rwkvrt_model *owner)
      : owner(owner), decoder(*owner->model) {
    owner->users.acquire(Users::Batch);
  }
  ~rwkvrt_batch() { owner->users.release(Users::Batch); }
  const rwkvrt_model *owner;
  rwkv::BatchDecoder decoder;
  std::vector<float> logits;
  mutable Access access;
};

struct rwkvrt_train {
  std::unique_ptr<rwkv::TrainLibrary> lib;
  mutable Users users; // calls in progress
};

struct rwkvrt_kernel {
  std::unique_ptr<rwkv::WKV7Kernel> lib;
  mutable Users users; // calls in progress
};

namespace {
thread_local std::string lastError;

/// Runs `body`, mapping exceptions to status codes and the error message.
template <typename F> int guarded(int errorCode, F &&body) {
  lastError.clear();
  try {
    body();
    return RWKVRT_OK;
  } catch (const std::bad_alloc &) {
    return fail(RWKVRT_ERR_OUT_OF_MEMORY, "out of memory");
  } catch (const ArgumentError &e) {
    return fail(RWKVRT_ERR_INVALID_ARGUMENT, e.what());
  } catch (const BusyError &e) {
    return fail(RWKVRT_ERR_BUSY, e.what());
  } catch (const rwkv::DeviceError &e) {
    // A driver failure is never the caller's argument.
    if (e.code == rwkv::cudaapi::CUDA_ERROR_OUT_OF_MEMORY)
      return fail(RWKVRT_ERR_OUT_OF_MEMORY, e.what());
    return fail(errorCode == RWKVRT_ERR_INVALID_ARGUMENT ? RWKVRT_ERR_RUNTIME
                                                         : errorCode,
                e.what());
  } catch (const std::exception &e) {
    return fail(errorCode, e.what());
  } catch (...) {
    return fail(RWKVRT_ERR_RUNTIME, "unknown error");
  }
}

/// Counts larger than this are refused before any element is read: they
/// are almost always a negative value converted to size_t, and reading that
/// many would run far past the caller's buffer.
constexpr size_t kMaxCount = size_t(INT32_MAX);

void checkCount(const char *function, const char *name, size_t count) {
  if (count > kMaxCount)
    throw ArgumentError(fmt::format(
        "{}: {} = {} is larger than {} (a negative value converted to "
        "size_t?)",
        function, name, count, kMaxCount));
}

void checkPath(const char *function, const char *name, const char *path) {
  if (!*path)
    throw ArgumentError(fmt::format("{}: {} is empty", function, name));
}

void checkThreads(const char *function, int threads) {
  if (threads > rwkv::ModelOptions::kMaxThreads)
    throw ArgumentError(fmt::format("{}: threads = {} is more than {}",
                                    function, threads,
                                    rwkv::ModelOptions::kMaxThreads));
}

/// The pointer arrays of a training call as the vectors TrainLibrary takes;
/// `states` and `stateGrads` may be null (all zero / not wanted).
struct TrainBuffers {
  std::vector<const void *> weights;
  std::vector<const float *> states;
  std::vector<float *> weightGrads, stateGrads;
};

TrainBuffers trainBuffers(const rwkv::TrainLibrary &lib,
                          const void *const *weights,
                          const float *const *states, float *const *weightGrads,
                          float *const *stateGrads) {
  TrainBuffers b;
  size_t nw = lib.weightArgs().size(), nl = lib.stateArgs().size();
  b.weights.assign(weights, weights + nw);
  if (states)
    b.states.assign(states, states + nl);
  if (weightGrads)
    b.weightGrads.assign(weightGrads, weightGrads + nw);
  if (stateGrads)
    b.stateGrads.assign(stateGrads, stateGrads + nl);
  return b;
}
} // namespace

// Entry points in other files (CApiTokenizer.cpp) report through the same
// per-thread message.
std::string &rwkv::capi::lastErrorMessage() { return lastError; }

int rwkv::capi::checkNotNull(
    const char *function,
    std::initializer_list<std::pair<const char *, const void *>> args) {
  for (const auto &[name, pointer] : args)
    if (!pointer)
      return fail(RWKVRT_ERR_INVALID_ARGUMENT,
                  fmt::format("{}: {} is null", function, name));
  return RWKVRT_OK;
}

std::string rwkv::capi::Users::busyMessage(const char *what) {
  static const char *const names[NumKinds][2] = {
      {"call in progress", "calls in progress"},
      {"state", "states"},
      {"batch", "batches"}};
  std::lock_guard<std::mutex> lock(mutex_);
  std::string list;
  for (int k = 0; k < NumKinds; ++k) {
    if (!count_[k])
      continue;
    if (!list.empty())
      list += ", ";
    list += fmt::format("{} {}", count_[k], names[k][count_[k] != 1]);
  }
  if (list.empty())
    return "";
  return fmt::format("{} is in use by {}: free the states and close the "
                     "batches first, and wait for the calls to return",
                     what, list);
}

extern "C" {

const char *rwkvrt_last_error(void) { return lastError.c_str(); }

int rwkvrt_model_open(const char *libraryPath, const char *checkpointPath,
                      int threads, rwkvrt_model **outModel) {
  if (int rc = checkNotNull(__func__, {{"library_path", libraryPath},
                                       {"checkpoint_path", checkpointPath},
                                       {"out_model", outModel}}))
    return rc;
  *outModel = nullptr;
  return guarded(RWKVRT_ERR_LOAD, [&] {
    checkPath("rwkvrt_model_open", "library_path", libraryPath);
    checkPath("rwkvrt_model_open", "checkpoint_path", checkpointPath);
    checkThreads("rwkvrt_model_open", threads);
    rwkv::ModelOptions options;
    options.threads = threads > 0 ? threads : 0;
    auto m = std::make_unique<rwkvrt_model>();
    m->model = rwkv::Model::load(libraryPath, checkpointPath, options);
    *outModel = m.release();
  });
}

int rwkvrt_model_close(rwkvrt_model *model) {
  lastError.clear();
  if (!model)
    return RWKVRT_OK;
  std::string busy = model->users.busyMessage("the model");
  if (!busy.empty())
    return fail(RWKVRT_ERR_BUSY, busy);
  delete model;
  return RWKVRT_OK;
}

int rwkvrt_model_config(const rwkvrt_model *model, rwkvrt_config *out) {
  if (int rc = checkNotNull(__func__, {{"model", model}, {"out_config", out}}))
    return rc;
  CallScope call(model->users);
  return guarded(RWKVRT_ERR_RUNTIME, [&] {
    const rwkv::ModelConfig &c = model->model->config();
    *out = {c.version,   c.n_layer, c.n_embd,     c.n_head,
            c.head_size, c.dim_ffn, c.vocab_size, model->model->batch()};
  });
}

int rwkvrt_model_info_json(const rwkvrt_model *model, const char **outJson) {
  if (int rc =
          checkNotNull(__func__, {{"model", model}, {"out_json", outJson}}))
    return rc;
  *outJson = model->model->info().json.c_str();
  lastError.clear();
  return RWKVRT_OK;
}

int rwkvrt_state_new(const rwkvrt_model *model, rwkvrt_state **outState) {
  if (int rc =
          checkNotNull(__func__, {{"model", model}, {"out_state", outState}}))
    return rc;
  *outState = nullptr;
  CallScope call(model->users);
  return guarded(RWKVRT_ERR_RUNTIME, [&] {
    *outState = new rwkvrt_state(model->model->newState(), model);
  });
}

int rwkvrt_state_copy(const rwkvrt_state *src, rwkvrt_state **outState) {
  if (int rc = checkNotNull(__func__, {{"src", src}, {"out_state", outState}}))
    return rc;
  *outState = nullptr;
  return guarded(RWKVRT_ERR_RUNTIME, [&] {
    AccessScope use(&src->access, false, "the source state");
    *outState = new rwkvrt_state(src->state, src->owner);
  });
}

int rwkvrt_state_assign(rwkvrt_state *dst, const rwkvrt_state *src) {
  if (int rc = checkNotNull(__func__, {{"dst", dst}, {"src", src}}))
    return rc;
  return guarded(RWKVRT_ERR_RUNTIME, [&] {
    if (dst == src)
      return;
    AccessScope write(&dst->access, true, "the destination state");
    AccessScope read(&src->access, false, "the source state");
    if (dst->state.layout() != src->state.layout())
      throw ArgumentError("rwkvrt_state_assign: the states belong to "
                          "different models");
    dst->state = src->state;
  });
}

int rwkvrt_state_reset(rwkvrt_state *state) {
  if (int rc = checkNotNull(__func__, {{"state", state}}))
    return rc;
  return guarded(RWKVRT_ERR_RUNTIME, [&] {
    AccessScope use(&state->access, true, "the state");
    state->state.reset();
  });
}

int rwkvrt_state_free(rwkvrt_state *state) {
  return guarded(RWKVRT_ERR_RUNTIME, [&] {
    if (!state)
      return;
    // Taken and never given back: the state is gone.
    state->access.begin(true, "the state");
    delete state;
  });
}

int rwkvrt_state_tensor(rwkvrt_state *state, const char *name, int64_t layer,
                        float **outData, size_t *outCount) {
  if (int rc = checkNotNull(__func__, {{"state", state},
                                       {"name", name},
                                       {"out_data", outData},
                                       {"out_count", outCount}}))
    return rc;
  return guarded(RWKVRT_ERR_INVALID_ARGUMENT, [&] {
    AccessScope use(&state->access, true, "the state");
    rwkv::FloatSpan t = state->state.tensor(name, layer);
    *outData = t.data;
    *outCount = t.size;
  });
}

int rwkvrt_step(const rwkvrt_model *model, rwkvrt_state *state,
                const int32_t *tokens, size_t count, float *logits,
                size_t logitsCapacity) {
  if (int rc = checkNotNull(__func__, {{"model", model},
                                       {"state", state},
                                       {"tokens", tokens},
                                       {"logits", logits}}))
    return rc;
  CallScope call(model->users);
  return guarded(RWKVRT_ERR_INVALID_ARGUMENT, [&] {
    checkCount("rwkvrt_step", "count", count);
    AccessScope use(&state->access, true, "the state");
    model->model->run("rwkv_step", tokens, count, state->state, logits,
                      logitsCapacity);
  });
}

int rwkvrt_forward(const rwkvrt_model *model, rwkvrt_state *state,
                   const int32_t *tokens, size_t count, int allLogits,
                   float *logits, size_t logitsCapacity) {
  if (int rc = checkNotNull(__func__, {{"model", model},
                                       {"state", state},
                                       {"tokens", tokens},
                                       {"logits", logits}}))
    return rc;
  CallScope call(model->users);
  return guarded(RWKVRT_ERR_INVALID_ARGUMENT, [&] {
    checkCount("rwkvrt_forward", "count", count);
    AccessScope use(&state->access, true, "the state");
    model->model->run(allLogits ? "rwkv_forward_all" : "rwkv_forward", tokens,
                      count, state->state, logits, logitsCapacity);
  });
}

int rwkvrt_batch_open(const rwkvrt_model *model, rwkvrt_batch **outBatch) {
  if (int rc =
          checkNotNull(__func__, {{"model", model}, {"out_batch", outBatch}}))
    return rc;
  *outBatch = nullptr;
  CallScope call(model->users);
  return guarded(RWKVRT_ERR_INVALID_ARGUMENT,
                 [&] { *outBatch = new rwkvrt_batch(model); });
}

int rwkvrt_batch_close(rwkvrt_batch *batch) {
  return guarded(RWKVRT_ERR_RUNTIME, [&] {
    if (!batch)
      return;
    batch->access.begin(true, "the batch");
    delete batch;
  });
}

int rwkvrt_batch_add(rwkvrt_batch *batch, const rwkvrt_state *initial,
                     int64_t *outSlot) {
  if (int rc =
          checkNotNull(__func__, {{"batch", batch}, {"out_slot", outSlot}}))
    return rc;
  return guarded(RWKVRT_ERR_INVALID_ARGUMENT, [&] {
    AccessScope use(&batch->access, true, "the batch");
    AccessScope read(initial ? &initial->access : nullptr, false,
                     "the initial state");
    *outSlot =
        initial ? batch->decoder.add(initial->state) : batch->decoder.add();
  });
}

int rwkvrt_batch_remove(rwkvrt_batch *batch, int64_t slot) {
  if (int rc = checkNotNull(__func__, {{"batch", batch}}))
    return rc;
  return guarded(RWKVRT_ERR_INVALID_ARGUMENT, [&] {
    AccessScope use(&batch->access, true, "the batch");
    batch->decoder.remove(slot);
  });
}

int rwkvrt_batch_export_state(const rwkvrt_batch *batch, int64_t slot,
                              rwkvrt_state *out) {
  if (int rc = checkNotNull(__func__, {{"batch", batch}, {"out", out}}))
    return rc;
  return guarded(RWKVRT_ERR_INVALID_ARGUMENT, [&] {
    AccessScope read(&batch->access, false, "the batch");
    AccessScope write(&out->access, true, "the output state");
    batch->decoder.exportState(slot, out->state);
  });
}

int rwkvrt_batch_step(rwkvrt_batch *batch, const int64_t *slots,
                      const int32_t *tokens, size_t count, float *logits,
                      size_t logitsCapacity) {
  if (int rc = checkNotNull(__func__, {{"batch", batch}, {"logits", logits}}))
    return rc;
  if (count)
    if (int rc = checkNotNull(__func__, {{"slots", slots}, {"tokens", tokens}}))
      return rc;
  return guarded(RWKVRT_ERR_INVALID_ARGUMENT, [&] {
    AccessScope use(&batch->access, true, "the batch");
    const rwkv::Model &model = *batch->owner->model;
    size_t capacity = size_t(batch->decoder.capacity());
    // Checked before any slot is read: the slots are distinct.
    if (count > capacity)
      throw ArgumentError(
          fmt::format("rwkvrt_batch_step: count = {} is more than the "
                      "batch's {} slots",
                      count, capacity));
    size_t need = capacity * size_t(model.vocabSize());
    if (logitsCapacity < need)
      throw ArgumentError(fmt::format("rwkvrt_batch_step: logits buffer holds "
                                      "{} floats, the step writes {}",
                                      logitsCapacity, need));
    std::vector<std::pair<int64_t, int32_t>> items;
    for (size_t i = 0; i < count; ++i) {
      if (tokens[i] < 0 || tokens[i] >= model.vocabSize())
        throw ArgumentError(fmt::format(
            "rwkvrt_batch_step: tokens[{}] = {} (slot {}) is out of range "
            "[0, {})",
            i, tokens[i], slots[i], model.vocabSize()));
      items.emplace_back(slots[i], tokens[i]);
    }
    batch->decoder.step(items, batch->logits);
    std::copy(batch->logits.begin(), batch->logits.end(), logits);
  });
}

void rwkvrt_train_reuse_freed_memory(void) {
  rwkv::TrainLibrary::reuseFreedMemory();
}

int rwkvrt_train_open(const char *libraryPath, int threads,
                      rwkvrt_train **outTrain) {
  if (int rc = checkNotNull(
          __func__, {{"library_path", libraryPath}, {"out_train", outTrain}}))
    return rc;
  *outTrain = nullptr;
  return guarded(RWKVRT_ERR_LOAD, [&] {
    checkPath("rwkvrt_train_open", "library_path", libraryPath);
    checkThreads("rwkvrt_train_open", threads);
    rwkv::ModelOptions options;
    options.threads = threads > 0 ? threads : 0;
    auto t = std::make_unique<rwkvrt_train>();
    t->lib = rwkv::TrainLibrary::load(libraryPath, options);
    *outTrain = t.release();
  });
}

int rwkvrt_train_close(rwkvrt_train *train) {
  lastError.clear();
  if (!train)
    return RWKVRT_OK;
  std::string busy = train->users.busyMessage("the training library");
  if (!busy.empty())
    return fail(RWKVRT_ERR_BUSY, busy);
  delete train;
  return RWKVRT_OK;
}

int rwkvrt_train_config(const rwkvrt_train *train, rwkvrt_train_desc *out) {
  if (int rc = checkNotNull(__func__, {{"train", train}, {"out_desc", out}}))
    return rc;
  const rwkv::TrainLibrary &lib = *train->lib;
  *out = {lib.batch(),
          lib.context(),
          lib.vocabSize(),
          lib.numLayers(),
          int64_t(lib.weightArgs().size()),
          lib.ignoreIndex()};
  lastError.clear();
  return RWKVRT_OK;
}

int rwkvrt_train_info_json(const rwkvrt_train *train, const char **outJson) {
  if (int rc =
          checkNotNull(__func__, {{"train", train}, {"out_json", outJson}}))
    return rc;
  *outJson = train->lib->infoJson().c_str();
  lastError.clear();
  return RWKVRT_OK;
}

int rwkvrt_train_weight(const rwkvrt_train *train, int64_t index,
                        const char **outName, const char **outDType,
                        const int64_t **outShape, size_t *outRank,
                        size_t *outNumel) {
  if (int rc = checkNotNull(__func__, {{"train", train}}))
    return rc;
  const rwkv::TrainLibrary &lib = *train->lib;
  int64_t n = int64_t(lib.weightArgs().size());
  if (index < 0 || index >= n)
    return fail(RWKVRT_ERR_INVALID_ARGUMENT,
                fmt::format("weight index {} is outside [0, {})", index, n));
  const rwkv::TrainArg &a = lib.args()[lib.weightArgs()[size_t(index)]];
  if (outName)
    *outName = a.name.c_str();
  if (outDType)
    *outDType = rwkv::dtypeName(a.dtype);
  if (outShape)
    *outShape = a.shape.data();
  if (outRank)
    *outRank = a.shape.size();
  if (outNumel)
    *outNumel = a.numel;
  lastError.clear();
  return RWKVRT_OK;
}

int rwkvrt_train_state_shape(const rwkvrt_train *train, int64_t layer,
                             const int64_t **outShape, size_t *outRank,
                             size_t *outNumel) {
  if (int rc = checkNotNull(__func__, {{"train", train}}))
    return rc;
  const rwkv::TrainLibrary &lib = *train->lib;
  if (layer < 0 || layer >= lib.numLayers())
    return fail(
        RWKVRT_ERR_INVALID_ARGUMENT,
        fmt::format("layer {} is outside [0, {})", layer, lib.numLayers()));
  const rwkv::TrainArg &a = lib.args()[lib.stateArgs()[size_t(layer)]];
  if (outShape)
    *outShape = a.shape.data();
  if (outRank)
    *outRank = a.shape.size();
  if (outNumel)
    *outNumel = a.numel;
  lastError.clear();
  return RWKVRT_OK;
}

int rwkvrt_train_step(const rwkvrt_train *train, const int32_t *inputs,
                      const int32_t *targets, const void *const *weights,
                      const float *const *states, float *const *weightGrads,
                      float *const *stateGrads, float *loss) {
  if (int rc = checkNotNull(__func__, {{"train", train},
                                       {"inputs", inputs},
                                       {"targets", targets},
                                       {"weights", weights},
                                       {"weight_grads", weightGrads},
                                       {"loss", loss}}))
    return rc;
  CallScope call(train->users);
  return guarded(RWKVRT_ERR_INVALID_ARGUMENT, [&] {
    TrainBuffers b =
        trainBuffers(*train->lib, weights, states, weightGrads, stateGrads);
    *loss = train->lib->step(inputs, targets, b.weights, b.states,
                             b.weightGrads, b.stateGrads);
  });
}

int rwkvrt_train_loss(const rwkvrt_train *train, const int32_t *inputs,
                      const int32_t *targets, const void *const *weights,
                      const float *const *states, float *loss) {
  if (int rc = checkNotNull(__func__, {{"train", train},
                                       {"inputs", inputs},
                                       {"targets", targets},
                                       {"weights", weights},
                                       {"loss", loss}}))
    return rc;
  CallScope call(train->users);
  return guarded(RWKVRT_ERR_INVALID_ARGUMENT, [&] {
    TrainBuffers b =
        trainBuffers(*train->lib, weights, states, nullptr, nullptr);
    *loss = train->lib->loss(inputs, targets, b.weights, b.states);
  });
}

int rwkvrt_kernel_open(const char *libraryPath, int threads,
                       rwkvrt_kernel **outKernel) {
  if (int rc = checkNotNull(
          __func__, {{"library_path", libraryPath}, {"out_kernel", outKernel}}))
    return rc;
  *outKernel = nullptr;
  return guarded(RWKVRT_ERR_LOAD, [&] {
    checkPath("rwkvrt_kernel_open", "library_path", libraryPath);
    checkThreads("rwkvrt_kernel_open", threads);
    rwkv::ModelOptions options;
    options.threads = threads > 0 ? threads : 0;
    auto k = std::make_unique<rwkvrt_kernel>();
    k->lib = rwkv::WKV7Kernel::load(libraryPath, options);
    *outKernel = k.release();
  });
}

int rwkvrt_kernel_close(rwkvrt_kernel *kernel) {
  lastError.clear();
  if (!kernel)
    return RWKVRT_OK;
  std::string busy = kernel->users.busyMessage("the kernel library");
  if (!busy.empty())
    return fail(RWKVRT_ERR_BUSY, busy);
  delete kernel;
  return RWKVRT_OK;
}

int rwkvrt_kernel_shape(const rwkvrt_kernel *kernel, int64_t *outBatch,
                        int64_t *outContext, int64_t *outHeads,
                        int64_t *outHeadSize) {
  if (int rc = checkNotNull(__func__, {{"kernel", kernel}}))
    return rc;
  const rwkv::WKV7Kernel &lib = *kernel->lib;
  if (outBatch)
    *outBatch = lib.batch();
  if (outContext)
    *outContext = lib.context();
  if (outHeads)
    *outHeads = lib.heads();
  if (outHeadSize)
    *outHeadSize = lib.headSize();
  lastError.clear();
  return RWKVRT_OK;
}

namespace {
/// `p`, or a zero [B, H, N, N] buffer kept in `zeros` when p is null.
const float *stateOrZero(const rwkv::WKV7Kernel &lib, const float *p,
                         std::vector<float> &zeros) {
  if (p)
    return p;
  zeros.assign(
      size_t(lib.batch() * lib.heads() * lib.headSize() * lib.headSize()),
      0.0f);
  return zeros.data();
}
} // namespace

int rwkvrt_wkv7_forward(const rwkvrt_kernel *kernel, const float *r,
                        const float *w, const float *k, const float *v,
                        const float *a, const float *b, const float *state0,
                        float *y, float *stateOut) {
  if (int rc = checkNotNull(__func__, {{"kernel", kernel},
                                       {"r", r},
                                       {"w", w},
                                       {"k", k},
                                       {"v", v},
                                       {"a", a},
                                       {"b", b},
                                       {"y", y},
                                       {"state_out", stateOut}}))
    return rc;
  CallScope call(kernel->users);
  return guarded(RWKVRT_ERR_RUNTIME, [&] {
    std::vector<float> zeros;
    const float *s0 = stateOrZero(*kernel->lib, state0, zeros);
    kernel->lib->forward(r, w, k, v, a, b, s0, y, stateOut);
  });
}

int rwkvrt_wkv7_backward(const rwkvrt_kernel *kernel, const float *r,
                         const float *w, const float *k, const float *v,
                         const float *a, const float *b, const float *state0,
                         const float *dy, const float *dstate, float *dr,
                         float *dw, float *dk, float *dv, float *da, float *db,
                         float *dstate0) {
  if (int rc = checkNotNull(__func__, {{"kernel", kernel},
                                       {"r", r},
                                       {"w", w},
                                       {"k", k},
                                       {"v", v},
                                       {"a", a},
                                       {"b", b},
                                       {"dy", dy},
                                       {"dr", dr},
                                       {"dw", dw},
                                       {"dk", dk},
                                       {"dv", dv},
                                       {"da", da},
                                       {"db", db}}))
    return rc;
  CallScope call(kernel->users);
  return guarded(RWKVRT_ERR_RUNTIME, [&] {
    const rwkv::WKV7Kernel &lib = *kernel->lib;
    std::vector<float> zeros0, zeros1, scratch;
    const float *s0 = stateOrZero(lib, state0, zeros0);
    const float *ds = stateOrZero(lib, dstate, zeros1);
    if (!dstate0) {
      scratch.resize(
          size_t(lib.batch() * lib.heads() * lib.headSize() * lib.headSize()));
      dstate0 = scratch.data();
    }
    lib.backward(r, w, k, v, a, b, s0, dy, ds, dr, dw, dk, dv, da, db, dstate0);
  });
}

} // extern "C"
