// RUN: rwkv-opt %s -split-input-file -verify-diagnostics --pass-pipeline="builtin.module(rwkv-inline-blocks,rwkv-decompose,rwkv-differentiate)" | FileCheck %s

// rwkv-differentiate adds, for every function tagged rwkv.gradient = "name",
// a function "name" returning the loss and the gradient of each float
// argument. One case per adjoint rule, then a whole layer.

// The scalar loss head: rwkv.cross_entropy emits rwkv.cross_entropy_grad
// with the loss gradient seeded at 1; tokens and targets get no gradient.
// CHECK-LABEL: func.func @ce_grad
// CHECK-SAME:    (%[[X:[^:]+]]: tensor<1x3x8xf32>, %[[W:[^:]+]]: tensor<5x8xbf16>, %[[T:[^:]+]]: tensor<1x3xi32>)
// CHECK-SAME:    -> (tensor<f32> {rwkv.result = "loss"}, tensor<1x3x8xf32> {rwkv.gradient_of = 0 : i64}, tensor<5x8xf32> {rwkv.gradient_of = 1 : i64})
// CHECK:         %[[L:.+]] = rwkv.cross_entropy %[[X]], %[[W]], %[[T]] {l2wrap = 9.99999974E-5 : f32}
// CHECK:         %[[ONE:.+]] = arith.constant dense<1.000000e+00> : tensor<f32>
// CHECK:         %[[DX:.+]], %[[DW:.+]] = rwkv.cross_entropy_grad %[[X]], %[[W]], %[[T]], %[[ONE]] {l2wrap = 9.99999974E-5 : f32}
// CHECK-SAME:    -> tensor<1x3x8xf32>, tensor<5x8xf32>
// CHECK:         return %[[L]], %[[DX]], %[[DW]]
func.func @ce(%x: tensor<1x3x8xf32>, %w: tensor<5x8xbf16>, %t: tensor<1x3xi32>)
    -> tensor<f32> attributes {rwkv.gradient = "ce_grad"} {
  %l = rwkv.cross_entropy %x, %w, %t {l2wrap = 1.0e-4 : f32} : tensor<1x3x8xf32>, tensor<5x8xbf16>, tensor<1x3xi32> -> tensor<f32>
  return %l : tensor<f32>
}

// -----

// embed -> rwkv.embed_grad (a scatter-add into the table's rows);
// layer_norm -> rwkv.layer_norm_grad (input, weight and bias gradients).
// CHECK-LABEL: func.func @embed_ln_grad
// CHECK:         %[[E:.+]] = rwkv.embed %[[TAB:[^,]+]], %[[TOK:[^ ]+]]
// CHECK:         %[[N:.+]] = rwkv.layer_norm %[[E]], %[[LW:[^,]+]], %[[LB:[^ ]+]]
// CHECK:         %[[DX:.+]], %[[DW:.+]] = rwkv.cross_entropy_grad %[[N]]
// CHECK:         %[[DE:.+]], %[[DLW:.+]], %[[DLB:.+]] = rwkv.layer_norm_grad %[[E]], %[[LW]], %[[DX]] :
// CHECK:         %[[DTAB:.+]] = rwkv.embed_grad %[[TOK]], %[[DE]] : tensor<1x3xi32>, tensor<1x3x8xf32> -> tensor<5x8xf32>
// CHECK:         return %{{.+}}, %[[DTAB]], %[[DLW]], %[[DLB]], %[[DW]]
func.func @embed_ln(%tok: tensor<1x3xi32>, %tgt: tensor<1x3xi32>, %tab: tensor<5x8xbf16>,
                    %lw: tensor<8xbf16>, %lb: tensor<8xbf16>, %head: tensor<5x8xbf16>)
    -> tensor<f32> attributes {rwkv.gradient = "embed_ln_grad"} {
  %e = rwkv.embed %tab, %tok : tensor<5x8xbf16>, tensor<1x3xi32> -> tensor<1x3x8xf32>
  %n = rwkv.layer_norm %e, %lw, %lb : tensor<1x3x8xf32>, tensor<8xbf16> -> tensor<1x3x8xf32>
  %l = rwkv.cross_entropy %n, %head, %tgt : tensor<1x3x8xf32>, tensor<5x8xbf16>, tensor<1x3xi32> -> tensor<f32>
  return %l : tensor<f32>
}

