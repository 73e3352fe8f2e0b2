// RUN: rwkv-opt %s -split-input-file --pass-pipeline="builtin.module(func.func(rwkv-decompose))" | FileCheck %s
// RUN: rwkv-opt %s -split-input-file --rwkv-decompose | FileCheck %s

// rwkv-decompose expands rwkv.time_mix (spec §1.5) and rwkv.channel_mix
// (§1.7) into primitive rwkv ops and linalg.generic ops, in the order of the
// reference. C = 8, H = 2, N = 4, bf16 weights (widened with arith.extf).

// CHECK-DAG: #[[$C:.+]] = affine_map<(d0, d1, d2) -> (d2)>
// CHECK-DAG: #[[$ID3:.+]] = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
// CHECK-DAG: #[[$ID4:.+]] = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
// CHECK-DAG: #[[$HN:.+]] = affine_map<(d0, d1, d2, d3) -> (d2, d3)>
// CHECK-DAG: #[[$BTH:.+]] = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>

// CHECK-LABEL: func.func @time_mix_layer1
// CHECK-SAME:    (%[[X:[^:]+]]: tensor<2x?x8xf32>, %[[SH:[^:]+]]: tensor<2x8xf32>, %[[WKV:[^:]+]]: tensor<2x2x4x4xf32>, %[[VF0:[^:]+]]: tensor<2x?x8xf32>, %[[X_R:[^:]+]]: tensor<8xbf16>, %[[X_W:[^:]+]]: tensor<8xbf16>, %[[X_K:[^:]+]]: tensor<8xbf16>, %[[X_V:[^:]+]]: tensor<8xbf16>, %[[X_A:[^:]+]]: tensor<8xbf16>, %[[X_G:[^:]+]]: tensor<8xbf16>, %[[W0:[^:]+]]: tensor<8xbf16>, %[[W1:[^:]+]]: tensor<8x2xbf16>, %[[W2:[^:]+]]: tensor<2x8xbf16>, %[[A0:[^:]+]]: tensor<8xbf16>, %[[A1:[^:]+]]: tensor<8x3xbf16>, %[[A2:[^:]+]]: tensor<3x8xbf16>, %[[V0:[^:]+]]: tensor<8xbf16>, %[[V1:[^:]+]]: tensor<8x4xbf16>, %[[V2:[^:]+]]: tensor<4x8xbf16>, %[[G1:[^:]+]]: tensor<8x5xbf16>, %[[G2:[^:]+]]: tensor<5x8xbf16>, %[[K_K:[^:]+]]: tensor<8xbf16>, %[[K_A:[^:]+]]: tensor<8xbf16>, %[[R_K:[^:]+]]: tensor<8xbf16>, %[[WR:[^:]+]]: tensor<8x8xbf16>, %[[WK:[^:]+]]: tensor<8x8xbf16>, %[[WV:[^:]+]]: tensor<8x8xbf16>, %[[WO:[^:]+]]: tensor<8x8xbf16>, %[[LNW:[^:]+]]: tensor<8xbf16>, %[[LNB:[^:]+]]: tensor<8xbf16>)

// CHECK-DAG:   %[[ZERO:.+]] = arith.constant 0.000000e+00 : f32
// CHECK-DAG:   %[[DECAY:.+]] = arith.constant -0.60653{{[0-9]*}} : f32
// CHECK-DAG:   %[[ONE:.+]] = arith.constant 1.000000e+00 : f32

// 1-2: token shift and the six lerps, in the order r, w, k, v, a, g.
// CHECK:       %[[SHIFTED:.+]], %[[LAST:.+]] = rwkv.token_shift %[[X]], %[[SH]] : tensor<2x?x8xf32>, tensor<2x8xf32>
// CHECK-NEXT:  %[[XR:.+]] = rwkv.mix %[[X]], %[[SHIFTED]], %[[X_R]] : tensor<2x?x8xf32>, tensor<8xbf16> -> tensor<2x?x8xf32>
// CHECK-NEXT:  %[[XW:.+]] = rwkv.mix %[[X]], %[[SHIFTED]], %[[X_W]] :
// CHECK-NEXT:  %[[XK:.+]] = rwkv.mix %[[X]], %[[SHIFTED]], %[[X_K]] :
// CHECK-NEXT:  %[[XV:.+]] = rwkv.mix %[[X]], %[[SHIFTED]], %[[X_V]] :
// CHECK-NEXT:  %[[XA:.+]] = rwkv.mix %[[X]], %[[SHIFTED]], %[[X_A]] :
// CHECK-NEXT:  %[[XG:.+]] = rwkv.mix %[[X]], %[[SHIFTED]], %[[X_G]] :

// 3-6: r, the decay LoRA (tanh), k, v.
// CHECK-NEXT:  %[[R:.+]] = rwkv.linear %[[XR]], %[[WR]] : tensor<2x?x8xf32>, tensor<8x8xbf16> -> tensor<2x?x8xf32>
// CHECK-NEXT:  %[[WL:.+]] = rwkv.lora %[[XW]], %[[W1]], %[[W2]] {activation = #rwkv<activation tanh>} : tensor<2x?x8xf32>, tensor<8x2xbf16>, tensor<2x8xbf16> -> tensor<2x?x8xf32>
// CHECK-NEXT:  %[[K:.+]] = rwkv.linear %[[XK]], %[[WK]] :
// CHECK-NEXT:  %[[V:.+]] = rwkv.linear %[[XV]], %[[WV]] :

