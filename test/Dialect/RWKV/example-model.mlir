// RUN: rwkv-opt %rwkv_src/models/rwkv7/example-2layer.mlir | rwkv-opt | FileCheck %s
// RUN: rwkv-opt %rwkv_src/models/rwkv7/example-2layer.mlir --mlir-print-op-generic | rwkv-opt | FileCheck %s

// The checked-in example model (scripts/gen_example_model.py) parses,
// verifies and round-trips, and has the structure of spec §1.4: embed, ln0,
// two rwkv.block layers (layer 0 defines v_first, layer 1 consumes it), ln_out
// and a head that projects only the last position.

// CHECK: module attributes {rwkv.config = #rwkv.config<version = 7, n_layer = 2, n_embd = 128, n_head = 2, head_size = 64, dim_ffn = 512, vocab_size = 512, lora_w = 32, lora_a = 32, lora_v = 32, lora_g = 64>}

// CHECK-LABEL: func.func @forward
// CHECK-SAME:    (%[[TOKENS:[^:]+]]: tensor<1x?xi32>,
// CHECK-SAME:    %[[AS0:[^:]+]]: tensor<1x128xf32>, %[[WKV0:[^:]+]]: tensor<1x2x64x64xf32>, %[[FS0:[^:]+]]: tensor<1x128xf32>,
// CHECK-SAME:    %[[AS1:[^:]+]]: tensor<1x128xf32>, %[[WKV1:[^:]+]]: tensor<1x2x64x64xf32>, %[[FS1:[^:]+]]: tensor<1x128xf32>,
// CHECK-SAME:    %[[EMB:[^:]+]]: tensor<512x128xbf16> {rwkv.weight = "emb.weight"}
// CHECK-SAME:    {rwkv.weight = "blocks.0.att.x_r"}
// CHECK-SAME:    {rwkv.weight = "blocks.1.att.v0"}
// CHECK-SAME:    %[[HEAD:[^:]+]]: tensor<512x128xbf16> {rwkv.weight = "head.weight"})
// CHECK-SAME:    -> (tensor<1x1x512xf32>, tensor<1x128xf32>, tensor<1x2x64x64xf32>, tensor<1x128xf32>, tensor<1x128xf32>, tensor<1x2x64x64xf32>, tensor<1x128xf32>)

// CHECK:       %[[E:.+]] = rwkv.embed %[[EMB]], %[[TOKENS]] : tensor<512x128xbf16>, tensor<1x?xi32> -> tensor<1x?x128xf32>
// CHECK:       %[[X0:.+]] = rwkv.layer_norm %[[E]],

// Layer 0: time_mix without v_first or value_residual; its v_first_out is
// yielded as the block's fifth result.
// CHECK:       %[[B0:.+]]:5 = rwkv.block layer 0 -> (tensor<1x?x128xf32>, tensor<1x128xf32>, tensor<1x2x64x64xf32>, tensor<1x128xf32>, tensor<1x?x128xf32>) {
// CHECK:         %[[LN1:.+]] = rwkv.layer_norm %[[X0]],
// CHECK:         %[[ATT:.+]], %[[S0:.+]], %[[S1:.+]], %[[VF:.+]] = rwkv.time_mix %[[LN1]], %[[AS0]], %[[WKV0]] lerp(
// CHECK-NOT:     value_residual
// CHECK-SAME:    -> (tensor<1x?x128xf32>, tensor<1x128xf32>, tensor<1x2x64x64xf32>, tensor<1x?x128xf32>)
// CHECK:         %[[X1:.+]] = arith.addf %[[X0]], %[[ATT]]
// CHECK:         %[[LN2:.+]] = rwkv.layer_norm %[[X1]],
// CHECK:         %[[FFN:.+]], %[[S2:.+]] = rwkv.channel_mix %[[LN2]], %[[FS0]] lerp(
// CHECK:         %[[X2:.+]] = arith.addf %[[X1]], %[[FFN]]
// CHECK:         rwkv.yield %[[X2]], %[[S0]], %[[S1]], %[[S2]], %[[VF]]
// CHECK-NEXT:  }

// Layer 1: time_mix with v_first from layer 0 and the value-residual LoRA.
// CHECK:       %[[B1:.+]]:5 = rwkv.block layer 1 -> (tensor<1x?x128xf32>, tensor<1x128xf32>, tensor<1x2x64x64xf32>, tensor<1x128xf32>, tensor<1x?x128xf32>) {
// CHECK:         %[[LN1B:.+]] = rwkv.layer_norm %[[B0]]#0,
// CHECK:         %[[ATTB:.+]], %[[S0B:.+]], %[[S1B:.+]], %[[VFB:.+]] = rwkv.time_mix %[[LN1B]], %[[AS1]], %[[WKV1]] v_first(%[[B0]]#4) lerp(
// CHECK-SAME:    value_residual(
// CHECK:         %[[X1B:.+]] = arith.addf %[[B0]]#0, %[[ATTB]]
// CHECK:         %[[FFNB:.+]], %[[S2B:.+]] = rwkv.channel_mix %{{.+}}, %[[FS1]] lerp(
// CHECK:         rwkv.yield %{{.+}}, %[[S0B]], %[[S1B]], %[[S2B]], %[[VFB]]
// CHECK-NEXT:  }
// CHECK-NOT:   rwkv.block

// Head: ln_out, then only the last position.
// CHECK:       %[[XO:.+]] = rwkv.layer_norm %[[B1]]#0,
// CHECK:       %[[LOGITS:.+]] = rwkv.head %[[XO]], %[[HEAD]] {positions = #rwkv<positions last>} : tensor<1x?x128xf32>, tensor<512x128xbf16> -> tensor<1x1x512xf32>
// CHECK:       return %[[LOGITS]], %[[B0]]#1, %[[B0]]#2, %[[B0]]#3, %[[B1]]#1, %[[B1]]#2, %[[B1]]#3
