// RUN: rwkv-opt %s --rwkv-lower-strided-copies | FileCheck %s

// rwkv-lower-strided-copies (codegen/LowerStridedCopies.cpp): a copy into a
// strided view (a batch > 1 token slice) becomes linalg.copy, which lowers
// to loops instead of a call to the C runner utils' memrefCopy; contiguous
// copies stay memref.copy (llvm.memcpy).

// CHECK-LABEL: func.func @copies
// CHECK-SAME:    (%[[A:.+]]: memref<2x128xf32>, %[[Y:.+]]: memref<2x7x128xf32>, %[[B:.+]]: memref<2x128xf32>, %[[T:.+]]: index)
// CHECK:         %[[S:.+]] = memref.subview %[[Y]]
// CHECK-NEXT:    linalg.copy ins(%[[A]] : memref<2x128xf32>) outs(%[[S]] : memref<2x128xf32, strided<[896, 1], offset: ?>>)
// CHECK-NEXT:    memref.copy %[[A]], %[[B]] : memref<2x128xf32> to memref<2x128xf32>
// CHECK-NOT:     memref.copy
func.func @copies(%a: memref<2x128xf32>, %y: memref<2x7x128xf32>, %b: memref<2x128xf32>, %t: index) {
  %s = memref.subview %y[0, %t, 0] [2, 1, 128] [1, 1, 1] : memref<2x7x128xf32> to memref<2x128xf32, strided<[896, 1], offset: ?>>
  memref.copy %a, %s : memref<2x128xf32> to memref<2x128xf32, strided<[896, 1], offset: ?>>
  memref.copy %a, %b : memref<2x128xf32> to memref<2x128xf32>
  return
}