// 7: a = sigmoid(a0 + (xa @ a1) @ a2): a LoRA without activation, then the
// sigmoid in a generic that widens the bf16 a0.
// CHECK-NEXT:  %[[AL:.+]] = rwkv.lora %[[XA]], %[[A1]], %[[A2]] : tensor<2x?x8xf32>, tensor<8x3xbf16>, tensor<3x8xbf16> -> tensor<2x?x8xf32>
// CHECK:       %[[A:.+]] = linalg.generic {indexing_maps = [#[[$C]], #[[$ID3]], #[[$ID3]]], iterator_types = ["parallel", "parallel", "parallel"]} ins(%[[A0]], %[[AL]] : tensor<8xbf16>, tensor<2x?x8xf32>)
// CHECK-NEXT:  ^bb0(%[[IN0:[^:]+]]: bf16, %[[IN1:[^:]+]]: f32, %{{[^:]+}}: f32):
// CHECK-NEXT:    %[[EXT:.+]] = arith.extf %[[IN0]] : bf16 to f32
// CHECK-NEXT:    %[[Z:.+]] = arith.addf %[[EXT]], %[[IN1]] : f32
// CHECK-NEXT:    %[[NEG:.+]] = arith.negf %[[Z]] : f32
// CHECK-NEXT:    %[[EXP:.+]] = math.exp %[[NEG]] : f32
// CHECK-NEXT:    %[[DEN:.+]] = arith.addf %[[ONE]], %[[EXP]] : f32
// CHECK-NEXT:    %[[SIG:.+]] = arith.divf %[[ONE]], %[[DEN]] : f32
// CHECK-NEXT:    linalg.yield %[[SIG]] : f32

// 8: the gate LoRA has its sigmoid in the middle.
// CHECK:       %[[G:.+]] = rwkv.lora %[[XG]], %[[G1]], %[[G2]] {activation = #rwkv<activation sigmoid>} : tensor<2x?x8xf32>, tensor<8x5xbf16>, tensor<5x8xbf16> -> tensor<2x?x8xf32>

// 9: kk = normalize(k * k_k) per head.
// CHECK:       %[[KS:.+]] = linalg.generic {{.+}} ins(%[[K]], %[[K_K]] : tensor<2x?x8xf32>, tensor<8xbf16>)
// CHECK:         arith.mulf
// CHECK:       %[[KK:.+]] = rwkv.l2_normalize %[[KS]] {num_heads = 2 : i64} : tensor<2x?x8xf32> -> tensor<2x?x8xf32>

// 10: k = k * (1 + (a - 1) * k_a).
// CHECK:       %[[KNEW:.+]] = linalg.generic {{.+}} ins(%[[K]], %[[A]], %[[K_A]] : tensor<2x?x8xf32>, tensor<2x?x8xf32>, tensor<8xbf16>)
// CHECK-NEXT:  ^bb0(%[[IK:[^:]+]]: f32, %[[IA:[^:]+]]: f32, %[[IKA:[^:]+]]: bf16, %{{[^:]+}}: f32):
// CHECK-NEXT:    %[[KA:.+]] = arith.extf %[[IKA]] : bf16 to f32
// CHECK-NEXT:    %[[AM1:.+]] = arith.subf %[[IA]], %[[ONE]] : f32
// CHECK-NEXT:    %[[T:.+]] = arith.mulf %[[AM1]], %[[KA]] : f32
// CHECK-NEXT:    %[[S:.+]] = arith.addf %[[ONE]], %[[T]] : f32
// CHECK-NEXT:    %[[KM:.+]] = arith.mulf %[[IK]], %[[S]] : f32
// CHECK-NEXT:    linalg.yield %[[KM]] : f32


// 11: value residual v + (v_first - v) * sigmoid(v0 + (xv @ v1) @ v2).
// CHECK:       %[[VL:.+]] = rwkv.lora %[[XV]], %[[V1]], %[[V2]] : tensor<2x?x8xf32>, tensor<8x4xbf16>, tensor<4x8xbf16> -> tensor<2x?x8xf32>
// CHECK:       %[[VMIX:.+]] = linalg.generic {{.+}} ins(%[[V]], %[[VF0]], %[[V0]], %[[VL]] : tensor<2x?x8xf32>, tensor<2x?x8xf32>, tensor<8xbf16>, tensor<2x?x8xf32>)
// CHECK-NEXT:  ^bb0(%[[IV:[^:]+]]: f32, %[[IVF:[^:]+]]: f32, %[[IV0:[^:]+]]: bf16, %[[IVL:[^:]+]]: f32, %{{[^:]+}}: f32):
// CHECK-NEXT:    %[[V0E:.+]] = arith.extf %[[IV0]] : bf16 to f32
// CHECK-NEXT:    %[[Z:.+]] = arith.addf %[[V0E]], %[[IVL]] : f32
// CHECK-NEXT:    %[[NEG:.+]] = arith.negf %[[Z]] : f32
// CHECK-NEXT:    %[[EXP:.+]] = math.exp %[[NEG]] : f32
// CHECK-NEXT:    %[[DEN:.+]] = arith.addf %[[ONE]], %[[EXP]] : f32
// CHECK-NEXT:    %[[GATE:.+]] = arith.divf %[[ONE]], %[[DEN]] : f32
// CHECK-NEXT:    %[[D:.+]] = arith.subf %[[IVF]], %[[IV]] : f32
// CHECK-NEXT:    %[[T:.+]] = arith.mulf %[[D]], %[[GATE]] : f32
// CHECK-NEXT:    %[[VR:.+]] = arith.addf %[[IV]], %[[T]] : f32
// CHECK-NEXT:    linalg.yield %[[VR]] : f32


// 12: log-decay = -e^{-1/2} * sigmoid(w0 + wl).
// CHECK:       %[[LOGD:.+]] = linalg.generic {{.+}} ins(%[[W0]], %[[WL]] : tensor<8xbf16>, tensor<2x?x8xf32>)
// CHECK-NEXT:  ^bb0(%[[IW0:[^:]+]]: bf16, %[[IWL:[^:]+]]: f32, %{{[^:]+}}: f32):
// CHECK-NEXT:    %[[W0E:.+]] = arith.extf %[[IW0]] : bf16 to f32
// CHECK-NEXT:    %[[Z:.+]] = arith.addf %[[W0E]], %[[IWL]] : f32
// CHECK-NEXT:    %[[NEG:.+]] = arith.negf %[[Z]] : f32
// CHECK-NEXT:    %[[EXP:.+]] = math.exp %[[NEG]] : f32
// CHECK-NEXT:    %[[DEN:.+]] = arith.addf %[[ONE]], %[[EXP]] : f32
// CHECK-NEXT:    %[[SIG:.+]] = arith.divf %[[ONE]], %[[DEN]] : f32
// CHECK-NEXT:    %[[LD:.+]] = arith.mulf %[[DECAY]], %[[SIG]] : f32
// CHECK-NEXT:    linalg.yield %[[LD]] : f32

