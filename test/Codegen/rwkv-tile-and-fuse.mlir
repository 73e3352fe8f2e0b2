// The input is lowered to fused linalg first, as in rwkv-cpu-pipeline, and
// then handed to the pass under test (followed by canonicalize, also as in the
// pipeline, which drops the untiled producers left dead by fusion).
// RUN: rwkv-opt %s -split-input-file --pass-pipeline="builtin.module(rwkv-decompose,convert-rwkv-to-linalg,func.func(convert-elementwise-to-linalg),rwkv-fuse-elementwise,canonicalize)" \
// RUN:   | rwkv-opt -split-input-file --rwkv-tile-and-fuse --canonicalize --mlir-print-local-scope | FileCheck %s
// RUN: rwkv-opt %s -split-input-file --pass-pipeline="builtin.module(rwkv-decompose,convert-rwkv-to-linalg,func.func(convert-elementwise-to-linalg),rwkv-fuse-elementwise,canonicalize)" \
// RUN:   | rwkv-opt -split-input-file --rwkv-tile-and-fuse="tile-tokens=4 tile-outputs=48" --canonicalize --mlir-print-local-scope | FileCheck %s --check-prefix=OPT
// The gradient projections, as rwkv-differentiate builds them:
// RUN: rwkv-opt %s -split-input-file --pass-pipeline="builtin.module(rwkv-decompose,rwkv-differentiate,convert-rwkv-to-linalg,func.func(convert-elementwise-to-linalg),rwkv-fuse-elementwise,canonicalize)" \
// RUN:   | rwkv-opt -split-input-file --rwkv-tile-and-fuse --canonicalize --mlir-print-local-scope | FileCheck %s --check-prefix=GRAD

// rwkv-tile-and-fuse (codegen/TileAndFuse.cpp): every rwkv.projection
// contraction (b, t, o, i) is tiled [1, tile-tokens, tile-outputs, 0] into an
// scf.forall (inference, i.e. a dynamic token count or one token, with a
// static batch of several rows: [whole batch, tile-tokens, tile-outputs, 0],
// so each tile's weight rows serve every sequence of a batched step); all-parallel producers (lerps, activations, the accumulator
// fill) are fused into the tile, reductions and transposes stay outside, and
// projections of more than 8 output tiles fuse only the fill.

