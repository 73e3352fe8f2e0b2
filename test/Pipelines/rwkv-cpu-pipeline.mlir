// The registered pipelines flatten the blocks and expand the composite ops;
// whatever they lower to afterwards, no block or composite op survives and
// the result parses again.
// RUN: rwkv-opt %rwkv_src/models/rwkv7/example-2layer.mlir --rwkv-cpu-pipeline | rwkv-opt | FileCheck %s --check-prefix=PIPE
// RUN: rwkv-opt %rwkv_src/models/rwkv7/example-2layer.mlir --rwkv-cuda-pipeline | rwkv-opt | FileCheck %s --check-prefix=PIPE

// The front half that both pipelines share (passes/Pipelines.cpp
// buildFrontEnd), spelled out: the primitive ops of both layers in the
// reference order, wired to the right state operands.
// RUN: rwkv-opt %rwkv_src/models/rwkv7/example-2layer.mlir --pass-pipeline="builtin.module(rwkv-inline-blocks,rwkv-decompose,canonicalize,cse)" | FileCheck %s --check-prefix=FRONT

// PIPE-LABEL: @forward(
// PIPE-NOT:   rwkv.block
// PIPE-NOT:   rwkv.yield
// PIPE-NOT:   rwkv.time_mix
// PIPE-NOT:   rwkv.channel_mix

// FRONT:       module attributes {rwkv.config = #rwkv.config<version = 7, n_layer = 2, n_embd = 128, n_head = 2, head_size = 64, dim_ffn = 512, vocab_size = 512, lora_w = 32, lora_a = 32, lora_v = 32, lora_g = 64>}
// FRONT-LABEL: func.func @forward
// FRONT-SAME:    (%[[TOKENS:[^:]+]]: tensor<1x?xi32>,
// FRONT-SAME:    %[[AS0:[^:]+]]: tensor<1x128xf32>, %[[WKV0:[^:]+]]: tensor<1x2x64x64xf32>, %[[FS0:[^:]+]]: tensor<1x128xf32>,
// FRONT-SAME:    %[[AS1:[^:]+]]: tensor<1x128xf32>, %[[WKV1:[^:]+]]: tensor<1x2x64x64xf32>, %[[FS1:[^:]+]]: tensor<1x128xf32>,
// FRONT-SAME:    %[[EMB:[^:]+]]: tensor<512x128xbf16> {rwkv.weight = "emb.weight"}
// FRONT-NOT:   rwkv.block
// FRONT:       %[[E:.+]] = rwkv.embed %[[EMB]], %[[TOKENS]]
// FRONT-NEXT:  %[[X0:.+]] = rwkv.layer_norm %[[E]],

// Layer 0 time-mix.
// FRONT-NEXT:  %[[LN1:.+]] = rwkv.layer_norm %[[X0]],
// FRONT-NEXT:  %[[SH:.+]], %[[LAST0:.+]] = rwkv.token_shift %[[LN1]], %[[AS0]]
// FRONT-COUNT-6: rwkv.mix %[[LN1]], %[[SH]],
// FRONT-NEXT:  %[[R0:.+]] = rwkv.linear
// FRONT-NEXT:  rwkv.lora {{.+}} {activation = #rwkv<activation tanh>}
// FRONT-NEXT:  rwkv.linear
// FRONT-NEXT:  %[[V0:.+]] = rwkv.linear
// FRONT-NEXT:  rwkv.lora {{[^{]+}} : tensor<1x?x128xf32>, tensor<128x32xbf16>, tensor<32x128xbf16>
// FRONT:       rwkv.lora {{.+}} {activation = #rwkv<activation sigmoid>}
// FRONT:       rwkv.l2_normalize {{.+}} {num_heads = 2 : i64}
// FRONT:       %[[Y0:.+]], %[[NS0:.+]] = rwkv.wkv %[[R0]], %{{.+}}, %{{.+}}, %[[V0]], %{{.+}}, %{{.+}}, %[[WKV0]] : tensor<1x?x128xf32>, tensor<1x2x64x64xf32>
// FRONT-NEXT:  rwkv.group_norm %[[Y0]], {{.+}} {num_groups = 2 : i64}
// FRONT:       linalg.generic {{.+}} iterator_types = ["parallel", "parallel", "parallel", "reduction"]
// FRONT:       %[[ATT0:.+]] = rwkv.linear %{{.+}}, %{{.+}} : tensor<1x?x128xf32>, tensor<128x128xbf16>
// FRONT-NEXT:  %[[X1:.+]] = arith.addf %[[X0]], %[[ATT0]]