// 13: the WKV kernel takes a = -kk and b = kk * a.
// CHECK:       %[[AK:.+]] = linalg.generic {{.+}} ins(%[[KK]] : tensor<2x?x8xf32>)
// CHECK:         arith.negf
// CHECK:       %[[BK:.+]] = linalg.generic {{.+}} ins(%[[KK]], %[[A]] : tensor<2x?x8xf32>, tensor<2x?x8xf32>)
// CHECK:         arith.mulf
// CHECK:       %[[Y:.+]], %[[NS:.+]] = rwkv.wkv %[[R]], %[[LOGD]], %[[KNEW]], %[[VMIX]], %[[AK]], %[[BK]], %[[WKV]] : tensor<2x?x8xf32>, tensor<2x2x4x4xf32>

// 14: GroupNorm with one group per head and eps 64e-5 (the default, elided).
// CHECK-NEXT:  %[[GN:.+]] = rwkv.group_norm %[[Y]], %[[LNW]], %[[LNB]] {num_groups = 2 : i64} : tensor<2x?x8xf32>, tensor<8xbf16> -> tensor<2x?x8xf32>

// 15: bonus s[b, t, h] = sum_n r * k * r_k, a reduction over the head size.
// CHECK:       %[[R4:.+]] = tensor.expand_shape %[[R]] {{\[}}[0], [1], [2, 3]] output_shape [2, %{{.+}}, 2, 4] : tensor<2x?x8xf32> into tensor<2x?x2x4xf32>
// CHECK:       %[[K4:.+]] = tensor.expand_shape %[[KNEW]] {{\[}}[0], [1], [2, 3]]
// CHECK-NEXT:  %[[RK2:.+]] = tensor.expand_shape %[[R_K]] {{\[}}[0, 1]] output_shape [2, 4] : tensor<8xbf16> into tensor<2x4xbf16>
// CHECK:       %[[INIT:.+]] = tensor.empty(%{{.+}}) : tensor<2x?x2xf32>
// CHECK-NEXT:  %[[ACC:.+]] = linalg.fill ins(%[[ZERO]] : f32) outs(%[[INIT]] : tensor<2x?x2xf32>) -> tensor<2x?x2xf32>
// CHECK-NEXT:  %[[BONUS:.+]] = linalg.generic {indexing_maps = [#[[$ID4]], #[[$ID4]], #[[$HN]], #[[$BTH]]], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%[[R4]], %[[K4]], %[[RK2]] : tensor<2x?x2x4xf32>, tensor<2x?x2x4xf32>, tensor<2x4xbf16>) outs(%[[ACC]] : tensor<2x?x2xf32>)
// CHECK-NEXT:  ^bb0(%[[IR:[^:]+]]: f32, %[[IK:[^:]+]]: f32, %[[IRK:[^:]+]]: bf16, %[[IACC:[^:]+]]: f32):
// CHECK-NEXT:    %[[RKP:.+]] = arith.mulf %[[IR]], %[[IK]] : f32
// CHECK-NEXT:    %[[RKE:.+]] = arith.extf %[[IRK]] : bf16 to f32
// CHECK-NEXT:    %[[P:.+]] = arith.mulf %[[RKP]], %[[RKE]] : f32
// CHECK-NEXT:    %[[SUM:.+]] = arith.addf %[[IACC]], %[[P]] : f32
// CHECK-NEXT:    linalg.yield %[[SUM]] : f32

// 15-16: out = (y + s * v) * g per head, then the output projection.
// CHECK:       %[[Y4:.+]] = tensor.expand_shape %[[GN]] {{\[}}[0], [1], [2, 3]]
// CHECK:       %[[V4:.+]] = tensor.expand_shape %[[VMIX]] {{\[}}[0], [1], [2, 3]]
// CHECK:       %[[G4:.+]] = tensor.expand_shape %[[G]] {{\[}}[0], [1], [2, 3]]
// CHECK:       %[[GATED:.+]] = linalg.generic {indexing_maps = [#[[$ID4]], #[[$BTH]], #[[$ID4]], #[[$ID4]], #[[$ID4]]], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%[[Y4]], %[[BONUS]], %[[V4]], %[[G4]] : tensor<2x?x2x4xf32>, tensor<2x?x2xf32>, tensor<2x?x2x4xf32>, tensor<2x?x2x4xf32>)
// CHECK-NEXT:  ^bb0(%[[IY:[^:]+]]: f32, %[[IS:[^:]+]]: f32, %[[IV:[^:]+]]: f32, %[[IG:[^:]+]]: f32, %{{[^:]+}}: f32):
// CHECK-NEXT:    %[[SV:.+]] = arith.mulf %[[IS]], %[[IV]] : f32
// CHECK-NEXT:    %[[YS:.+]] = arith.addf %[[IY]], %[[SV]] : f32
// CHECK-NEXT:    %[[YG:.+]] = arith.mulf %[[YS]], %[[IG]] : f32
// CHECK-NEXT:    linalg.yield %[[YG]] : f32
// CHECK:       %[[FLAT:.+]] = tensor.collapse_shape %[[GATED]] {{\[}}[0], [1], [2, 3]] : tensor<2x?x2x4xf32> into tensor<2x?x8xf32>
// CHECK-NEXT:  %[[OUT:.+]] = rwkv.linear %[[FLAT]], %[[WO]] : tensor<2x?x8xf32>, tensor<8x8xbf16> -> tensor<2x?x8xf32>