// The lerp and the fill are fused into the forall, before the tiled
// contraction, which reads a [tile-outputs, C] slice of the weight.
// CHECK-LABEL: func.func @lerp_linear
// CHECK-SAME:    (%[[X:[^:]+]]: tensor<2x?x128xf32>, %[[SH:[^:]+]]: tensor<2x?x128xf32>, %[[MU:[^:]+]]: tensor<128xbf16>, %[[W:[^:]+]]: tensor<256x128xbf16>)
// CHECK-DAG:     %[[ZERO:.+]] = arith.constant 0.000000e+00 : f32
// CHECK-DAG:     %[[T:.+]] = tensor.dim %[[X]], %{{.+}} : tensor<2x?x128xf32>
// CHECK-NOT:     linalg.generic
// CHECK:         %[[OUT:.+]] = tensor.empty(%[[T]]) : tensor<2x?x256xf32>
// CHECK-NOT:     linalg.generic
// CHECK:         %[[Y:.+]] = scf.forall (%[[TT:.+]], %[[O:.+]]) = (0, 0) to (%[[T]], 256) step (16, 64) shared_outs(%[[ACC:.+]] = %[[OUT]]) -> (tensor<2x?x256xf32>) {
// CHECK-NEXT:      %[[NT:.+]] = affine.min affine_map<(d0)[s0] -> (-d0 + s0, 16)>(%[[TT]])[%[[T]]]
// CHECK-NEXT:      %[[XS:.+]] = tensor.extract_slice %[[X]][0, %[[TT]], 0] [2, %[[NT]], 128] [1, 1, 1] : tensor<2x?x128xf32> to tensor<2x?x128xf32>
// CHECK-NEXT:      %[[SHS:.+]] = tensor.extract_slice %[[SH]][0, %[[TT]], 0] [2, %[[NT]], 128] [1, 1, 1]
// CHECK:           %[[LERP:.+]] = linalg.generic
// CHECK-SAME:        iterator_types = ["parallel", "parallel", "parallel"]
// CHECK-SAME:        ins(%[[XS]], %[[SHS]], %[[MU]] : tensor<2x?x128xf32>, tensor<2x?x128xf32>, tensor<128xbf16>)
// CHECK:             arith.extf
// CHECK-NEXT:        arith.subf
// CHECK-NEXT:        arith.mulf
// CHECK-NEXT:        arith.addf
// CHECK:           %[[WS:.+]] = tensor.extract_slice %[[W]][%[[O]], 0] [64, 128] [1, 1] : tensor<256x128xbf16> to tensor<64x128xbf16>
// CHECK-NEXT:      %[[ACCS:.+]] = tensor.extract_slice %[[ACC]][0, %[[TT]], %[[O]]] [2, %[[NT]], 64] [1, 1, 1] : tensor<2x?x256xf32> to tensor<2x?x64xf32>
// CHECK-NEXT:      %[[FILL:.+]] = linalg.fill ins(%[[ZERO]] : f32) outs(%[[ACCS]] : tensor<2x?x64xf32>) -> tensor<2x?x64xf32>
// CHECK-NEXT:      %[[DOT:.+]] = linalg.generic
// CHECK-SAME:        iterator_types = ["parallel", "parallel", "parallel", "reduction"]
// CHECK-SAME:        ins(%[[LERP]], %[[WS]] : tensor<2x?x128xf32>, tensor<64x128xbf16>) outs(%[[FILL]] : tensor<2x?x64xf32>)
// CHECK-SAME:        attrs = {rwkv.projection}
// CHECK:             arith.mulf {{.+}} fastmath<reassoc,contract>
// CHECK:           scf.forall.in_parallel {
// CHECK-NEXT:        tensor.parallel_insert_slice %[[DOT]] into %[[ACC]][0, %[[TT]], %[[O]]] [2, %[[NT]], 64] [1, 1, 1] : tensor<2x?x64xf32> into tensor<2x?x256xf32>
// CHECK:         return %[[Y]]

// With tile-tokens=4 tile-outputs=48 the steps change, and 48 does not divide
// 256, so the output tile is clamped too.
// OPT-LABEL: func.func @lerp_linear
// OPT:         scf.forall (%[[TT:.+]], %[[O:.+]]) = (0, 0) to (%[[T:.+]], 256) step (4, 48)
// OPT-NEXT:      %[[NT:.+]] = affine.min affine_map<(d0)[s0] -> (-d0 + s0, 4)>(%[[TT]])[%[[T]]]
// OPT-NEXT:      %[[NO:.+]] = affine.min affine_map<(d0) -> (-d0 + 256, 48)>(%[[O]])
// OPT:           linalg.generic {{.+}} iterator_types = ["parallel", "parallel", "parallel"]
// OPT:           tensor.extract_slice %{{.+}}[%[[O]], 0] [%[[NO]], 128] [1, 1] : tensor<256x128xbf16> to tensor<?x128xbf16>
// OPT:           linalg.fill ins(%{{.+}} : f32) outs(%{{.+}} : tensor<2x?x?xf32>)
// OPT-NEXT:      linalg.generic {{.+}} iterator_types = ["parallel", "parallel", "parallel", "reduction"]
func.func @lerp_linear(%x: tensor<2x?x128xf32>, %sh: tensor<2x?x128xf32>, %mu: tensor<128xbf16>, %w: tensor<256x128xbf16>) -> tensor<2x?x256xf32> {
  %xr = rwkv.mix %x, %sh, %mu : tensor<2x?x128xf32>, tensor<128xbf16> -> tensor<2x?x128xf32>
  %y = rwkv.linear %xr, %w : tensor<2x?x128xf32>, tensor<256x128xbf16> -> tensor<2x?x256xf32>
  return %y : tensor<2x?x256xf32>
}

// -----

