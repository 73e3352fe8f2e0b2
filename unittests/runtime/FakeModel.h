//===- FakeModel.h - The synthetic model behind FakeModel.so ----*- C++ -*-===//

#ifndef RWKV_UNITTESTS_RUNTIME_FAKEMODEL_H
#define RWKV_UNITTESTS_RUNTIME_FAKEMODEL_H

#include "runtime/checkpoint/Checkpoint.h"

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace rwkv {
/// The shape of the model that the fake library claims to be compiled for:
/// 2 layers, C = 64, 2 heads of 32, V = 40, LoRA ranks 8, bf16.
inline SyntheticOptions fakeModelOptions() {
  SyntheticOptions o;
  o.n_layer = 2;
  o.n_embd = 64;
  o.head_size = 32;
  o.vocab_size = 40;
  o.lora_w = o.lora_a = o.lora_v = o.lora_g = 8;
  o.dtype = DType::BF16;
  return o;
}

/// A weight's argument shape: squeezed, and `att.r_k` flattened to [C].
inline std::vector<int64_t> fakeArgShape(const TensorSpec &spec, int64_t c) {
  if (spec.name.size() >= 7 &&
      spec.name.compare(spec.name.size() - 7, 7, "att.r_k") == 0)
    return {c};
  std::vector<int64_t> out;
  for (int64_t d : spec.shape)
    if (d != 1)
      out.push_back(d);
  return out;
}

/// rwkv_model_info() of the fake library (FakeModel.cpp; FakeCudaModel.cpp
/// adds the CUDA target).
inline nlohmann::ordered_json fakeModelInfo() {
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
                    {"shape", fakeArgShape(spec, c)},
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
  return info;
}
} // namespace rwkv

#endif // RWKV_UNITTESTS_RUNTIME_FAKEMODEL_H
