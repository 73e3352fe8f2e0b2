//===- FakeTrainModel.cpp - A stand-in for an rwkv-compile --train library ===//
//
// Exports the training ABI of docs/ABI.md ("Training libraries":
// rwkv_model_info, rwkv_train_step_packed, rwkv_train_loss_packed) with a toy
// loss whose gradients the tests can predict, so the C API and the Python
// package (python/rwkv_mlir) are tested without the compiler.
//
// B = 2, T = 4, V = 8, C = 3, one layer, state [B, 1, 2, 2]. Weights:
// emb.weight bf16 [V, C] and head.weight f32 [V, C]. Over the n positions
// whose target is not the ignore index -100:
//   loss = (1/n) sum_{b,t} sum_c emb[in[b,t], c] * head[tgt[b,t], c]
//          + 0.5 * sum(state^2)
//
//===----------------------------------------------------------------------===//

#include <nlohmann/json.hpp>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <string>

namespace {

constexpr int64_t B = 2, T = 4, V = 8, C = 3, H = 1, N = 2;
constexpr int64_t kStateNumel = B * H * N * N;
constexpr int64_t kIgnore = -100;

struct Desc {
  void *allocated;
  void *aligned;
  int64_t offset;
};

template <typename P> P *data(void *desc) {
  return static_cast<P *>(static_cast<Desc *>(desc)->aligned);
}

float bf16ToF32(uint16_t v) {
  uint32_t bits = uint32_t(v) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

const std::string &infoJson() {
  static const std::string text = [] {
    using J = nlohmann::ordered_json;
    J state = {{"dtype", "f32"},
               {"shape", {B, H, N, N}},
               {"kind", "state"},
               {"name", "wkv"},
               {"layer", 0}};
    J args = J::array();
    args.push_back({{"dtype", "i32"}, {"shape", {B, T}}, {"kind", "tokens"}});
    args.push_back({{"dtype", "i32"}, {"shape", {B, T}}, {"kind", "targets"}});
    args.push_back(state);
    args.push_back({{"dtype", "bf16"},
                    {"shape", {V, C}},
                    {"kind", "weight"},
                    {"name", "emb.weight"}});
    args.push_back({{"dtype", "f32"},
                    {"shape", {V, C}},
                    {"kind", "weight"},
                    {"name", "head.weight"}});
    J loss = {{"dtype", "f32"}, {"shape", J::array()}, {"kind", "loss"}};
    J step = J::array({loss});
    step.push_back({{"dtype", "f32"},
                    {"shape", {B, H, N, N}},
                    {"kind", "grad"},
                    {"of", "state"},
                    {"name", "wkv"},
                    {"layer", 0}});
    for (const char *name : {"emb.weight", "head.weight"})
      step.push_back({{"dtype", "f32"},
                      {"shape", {V, C}},
                      {"kind", "grad"},
                      {"of", "weight"},
                      {"name", name}});
    J info = {{"abi_version", 1},
              {"config",
               {{"version", 7},
                {"n_layer", 1},
                {"n_embd", C},
                {"n_head", H},
                {"head_size", N},
                {"vocab_size", V}}},
              {"batch", B},
              {"train", {{"context", T}, {"ignore_index", kIgnore}}},
              {"args", args},
              {"entry_points",
               {{"rwkv_train_loss", {{"results", J::array({loss})}}},
                {"rwkv_train_step", {{"results", step}}}}}};
    return info.dump();
  }();
  return text;
}

/// descs: inputs, targets, state, emb, head, then (step only) the loss and
/// the gradients of state, emb and head.
/// Called at the start of every entry point when set
/// (rwkv_fake_set_call_hook): lets a test hold a call in progress.
std::atomic<void (*)()> callHook{nullptr};

void run(void **descs, bool withGrads) {
  if (void (*hook)() = callHook.load())
    hook();
  const int32_t *in = data<int32_t>(descs[0]), *tgt = data<int32_t>(descs[1]);
  const float *state = data<float>(descs[2]);
  const uint16_t *emb = data<uint16_t>(descs[3]);
  const float *head = data<float>(descs[4]);
  float *gState = nullptr, *gEmb = nullptr, *gHead = nullptr;
  if (withGrads) {
    gState = data<float>(descs[6]);
    gEmb = data<float>(descs[7]);
    gHead = data<float>(descs[8]);
    std::memset(gEmb, 0, V * C * sizeof(float));
    std::memset(gHead, 0, V * C * sizeof(float));
  }
  int64_t n = 0;
  for (int64_t i = 0; i < B * T; ++i)
    n += tgt[i] != kIgnore;
  double loss = 0;
  for (int64_t i = 0; i < B * T; ++i) {
    if (tgt[i] == kIgnore)
      continue;
    for (int64_t c = 0; c < C; ++c) {
      float e = bf16ToF32(emb[in[i] * C + c]), h = head[tgt[i] * C + c];
      loss += double(e) * h / double(n);
      if (withGrads) {
        gEmb[in[i] * C + c] += h / float(n);
        gHead[tgt[i] * C + c] += e / float(n);
      }
    }
  }
  for (int64_t i = 0; i < kStateNumel; ++i) {
    loss += 0.5 * double(state[i]) * state[i];
    if (withGrads)
      gState[i] = state[i];
  }
  *data<float>(descs[5]) = float(loss);
}

} // namespace

extern "C" {
__attribute__((visibility("default"))) const char *rwkv_model_info(void) {
  return infoJson().c_str();
}
__attribute__((visibility("default"))) void
rwkv_train_step_packed(void **descs) {
  run(descs, true);
}
__attribute__((visibility("default"))) void
rwkv_train_loss_packed(void **descs) {
  run(descs, false);
}
__attribute__((visibility("default"))) void
rwkv_fake_set_call_hook(void (*hook)()) {
  callHook.store(hook);
}
}