// A wide projection (1024 outputs: 16 tiles of 64, more than 8) keeps its
// producers outside the forall: fused, the lerp would be recomputed in each
// of the 16 output tiles. Only the accumulator fill is fused.
// CHECK-LABEL: func.func @lerp_wide_linear
// CHECK-SAME:    (%[[X:[^:]+]]: tensor<2x?x128xf32>, %[[SH:[^:]+]]: tensor<2x?x128xf32>, %[[MU:[^:]+]]: tensor<128xbf16>, %[[W:[^:]+]]: tensor<1024x128xbf16>)
// CHECK:         %[[LERP:.+]] = linalg.generic
// CHECK-SAME:      iterator_types = ["parallel", "parallel", "parallel"]
// CHECK-SAME:      ins(%[[X]], %[[SH]], %[[MU]] : tensor<2x?x128xf32>, tensor<2x?x128xf32>, tensor<128xbf16>)
// CHECK:         scf.forall (%[[TT:.+]], %[[O:.+]]) = (0, 0) to (%{{.+}}, 1024) step (16, 64)
// CHECK-NOT:       iterator_types = ["parallel", "parallel", "parallel"]
// CHECK:           %[[XS:.+]] = tensor.extract_slice %[[LERP]][0, %[[TT]], 0]
// CHECK:           linalg.fill
// CHECK-NEXT:      linalg.generic {{.+}} ins(%[[XS]], %{{.+}} : tensor<2x?x128xf32>, tensor<64x128xbf16>) {{.+}} attrs = {rwkv.projection}
func.func @lerp_wide_linear(%x: tensor<2x?x128xf32>, %sh: tensor<2x?x128xf32>, %mu: tensor<128xbf16>, %w: tensor<1024x128xbf16>) -> tensor<2x?x1024xf32> {
  %xr = rwkv.mix %x, %sh, %mu : tensor<2x?x128xf32>, tensor<128xbf16> -> tensor<2x?x128xf32>
  %y = rwkv.linear %xr, %w : tensor<2x?x128xf32>, tensor<1024x128xbf16> -> tensor<2x?x1024xf32>
  return %y : tensor<2x?x1024xf32>
}

// -----

// LayerNorm's two reductions stay outside the forall (they would be
// recomputed for every output tile); only its all-parallel normalise generic
// is fused, reading per-token slices of the reduced mean and variance.
// CHECK-LABEL: func.func @norm_linear
// CHECK-SAME:    (%[[X:[^:]+]]: tensor<1x?x128xf32>, %[[LW:[^:]+]]: tensor<128xbf16>, %[[LB:[^:]+]]: tensor<128xbf16>, %[[W:[^:]+]]: tensor<256x128xbf16>)
// CHECK:         %[[SUM:.+]] = linalg.generic
// CHECK-SAME:      iterator_types = ["parallel", "parallel", "reduction"]
// CHECK:         %[[SQ:.+]] = linalg.generic
// CHECK-SAME:      iterator_types = ["parallel", "parallel", "reduction"]
// CHECK:         %[[Y:.+]] = scf.forall (%[[TT:.+]], %[[O:.+]]) = (0, 0) to (%{{.+}}, 256) step (16, 64)
// CHECK-NOT:       iterator_types = ["parallel", "parallel", "reduction"]
// CHECK:           %[[SUMS:.+]] = tensor.extract_slice %[[SUM]][0, %[[TT]]] [1, %{{.+}}] [1, 1] : tensor<1x?xf32> to tensor<1x?xf32>
// CHECK-NEXT:      %[[SQS:.+]] = tensor.extract_slice %[[SQ]][0, %[[TT]]] [1, %{{.+}}] [1, 1] : tensor<1x?xf32> to tensor<1x?xf32>
// CHECK:           %[[XN:.+]] = linalg.generic
// CHECK-SAME:        iterator_types = ["parallel", "parallel", "parallel"]
// CHECK-SAME:        ins(%{{.+}}, %[[SUMS]], %[[SQS]], %[[LW]], %[[LB]] :
// CHECK:             math.sqrt
// CHECK:           linalg.fill
// CHECK-NEXT:      %[[DOT:.+]] = linalg.generic {{.+}} ins(%[[XN]], %{{.+}} : tensor<1x?x128xf32>, tensor<64x128xbf16>) {{.+}} attrs = {rwkv.projection}
// CHECK:           tensor.parallel_insert_slice %[[DOT]]
// CHECK:         return %[[Y]]
func.func @norm_linear(%x: tensor<1x?x128xf32>, %lw: tensor<128xbf16>, %lb: tensor<128xbf16>, %w: tensor<256x128xbf16>) -> tensor<1x?x256xf32> {
  %xn = rwkv.layer_norm %x, %lw, %lb : tensor<1x?x128xf32>, tensor<128xbf16> -> tensor<1x?x128xf32>
  %y = rwkv.linear %xn, %w : tensor<1x?x128xf32>, tensor<256x128xbf16> -> tensor<1x?x256xf32>
  return %y : tensor<1x?x256xf32>
}

