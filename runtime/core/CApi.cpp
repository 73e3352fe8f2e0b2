//===- CApi.cpp - extern "C" wrapper over rwkv::Model ---------------------===//
//
// Every entry point catches everything: exceptions must not cross into C.
//
//===----------------------------------------------------------------------===//

#include "runtime/core/Runtime.h"
#include "runtime/core/rwkv_runtime.h"

#include <new>
#include <string>

struct rwkvrt_model {
  std::unique_ptr<rwkv::Model> model;
};

struct rwkvrt_state {
  rwkv::State state;
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
} // namespace

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

} // extern "C"
