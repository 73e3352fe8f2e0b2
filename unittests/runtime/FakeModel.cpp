//===- FakeModel.cpp - A stand-in for an rwkv-compile library -------------===//
//
// Exports the ABI of docs/ABI.md (rwkv_model_info, <entry>_packed) for the
// synthetic model of FakeModel.h, with a toy computation whose results the
// tests can predict, so the runtime's loading, binding, descriptor passing
// and state double-buffering are tested without the compiler.
//
// Toy model, per token `id` (e = emb.weight[id], as float):
//   att_shift[l] += e;  wkv[l][0] += 1;  ffn_shift[l] = e
//   logits[v] = att_shift[0][v % C] + wkv[0][0]
// It clobbers its state inputs after reading them, as compiled code may.
//
//===----------------------------------------------------------------------===//

#include "unittests/runtime/FakeModel.h"

#include <nlohmann/json.hpp>

#include <atomic>
#include <cstring>
#include <string>
#include <vector>

using namespace rwkv;

namespace {

struct Desc {
  void *allocated;
  void *aligned;
  int64_t offset;
  int64_t sizes[4]; // strides follow sizes[rank]; only sizes are read here
};

const std::string &infoJson() {
  static const std::string text = fakeModelInfo().dump();
  return text;
}

int numThreads = 0;

/// Called at the start of every entry point when set
/// (rwkv_fake_set_call_hook): lets a test hold a call in progress.
std::atomic<void (*)()> callHook{nullptr};

void run(void **descs, bool allLogits) {
  if (void (*hook)() = callHook.load())
    hook();
  SyntheticOptions o = fakeModelOptions();
  int64_t c = o.n_embd, v = o.vocab_size, nl = o.n_layer;
  size_t nState = size_t(3 * nl);
  size_t nWeights = syntheticSpecs(o).size();
  auto *tokDesc = static_cast<Desc *>(descs[0]);
  auto *tokens = static_cast<const int32_t *>(tokDesc->aligned);
  int64_t t = tokDesc->sizes[1];
  // emb.weight is the first weight, bf16 [V, C].
  auto *emb = static_cast<const uint16_t *>(
      static_cast<Desc *>(descs[1 + nState])->aligned);
  auto *logits = static_cast<float *>(
      static_cast<Desc *>(descs[1 + nState + nWeights])->aligned);
  std::vector<float *> in(nState), out(nState);
  std::vector<size_t> numel(nState);
  for (size_t i = 0; i < nState; ++i) {
    auto *d = static_cast<Desc *>(descs[1 + i]);
    in[i] = static_cast<float *>(d->aligned);
    out[i] = static_cast<float *>(
        static_cast<Desc *>(descs[2 + nState + nWeights + i])->aligned);
    numel[i] = i % 3 == 1 ? size_t(d->sizes[1] * d->sizes[2] * d->sizes[3])
                          : size_t(c);
    std::memcpy(out[i], in[i], numel[i] * sizeof(float));
    std::memset(in[i], 0xff, numel[i] * sizeof(float)); // clobber: NaNs
  }
  for (int64_t p = 0; p < t; ++p) {
    const uint16_t *e = emb + tokens[p] * c;
    for (int64_t l = 0; l < nl; ++l) {
      for (int64_t j = 0; j < c; ++j) {
        out[3 * l][j] += bf16ToF32(e[j]);
        out[3 * l + 2][j] = bf16ToF32(e[j]);
      }
      out[3 * l + 1][0] += 1;
    }
    if (allLogits || p == t - 1) {
      float *row = logits + (allLogits ? p * v : 0);
      for (int64_t k = 0; k < v; ++k)
        row[k] = out[0][k % c] + out[1][0];
    }
  }
}

} // namespace

extern "C" {
__attribute__((visibility("default"))) const char *rwkv_model_info(void) {
  return infoJson().c_str();
}
__attribute__((visibility("default"))) void rwkv_step_packed(void **descs) {
  run(descs, false);
}
__attribute__((visibility("default"))) void rwkv_forward_packed(void **descs) {
  run(descs, false);
}
__attribute__((visibility("default"))) void
rwkv_forward_all_packed(void **descs) {
  run(descs, true);
}
#ifdef RWKV_FAKE_IN_PLACE_STATES
// A variant whose in-place state list names a state it does not have.
__attribute__((
    visibility("default"))) extern const char rwkv_in_place_states[] =
    RWKV_FAKE_IN_PLACE_STATES;
#endif
__attribute__((visibility("default"))) void rwkv_set_num_threads(int n) {
  numThreads = n;
}
__attribute__((visibility("default"))) int rwkv_fake_num_threads(void) {
  return numThreads;
}
__attribute__((visibility("default"))) void
rwkv_fake_set_call_hook(void (*hook)()) {
  callHook.store(hook);
}
}
