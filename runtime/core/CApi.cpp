//===- CApi.cpp - extern "C" wrapper over rwkv::Model and TrainLibrary ----===//
//
// Every entry point catches everything: exceptions must not cross into C.
//
//===----------------------------------------------------------------------===//

#include "runtime/core/Batch.h"
#include "runtime/core/CApiError.h"
#include "runtime/core/Kernel.h"
#include "runtime/core/Runtime.h"
#include "runtime/core/TrainStep.h"
#include "runtime/core/rwkv_runtime.h"

#include <fmt/format.h>

#include <new>
#include <string>

struct rwkvrt_model {
  std::unique_ptr<rwkv::Model> model;
};

struct rwkvrt_state {
  rwkv::State state;
};

struct rwkvrt_batch {
  const rwkv::Model *model;
  rwkv::BatchDecoder decoder;
  std::vector<float> logits;
};

struct rwkvrt_train {
  std::unique_ptr<rwkv::TrainLibrary> lib;
};

struct rwkvrt_kernel {
  std::unique_ptr<rwkv::WKV7Kernel> lib;
};

namespace {
thread_local std::string lastError;

int fail(int code, const std::string &message) {
  lastError = message;
  return code;
}

/// Runs `body`, mapping exceptions to status codes and the error message.
template <typename F> int guarded(int errorCode, F &&body) {
  lastError.clear();
  try {
    body();
    return RWKVRT_OK;
  } catch (const std::bad_alloc &) {
    return fail(RWKVRT_ERR_OUT_OF_MEMORY, "out of memory");
  } catch (const std::exception &e) {
    return fail(errorCode, e.what());
  } catch (...) {
    return fail(RWKVRT_ERR_RUNTIME, "unknown error");
  }
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

extern "C" {

const char *rwkvrt_last_error(void) { return lastError.c_str(); }

int rwkvrt_model_open(const char *libraryPath, const char *checkpointPath,
                      int threads, rwkvrt_model **outModel) {
  if (!libraryPath || !checkpointPath || !outModel)
    return fail(RWKVRT_ERR_INVALID_ARGUMENT, "null argument");
  *outModel = nullptr;
  return guarded(RWKVRT_ERR_LOAD, [&] {
    rwkv::ModelOptions options;
    options.threads = threads > 0 ? threads : 0;
    auto m = std::make_unique<rwkvrt_model>();
    m->model = rwkv::Model::load(libraryPath, checkpointPath, options);
    *outModel = m.release();
  });
}

int rwkvrt_model_close(rwkvrt_model *model) {
  return guarded(RWKVRT_ERR_RUNTIME, [&] { delete model; });
}

int rwkvrt_model_config(const rwkvrt_model *model, rwkvrt_config *out) {
  if (!model || !out)
    return fail(RWKVRT_ERR_INVALID_ARGUMENT, "null argument");
  return guarded(RWKVRT_ERR_RUNTIME, [&] {
    const rwkv::ModelConfig &c = model->model->config();
    *out = {c.version,   c.n_layer, c.n_embd,     c.n_head,
            c.head_size, c.dim_ffn, c.vocab_size, model->model->batch()};
  });
}

int rwkvrt_model_info_json(const rwkvrt_model *model, const char **outJson) {
  if (!model || !outJson)
    return fail(RWKVRT_ERR_INVALID_ARGUMENT, "null argument");
  *outJson = model->model->info().json.c_str();
  lastError.clear();
  return RWKVRT_OK;
}

int rwkvrt_state_new(const rwkvrt_model *model, rwkvrt_state **outState) {
  if (!model || !outState)
    return fail(RWKVRT_ERR_INVALID_ARGUMENT, "null argument");
  *outState = nullptr;
  return guarded(RWKVRT_ERR_RUNTIME, [&] {
    *outState = new rwkvrt_state{model->model->newState()};
  });
}

int rwkvrt_state_copy(const rwkvrt_state *src, rwkvrt_state **outState) {
  if (!src || !outState)
    return fail(RWKVRT_ERR_INVALID_ARGUMENT, "null argument");
  *outState = nullptr;
  return guarded(RWKVRT_ERR_RUNTIME,
                 [&] { *outState = new rwkvrt_state{src->state}; });
}

int rwkvrt_state_assign(rwkvrt_state *dst, const rwkvrt_state *src) {
  if (!dst || !src)
    return fail(RWKVRT_ERR_INVALID_ARGUMENT, "null argument");
  return guarded(RWKVRT_ERR_RUNTIME, [&] {
    if (dst->state.layout() != src->state.layout())
      throw rwkv::RuntimeError("the states belong to different models");
    dst->state = src->state;
  });
}

int rwkvrt_state_reset(rwkvrt_state *state) {
  if (!state)
    return fail(RWKVRT_ERR_INVALID_ARGUMENT, "null argument");
  return guarded(RWKVRT_ERR_RUNTIME, [&] { state->state.reset(); });
}

int rwkvrt_state_free(rwkvrt_state *state) {
  return guarded(RWKVRT_ERR_RUNTIME, [&] { delete state; });
}

int rwkvrt_state_tensor(rwkvrt_state *state, const char *name, int64_t layer,
                        float **outData, size_t *outCount) {
  if (!state || !name || !outData || !outCount)
    return fail(RWKVRT_ERR_INVALID_ARGUMENT, "null argument");
  return guarded(RWKVRT_ERR_INVALID_ARGUMENT, [&] {
    rwkv::FloatSpan t = state->state.tensor(name, layer);
    *outData = t.data;
    *outCount = t.size;
  });
}

int rwkvrt_step(const rwkvrt_model *model, rwkvrt_state *state,
                const int32_t *tokens, size_t count, float *logits,
                size_t logitsCapacity) {
  if (!model || !state || !tokens || !logits)
    return fail(RWKVRT_ERR_INVALID_ARGUMENT, "null argument");
  return guarded(RWKVRT_ERR_INVALID_ARGUMENT, [&] {
    model->model->run("rwkv_step", tokens, count, state->state, logits,
                      logitsCapacity);
  });
}

int rwkvrt_forward(const rwkvrt_model *model, rwkvrt_state *state,
                   const int32_t *tokens, size_t count, int allLogits,
                   float *logits, size_t logitsCapacity) {
  if (!model || !state || !tokens || !logits)
    return fail(RWKVRT_ERR_INVALID_ARGUMENT, "null argument");
  return guarded(RWKVRT_ERR_INVALID_ARGUMENT, [&] {
    model->model->run(allLogits ? "rwkv_forward_all" : "rwkv_forward", tokens,
                      count, state->state, logits, logitsCapacity);
  });
}

int rwkvrt_batch_open(const rwkvrt_model *model, rwkvrt_batch **out_batch) {
  if (!model || !out_batch)
    return fail(RWKVRT_ERR_INVALID_ARGUMENT, "null argument");
  return guarded(RWKVRT_ERR_INVALID_ARGUMENT, [&] {
    *out_batch = new rwkvrt_batch{
        model->model.get(), rwkv::BatchDecoder(*model->model), {}};
  });
}

int rwkvrt_batch_close(rwkvrt_batch *batch) {
  delete batch;
  return RWKVRT_OK;
}

int rwkvrt_batch_add(rwkvrt_batch *batch, const rwkvrt_state *initial,
                     int64_t *out_slot) {
  if (!batch || !out_slot)
    return fail(RWKVRT_ERR_INVALID_ARGUMENT, "null argument");
  return guarded(RWKVRT_ERR_INVALID_ARGUMENT, [&] {
    *out_slot =
        initial ? batch->decoder.add(initial->state) : batch->decoder.add();
  });
}

int rwkvrt_batch_remove(rwkvrt_batch *batch, int64_t slot) {
  if (!batch)
    return fail(RWKVRT_ERR_INVALID_ARGUMENT, "null argument");
  return guarded(RWKVRT_ERR_INVALID_ARGUMENT,
                 [&] { batch->decoder.remove(slot); });
}

int rwkvrt_batch_export_state(const rwkvrt_batch *batch, int64_t slot,
                              rwkvrt_state *out) {
  if (!batch || !out)
    return fail(RWKVRT_ERR_INVALID_ARGUMENT, "null argument");
  return guarded(RWKVRT_ERR_INVALID_ARGUMENT,
                 [&] { batch->decoder.exportState(slot, out->state); });
}

int rwkvrt_batch_step(rwkvrt_batch *batch, const int64_t *slots,
                      const int32_t *tokens, size_t count, float *logits,
                      size_t logitsCapacity) {
  if (!batch || (count && (!slots || !tokens)) || !logits)
    return fail(RWKVRT_ERR_INVALID_ARGUMENT, "null argument");
  return guarded(RWKVRT_ERR_INVALID_ARGUMENT, [&] {
    size_t need =
        size_t(batch->decoder.capacity()) * size_t(batch->model->vocabSize());
    if (logitsCapacity < need)
      throw rwkv::RuntimeError(
          fmt::format("logits buffer holds {} floats, the step writes {}",
                      logitsCapacity, need));
    std::vector<std::pair<int64_t, int32_t>> items;
    for (size_t i = 0; i < count; ++i)
      items.emplace_back(slots[i], tokens[i]);
    batch->decoder.step(items, batch->logits);
    std::copy(batch->logits.begin(), batch->logits.end(), logits);
  });
}

void rwkvrt_train_reuse_freed_memory(void) {
  rwkv::TrainLibrary::reuseFreedMemory();
}

int rwkvrt_train_open(const char *libraryPath, int threads,
                      rwkvrt_train **outTrain) {
  if (!libraryPath || !outTrain)
    return fail(RWKVRT_ERR_INVALID_ARGUMENT, "null argument");
  *outTrain = nullptr;
  return guarded(RWKVRT_ERR_LOAD, [&] {
    rwkv::ModelOptions options;
    options.threads = threads > 0 ? threads : 0;
    auto t = std::make_unique<rwkvrt_train>();
    t->lib = rwkv::TrainLibrary::load(libraryPath, options);
    *outTrain = t.release();
  });
}

int rwkvrt_train_close(rwkvrt_train *train) {
  return guarded(RWKVRT_ERR_RUNTIME, [&] { delete train; });
}

int rwkvrt_train_config(const rwkvrt_train *train, rwkvrt_train_desc *out) {
  if (!train || !out)
    return fail(RWKVRT_ERR_INVALID_ARGUMENT, "null argument");
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
  if (!train || !outJson)
    return fail(RWKVRT_ERR_INVALID_ARGUMENT, "null argument");
  *outJson = train->lib->infoJson().c_str();
  lastError.clear();
  return RWKVRT_OK;
}

int rwkvrt_train_weight(const rwkvrt_train *train, int64_t index,
                        const char **outName, const char **outDType,
                        const int64_t **outShape, size_t *outRank,
                        size_t *outNumel) {
  if (!train)
    return fail(RWKVRT_ERR_INVALID_ARGUMENT, "null argument");
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
  if (!train)
    return fail(RWKVRT_ERR_INVALID_ARGUMENT, "null argument");
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
  if (!train || !inputs || !targets || !weights || !weightGrads || !loss)
    return fail(RWKVRT_ERR_INVALID_ARGUMENT, "null argument");
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
  if (!train || !inputs || !targets || !weights || !loss)
    return fail(RWKVRT_ERR_INVALID_ARGUMENT, "null argument");
  return guarded(RWKVRT_ERR_INVALID_ARGUMENT, [&] {
    TrainBuffers b =
        trainBuffers(*train->lib, weights, states, nullptr, nullptr);
    *loss = train->lib->loss(inputs, targets, b.weights, b.states);
  });
}

int rwkvrt_kernel_open(const char *libraryPath, int threads,
                       rwkvrt_kernel **outKernel) {
  if (!libraryPath || !outKernel)
    return fail(RWKVRT_ERR_INVALID_ARGUMENT, "null argument");
  *outKernel = nullptr;
  return guarded(RWKVRT_ERR_LOAD, [&] {
    rwkv::ModelOptions options;
    options.threads = threads;
    auto k = std::make_unique<rwkvrt_kernel>();
    k->lib = rwkv::WKV7Kernel::load(libraryPath, options);
    *outKernel = k.release();
  });
}

int rwkvrt_kernel_close(rwkvrt_kernel *kernel) {
  return guarded(RWKVRT_ERR_RUNTIME, [&] { delete kernel; });
}

int rwkvrt_kernel_shape(const rwkvrt_kernel *kernel, int64_t *outBatch,
                        int64_t *outContext, int64_t *outHeads,
                        int64_t *outHeadSize) {
  if (!kernel)
    return fail(RWKVRT_ERR_INVALID_ARGUMENT, "null kernel");
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
  if (!kernel || !r || !w || !k || !v || !a || !b || !y || !stateOut)
    return fail(RWKVRT_ERR_INVALID_ARGUMENT, "null argument");
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
  if (!kernel || !r || !w || !k || !v || !a || !b || !dy || !dr || !dw || !dk ||
      !dv || !da || !db)
    return fail(RWKVRT_ERR_INVALID_ARGUMENT, "null argument");
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