// Layer > 0 forwards v_first unchanged.
// CHECK-NEXT:  return %[[OUT]], %[[LAST]], %[[NS]], %[[VF0]] : tensor<2x?x8xf32>, tensor<2x8xf32>, tensor<2x2x4x4xf32>, tensor<2x?x8xf32>
// CHECK-NOT:   rwkv.time_mix

func.func @time_mix_layer1(%x: tensor<2x?x8xf32>, %sh: tensor<2x8xf32>, %wkv: tensor<2x2x4x4xf32>,
                           %vf0: tensor<2x?x8xf32>,
                           %x_r: tensor<8xbf16>, %x_w: tensor<8xbf16>, %x_k: tensor<8xbf16>, %x_v: tensor<8xbf16>, %x_a: tensor<8xbf16>, %x_g: tensor<8xbf16>,
                           %w0: tensor<8xbf16>, %w1: tensor<8x2xbf16>, %w2: tensor<2x8xbf16>,
                           %a0: tensor<8xbf16>, %a1: tensor<8x3xbf16>, %a2: tensor<3x8xbf16>,
                           %v0: tensor<8xbf16>, %v1: tensor<8x4xbf16>, %v2: tensor<4x8xbf16>,
                           %g1: tensor<8x5xbf16>, %g2: tensor<5x8xbf16>,
                           %k_k: tensor<8xbf16>, %k_a: tensor<8xbf16>, %r_k: tensor<8xbf16>,
                           %wr: tensor<8x8xbf16>, %wk: tensor<8x8xbf16>, %wv: tensor<8x8xbf16>, %wo: tensor<8x8xbf16>,
                           %lnw: tensor<8xbf16>, %lnb: tensor<8xbf16>)
    -> (tensor<2x?x8xf32>, tensor<2x8xf32>, tensor<2x2x4x4xf32>, tensor<2x?x8xf32>) {
  %out, %nsh, %nwkv, %vf = rwkv.time_mix %x, %sh, %wkv v_first(%vf0)
      lerp(%x_r, %x_w, %x_k, %x_v, %x_a, %x_g)
      decay(%w0, %w1, %w2) iclr(%a0, %a1, %a2) value_residual(%v0, %v1, %v2)
      gate(%g1, %g2) key(%k_k, %k_a, %r_k)
      proj(%wr, %wk, %wv, %wo) ln_x(%lnw, %lnb)
      : (tensor<2x?x8xf32>, tensor<2x8xf32>, tensor<2x2x4x4xf32>, tensor<2x?x8xf32>,
         tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>,
         tensor<8xbf16>, tensor<8x2xbf16>, tensor<2x8xbf16>,
         tensor<8xbf16>, tensor<8x3xbf16>, tensor<3x8xbf16>,
         tensor<8xbf16>, tensor<8x4xbf16>, tensor<4x8xbf16>,
         tensor<8x5xbf16>, tensor<5x8xbf16>,
         tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>,
         tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>,
         tensor<8xbf16>, tensor<8xbf16>)
      -> (tensor<2x?x8xf32>, tensor<2x8xf32>, tensor<2x2x4x4xf32>, tensor<2x?x8xf32>)
  return %out, %nsh, %nwkv, %vf : tensor<2x?x8xf32>, tensor<2x8xf32>, tensor<2x2x4x4xf32>, tensor<2x?x8xf32>
}

// -----

// CHECK-LABEL: func.func @time_mix_layer0
// CHECK-SAME:    (%[[X:[^:]+]]: tensor<2x?x8xf32>, %[[SH:[^:]+]]: tensor<2x8xf32>, %[[WKV:[^:]+]]: tensor<2x2x4x4xf32>, %[[X_R:[^:]+]]: tensor<8xbf16>, %[[X_W:[^:]+]]: tensor<8xbf16>, %[[X_K:[^:]+]]: tensor<8xbf16>, %[[X_V:[^:]+]]: tensor<8xbf16>, %[[X_A:[^:]+]]: tensor<8xbf16>, %[[X_G:[^:]+]]: tensor<8xbf16>, %[[W0:[^:]+]]: tensor<8xbf16>, %[[W1:[^:]+]]: tensor<8x2xbf16>, %[[W2:[^:]+]]: tensor<2x8xbf16>, %[[A0:[^:]+]]: tensor<8xbf16>, %[[A1:[^:]+]]: tensor<8x3xbf16>, %[[A2:[^:]+]]: tensor<3x8xbf16>, %[[G1:[^:]+]]: tensor<8x5xbf16>, %[[G2:[^:]+]]: tensor<5x8xbf16>, %[[K_K:[^:]+]]: tensor<8xbf16>, %[[K_A:[^:]+]]: tensor<8xbf16>, %[[R_K:[^:]+]]: tensor<8xbf16>, %[[WR:[^:]+]]: tensor<8x8xbf16>, %[[WK:[^:]+]]: tensor<8x8xbf16>, %[[WV:[^:]+]]: tensor<8x8xbf16>, %[[WO:[^:]+]]: tensor<8x8xbf16>, %[[LNW:[^:]+]]: tensor<8xbf16>, %[[LNB:[^:]+]]: tensor<8xbf16>)

// CHECK-DAG:   %[[ZERO:.+]] = arith.constant 0.000000e+00 : f32
// CHECK-DAG:   %[[DECAY:.+]] = arith.constant -0.60653{{[0-9]*}} : f32
// CHECK-DAG:   %[[ONE:.+]] = arith.constant 1.000000e+00 : f32

