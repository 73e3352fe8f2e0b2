// RUN: rwkv-opt %s --rwkv-entry-out-params | FileCheck %s

// Public functions return their results through appended out-parameters: a
// static result allocated in the function is written straight into the
// out-parameter, others are copied with linalg.copy. Private functions
// (outlined layers) keep their results, dynamic shapes included.

// CHECK-LABEL: func.func @entry
// CHECK-SAME:    (%[[T:.+]]: memref<1x?xi32>, %[[X:.+]]: memref<1x?x4xf32>, %[[L:.+]]: memref<1x4xf32>, %[[D:.+]]: memref<1x?x4xf32>)
// CHECK-NOT:     memref.alloc() : memref<1x4xf32>
// CHECK:         linalg.fill ins(%{{.+}} : f32) outs(%[[L]] : memref<1x4xf32>)
// CHECK:         %[[R:.+]] = call @layer(%[[X]]) : (memref<1x?x4xf32>) -> memref<1x?x4xf32>
// CHECK:         linalg.copy ins(%[[R]] : memref<1x?x4xf32>) outs(%[[D]] : memref<1x?x4xf32>)
// CHECK:         return
// CHECK-NOT:     memref
// CHECK-LABEL: func.func private @layer
// CHECK-SAME:    -> memref<1x?x4xf32>
func.func @entry(%t: memref<1x?xi32>, %x: memref<1x?x4xf32>) -> (memref<1x4xf32>, memref<1x?x4xf32>) {
  %c0 = arith.constant 0.0 : f32
  %l = memref.alloc() : memref<1x4xf32>
  linalg.fill ins(%c0 : f32) outs(%l : memref<1x4xf32>)
  %r = call @layer(%x) : (memref<1x?x4xf32>) -> memref<1x?x4xf32>
  return %l, %r : memref<1x4xf32>, memref<1x?x4xf32>
}

func.func private @layer(%x: memref<1x?x4xf32>) -> memref<1x?x4xf32> {
  return %x : memref<1x?x4xf32>
}
