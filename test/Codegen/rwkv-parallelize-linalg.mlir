// RUN: rwkv-opt %s -split-input-file --rwkv-parallelize-linalg --canonicalize | FileCheck %s

// A row reduction (min-work 16384 / 768 = 21 rows per tile), with the fill
// of its accumulator fused into the tile.
// CHECK-LABEL: func.func @row_sums
// CHECK:         %[[E:.+]] = tensor.empty() : tensor<2048xf32>
// CHECK:         scf.forall (%[[I:.+]]) = (0) to (2048) step (21) shared_outs(%[[O:.+]] = %[[E]]) -> (tensor<2048xf32>)
// CHECK:           %[[N:.+]] = affine.min {{.+}}(%[[I]])
// CHECK:           %[[X:.+]] = tensor.extract_slice %{{.+}}[%[[I]], 0] [%[[N]], 768] [1, 1] : tensor<2048x768xf32> to tensor<?x768xf32>
// CHECK:           %[[OS:.+]] = tensor.extract_slice %[[O]][%[[I]]] [%[[N]]] [1]
// CHECK:           %[[Z:.+]] = linalg.fill ins(%{{.+}} : f32) outs(%[[OS]] : tensor<?xf32>)
// CHECK:           %[[S:.+]] = linalg.generic {{.+}} ins(%[[X]] : tensor<?x768xf32>) outs(%[[Z]] : tensor<?xf32>)
// CHECK:           tensor.parallel_insert_slice %[[S]] into %[[O]][%[[I]]] [%[[N]]] [1]
// CHECK-NOT:     linalg.fill
func.func @row_sums(%x: tensor<2048x768xf32>) -> tensor<2048xf32> {
  %c0 = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<2048xf32>
  %z = linalg.fill ins(%c0 : f32) outs(%e : tensor<2048xf32>) -> tensor<2048xf32>
  %s = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d0)>],
                       iterator_types = ["parallel", "reduction"]}
      ins(%x : tensor<2048x768xf32>) outs(%z : tensor<2048xf32>) {
  ^bb0(%in: f32, %acc: f32):
    %a = arith.addf %in, %acc : f32
    linalg.yield %a : f32
  } -> tensor<2048xf32>
  return %s : tensor<2048xf32>
}

// -----

// Element-wise over [B, T, C] with a static B (a --batch 4 library) and a
// dynamic T: rows of 768 and the 4 sequences stay whole, 16384 / (4 * 768)
// = 5 tokens per tile, so that one decoded token of the batch is one tile
// (which rwkv-guard-parallel-regions runs without forking), not 4.
// CHECK-LABEL: func.func @elementwise
// CHECK:         scf.forall (%{{.+}}) = (0) to (%{{.+}}) step (5)
// CHECK:           linalg.generic {{.+}} ins(%{{.+}} : tensor<4x?x768xf32>) outs(%{{.+}} : tensor<4x?x768xf32>)
func.func @elementwise(%x: tensor<4x?x768xf32>) -> tensor<4x?x768xf32> {
  %c1 = arith.constant 1 : index
  %t = tensor.dim %x, %c1 : tensor<4x?x768xf32>
  %e = tensor.empty(%t) : tensor<4x?x768xf32>
  %y = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>],
                       iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%x : tensor<4x?x768xf32>) outs(%e : tensor<4x?x768xf32>) {
  ^bb0(%in: f32, %o: f32):
    %m = arith.mulf %in, %in : f32
    linalg.yield %m : f32
  } -> tensor<4x?x768xf32>
  return %y : tensor<4x?x768xf32>
}

// -----