// 1-2: token shift and the six lerps, in the order r, w, k, v, a, g.
// CHECK:       %[[SHIFTED:.+]], %[[LAST:.+]] = rwkv.token_shift %[[X]], %[[SH]] : tensor<2x?x8xf32>, tensor<2x8xf32>
// CHECK-NEXT:  %[[XR:.+]] = rwkv.mix %[[X]], %[[SHIFTED]], %[[X_R]] : tensor<2x?x8xf32>, tensor<8xbf16> -> tensor<2x?x8xf32>
// CHECK-NEXT:  %[[XW:.+]] = rwkv.mix %[[X]], %[[SHIFTED]], %[[X_W]] :
// CHECK-NEXT:  %[[XK:.+]] = rwkv.mix %[[X]], %[[SHIFTED]], %[[X_K]] :
// CHECK-NEXT:  %[[XV:.+]] = rwkv.mix %[[X]], %[[SHIFTED]], %[[X_V]] :
// CHECK-NEXT:  %[[XA:.+]] = rwkv.mix %[[X]], %[[SHIFTED]], %[[X_A]] :
// CHECK-NEXT:  %[[XG:.+]] = rwkv.mix %[[X]], %[[SHIFTED]], %[[X_G]] :

// 3-6: r, the decay LoRA (tanh), k, v.
// CHECK-NEXT:  %[[R:.+]] = rwkv.linear %[[XR]], %[[WR]] : tensor<2x?x8xf32>, tensor<8x8xbf16> -> tensor<2x?x8xf32>
// CHECK-NEXT:  %[[WL:.+]] = rwkv.lora %[[XW]], %[[W1]], %[[W2]] {activation = #rwkv<activation tanh>} : tensor<2x?x8xf32>, tensor<8x2xbf16>, tensor<2x8xbf16> -> tensor<2x?x8xf32>
// CHECK-NEXT:  %[[K:.+]] = rwkv.linear %[[XK]], %[[WK]] :
// CHECK-NEXT:  %[[V:.+]] = rwkv.linear %[[XV]], %[[WV]] :

// 7: a = sigmoid(a0 + (xa @ a1) @ a2): a LoRA without activation, then the
// sigmoid in a generic that widens the bf16 a0.
// CHECK-NEXT:  %[[AL:.+]] = rwkv.lora %[[XA]], %[[A1]], %[[A2]] : tensor<2x?x8xf32>, tensor<8x3xbf16>, tensor<3x8xbf16> -> tensor<2x?x8xf32>
// CHECK:       %[[A:.+]] = linalg.generic {indexing_maps = [#[[$C]], #[[$ID3]], #[[$ID3]]], iterator_types = ["parallel", "parallel", "parallel"]} ins(%[[A0]], %[[AL]] : tensor<8xbf16>, tensor<2x?x8xf32>)
// CHECK-NEXT:  ^bb0(%[[IN0:[^:]+]]: bf16, %[[IN1:[^:]+]]: f32, %{{[^:]+}}: f32):
// CHECK-NEXT:    %[[EXT:.+]] = arith.extf %[[IN0]] : bf16 to f32
// CHECK-NEXT:    %[[Z:.+]] = arith.addf %[[EXT]], %[[IN1]] : f32
// CHECK-NEXT:    %[[NEG:.+]] = arith.negf %[[Z]] : f32
// CHECK-NEXT:    %[[EXP:.+]] = math.exp %[[NEG]] : f32
// CHECK-NEXT:    %[[DEN:.+]] = arith.addf %[[ONE]], %[[EXP]] : f32
// CHECK-NEXT:    %[[SIG:.+]] = arith.divf %[[ONE]], %[[DEN]] : f32
// CHECK-NEXT:    linalg.yield %[[SIG]] : f32

// 8: the gate LoRA has its sigmoid in the middle.
// CHECK:       %[[G:.+]] = rwkv.lora %[[XG]], %[[G1]], %[[G2]] {activation = #rwkv<activation sigmoid>} : tensor<2x?x8xf32>, tensor<8x5xbf16>, tensor<5x8xbf16> -> tensor<2x?x8xf32>

// 9: kk = normalize(k * k_k) per head.
// CHECK:       %[[KS:.+]] = linalg.generic {{.+}} ins(%[[K]], %[[K_K]] : tensor<2x?x8xf32>, tensor<8xbf16>)
// CHECK:         arith.mulf
// CHECK:       %[[KK:.+]] = rwkv.l2_normalize %[[KS]] {num_heads = 2 : i64} : tensor<2x?x8xf32> -> tensor<2x?x8xf32>

// 10: k = k * (1 + (a - 1) * k_a).
// CHECK:       %[[KNEW:.+]] = linalg.generic {{.+}} ins(%[[K]], %[[A]], %[[K_A]] : tensor<2x?x8xf32>, tensor<2x?x8xf32>, tensor<8xbf16>)
// CHECK-NEXT:  ^bb0(%[[IK:[^:]+]]: f32, %[[IA:[^:]+]]: f32, %[[IKA:[^:]+]]: bf16, %{{[^:]+}}: f32):
// CHECK-NEXT:    %[[KA:.+]] = arith.extf %[[IKA]] : bf16 to f32
// CHECK-NEXT:    %[[AM1:.+]] = arith.subf %[[IA]], %[[ONE]] : f32
// CHECK-NEXT:    %[[T:.+]] = arith.mulf %[[AM1]], %[[KA]] : f32
// CHECK-NEXT:    %[[S:.+]] = arith.addf %[[ONE]], %[[T]] : f32
// CHECK-NEXT:    %[[KM:.+]] = arith.mulf %[[IK]], %[[S]] : f32
// CHECK-NEXT:    linalg.yield %[[KM]] : f32


// 11: layer 0 has no value residual: v itself goes to the WKV and out as v_first.
// CHECK-NOT:   rwkv.lora %[[XV]]