// -----

// token_shift -> rwkv.token_shift_grad (zeros for the unused last token);
// mix -> element-wise dx = dy (1 - mu), ds = dy mu, and dmu summed over
// batch and tokens.
// CHECK-DAG:     #[[$ID:.+]] = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
// CHECK-DAG:     #[[$C:.+]] = affine_map<(d0, d1, d2) -> (d2)>
// CHECK-LABEL: func.func @shift_mix_grad
// CHECK:         %[[DY:.+]], %{{.+}} = rwkv.cross_entropy_grad
// CHECK:         linalg.generic {indexing_maps = [#[[$ID]], #[[$C]], #[[$ID]]]{{.*}} ins(%[[DY]], %[[MU:[^ ]+]] :
// CHECK:           arith.subf
// CHECK:           arith.mulf
// CHECK:         linalg.generic {indexing_maps = [#[[$ID]], #[[$C]], #[[$ID]]]{{.*}} ins(%[[DY]], %[[MU]] :
// CHECK:         %[[FULL:.+]] = linalg.generic {{.*}} ins(%[[DY]], %[[S:[^,]+]], %[[X:[^ ]+]] :
// CHECK:         %[[DMU:.+]] = linalg.generic {indexing_maps = [#[[$ID]], #[[$C]]], iterator_types = ["reduction", "reduction", "parallel"]} ins(%[[FULL]] :
// CHECK:         %[[ZL:.+]] = linalg.fill {{.*}} -> tensor<1x8xf32>
// CHECK:         %{{.+}}, %[[DPREV:.+]] = rwkv.token_shift_grad %{{.+}}, %[[ZL]] : tensor<1x3x8xf32>, tensor<1x8xf32>
// CHECK:         return {{.*}}, %[[DPREV]], %[[DMU]],
func.func @shift_mix(%x: tensor<1x3x8xf32>, %prev: tensor<1x8xf32>, %mu: tensor<8xbf16>,
                     %head: tensor<5x8xf32>, %tgt: tensor<1x3xi32>)
    -> tensor<f32> attributes {rwkv.gradient = "shift_mix_grad"} {
  %s, %last = rwkv.token_shift %x, %prev : tensor<1x3x8xf32>, tensor<1x8xf32>
  %m = rwkv.mix %x, %s, %mu : tensor<1x3x8xf32>, tensor<8xbf16> -> tensor<1x3x8xf32>
  %l = rwkv.cross_entropy %m, %head, %tgt : tensor<1x3x8xf32>, tensor<5x8xf32>, tensor<1x3xi32> -> tensor<f32>
  return %l : tensor<f32>
}

// -----

