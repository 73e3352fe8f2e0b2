// RUN: rwkv-opt %s -split-input-file --canonicalize | FileCheck %s

// rwkv.dequantize folds into the projections and the embedding that read it
// (their `scale` operand), so the kernels read the int8 matrix; any other
// user keeps the dequantize.

// CHECK-LABEL: func.func @fold_dequantize
// CHECK-SAME:    (%[[X:.+]]: tensor<1x?x8xf32>, %[[Q:.+]]: tensor<16x8xi8>, %[[S:.+]]: tensor<16xf32>, %[[IDS:.+]]: tensor<1x?xi32>)
func.func @fold_dequantize(%x: tensor<1x?x8xf32>, %q: tensor<16x8xi8>, %s: tensor<16xf32>,
                           %ids: tensor<1x?xi32>)
    -> (tensor<1x?x16xf32>, tensor<1x1x16xf32>, tensor<1x?x8xf32>) {
  // CHECK-NOT: rwkv.dequantize
  %w = rwkv.dequantize %q, %s : tensor<16x8xi8>, tensor<16xf32> -> tensor<16x8xf32>
  // CHECK: %[[L:.+]] = rwkv.linear %[[X]], %[[Q]] scale %[[S]] : tensor<1x?x8xf32>, tensor<16x8xi8>, tensor<16xf32> -> tensor<1x?x16xf32>
  %l = rwkv.linear %x, %w : tensor<1x?x8xf32>, tensor<16x8xf32> -> tensor<1x?x16xf32>
  // CHECK: %[[H:.+]] = rwkv.head %[[X]], %[[Q]] scale %[[S]] {positions = #rwkv<positions last>}
  %h = rwkv.head %x, %w {positions = #rwkv<positions last>} : tensor<1x?x8xf32>, tensor<16x8xf32> -> tensor<1x1x16xf32>
  // CHECK: %[[E:.+]] = rwkv.embed %[[Q]], %[[IDS]] scale %[[S]] : tensor<16x8xi8>, tensor<1x?xi32>, tensor<16xf32> -> tensor<1x?x8xf32>
  %e = rwkv.embed %w, %ids : tensor<16x8xf32>, tensor<1x?xi32> -> tensor<1x?x8xf32>
  // CHECK: return %[[L]], %[[H]], %[[E]]
  return %l, %h, %e : tensor<1x?x16xf32>, tensor<1x1x16xf32>, tensor<1x?x8xf32>
}

// -----

// The int4 group goes with the scales.
// CHECK-LABEL: func.func @fold_dequantize_int4
// CHECK-SAME:    (%[[X:.+]]: tensor<1x?x8xf32>, %[[Q:.+]]: tensor<16x4xi8>, %[[S:.+]]: tensor<16x2xbf16>)
func.func @fold_dequantize_int4(%x: tensor<1x?x8xf32>, %q: tensor<16x4xi8>, %s: tensor<16x2xbf16>)
    -> tensor<1x?x16xf32> {
  // CHECK-NOT: rwkv.dequantize
  %w = rwkv.dequantize %q, %s group 4 : tensor<16x4xi8>, tensor<16x2xbf16> -> tensor<16x8xf32>
  // CHECK: rwkv.linear %[[X]], %[[Q]] scale %[[S]] group 4 : tensor<1x?x8xf32>, tensor<16x4xi8>, tensor<16x2xbf16> -> tensor<1x?x16xf32>
  %l = rwkv.linear %x, %w : tensor<1x?x8xf32>, tensor<16x8xf32> -> tensor<1x?x16xf32>
  return %l : tensor<1x?x16xf32>
}

// -----

// So does grouped int8's `int8`.
// CHECK-LABEL: func.func @fold_dequantize_int8_groups
// CHECK-SAME:    (%[[X:.+]]: tensor<1x?x8xf32>, %[[Q:.+]]: tensor<16x8xi8>, %[[S:.+]]: tensor<16x2xbf16>)
func.func @fold_dequantize_int8_groups(%x: tensor<1x?x8xf32>, %q: tensor<16x8xi8>, %s: tensor<16x2xbf16>)
    -> tensor<1x?x16xf32> {
  // CHECK-NOT: rwkv.dequantize
  %w = rwkv.dequantize %q, %s group 4 int8 : tensor<16x8xi8>, tensor<16x2xbf16> -> tensor<16x8xf32>
  // CHECK: rwkv.linear %[[X]], %[[Q]] scale %[[S]] group 4 int8 : tensor<1x?x8xf32>, tensor<16x8xi8>, tensor<16x2xbf16> -> tensor<1x?x16xf32>
  %l = rwkv.linear %x, %w : tensor<1x?x8xf32>, tensor<16x8xf32> -> tensor<1x?x16xf32>
  return %l : tensor<1x?x16xf32>
}

// -----

// A LoRA factor is never int8: its dequantize stays (and is materialised by
// convert-rwkv-to-linalg).
// CHECK-LABEL: func.func @keep_dequantize
func.func @keep_dequantize(%x: tensor<1x?x8xf32>, %q: tensor<8x4xi8>, %s: tensor<8xf32>,
                           %u: tensor<4x8xf32>) -> tensor<1x?x8xf32> {
  // CHECK: %[[D:.+]] = rwkv.dequantize
  %d = rwkv.dequantize %q, %s : tensor<8x4xi8>, tensor<8xf32> -> tensor<8x4xf32>
  // CHECK: rwkv.lora %{{.+}}, %[[D]], %{{.+}}
  %y = rwkv.lora %x, %d, %u : tensor<1x?x8xf32>, tensor<8x4xf32>, tensor<4x8xf32> -> tensor<1x?x8xf32>
  return %y : tensor<1x?x8xf32>
}