// With a dynamic B as well, the sequences are tiled by 1 and the tokens by
// 21 (16384 / 768): the tile count follows both.
// CHECK-LABEL: func.func @elementwise_dynamic_batch
// CHECK:         scf.forall (%{{.+}}, %{{.+}}) = (0, 0) to (%{{.+}}, %{{.+}}) step (1, 21)
// CHECK:           linalg.generic {{.+}} ins(%{{.+}} : tensor<1x?x768xf32>) outs(%{{.+}} : tensor<1x?x768xf32>)
func.func @elementwise_dynamic_batch(%x: tensor<?x?x768xf32>) -> tensor<?x?x768xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %b = tensor.dim %x, %c0 : tensor<?x?x768xf32>
  %t = tensor.dim %x, %c1 : tensor<?x?x768xf32>
  %e = tensor.empty(%b, %t) : tensor<?x?x768xf32>
  %y = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>],
                       iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%x : tensor<?x?x768xf32>) outs(%e : tensor<?x?x768xf32>) {
  ^bb0(%in: f32, %o: f32):
    %m = arith.mulf %in, %in : f32
    linalg.yield %m : f32
  } -> tensor<?x?x768xf32>
  return %y : tensor<?x?x768xf32>
}

// -----

// A column sum over (b, t) (a parameter gradient): the parallel channel
// loop is tiled (by the 16-float minimum of an innermost tile), the
// reductions stay whole.
// CHECK-LABEL: func.func @column_sums
// CHECK:         scf.forall (%[[C:.+]]) = (0) to (768) step (16)
// CHECK:           tensor.extract_slice %{{.+}}[0, 0, %[[C]]] [4, 512, 16] [1, 1, 1]
// CHECK:           linalg.generic {{.+}}iterator_types = ["reduction", "reduction", "parallel"]{{.+}} outs(%{{.+}} : tensor<16xf32>)
func.func @column_sums(%x: tensor<4x512x768xf32>, %init: tensor<768xf32>) -> tensor<768xf32> {
  %s = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d2)>],
                       iterator_types = ["reduction", "reduction", "parallel"]}
      ins(%x : tensor<4x512x768xf32>) outs(%init : tensor<768xf32>) {
  ^bb0(%in: f32, %acc: f32):
    %a = arith.addf %in, %acc : f32
    linalg.yield %a : f32
  } -> tensor<768xf32>
  return %s : tensor<768xf32>
}

// -----

// Decode-sized: left alone.
// CHECK-LABEL: func.func @small
// CHECK-NOT:     scf.forall
// CHECK:         linalg.generic
func.func @small(%x: tensor<1x1x768xf32>) -> tensor<1x1x768xf32> {
  %e = tensor.empty() : tensor<1x1x768xf32>
  %y = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>],
                       iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%x : tensor<1x1x768xf32>) outs(%e : tensor<1x1x768xf32>) {
  ^bb0(%in: f32, %o: f32):
    %m = arith.mulf %in, %in : f32
    linalg.yield %m : f32
  } -> tensor<1x1x768xf32>
  return %y : tensor<1x1x768xf32>
}

// -----

// Already inside an scf.forall: left alone (no nested parallel region).
// CHECK-LABEL: func.func @nested
// CHECK:         scf.forall
// CHECK-NOT:       scf.forall
// CHECK:           linalg.generic {{.+}} ins(%{{.+}} : tensor<2048x768xf32>)
func.func @nested(%x: tensor<8x2048x768xf32>) -> tensor<8x2048x768xf32> {
  %e = tensor.empty() : tensor<8x2048x768xf32>
  %r = scf.forall (%i) in (8) shared_outs(%o = %e) -> (tensor<8x2048x768xf32>) {
    %xs = tensor.extract_slice %x[%i, 0, 0] [1, 2048, 768] [1, 1, 1] : tensor<8x2048x768xf32> to tensor<2048x768xf32>
    %os = tensor.extract_slice %o[%i, 0, 0] [1, 2048, 768] [1, 1, 1] : tensor<8x2048x768xf32> to tensor<2048x768xf32>
    %y = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d0, d1)>],
                         iterator_types = ["parallel", "parallel"]}
        ins(%xs : tensor<2048x768xf32>) outs(%os : tensor<2048x768xf32>) {
    ^bb0(%in: f32, %out: f32):
      %m = arith.mulf %in, %in : f32
      linalg.yield %m : f32
    } -> tensor<2048x768xf32>
    scf.forall.in_parallel {
      tensor.parallel_insert_slice %y into %o[%i, 0, 0] [1, 2048, 768] [1, 1, 1] : tensor<2048x768xf32> into tensor<8x2048x768xf32>
    }
  }
  return %r : tensor<8x2048x768xf32>
}