// 12: log-decay = -e^{-1/2} * sigmoid(w0 + wl).
// CHECK:       %[[LOGD:.+]] = linalg.generic {{.+}} ins(%[[W0]], %[[WL]] : tensor<8xbf16>, tensor<2x?x8xf32>)
// CHECK-NEXT:  ^bb0(%[[IW0:[^:]+]]: bf16, %[[IWL:[^:]+]]: f32, %{{[^:]+}}: f32):
// CHECK-NEXT:    %[[W0E:.+]] = arith.extf %[[IW0]] : bf16 to f32
// CHECK-NEXT:    %[[Z:.+]] = arith.addf %[[W0E]], %[[IWL]] : f32
// CHECK-NEXT:    %[[NEG:.+]] = arith.negf %[[Z]] : f32
// CHECK-NEXT:    %[[EXP:.+]] = math.exp %[[NEG]] : f32
// CHECK-NEXT:    %[[DEN:.+]] = arith.addf %[[ONE]], %[[EXP]] : f32
// CHECK-NEXT:    %[[SIG:.+]] = arith.divf %[[ONE]], %[[DEN]] : f32
// CHECK-NEXT:    %[[LD:.+]] = arith.mulf %[[DECAY]], %[[SIG]] : f32
// CHECK-NEXT:    linalg.yield %[[LD]] : f32

// 13: the WKV kernel takes a = -kk and b = kk * a.
// CHECK:       %[[AK:.+]] = linalg.generic {{.+}} ins(%[[KK]] : tensor<2x?x8xf32>)
// CHECK:         arith.negf
// CHECK:       %[[BK:.+]] = linalg.generic {{.+}} ins(%[[KK]], %[[A]] : tensor<2x?x8xf32>, tensor<2x?x8xf32>)
// CHECK:         arith.mulf
// CHECK:       %[[Y:.+]], %[[NS:.+]] = rwkv.wkv %[[R]], %[[LOGD]], %[[KNEW]], %[[V]], %[[AK]], %[[BK]], %[[WKV]] : tensor<2x?x8xf32>, tensor<2x2x4x4xf32>

// 14: GroupNorm with one group per head and eps 64e-5 (the default, elided).
// CHECK-NEXT:  %[[GN:.+]] = rwkv.group_norm %[[Y]], %[[LNW]], %[[LNB]] {num_groups = 2 : i64} : tensor<2x?x8xf32>, tensor<8xbf16> -> tensor<2x?x8xf32>

// 15: bonus s[b, t, h] = sum_n r * k * r_k, a reduction over the head size.
// CHECK:       %[[R4:.+]] = tensor.expand_shape %[[R]] {{\[}}[0], [1], [2, 3]] output_shape [2, %{{.+}}, 2, 4] : tensor<2x?x8xf32> into tensor<2x?x2x4xf32>
// CHECK:       %[[K4:.+]] = tensor.expand_shape %[[KNEW]] {{\[}}[0], [1], [2, 3]]
// CHECK-NEXT:  %[[RK2:.+]] = tensor.expand_shape %[[R_K]] {{\[}}[0, 1]] output_shape [2, 4] : tensor<8xbf16> into tensor<2x4xbf16>
// CHECK:       %[[INIT:.+]] = tensor.empty(%{{.+}}) : tensor<2x?x2xf32>
// CHECK-NEXT:  %[[ACC:.+]] = linalg.fill ins(%[[ZERO]] : f32) outs(%[[INIT]] : tensor<2x?x2xf32>) -> tensor<2x?x2xf32>
// CHECK-NEXT:  %[[BONUS:.+]] = linalg.generic {indexing_maps = [#[[$ID4]], #[[$ID4]], #[[$HN]], #[[$BTH]]], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%[[R4]], %[[K4]], %[[RK2]] : tensor<2x?x2x4xf32>, tensor<2x?x2x4xf32>, tensor<2x4xbf16>) outs(%[[ACC]] : tensor<2x?x2xf32>)
// CHECK-NEXT:  ^bb0(%[[IR:[^:]+]]: f32, %[[IK:[^:]+]]: f32, %[[IRK:[^:]+]]: bf16, %[[IACC:[^:]+]]: f32):
// CHECK-NEXT:    %[[RKP:.+]] = arith.mulf %[[IR]], %[[IK]] : f32
// CHECK-NEXT:    %[[RKE:.+]] = arith.extf %[[IRK]] : bf16 to f32
// CHECK-NEXT:    %[[P:.+]] = arith.mulf %[[RKP]], %[[RKE]] : f32
// CHECK-NEXT:    %[[SUM:.+]] = arith.addf %[[IACC]], %[[P]] : f32
// CHECK-NEXT:    linalg.yield %[[SUM]] : f32

// 15-16: out = (y + s * v) * g per head, then the output projection.
// CHECK:       %[[Y4:.+]] = tensor.expand_shape %[[GN]] {{\[}}[0], [1], [2, 3]]
// CHECK:       %[[V4:.+]] = tensor.expand_shape %[[V]] {{\[}}[0], [1], [2, 3]]
// CHECK:       %[[G4:.+]] = tensor.expand_shape %[[G]] {{\[}}[0], [1], [2, 3]]
// CHECK:       %[[GATED:.+]] = linalg.generic {indexing_maps = [#[[$ID4]], #[[$BTH]], #[[$ID4]], #[[$ID4]], #[[$ID4]]], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%[[Y4]], %[[BONUS]], %[[V4]], %[[G4]] : tensor<2x?x2x4xf32>, tensor<2x?x2xf32>, tensor<2x?x2x4xf32>, tensor<2x?x2x4xf32>)
// CHECK-NEXT:  ^bb0(%[[IY:[^:]+]]: f32, %[[IS:[^:]+]]: f32, %[[IV:[^:]+]]: f32, %[[IG:[^:]+]]: f32, %{{[^:]+}}: f32):
// CHECK-NEXT:    %[[SV:.+]] = arith.mulf %[[IS]], %[[IV]] : f32
// CHECK-NEXT:    %[[YS:.+]] = arith.addf %[[IY]], %[[SV]] : f32
// CHECK-NEXT:    %[[YG:.+]] = arith.mulf %[[YS]], %[[IG]] : f32
// CHECK-NEXT:    linalg.yield %[[YG]] : f32
// CHECK:       %[[FLAT:.+]] = tensor.collapse_shape %[[GATED]] {{\[}}[0], [1], [2, 3]] : tensor<2x?x2x4xf32> into tensor<2x?x8xf32>
// CHECK-NEXT:  %[[OUT:.+]] = rwkv.linear %[[FLAT]], %[[WO]] : tensor<2x?x8xf32>, tensor<8x8xbf16> -> tensor<2x?x8xf32>