// Layer 0 channel-mix.
// FRONT-NEXT:  %[[LN2:.+]] = rwkv.layer_norm %[[X1]],
// FRONT-NEXT:  %[[SHF:.+]], %[[LASTF0:.+]] = rwkv.token_shift %[[LN2]], %[[FS0]]
// FRONT-NEXT:  %[[XK:.+]] = rwkv.mix %[[LN2]], %[[SHF]],
// FRONT-NEXT:  %[[H:.+]] = rwkv.linear %[[XK]], {{.+}} -> tensor<1x?x512xf32>
// FRONT:       arith.maximumf
// FRONT:       %[[FFN0:.+]] = rwkv.linear %{{.+}}, %{{.+}} : tensor<1x?x512xf32>, tensor<128x512xbf16> -> tensor<1x?x128xf32>
// FRONT-NEXT:  %[[X2:.+]] = arith.addf %[[X1]], %[[FFN0]]

// Layer 1: the value residual mixes toward layer 0's v.
// FRONT-NEXT:  %[[LN1B:.+]] = rwkv.layer_norm %[[X2]],
// FRONT-NEXT:  %[[SHB:.+]], %[[LAST1:.+]] = rwkv.token_shift %[[LN1B]], %[[AS1]]
// FRONT-COUNT-6: rwkv.mix %[[LN1B]], %[[SHB]],
// FRONT-NEXT:  rwkv.linear
// FRONT-NEXT:  rwkv.lora {{.+}} {activation = #rwkv<activation tanh>}
// FRONT-NEXT:  rwkv.linear
// FRONT-NEXT:  %[[V1:.+]] = rwkv.linear
// FRONT:       rwkv.l2_normalize
// FRONT:       %[[VL:.+]] = rwkv.lora {{[^{]+}} : tensor<1x?x128xf32>, tensor<128x32xbf16>, tensor<32x128xbf16>
// FRONT:       %[[VMIX:.+]] = linalg.generic {{.+}} ins(%[[V1]], %[[V0]], %{{.+}}, %[[VL]] :
// FRONT:       %[[Y1:.+]], %[[NS1:.+]] = rwkv.wkv %{{.+}}, %{{.+}}, %{{.+}}, %[[VMIX]], %{{.+}}, %{{.+}}, %[[WKV1]]
// FRONT:       %[[LN2B:.+]] = rwkv.layer_norm
// FRONT-NEXT:  %{{.+}}, %[[LASTF1:.+]] = rwkv.token_shift %[[LN2B]], %[[FS1]]
// FRONT:       arith.maximumf

// Head on the last position only.
// FRONT:       %[[XO:.+]] = rwkv.layer_norm
// FRONT-NEXT:  %[[LOGITS:.+]] = rwkv.head %[[XO]], %{{.+}} {positions = #rwkv<positions last>} : tensor<1x?x128xf32>, tensor<512x128xbf16> -> tensor<1x1x512xf32>
// FRONT-NEXT:  return %[[LOGITS]], %[[LAST0]], %[[NS0]], %[[LASTF0]], %[[LAST1]], %[[NS1]], %[[LASTF1]]
// FRONT-NOT:   rwkv.time_mix
// FRONT-NOT:   rwkv.channel_mix