// -----

// LoRA: the down projection (R = 32 outputs, one output tile) is its own
// forall and is not recomputed in the up projection's tiles; the tanh is
// fused into the up projection's forall.
// CHECK-LABEL: func.func @lora_tanh
// CHECK-SAME:    (%[[X:[^:]+]]: tensor<1x?x128xf32>, %[[D:[^:]+]]: tensor<128x32xbf16>, %[[U:[^:]+]]: tensor<32x128xbf16>)
// CHECK:         %[[H:.+]] = scf.forall (%{{.+}}) = (0) to (%{{.+}}) step (16)
// CHECK:           linalg.fill
// CHECK-NEXT:      %[[HT:.+]] = linalg.generic {{.+}} ins(%{{.+}}, %[[D]] : tensor<1x?x128xf32>, tensor<128x32xbf16>) {{.+}} attrs = {rwkv.projection}
// CHECK-NOT:       math.tanh
// CHECK:           tensor.parallel_insert_slice %[[HT]]
// CHECK:         %[[Y:.+]] = scf.forall (%[[TT:.+]], %[[O:.+]]) = (0, 0) to (%{{.+}}, 128) step (16, 64)
// CHECK:           %[[HS:.+]] = tensor.extract_slice %[[H]][0, %[[TT]], 0] [1, %{{.+}}, 32] [1, 1, 1] : tensor<1x?x32xf32> to tensor<1x?x32xf32>
// CHECK:           %[[ACT:.+]] = linalg.generic {{.+}} iterator_types = ["parallel", "parallel", "parallel"]} ins(%[[HS]] : tensor<1x?x32xf32>)
// CHECK-NEXT:      ^bb0(
// CHECK-NEXT:        math.tanh
// CHECK-NEXT:        linalg.yield
// CHECK:           %[[US:.+]] = tensor.extract_slice %[[U]][0, %[[O]]] [32, 64] [1, 1] : tensor<32x128xbf16> to tensor<32x64xbf16>
// CHECK:           linalg.fill
// CHECK-NEXT:      %[[DOT:.+]] = linalg.generic {{.+}} ins(%[[ACT]], %[[US]] : tensor<1x?x32xf32>, tensor<32x64xbf16>) {{.+}} attrs = {rwkv.projection}
// CHECK:           tensor.parallel_insert_slice %[[DOT]]
// CHECK:         return %[[Y]]
func.func @lora_tanh(%x: tensor<1x?x128xf32>, %d: tensor<128x32xbf16>, %u: tensor<32x128xbf16>) -> tensor<1x?x128xf32> {
  %0 = rwkv.lora %x, %d, %u {activation = #rwkv<activation tanh>} : tensor<1x?x128xf32>, tensor<128x32xbf16>, tensor<32x128xbf16> -> tensor<1x?x128xf32>
  return %0 : tensor<1x?x128xf32>
}

// -----

// Channel mix: the token-shift lerp is fused into the key projection's tiles
// and ReLU² into the value projection's tiles; the key projection itself
// stays a separate forall.
// CHECK-LABEL: func.func @channel_mix
// CHECK-SAME:    (%[[X:[^:]+]]: tensor<1x?x128xf32>, %[[SH:[^:]+]]: tensor<1x128xf32>, %[[MU:[^:]+]]: tensor<128xbf16>, %[[K:[^:]+]]: tensor<512x128xbf16>, %[[V:[^:]+]]: tensor<128x512xbf16>)
// CHECK:         %[[H:.+]] = scf.forall (%{{.+}}, %{{.+}}) = (0, 0) to (%{{.+}}, 512) step (16, 64)
// CHECK:           %[[XK:.+]] = linalg.generic {{.+}} iterator_types = ["parallel", "parallel", "parallel"]
// CHECK:             tensor.extract %[[SH]]
// CHECK:             arith.select
// CHECK:           linalg.fill
// CHECK-NEXT:      linalg.generic {{.+}} ins(%[[XK]], %{{.+}} : tensor<1x?x128xf32>, tensor<64x128xbf16>) {{.+}} attrs = {rwkv.projection}
// CHECK:         %[[Y:.+]] = scf.forall (%[[TT:.+]], %[[O:.+]]) = (0, 0) to (%{{.+}}, 128) step (16, 64)
// CHECK:           %[[HS:.+]] = tensor.extract_slice %[[H]][0, %[[TT]], 0] [1, %{{.+}}, 512] [1, 1, 1] : tensor<1x?x512xf32> to tensor<1x?x512xf32>
// CHECK:           %[[RELU2:.+]] = linalg.generic {{.+}} iterator_types = ["parallel", "parallel", "parallel"]} ins(%[[HS]] : tensor<1x?x512xf32>)
// CHECK-NEXT:      ^bb0(%[[IN:[^:]+]]: f32, %{{[^:]+}}: f32):
// CHECK-NEXT:        %[[RELU:.+]] = arith.maximumf %[[IN]], %{{.+}} : f32
// CHECK-NEXT:        %[[SQ:.+]] = arith.mulf %[[RELU]], %[[RELU]] : f32
// CHECK-NEXT:        linalg.yield %[[SQ]] : f32
// CHECK:           %[[VS:.+]] = tensor.extract_slice %[[V]][%[[O]], 0] [64, 512] [1, 1] : tensor<128x512xbf16> to tensor<64x512xbf16>
// CHECK:           linalg.fill
// CHECK-NEXT:      %[[DOT:.+]] = linalg.generic {{.+}} ins(%[[RELU2]], %[[VS]] : tensor<1x?x512xf32>, tensor<64x512xbf16>) {{.+}} attrs = {rwkv.projection}
// CHECK:           tensor.parallel_insert_slice %[[DOT]]
// CHECK:         return %[[Y]], %{{.+}} : tensor<1x?x128xf32>, tensor<1x128xf32>
func.func @channel_mix(%x: tensor<1x?x128xf32>, %sh: tensor<1x128xf32>, %mu: tensor<128xbf16>,
                       %k: tensor<512x128xbf16>, %v: tensor<128x512xbf16>)
    -> (tensor<1x?x128xf32>, tensor<1x128xf32>) {
  %o, %s = rwkv.channel_mix %x, %sh lerp(%mu) proj(%k, %v)
      : (tensor<1x?x128xf32>, tensor<1x128xf32>, tensor<128xbf16>, tensor<512x128xbf16>, tensor<128x512xbf16>)
      -> (tensor<1x?x128xf32>, tensor<1x128xf32>)
  return %o, %s : tensor<1x?x128xf32>, tensor<1x128xf32>
}

// -----

// Training: the gradients of a linear layer are projections too, tiled like
// the forward ones. dx = dy W reads Wᵀ [128, 256] and dW = Σ_n dyᵀ x reads
// the token-last [1, 256, N] and [128, N]: the transposes are materialised
// once before the foralls, never fused into the tiles (each tile would redo
// a strided copy of its slice). The dW forall tiles (o, i) with the whole
// reduction over the N = 32 tokens in each tile.
// GRAD-LABEL: func.func @linear_train_grad
// GRAD-SAME:    (%[[X:[^:]+]]: tensor<2x16x128xf32>, %[[W:[^:]+]]: tensor<256x128xf32>
// GRAD:         %[[DY:.+]] = tensor.expand_shape %[[DYF:[^ ]+]] {{.*}} into tensor<2x16x256xf32>
// GRAD:         %[[WT:.+]] = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d1, d0)>, affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]} ins(%[[W]] : tensor<256x128xf32>) outs(%{{.+}} : tensor<128x256xf32>)
// GRAD:         %[[DX:.+]] = scf.forall (%[[B:.+]], %[[I:.+]]) = (0, 0) to (2, 128) step (1, 64) shared_outs(%{{.+}} = %{{.+}}) -> (tensor<2x16x128xf32>) {
// GRAD-NEXT:      tensor.extract_slice %[[DY]][%[[B]], 0, 0] [1, 16, 256] [1, 1, 1]
// GRAD-NEXT:      tensor.extract_slice %[[WT]][%[[I]], 0] [64, 256] [1, 1] : tensor<128x256xf32> to tensor<64x256xf32>
// GRAD-NOT:       affine_map<(d0, d1) -> (d1, d0)>
// GRAD:           linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "parallel", "reduction"]} {{.*}} attrs = {rwkv.projection}
// GRAD:           tensor.parallel_insert_slice
// GRAD:         %[[DYT:.+]] = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d1, d0)>, {{.*}} ins(%[[DYF]] : tensor<32x256xf32>) outs(%{{.+}} : tensor<256x32xf32>)
// GRAD:         %[[XF:.+]] = tensor.collapse_shape %[[X]]
// GRAD:         %[[XT:.+]] = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d1, d0)>, {{.*}} ins(%[[XF]] : tensor<32x128xf32>) outs(%{{.+}} : tensor<128x32xf32>)
// GRAD:         %[[DYE:.+]] = tensor.expand_shape %[[DYT]] {{.*}} into tensor<1x256x32xf32>
// GRAD:         %[[DW:.+]] = scf.forall (%[[O:.+]], %[[I2:.+]]) = (0, 0) to (256, 128) step (16, 64) shared_outs(%[[ACC:.+]] = %{{.+}}) -> (tensor<1x256x128xf32>) {
// GRAD-NEXT:      %[[DYS:.+]] = tensor.extract_slice %[[DYE]][0, %[[O]], 0] [1, 16, 32] [1, 1, 1] : tensor<1x256x32xf32> to tensor<1x16x32xf32>
// GRAD-NEXT:      %[[XS:.+]] = tensor.extract_slice %[[XT]][%[[I2]], 0] [64, 32] [1, 1] : tensor<128x32xf32> to tensor<64x32xf32>
// GRAD-NEXT:      %[[AS:.+]] = tensor.extract_slice %[[ACC]][0, %[[O]], %[[I2]]] [1, 16, 64] [1, 1, 1]
// GRAD-NEXT:      %[[Z:.+]] = linalg.fill ins(%{{.+}} : f32) outs(%[[AS]] : tensor<1x16x64xf32>)
// GRAD-NEXT:      %[[DOT:.+]] = linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%[[DYS]], %[[XS]] : tensor<1x16x32xf32>, tensor<64x32xf32>) outs(%[[Z]] : tensor<1x16x64xf32>) attrs = {rwkv.projection}
// GRAD:           tensor.parallel_insert_slice %[[DOT]] into %[[ACC]][0, %[[O]], %[[I2]]] [1, 16, 64] [1, 1, 1]
// GRAD:         %[[DWC:.+]] = tensor.collapse_shape %[[DW]] {{.*}} into tensor<256x128xf32>
// GRAD:         return %{{.+}}, %[[DX]], %[[DWC]], %{{.+}} :
func.func @linear_train(%x: tensor<2x16x128xf32>, %w: tensor<256x128xf32>, %head: tensor<32x256xf32>, %tgt: tensor<2x16xi32>)
    -> tensor<f32> attributes {rwkv.gradient = "linear_train_grad"} {
  %y = rwkv.linear %x, %w : tensor<2x16x128xf32>, tensor<256x128xf32> -> tensor<2x16x256xf32>
  %l = rwkv.cross_entropy %y, %head, %tgt : tensor<2x16x256xf32>, tensor<32x256xf32>, tensor<2x16xi32> -> tensor<f32>
  return %l : tensor<f32>
}