// linear -> two projections (rwkv.projection generics, so they are tiled
// and register-blocked like the forward): dx[b,t,i] = sum_o dy W[o,i] reads
// the bf16 weight transposed to [i, o]; dW[o,i] = sum_{b,t} dy x is the
// projection [1, O, N] x [I, N] of the token-last operands.
// CHECK-DAG:   #[[$T:.+]] = affine_map<(d0, d1) -> (d1, d0)>
// CHECK-DAG:   #[[$X:.+]] = affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>
// CHECK-DAG:   #[[$W:.+]] = affine_map<(d0, d1, d2, d3) -> (d2, d3)>
// CHECK-DAG:   #[[$OUT:.+]] = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
// CHECK-LABEL: func.func @linear_grad
// CHECK-SAME:    (%[[X0:[^:]+]]: tensor<1x3x8xf32>, %[[W0:[^:]+]]: tensor<16x8xbf16>
// CHECK:         %[[DY:.+]], %{{.+}} = rwkv.cross_entropy_grad
// CHECK:         %[[WT:.+]] = linalg.generic {indexing_maps = [#[[$T]], {{.*}} ins(%[[W0]] : tensor<16x8xbf16>) outs(%{{.+}} : tensor<8x16xbf16>)
// CHECK:         %[[DX:.+]] = linalg.generic {indexing_maps = [#[[$X]], #[[$W]], #[[$OUT]]], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%[[DY]], %[[WT]] : tensor<1x3x16xf32>, tensor<8x16xbf16>) {{.*}} attrs = {rwkv.projection}
// CHECK:           arith.extf
// CHECK:         %[[DYF:.+]] = tensor.collapse_shape %[[DY]] {{.*}} into tensor<3x16xf32>
// CHECK:         %[[DYT:.+]] = linalg.generic {indexing_maps = [#[[$T]], {{.*}} ins(%[[DYF]] : tensor<3x16xf32>) outs(%{{.+}} : tensor<16x3xf32>)
// CHECK:         %[[XF:.+]] = tensor.collapse_shape %[[X0]] {{.*}} into tensor<3x8xf32>
// CHECK:         %[[XT:.+]] = linalg.generic {indexing_maps = [#[[$T]], {{.*}} ins(%[[XF]] : tensor<3x8xf32>) outs(%{{.+}} : tensor<8x3xf32>)
// CHECK:         %[[DYE:.+]] = tensor.expand_shape %[[DYT]] {{.*}} into tensor<1x16x3xf32>
// CHECK:         %[[DW3:.+]] = linalg.generic {indexing_maps = [#[[$X]], #[[$W]], #[[$OUT]]], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%[[DYE]], %[[XT]] : tensor<1x16x3xf32>, tensor<8x3xf32>) outs(%{{.+}} : tensor<1x16x8xf32>) attrs = {rwkv.projection}
// CHECK:         %[[DW:.+]] = tensor.collapse_shape %[[DW3]] {{.*}} into tensor<16x8xf32>
// CHECK:         return {{.*}}, %[[DX]], %[[DW]], %{{.+}} :
func.func @linear(%x: tensor<1x3x8xf32>, %w: tensor<16x8xbf16>, %head: tensor<5x16xf32>, %tgt: tensor<1x3xi32>)
    -> tensor<f32> attributes {rwkv.gradient = "linear_grad"} {
  %y = rwkv.linear %x, %w : tensor<1x3x8xf32>, tensor<16x8xbf16> -> tensor<1x3x16xf32>
  %l = rwkv.cross_entropy %y, %head, %tgt : tensor<1x3x16xf32>, tensor<5x16xf32>, tensor<1x3xi32> -> tensor<f32>
  return %l : tensor<f32>
}

// -----