// Layer 0 returns its raw value projection as v_first.
// CHECK-NEXT:  return %[[OUT]], %[[LAST]], %[[NS]], %[[V]] : tensor<2x?x8xf32>, tensor<2x8xf32>, tensor<2x2x4x4xf32>, tensor<2x?x8xf32>
// CHECK-NOT:   rwkv.time_mix

func.func @time_mix_layer0(%x: tensor<2x?x8xf32>, %sh: tensor<2x8xf32>, %wkv: tensor<2x2x4x4xf32>,
                           %x_r: tensor<8xbf16>, %x_w: tensor<8xbf16>, %x_k: tensor<8xbf16>, %x_v: tensor<8xbf16>, %x_a: tensor<8xbf16>, %x_g: tensor<8xbf16>,
                           %w0: tensor<8xbf16>, %w1: tensor<8x2xbf16>, %w2: tensor<2x8xbf16>,
                           %a0: tensor<8xbf16>, %a1: tensor<8x3xbf16>, %a2: tensor<3x8xbf16>,
                           %g1: tensor<8x5xbf16>, %g2: tensor<5x8xbf16>,
                           %k_k: tensor<8xbf16>, %k_a: tensor<8xbf16>, %r_k: tensor<8xbf16>,
                           %wr: tensor<8x8xbf16>, %wk: tensor<8x8xbf16>, %wv: tensor<8x8xbf16>, %wo: tensor<8x8xbf16>,
                           %lnw: tensor<8xbf16>, %lnb: tensor<8xbf16>)
    -> (tensor<2x?x8xf32>, tensor<2x8xf32>, tensor<2x2x4x4xf32>, tensor<2x?x8xf32>) {
  %out, %nsh, %nwkv, %vf = rwkv.time_mix %x, %sh, %wkv
      lerp(%x_r, %x_w, %x_k, %x_v, %x_a, %x_g)
      decay(%w0, %w1, %w2) iclr(%a0, %a1, %a2)
      gate(%g1, %g2) key(%k_k, %k_a, %r_k)
      proj(%wr, %wk, %wv, %wo) ln_x(%lnw, %lnb)
      : (tensor<2x?x8xf32>, tensor<2x8xf32>, tensor<2x2x4x4xf32>,
         tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>,
         tensor<8xbf16>, tensor<8x2xbf16>, tensor<2x8xbf16>,
         tensor<8xbf16>, tensor<8x3xbf16>, tensor<3x8xbf16>,
         tensor<8x5xbf16>, tensor<5x8xbf16>,
         tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>,
         tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>,
         tensor<8xbf16>, tensor<8xbf16>)
      -> (tensor<2x?x8xf32>, tensor<2x8xf32>, tensor<2x2x4x4xf32>, tensor<2x?x8xf32>)
  return %out, %nsh, %nwkv, %vf : tensor<2x?x8xf32>, tensor<2x8xf32>, tensor<2x2x4x4xf32>, tensor<2x?x8xf32>
}

// -----

// CHECK-LABEL: func.func @channel_mix
// CHECK-SAME:    (%[[X:[^:]+]]: tensor<2x?x8xf32>, %[[SH:[^:]+]]: tensor<2x8xf32>, %[[MU:[^:]+]]: tensor<8xbf16>, %[[WKEY:[^:]+]]: tensor<16x8xbf16>, %[[WVAL:[^:]+]]: tensor<8x16xbf16>)
// CHECK-DAG:   %[[ZERO:.+]] = arith.constant 0.000000e+00 : f32
// CHECK:       %[[SHIFTED:.+]], %[[LAST:.+]] = rwkv.token_shift %[[X]], %[[SH]] : tensor<2x?x8xf32>, tensor<2x8xf32>
// CHECK-NEXT:  %[[XK:.+]] = rwkv.mix %[[X]], %[[SHIFTED]], %[[MU]] : tensor<2x?x8xf32>, tensor<8xbf16> -> tensor<2x?x8xf32>
// CHECK-NEXT:  %[[H:.+]] = rwkv.linear %[[XK]], %[[WKEY]] : tensor<2x?x8xf32>, tensor<16x8xbf16> -> tensor<2x?x16xf32>
// CHECK:       %[[INIT:.+]] = tensor.empty(%{{.+}}) : tensor<2x?x16xf32>
// CHECK-NEXT:  %[[H2:.+]] = linalg.generic {indexing_maps = [#[[ID:.+]], #[[ID]]], iterator_types = ["parallel", "parallel", "parallel"]} ins(%[[H]] : tensor<2x?x16xf32>) outs(%[[INIT]] : tensor<2x?x16xf32>)
// CHECK-NEXT:  ^bb0(%[[IN:[^:]+]]: f32, %{{[^:]+}}: f32):
// CHECK-NEXT:    %[[RELU:.+]] = arith.maximumf %[[IN]], %[[ZERO]] : f32
// CHECK-NEXT:    %[[SQ:.+]] = arith.mulf %[[RELU]], %[[RELU]] : f32
// CHECK-NEXT:    linalg.yield %[[SQ]] : f32
// CHECK:       %[[OUT:.+]] = rwkv.linear %[[H2]], %[[WVAL]] : tensor<2x?x16xf32>, tensor<8x16xbf16> -> tensor<2x?x8xf32>
// CHECK-NEXT:  return %[[OUT]], %[[LAST]] : tensor<2x?x8xf32>, tensor<2x8xf32>
// CHECK-NOT:   rwkv.channel_mix
func.func @channel_mix(%x: tensor<2x?x8xf32>, %sh: tensor<2x8xf32>, %mu: tensor<8xbf16>,
                       %k: tensor<16x8xbf16>, %v: tensor<8x16xbf16>)
    -> (tensor<2x?x8xf32>, tensor<2x8xf32>) {
  %o, %s = rwkv.channel_mix %x, %sh lerp(%mu) proj(%k, %v)
      : (tensor<2x?x8xf32>, tensor<2x8xf32>, tensor<8xbf16>, tensor<16x8xbf16>, tensor<8x16xbf16>)
      -> (tensor<2x?x8xf32>, tensor<2x8xf32>)
  return %o, %s : tensor<2x?x8xf32>, tensor<2x8xf32>
}

