// RUN: rwkv-opt %s -split-input-file --rwkv-fuse-elementwise --mlir-print-local-scope | FileCheck %s
// RUN: rwkv-opt %s -split-input-file --pass-pipeline="builtin.module(rwkv-decompose,convert-rwkv-to-linalg,func.func(convert-elementwise-to-linalg),rwkv-fuse-elementwise)" --mlir-print-local-scope | FileCheck %s --check-prefix=TM

// rwkv-fuse-elementwise (codegen/FuseElementwise.cpp): upstream element-wise
// fusion, restricted to an all-parallel producer AND an all-parallel
// consumer.

// A chain of three element-wise generics (bias add, exp(-x), tanh) becomes
// one generic whose body runs the whole chain.
// CHECK-LABEL: func.func @chain
// CHECK-SAME:    (%[[X:[^:]+]]: tensor<1x?x8xf32>, %[[W0:[^:]+]]: tensor<8xbf16>)
// CHECK:         %[[Y:.+]] = linalg.generic
// CHECK-SAME:      indexing_maps = [affine_map<(d0, d1, d2) -> (d2)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>]
// CHECK-SAME:      iterator_types = ["parallel", "parallel", "parallel"]
// CHECK-SAME:      ins(%[[W0]], %[[X]] : tensor<8xbf16>, tensor<1x?x8xf32>)
// CHECK-NEXT:    ^bb0(%[[IW:[^:]+]]: bf16, %[[IX:[^:]+]]: f32, %{{[^:]+}}: f32):
// CHECK-NEXT:      %[[F:.+]] = arith.extf %[[IW]] : bf16 to f32
// CHECK-NEXT:      %[[S:.+]] = arith.addf %[[F]], %[[IX]] : f32
// CHECK-NEXT:      %[[N:.+]] = arith.negf %[[S]] : f32
// CHECK-NEXT:      %[[E:.+]] = math.exp %[[N]] : f32
// CHECK-NEXT:      %[[T:.+]] = math.tanh %[[E]] : f32
// CHECK-NEXT:      linalg.yield %[[T]] : f32
// CHECK-NOT:     linalg.generic
// CHECK:         return %[[Y]]
#id = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
#c = affine_map<(d0, d1, d2) -> (d2)>
func.func @chain(%x: tensor<1x?x8xf32>, %w0: tensor<8xbf16>) -> tensor<1x?x8xf32> {
  %c1 = arith.constant 1 : index
  %t = tensor.dim %x, %c1 : tensor<1x?x8xf32>
  %e = tensor.empty(%t) : tensor<1x?x8xf32>
  %0 = linalg.generic {indexing_maps = [#c, #id, #id], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%w0, %x : tensor<8xbf16>, tensor<1x?x8xf32>) outs(%e : tensor<1x?x8xf32>) {
  ^bb0(%a: bf16, %b: f32, %o: f32):
    %f = arith.extf %a : bf16 to f32
    %s = arith.addf %f, %b : f32
    linalg.yield %s : f32
  } -> tensor<1x?x8xf32>
  %1 = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%0 : tensor<1x?x8xf32>) outs(%e : tensor<1x?x8xf32>) {
  ^bb0(%a: f32, %o: f32):
    %n = arith.negf %a : f32
    %x1 = math.exp %n : f32
    linalg.yield %x1 : f32
  } -> tensor<1x?x8xf32>
  %2 = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%1 : tensor<1x?x8xf32>) outs(%e : tensor<1x?x8xf32>) {
  ^bb0(%a: f32, %o: f32):
    %th = math.tanh %a : f32
    linalg.yield %th : f32
  } -> tensor<1x?x8xf32>
  return %2 : tensor<1x?x8xf32>
}


// -----

