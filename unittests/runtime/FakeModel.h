//===- FakeModel.h - The synthetic model behind FakeModel.so ----*- C++ -*-===//

#ifndef RWKV_UNITTESTS_RUNTIME_FAKEMODEL_H
#define RWKV_UNITTESTS_RUNTIME_FAKEMODEL_H

#include "runtime/checkpoint/Checkpoint.h"

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
} // namespace rwkv

#endif // RWKV_UNITTESTS_RUNTIME_FAKEMODEL_H