// -----

// A dynamic batch and FFN width carry through to the hidden activation.
// CHECK-LABEL: func.func @channel_mix_dynamic
// CHECK-SAME:    (%[[X:[^:]+]]: tensor<?x?x8xf32>, %[[SH:[^:]+]]: tensor<?x8xf32>, %[[MU:[^:]+]]: tensor<8xf32>, %[[WKEY:[^:]+]]: tensor<?x8xf16>, %[[WVAL:[^:]+]]: tensor<8x?xf16>)
// CHECK:       %[[SHIFTED:.+]], %[[LAST:.+]] = rwkv.token_shift %[[X]], %[[SH]]
// CHECK-NEXT:  %[[XK:.+]] = rwkv.mix %[[X]], %[[SHIFTED]], %[[MU]] : tensor<?x?x8xf32>, tensor<8xf32> -> tensor<?x?x8xf32>
// CHECK-NEXT:  %[[H:.+]] = rwkv.linear %[[XK]], %[[WKEY]] : tensor<?x?x8xf32>, tensor<?x8xf16> -> tensor<?x?x?xf32>
// CHECK:       %[[H2:.+]] = linalg.generic {{.+}} ins(%[[H]] : tensor<?x?x?xf32>)
// CHECK:         arith.maximumf
// CHECK:       %[[OUT:.+]] = rwkv.linear %[[H2]], %[[WVAL]] : tensor<?x?x?xf32>, tensor<8x?xf16> -> tensor<?x?x8xf32>
// CHECK-NEXT:  return %[[OUT]], %[[LAST]]
func.func @channel_mix_dynamic(%x: tensor<?x?x8xf32>, %sh: tensor<?x8xf32>, %mu: tensor<8xf32>,
                               %k: tensor<?x8xf16>, %v: tensor<8x?xf16>)
    -> (tensor<?x?x8xf32>, tensor<?x8xf32>) {
  %o, %s = rwkv.channel_mix %x, %sh lerp(%mu) proj(%k, %v)
      : (tensor<?x?x8xf32>, tensor<?x8xf32>, tensor<8xf32>, tensor<?x8xf16>, tensor<8x?xf16>)
      -> (tensor<?x?x8xf32>, tensor<?x8xf32>)
  return %o, %s : tensor<?x?x8xf32>, tensor<?x8xf32>
}

// -----

// Composite ops inside an rwkv.block are expanded in place; the block stays.
// CHECK-LABEL: func.func @inside_block
// CHECK:       rwkv.block layer 0 -> (tensor<1x1x8xf32>, tensor<1x8xf32>) {
// CHECK:         rwkv.token_shift
// CHECK:         rwkv.linear
// CHECK:         arith.maximumf
// CHECK:         rwkv.linear
// CHECK:         rwkv.yield
// CHECK-NOT:   rwkv.channel_mix
func.func @inside_block(%x: tensor<1x1x8xf32>, %sh: tensor<1x8xf32>, %mu: tensor<8xf32>,
                        %k: tensor<32x8xf32>, %v: tensor<8x32xf32>)
    -> (tensor<1x1x8xf32>, tensor<1x8xf32>) {
  %r:2 = rwkv.block layer 0 -> (tensor<1x1x8xf32>, tensor<1x8xf32>) {
    %o, %s = rwkv.channel_mix %x, %sh lerp(%mu) proj(%k, %v)
        : (tensor<1x1x8xf32>, tensor<1x8xf32>, tensor<8xf32>, tensor<32x8xf32>, tensor<8x32xf32>)
        -> (tensor<1x1x8xf32>, tensor<1x8xf32>)
    rwkv.yield %o, %s : tensor<1x1x8xf32>, tensor<1x8xf32>
  }
  return %r#0, %r#1 : tensor<1x1x8xf32>, tensor<1x8xf32>
}

// -----

// Primitive ops and unrelated IR are left alone: arith.addi of constants is
// not folded. (The greedy driver still hoists the constant to the entry.)
// CHECK-LABEL: func.func @untouched
// CHECK-SAME:    (%[[X:[^:]+]]: tensor<1x1x8xf32>, %[[W:[^:]+]]: tensor<8x8xf32>)
// CHECK-DAG:     %[[C:.+]] = arith.constant 1 : i32
// CHECK-DAG:     %[[Y:.+]] = rwkv.linear %[[X]], %[[W]]
// CHECK:         %[[Z:.+]] = arith.addf %[[Y]], %[[Y]]
// CHECK-NEXT:    %[[C2:.+]] = arith.addi %[[C]], %[[C]] : i32
// CHECK-NEXT:    return %[[Z]], %[[C2]]
func.func @untouched(%x: tensor<1x1x8xf32>, %w: tensor<8x8xf32>) -> (tensor<1x1x8xf32>, i32) {
  %y = rwkv.linear %x, %w : tensor<1x1x8xf32>, tensor<8x8xf32> -> tensor<1x1x8xf32>
  %z = arith.addf %y, %y : tensor<1x1x8xf32>
  %c = arith.constant 1 : i32
  %c2 = arith.addi %c, %c : i32
  return %z, %c2 : tensor<1x1x8xf32>, i32
}