// An element-wise producer (the token-shift lerp) is not fused into a
// projection: the contraction would recompute it for every output channel.
// The fill of the accumulator is left alone too.
// CHECK-LABEL: func.func @lerp_into_projection
// CHECK-SAME:    (%[[X:[^:]+]]: tensor<1x?x8xf32>, %[[SH:[^:]+]]: tensor<1x?x8xf32>, %[[MU:[^:]+]]: tensor<8xbf16>, %[[W:[^:]+]]: tensor<16x8xbf16>)
// CHECK:         %[[XR:.+]] = linalg.generic
// CHECK-SAME:      iterator_types = ["parallel", "parallel", "parallel"]
// CHECK-SAME:      ins(%[[X]], %[[SH]], %[[MU]] :
// CHECK:         %[[ACC:.+]] = linalg.fill
// CHECK-NEXT:    %[[Y:.+]] = linalg.generic
// CHECK-SAME:      iterator_types = ["parallel", "parallel", "parallel", "reduction"]
// CHECK-SAME:      ins(%[[XR]], %[[W]] : tensor<1x?x8xf32>, tensor<16x8xbf16>) outs(%[[ACC]] : tensor<1x?x16xf32>)
// CHECK-SAME:      attrs = {rwkv.projection}
// CHECK-NEXT:    ^bb0(%{{[^:]+}}: f32, %{{[^:]+}}: bf16, %{{[^:]+}}: f32):
// CHECK-NEXT:      arith.extf
// CHECK-NEXT:      arith.mulf {{.+}} fastmath<reassoc,contract>
// CHECK-NEXT:      arith.addf {{.+}} fastmath<reassoc,contract>
// CHECK-NEXT:      linalg.yield
// CHECK:         return %[[Y]]