// lora (sigmoid in the middle): the hidden activation is recomputed, then
// d up, dh = dz * z (1 - z), d down and dx, all as projections; the factors
// are [in, out], so dx reads them as they are (reduction along rows).
// CHECK-LABEL: func.func @lora_grad
// CHECK:         %[[H:.+]] = linalg.generic {{.*}} ins(%[[X:[^,]+]], %[[D:[^ ]+]] : tensor<1x3x8xf32>, tensor<8x2xf32>) outs(%{{.+}} : tensor<1x3x2xf32>) attrs = {rwkv.projection}
// CHECK:         %[[Z:.+]] = linalg.generic {{.*}} ins(%[[H]] : tensor<1x3x2xf32>)
// CHECK:           math.exp
// CHECK:         %[[DZ:.+]] = linalg.generic {{.*}} ins(%{{.+}}, %[[U:[^ ]+]] : tensor<1x3x8xf32>, tensor<2x8xf32>) outs(%{{.+}} : tensor<1x3x2xf32>) attrs = {rwkv.projection}
// CHECK:         %[[DUP:.+]] = tensor.collapse_shape %{{.+}} into tensor<2x8xf32>
// CHECK:         %[[DH:.+]] = linalg.generic {{.*}} ins(%[[DZ]], %[[Z]] : tensor<1x3x2xf32>, tensor<1x3x2xf32>)
// CHECK:           %[[OM:.+]] = arith.subf %{{.+}}, %[[ZZ:[^ ]+]] : f32
// CHECK:           arith.mulf %[[ZZ]], %[[OM]] : f32
// CHECK:         %[[DX:.+]] = linalg.generic {{.*}} ins(%[[DH]], %[[D]] : tensor<1x3x2xf32>, tensor<8x2xf32>) {{.*}} attrs = {rwkv.projection}
// CHECK:         %[[DD:.+]] = tensor.collapse_shape %{{.+}} into tensor<8x2xf32>
// CHECK:         return %{{.+}}, %[[DX]], %[[DD]], %[[DUP]],
func.func @lora(%x: tensor<1x3x8xf32>, %d: tensor<8x2xf32>, %u: tensor<2x8xf32>, %head: tensor<5x8xf32>, %tgt: tensor<1x3xi32>)
    -> tensor<f32> attributes {rwkv.gradient = "lora_grad"} {
  %y = rwkv.lora %x, %d, %u {activation = #rwkv<activation sigmoid>} : tensor<1x3x8xf32>, tensor<8x2xf32>, tensor<2x8xf32> -> tensor<1x3x8xf32>
  %l = rwkv.cross_entropy %y, %head, %tgt : tensor<1x3x8xf32>, tensor<5x8xf32>, tensor<1x3xi32> -> tensor<f32>
  return %l : tensor<f32>
}

// -----

// The generic rule on an element-wise body with a broadcast bf16 operand:
// one generic differentiates tanh(a * b + c) for every input over the full
// iteration space, then the per-channel operand is summed to [C].
// CHECK-DAG:   #[[$ID:.+]] = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
// CHECK-DAG:   #[[$C:.+]] = affine_map<(d0, d1, d2) -> (d2)>
// CHECK-LABEL: func.func @generic_grad
// CHECK:         %[[DY:.+]], %{{.+}} = rwkv.cross_entropy_grad
// CHECK:         %[[G:.+]]:3 = linalg.generic {indexing_maps = [#[[$ID]], #[[$ID]], #[[$C]], #[[$ID]], #[[$ID]], #[[$ID]], #[[$ID]]], iterator_types = ["parallel", "parallel", "parallel"]} ins(%[[A:[^,]+]], %[[B:[^,]+]], %[[CW:[^,]+]], %[[DY]] :
// CHECK-NEXT:    ^bb0(%[[IA:[^:]+]]: f32, %[[IB:[^:]+]]: f32, %[[IC:[^:]+]]: bf16, %[[IDY:[^:]+]]: f32,
// CHECK:           %[[T:.+]] = math.tanh
// CHECK:           %[[SQ:.+]] = arith.mulf %[[T]], %[[T]]
// CHECK:           %[[D:.+]] = arith.subf %{{.+}}, %[[SQ]]
// CHECK:           %[[DQ:.+]] = arith.mulf %[[IDY]], %[[D]]
// CHECK:           %[[DA:.+]] = arith.mulf %[[DQ]], %[[IB]]
// CHECK:           %[[DB:.+]] = arith.mulf %[[DQ]], %[[IA]]
// CHECK:           linalg.yield %[[DA]], %[[DB]], %[[DQ]] : f32, f32, f32
// CHECK:         %[[DC:.+]] = linalg.generic {indexing_maps = [#[[$ID]], #[[$C]]], iterator_types = ["reduction", "reduction", "parallel"]} ins(%[[G]]#2 : tensor<1x3x8xf32>) outs(%{{.+}} : tensor<8xf32>)
// CHECK:         return %{{.+}}, %[[G]]#0, %[[G]]#1, %[[DC]],
#id = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
#c = affine_map<(d0, d1, d2) -> (d2)>
func.func @generic(%a: tensor<1x3x8xf32>, %b: tensor<1x3x8xf32>, %cw: tensor<8xbf16>, %head: tensor<5x8xf32>, %tgt: tensor<1x3xi32>)
    -> tensor<f32> attributes {rwkv.gradient = "generic_grad"} {
  %e = tensor.empty() : tensor<1x3x8xf32>
  %g = linalg.generic {indexing_maps = [#id, #id, #c, #id], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%a, %b, %cw : tensor<1x3x8xf32>, tensor<1x3x8xf32>, tensor<8xbf16>) outs(%e : tensor<1x3x8xf32>) {
  ^bb0(%ia: f32, %ib: f32, %ic: bf16, %o: f32):
    %cf = arith.extf %ic : bf16 to f32
    %t = arith.mulf %ia, %ib : f32
    %q = arith.addf %t, %cf : f32
    %r = math.tanh %q : f32
    linalg.yield %r : f32
  } -> tensor<1x3x8xf32>
  %l = rwkv.cross_entropy %g, %head, %tgt : tensor<1x3x8xf32>, tensor<5x8xf32>, tensor<1x3xi32> -> tensor<f32>
  return %l : tensor<f32>
}

// -----

// A sum reduction (the per-head bonus shape): out[b,t,h] = sum_n x*y; the
// gradient broadcasts dy back over the reduced dimension; reshapes pass
// gradients through (collapse <-> expand).
// CHECK-LABEL: func.func @reduce_grad
// CHECK:         %[[G:.+]]:2 = linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
// CHECK:           %[[P:.+]] = arith.mulf %[[IA:[^,]+]], %[[IB:[^ ]+]] : f32
// CHECK:           arith.mulf %[[IDY:[^,]+]], %[[IB]] : f32
// CHECK:           arith.mulf %[[IDY]], %[[IA]] : f32
// CHECK:         %[[CY:.+]] = tensor.collapse_shape %[[G]]#1 {{\[}}[0], [1], [2, 3]] : tensor<1x3x2x4xf32> into tensor<1x3x8xf32>
// CHECK:         %[[CX:.+]] = tensor.collapse_shape %[[G]]#0 {{\[}}[0], [1], [2, 3]] : tensor<1x3x2x4xf32> into tensor<1x3x8xf32>
// CHECK:         return %{{.+}}, %[[CX]], %[[CY]],
#i4 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
#bth = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
func.func @reduce(%x: tensor<1x3x8xf32>, %y: tensor<1x3x8xf32>, %head: tensor<5x2xf32>, %tgt: tensor<1x3xi32>)
    -> tensor<f32> attributes {rwkv.gradient = "reduce_grad"} {
  %x4 = tensor.expand_shape %x [[0], [1], [2, 3]] output_shape [1, 3, 2, 4] : tensor<1x3x8xf32> into tensor<1x3x2x4xf32>
  %y4 = tensor.expand_shape %y [[0], [1], [2, 3]] output_shape [1, 3, 2, 4] : tensor<1x3x8xf32> into tensor<1x3x2x4xf32>
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<1x3x2xf32>
  %acc = linalg.fill ins(%zero : f32) outs(%e : tensor<1x3x2xf32>) -> tensor<1x3x2xf32>
  %s = linalg.generic {indexing_maps = [#i4, #i4, #bth], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
      ins(%x4, %y4 : tensor<1x3x2x4xf32>, tensor<1x3x2x4xf32>) outs(%acc : tensor<1x3x2xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %p = arith.mulf %a, %b : f32
    %q = arith.addf %o, %p : f32
    linalg.yield %q : f32
  } -> tensor<1x3x2xf32>
  %l = rwkv.cross_entropy %s, %head, %tgt : tensor<1x3x2xf32>, tensor<5x2xf32>, tensor<1x3xi32> -> tensor<f32>
  return %l : tensor<f32>
}

// -----

// A whole RWKV-7 layer (time-mix + channel-mix in an rwkv.block, C = 8,
// H = 2): after rwkv-decompose every primitive op is differentiated, the
// WKV recurrence through rwkv.wkv_grad, which also gives the initial state's
// gradient.
// CHECK-LABEL: func.func @layer_grad
// CHECK-SAME:    -> (tensor<f32> {rwkv.result = "loss"}, tensor<2x4x8xf32> {rwkv.gradient_of = 0 : i64}, tensor<2x2x4x4xf32> {rwkv.gradient_of = 1 : i64},
// CHECK:         rwkv.cross_entropy_grad
// CHECK:         rwkv.token_shift_grad
// CHECK:         %[[DR:.+]], %[[DW:.+]], %[[DK:.+]], %[[DV:.+]], %[[DA:.+]], %[[DB:.+]], %[[DS:.+]] = rwkv.wkv_grad
// CHECK-SAME:      : tensor<2x4x8xf32>, tensor<2x2x4x4xf32>
// CHECK:         rwkv.l2_normalize_grad
// CHECK:         rwkv.token_shift_grad
// CHECK:         return %{{[^,]+}}, %{{[^,]+}}, %[[DS]],
// CHECK-NOT:     rwkv.time_mix
func.func @layer(%x: tensor<2x4x8xf32>, %wkv: tensor<2x2x4x4xf32>,
                 %x_r: tensor<8xbf16>, %x_w: tensor<8xbf16>, %x_k: tensor<8xbf16>, %x_v: tensor<8xbf16>, %x_a: tensor<8xbf16>, %x_g: tensor<8xbf16>,
                 %w0: tensor<8xbf16>, %w1: tensor<8x2xbf16>, %w2: tensor<2x8xbf16>,
                 %a0: tensor<8xbf16>, %a1: tensor<8x3xbf16>, %a2: tensor<3x8xbf16>,
                 %g1: tensor<8x5xbf16>, %g2: tensor<5x8xbf16>,
                 %k_k: tensor<8xbf16>, %k_a: tensor<8xbf16>, %r_k: tensor<8xbf16>,
                 %wr: tensor<8x8xbf16>, %wk: tensor<8x8xbf16>, %wv: tensor<8x8xbf16>, %wo: tensor<8x8xbf16>,
                 %lnw: tensor<8xbf16>, %lnb: tensor<8xbf16>,
                 %fmu: tensor<8xbf16>, %fk: tensor<16x8xbf16>, %fv: tensor<8x16xbf16>,
                 %head: tensor<5x8xbf16>, %tgt: tensor<2x4xi32>)
    -> tensor<f32> attributes {rwkv.gradient = "layer_grad"} {
  %zero = arith.constant dense<0.0> : tensor<2x8xf32>
  %r:3 = rwkv.block layer 0 -> (tensor<2x4x8xf32>, tensor<2x2x4x4xf32>, tensor<2x4x8xf32>) {
    %out, %nsh, %nwkv, %vf = rwkv.time_mix %x, %zero, %wkv
        lerp(%x_r, %x_w, %x_k, %x_v, %x_a, %x_g)
        decay(%w0, %w1, %w2) iclr(%a0, %a1, %a2)
        gate(%g1, %g2) key(%k_k, %k_a, %r_k)
        proj(%wr, %wk, %wv, %wo) ln_x(%lnw, %lnb)
        : (tensor<2x4x8xf32>, tensor<2x8xf32>, tensor<2x2x4x4xf32>,
           tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>,
           tensor<8xbf16>, tensor<8x2xbf16>, tensor<2x8xbf16>,
           tensor<8xbf16>, tensor<8x3xbf16>, tensor<3x8xbf16>,
           tensor<8x5xbf16>, tensor<5x8xbf16>,
           tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>,
           tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>,
           tensor<8xbf16>, tensor<8xbf16>)
        -> (tensor<2x4x8xf32>, tensor<2x8xf32>, tensor<2x2x4x4xf32>, tensor<2x4x8xf32>)
    %x1 = arith.addf %x, %out : tensor<2x4x8xf32>
    %o, %s = rwkv.channel_mix %x1, %zero lerp(%fmu) proj(%fk, %fv)
        : (tensor<2x4x8xf32>, tensor<2x8xf32>, tensor<8xbf16>, tensor<16x8xbf16>, tensor<8x16xbf16>)
        -> (tensor<2x4x8xf32>, tensor<2x8xf32>)
    %x2 = arith.addf %x1, %o : tensor<2x4x8xf32>
    rwkv.yield %x2, %nwkv, %vf : tensor<2x4x8xf32>, tensor<2x2x4x4xf32>, tensor<2x4x8xf32>
  }
  %l = rwkv.cross_entropy %r#0, %head, %tgt : tensor<2x4x8xf32>, tensor<5x8xbf16>, tensor<2x4xi32> -> tensor<f32>
  return %l : tensor<f32>
}

// -----

// Errors name the op or the function.
// expected-error @+1 {{must return the loss as tensor<f32> first, got 'tensor<1x3x8xf32>'}}
func.func @not_scalar(%x: tensor<1x3x8xf32>) -> tensor<1x3x8xf32> attributes {rwkv.gradient = "g"} {
  return %x : tensor<1x3x8xf32>
}

// -----

func.func @no_rule(%x: tensor<1x3x8xf32>, %head: tensor<5x8xf32>, %tgt: tensor<1x3xi32>)
    -> tensor<f32> attributes {rwkv.gradient = "g"} {
  // expected-error @+1 {{'arith.mulf' op cannot be differentiated (no adjoint rule)}}
  %sq = arith.mulf %x, %x : tensor<1x3x8xf32>
  %l = rwkv.cross_entropy %sq, %head, %tgt : tensor<1x3x8xf32>, tensor<5x8xf32>, tensor<1x3xi32> -> tensor<f32>
  return %l : tensor<f32>
}

// -----

// Activation checkpointing (rwkv.recompute_layers): the ops of layer
// `blocks.0` are cloned right before their adjoint, which reads the clones;
// the first forward's intermediates are then dead after the forward.
// CHECK-LABEL: func.func @recompute_grad
// CHECK:         %[[N:.+]] = rwkv.layer_norm %[[X:[^,]+]], %[[LW:[^,]+]], %[[LB:[^ ]+]]
// CHECK:         %[[P:.+]] = rwkv.linear %[[N]], %[[W:[^ ]+]]
// CHECK:         rwkv.cross_entropy %[[P]]
// CHECK:         %[[DP:.+]], %{{.+}} = rwkv.cross_entropy_grad %[[P]]
// CHECK:         %[[N2:.+]] = rwkv.layer_norm %[[X]], %[[LW]], %[[LB]]
// CHECK:         rwkv.linear %[[N2]], %[[W]]
// CHECK:         tensor.collapse_shape %[[N2]]
// CHECK:         rwkv.layer_norm_grad %[[X]], %[[LW]]
// CHECK-NOT:     rwkv.layer_norm_grad
// CHECK:         return
func.func @recompute(%x: tensor<1x3x8xf32>, %lw: tensor<8xf32>, %lb: tensor<8xf32>, %w: tensor<8x8xf32>,
                     %head: tensor<5x8xf32>, %tgt: tensor<1x3xi32>)
    -> tensor<f32> attributes {rwkv.gradient = "recompute_grad", rwkv.recompute_layers} {
  %n = rwkv.layer_norm %x, %lw, %lb : tensor<1x3x8xf32>, tensor<8xf32> -> tensor<1x3x8xf32> loc("blocks.0")
  %p = rwkv.linear %n, %w : tensor<1x3x8xf32>, tensor<8x8xf32> -> tensor<1x3x8xf32> loc("blocks.0")
  %l = rwkv.cross_entropy %p, %head, %tgt : tensor<1x3x8xf32>, tensor<5x8xf32>, tensor<1x3xi32> -> tensor<f32>
  return %l : tensor<f32>
}

// -----

// Outlined layers: each called function gets one forward that also returns
// the values its backward reads (the tape), and one backward taking the
// arguments, the result gradients and the tape. The backward of the call
// reads the forward call's tape results.
// CHECK-LABEL: func.func private @layer(
// CHECK-LABEL: func.func private @layer_fwd(
// CHECK:         %[[N:.+]] = rwkv.layer_norm
// CHECK:         %[[P:.+]] = rwkv.linear %[[N]]
// CHECK:         return %[[P]], %[[N]]
// CHECK-LABEL: func.func private @layer_bwd(
// CHECK-SAME:      %[[BX:[^:]+]]: tensor<1x3x8xf32>, %[[BLW:[^:]+]]: tensor<8xf32>, %{{[^:]+}}: tensor<8xf32>, %[[BW:[^:]+]]: tensor<8x8xf32>, %[[BDP:[^:]+]]: tensor<1x3x8xf32>, %[[BN:[^:]+]]: tensor<1x3x8xf32>)
// CHECK-NOT:     rwkv.layer_norm %
// CHECK-NOT:     rwkv.linear
// CHECK:         linalg.generic {{.*}} ins(%[[BDP]], %{{.+}} : {{.*}} attrs =  {rwkv.projection}
// CHECK:         tensor.collapse_shape %[[BN]]
// CHECK:         rwkv.layer_norm_grad %[[BX]], %[[BLW]]
// CHECK:         return
// CHECK-LABEL: func.func @calls_grad
// CHECK:         %[[F:.+]]:2 = call @layer_fwd(%[[X:[^,]+]], %[[LW:[^,]+]], %[[LB:[^,]+]], %[[W:[^)]+]]) : (tensor<1x3x8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<8x8xf32>) -> (tensor<1x3x8xf32>, tensor<1x3x8xf32>)
// CHECK:         %[[DP:.+]], %{{.+}} = rwkv.cross_entropy_grad %[[F]]#0
// CHECK:         %[[B:.+]]:4 = call @layer_bwd(%[[X]], %[[LW]], %[[LB]], %[[W]], %[[DP]], %[[F]]#1)
// CHECK:         return %{{.+}}, %[[B]]#0, %[[B]]#1, %[[B]]#2, %[[B]]#3,
func.func private @layer(%x: tensor<1x3x8xf32>, %lw: tensor<8xf32>, %lb: tensor<8xf32>, %w: tensor<8x8xf32>) -> tensor<1x3x8xf32> {
  %n = rwkv.layer_norm %x, %lw, %lb : tensor<1x3x8xf32>, tensor<8xf32> -> tensor<1x3x8xf32>
  %p = rwkv.linear %n, %w : tensor<1x3x8xf32>, tensor<8x8xf32> -> tensor<1x3x8xf32>
  return %p : tensor<1x3x8xf32>
}
func.func @calls(%x: tensor<1x3x8xf32>, %lw: tensor<8xf32>, %lb: tensor<8xf32>, %w: tensor<8x8xf32>,
                 %head: tensor<5x8xf32>, %tgt: tensor<1x3xi32>)
    -> tensor<f32> attributes {rwkv.gradient = "calls_grad"} {
  %p = call @layer(%x, %lw, %lb, %w) : (tensor<1x3x8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<8x8xf32>) -> tensor<1x3x8xf32>
  %l = rwkv.cross_entropy %p, %head, %tgt : tensor<1x3x8xf32>, tensor<5x8xf32>, tensor<1x3xi32> -> tensor<f32>
  return %l : tensor<f32>
}

// -----

// Outlined layers with activation checkpointing: the forward calls the layer
// as it is, and the backward function runs the layer's forward again before
// its adjoint, so nothing but the layer's inputs outlives the forward.
// CHECK-LABEL: func.func private @rlayer_vjp(
// CHECK:         %[[N:.+]] = rwkv.layer_norm
// CHECK:         rwkv.linear %[[N]]
// CHECK:         tensor.collapse_shape %[[N]]
// CHECK:         rwkv.layer_norm_grad
// CHECK-LABEL: func.func @calls_recompute_grad
// CHECK:         %[[P:.+]] = call @rlayer(%[[X:[^,]+]], %[[LW:[^,]+]], %[[LB:[^,]+]], %[[W:[^)]+]]) : (tensor<1x3x8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<8x8xf32>) -> tensor<1x3x8xf32>
// CHECK:         %[[DP:.+]], %{{.+}} = rwkv.cross_entropy_grad %[[P]]
// CHECK:         call @rlayer_vjp(%[[X]], %[[LW]], %[[LB]], %[[W]], %[[DP]]) : {{.*}} -> (tensor<1x3x8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<8x8xf32>)
func.func private @rlayer(%x: tensor<1x3x8xf32>, %lw: tensor<8xf32>, %lb: tensor<8xf32>, %w: tensor<8x8xf32>) -> tensor<1x3x8xf32> {
  %n = rwkv.layer_norm %x, %lw, %lb : tensor<1x3x8xf32>, tensor<8xf32> -> tensor<1x3x8xf32>
  %p = rwkv.linear %n, %w : tensor<1x3x8xf32>, tensor<8x8xf32> -> tensor<1x3x8xf32>
  return %p : tensor<1x3x8xf32>
}
func.func @calls_recompute(%x: tensor<1x3x8xf32>, %lw: tensor<8xf32>, %lb: tensor<8xf32>, %w: tensor<8x8xf32>,
                           %head: tensor<5x8xf32>, %tgt: tensor<1x3xi32>)
    -> tensor<f32> attributes {rwkv.gradient = "calls_recompute_grad", rwkv.recompute_layers} {
  %p = call @rlayer(%x, %lw, %lb, %w) : (tensor<1x3x8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<8x8xf32>) -> tensor<1x3x8xf32>
  %l = rwkv.cross_entropy %p, %head, %tgt : tensor<1x3x8xf32>, tensor<5x8xf32>, tensor<1x3xi32> -> tensor<f32>
  return %l : tensor<f32>
}
