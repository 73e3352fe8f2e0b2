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

std::vector<int64_t> argShape(const TensorSpec &spec, int64_t c) {
  if (spec.name.size() >= 7 &&
      spec.name.compare(spec.name.size() - 7, 7, "att.r_k") == 0)
    return {c};
  std::vector<int64_t> out;
  for (int64_t d : spec.shape)
    if (d != 1)
      out.push_back(d);
  return out;
}

const std::string &infoJson() {
  static const std::string text = [] {
    SyntheticOptions o = fakeModelOptions();
    int64_t c = o.n_embd, h = o.n_embd / o.head_size, n = o.head_size;
    nlohmann::ordered_json args = nlohmann::ordered_json::array();
    args.push_back({{"dtype", "i32"}, {"shape", {1, -1}}, {"kind", "tokens"}});
    nlohmann::ordered_json state = nlohmann::ordered_json::array();
    for (int64_t l = 0; l < o.n_layer; ++l) {
      const std::pair<const char *, std::vector<int64_t>> slots[] = {
          {"att_shift", {1, c}}, {"wkv", {1, h, n, n}}, {"ffn_shift", {1, c}}};
      for (const auto &[name, shape] : slots) {
        args.push_back({{"dtype", "f32"},
                        {"shape", shape},
                        {"kind", "state"},
                        {"name", name},
                        {"layer", l}});
        // Results carry no rwkv.state attribute, as with rwkv-compile.
        state.push_back(
            {{"dtype", "f32"}, {"shape", shape}, {"kind", "unknown"}});
      }
    }
    for (const TensorSpec &spec : syntheticSpecs(o))
      args.push_back({{"dtype", dtypeName(spec.dtype)},
                      {"shape", argShape(spec, c)},
                      {"kind", "weight"},
                      {"name", spec.name}});
    auto results = [&](int64_t t) {
      nlohmann::ordered_json r = nlohmann::ordered_json::array();
      r.push_back({{"dtype", "f32"},
                   {"shape", {1, t, o.vocab_size}},
                   {"kind", "logits"}});
      for (const auto &s : state)
        r.push_back(s);
      return r;
    };
    nlohmann::ordered_json info = {
        {"abi_version", 1},
        {"config",
         {{"version", 7},
          {"n_layer", o.n_layer},
          {"n_embd", c},
          {"n_head", h},
          {"head_size", n},
          {"dim_ffn", 4 * c},
          {"vocab_size", o.vocab_size},
          {"lora_w", o.lora_w},
          {"lora_a", o.lora_a},
          {"lora_v", o.lora_v},
          {"lora_g", o.lora_g}}},
        {"batch", 1},
        {"args", args},
        {"entry_points",
         {{"rwkv_forward", {{"results", results(1)}}},
          {"rwkv_forward_all", {{"results", results(-1)}}},
          {"rwkv_step", {{"results", results(1)}}}}}};
    return info.dump();
  }();
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