#id = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
#c = affine_map<(d0, d1, d2) -> (d2)>
#x = affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>
#w = affine_map<(d0, d1, d2, d3) -> (d2, d3)>
#o = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
func.func @lerp_into_projection(%x: tensor<1x?x8xf32>, %sh: tensor<1x?x8xf32>, %mu: tensor<8xbf16>, %w: tensor<16x8xbf16>) -> tensor<1x?x16xf32> {
  %c1 = arith.constant 1 : index
  %zero = arith.constant 0.0 : f32
  %t = tensor.dim %x, %c1 : tensor<1x?x8xf32>
  %e = tensor.empty(%t) : tensor<1x?x8xf32>
  %xr = linalg.generic {indexing_maps = [#id, #id, #c, #id], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%x, %sh, %mu : tensor<1x?x8xf32>, tensor<1x?x8xf32>, tensor<8xbf16>) outs(%e : tensor<1x?x8xf32>) {
  ^bb0(%a: f32, %b: f32, %m: bf16, %o: f32):
    %mf = arith.extf %m : bf16 to f32
    %d = arith.subf %b, %a : f32
    %p = arith.mulf %d, %mf : f32
    %r = arith.addf %a, %p : f32
    linalg.yield %r : f32
  } -> tensor<1x?x8xf32>
  %e2 = tensor.empty(%t) : tensor<1x?x16xf32>
  %acc = linalg.fill ins(%zero : f32) outs(%e2 : tensor<1x?x16xf32>) -> tensor<1x?x16xf32>
  %y = linalg.generic {indexing_maps = [#x, #w, #o], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
      ins(%xr, %w : tensor<1x?x8xf32>, tensor<16x8xbf16>) outs(%acc : tensor<1x?x16xf32>) attrs = {rwkv.projection} {
  ^bb0(%a: f32, %b: bf16, %o: f32):
    %bf = arith.extf %b : bf16 to f32
    %p = arith.mulf %a, %bf fastmath<reassoc,contract> : f32
    %s = arith.addf %o, %p fastmath<reassoc,contract> : f32
    linalg.yield %s : f32
  } -> tensor<1x?x16xf32>
  return %y : tensor<1x?x16xf32>
}


// -----

// A reduction producer (LayerNorm's row sum) is not fused into its
// element-wise consumer.
// CHECK-LABEL: func.func @reduction_into_elementwise
// CHECK-SAME:    (%[[X:[^:]+]]: tensor<1x?x8xf32>)
// CHECK:         %[[SUM:.+]] = linalg.generic
// CHECK-SAME:      iterator_types = ["parallel", "parallel", "reduction"]
// CHECK-SAME:      ins(%[[X]] : tensor<1x?x8xf32>)
// CHECK:         %[[Y:.+]] = linalg.generic
// CHECK-SAME:      iterator_types = ["parallel", "parallel", "parallel"]
// CHECK-SAME:      ins(%[[X]], %[[SUM]] : tensor<1x?x8xf32>, tensor<1x?xf32>)
// CHECK-NEXT:    ^bb0(
// CHECK-NEXT:      arith.subf
// CHECK-NEXT:      linalg.yield
// CHECK:         return %[[Y]]

#id = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
#r = affine_map<(d0, d1, d2) -> (d0, d1)>
func.func @reduction_into_elementwise(%x: tensor<1x?x8xf32>) -> tensor<1x?x8xf32> {
  %c1 = arith.constant 1 : index
  %zero = arith.constant 0.0 : f32
  %t = tensor.dim %x, %c1 : tensor<1x?x8xf32>
  %e = tensor.empty(%t) : tensor<1x?xf32>
  %acc = linalg.fill ins(%zero : f32) outs(%e : tensor<1x?xf32>) -> tensor<1x?xf32>
  %sum = linalg.generic {indexing_maps = [#id, #r], iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%x : tensor<1x?x8xf32>) outs(%acc : tensor<1x?xf32>) {
  ^bb0(%a: f32, %o: f32):
    %s = arith.addf %o, %a : f32
    linalg.yield %s : f32
  } -> tensor<1x?xf32>
  %e3 = tensor.empty(%t) : tensor<1x?x8xf32>
  %y = linalg.generic {indexing_maps = [#id, #r, #id], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%x, %sum : tensor<1x?x8xf32>, tensor<1x?xf32>) outs(%e3 : tensor<1x?x8xf32>) {
  ^bb0(%a: f32, %s: f32, %o: f32):
    %q = arith.subf %a, %s : f32
    linalg.yield %q : f32
  } -> tensor<1x?x8xf32>
  return %y : tensor<1x?x8xf32>
}

// -----

// The decomposed and lowered time-mix of a layer-0 block (C = 8, H = 2,
// N = 4). The token-shift gather is fused into each of the six lerps; no lerp
// or LoRA activation is fused into a projection; the decay chain
// w = -e^-0.5 * sigmoid(w0 + lora) is one generic.
// TM-LABEL: func.func @time_mix_layer0
// TM-SAME:    (%[[X:[^:]+]]: tensor<1x?x8xf32>, %[[SH:[^:]+]]: tensor<1x8xf32>, %[[WKV:[^:]+]]: tensor<1x2x4x4xf32>, %[[VEC:[^:]+]]: tensor<8xbf16>, %[[W0:[^:]+]]: tensor<8xbf16>, %[[W1:[^:]+]]: tensor<8x2xbf16>, %[[W2:[^:]+]]: tensor<2x8xbf16>,
// TM-DAG:     %[[ONE:.+]] = arith.constant 1.000000e+00 : f32
// TM-DAG:     %[[NEG_E_HALF:.+]] = arith.constant -0.60653{{[0-9]*}} : f32
// The new shift state (last token) stays a separate gather.
// TM:         linalg.generic {{.+}} outs(%{{.+}} : tensor<1x8xf32>)
// TM:         %[[XR:.+]] = linalg.generic
// TM-SAME:      iterator_types = ["parallel", "parallel", "parallel"]
// TM-SAME:      ins(%[[X]], %[[VEC]] : tensor<1x?x8xf32>, tensor<8xbf16>)
// TM:           tensor.extract %[[X]]
// TM:           tensor.extract %[[SH]]
// TM:           arith.select
// TM:           arith.extf
// TM-NEXT:      arith.subf
// TM-NEXT:      arith.mulf
// TM-NEXT:      arith.addf
// TM:         %[[XW:.+]] = linalg.generic {{.+}} ins(%[[X]], %[[VEC]] :
// TM:         %[[XK:.+]] = linalg.generic {{.+}} ins(%[[X]], %[[VEC]] :
// TM:         %[[XV:.+]] = linalg.generic {{.+}} ins(%[[X]], %[[VEC]] :
// TM:         %[[XA:.+]] = linalg.generic {{.+}} ins(%[[X]], %[[VEC]] :
// TM:         %[[XG:.+]] = linalg.generic {{.+}} ins(%[[X]], %[[VEC]] :
// TM:         %[[R:.+]] = linalg.generic {{.+}} ins(%[[XR]], %{{.+}} : tensor<1x?x8xf32>, tensor<8x8xbf16>) {{.+}} attrs = {rwkv.projection}
// TM:         %[[WD:.+]] = linalg.generic {{.+}} ins(%[[XW]], %[[W1]] : tensor<1x?x8xf32>, tensor<8x2xbf16>) {{.+}} attrs = {rwkv.projection}
// TM:         %[[WT:.+]] = linalg.generic {{.+}} ins(%[[WD]] : tensor<1x?x2xf32>)
// TM-NEXT:    ^bb0(
// TM-NEXT:      math.tanh
// TM-NEXT:      linalg.yield
// TM:         %[[WU:.+]] = linalg.generic {{.+}} ins(%[[WT]], %[[W2]] : tensor<1x?x2xf32>, tensor<2x8xbf16>) {{.+}} attrs = {rwkv.projection}
// TM:         %[[DECAY:.+]] = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d2)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel"]} ins(%[[W0]], %[[WU]] : tensor<8xbf16>, tensor<1x?x8xf32>)
// TM-NEXT:    ^bb0(%[[IW0:[^:]+]]: bf16, %[[IL:[^:]+]]: f32, %{{[^:]+}}: f32):
// TM-NEXT:      %[[W0F:.+]] = arith.extf %[[IW0]] : bf16 to f32
// TM-NEXT:      %[[Z:.+]] = arith.addf %[[W0F]], %[[IL]] : f32
// TM-NEXT:      %[[NZ:.+]] = arith.negf %[[Z]] : f32
// TM-NEXT:      %[[E:.+]] = math.exp %[[NZ]] : f32
// TM-NEXT:      %[[DEN:.+]] = arith.addf %[[E]], %[[ONE]] : f32
// TM-NEXT:      %[[SIG:.+]] = arith.divf %[[ONE]], %[[DEN]] : f32
// TM-NEXT:      %[[WV:.+]] = arith.mulf %[[SIG]], %[[NEG_E_HALF]] : f32
// TM-NEXT:      linalg.yield %[[WV]] : f32
// TM:         scf.for
// TM:           tensor.extract_slice %[[DECAY]][0, %{{.+}}, 0] [1, 1, 8]
func.func @time_mix_layer0(%x: tensor<1x?x8xf32>, %sh: tensor<1x8xf32>, %wkv: tensor<1x2x4x4xf32>,
                           %vec: tensor<8xbf16>, %w0: tensor<8xbf16>, %w1: tensor<8x2xbf16>, %w2: tensor<2x8xbf16>,
                           %a1: tensor<8x3xbf16>, %a2: tensor<3x8xbf16>,
                           %g1: tensor<8x5xbf16>, %g2: tensor<5x8xbf16>, %p: tensor<8x8xbf16>)
    -> (tensor<1x?x8xf32>, tensor<1x8xf32>, tensor<1x2x4x4xf32>, tensor<1x?x8xf32>) {
  %out, %nsh, %nwkv, %vf = rwkv.time_mix %x, %sh, %wkv
      lerp(%vec, %vec, %vec, %vec, %vec, %vec)
      decay(%w0, %w1, %w2) iclr(%vec, %a1, %a2)
      gate(%g1, %g2) key(%vec, %vec, %vec)
      proj(%p, %p, %p, %p) ln_x(%vec, %vec)
      : (tensor<1x?x8xf32>, tensor<1x8xf32>, tensor<1x2x4x4xf32>,
         tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>,
         tensor<8xbf16>, tensor<8x2xbf16>, tensor<2x8xbf16>,
         tensor<8xbf16>, tensor<8x3xbf16>, tensor<3x8xbf16>,
         tensor<8x5xbf16>, tensor<5x8xbf16>,
         tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>,
         tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>,
         tensor<8xbf16>, tensor<8xbf16>)
      -> (tensor<1x?x8xf32>, tensor<1x8xf32>, tensor<1x2x4x4xf32>, tensor<1x?x8xf32>)
  return %out, %nsh, %nwkv, %vf : tensor<1x?x8xf32>, tensor<1x8xf32>, tensor<1x2x4x4xf32>, tensor<1x?x8xf32>
}
