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

// -----

// in-place-states: a state argument returned unchanged at its own position
// (result 1 + i is the i-th state argument) is copied into its out-parameter
// only when the runtime passed a different buffer, and the module lists it
// in rwkv_in_place_states. A state that one entry point returns as a new
// buffer (s1 in @other) or at another position is copied as before, and not
// listed.
// RUN: rwkv-opt %s -split-input-file --rwkv-entry-out-params=in-place-states=true | FileCheck %s --check-prefix=INPLACE
// INPLACE-LABEL: func.func @step
// INPLACE-SAME:    (%[[T:[^:]+]]: memref<1x?xi32>, %[[S0:[^:]+]]: memref<1x4xf32> {rwkv.state = "wkv:0"}, %[[S1:[^:]+]]: memref<1x4xf32> {rwkv.state = "wkv:1"}, %[[L:[^:]+]]: memref<1x4xf32>, %[[O0:[^:]+]]: memref<1x4xf32>, %[[O1:[^:]+]]: memref<1x4xf32>)
// INPLACE:         %[[P:.+]] = memref.extract_aligned_pointer_as_index %[[S0]]
// INPLACE:         %[[Q:.+]] = memref.extract_aligned_pointer_as_index %[[O0]]
// INPLACE:         %[[NE:.+]] = arith.cmpi ne, %[[P]], %[[Q]]
// INPLACE:         scf.if %[[NE]] {
// INPLACE-NEXT:      linalg.copy ins(%[[S0]] : memref<1x4xf32>) outs(%[[O0]] : memref<1x4xf32>)
// INPLACE:         linalg.copy ins(%[[S1]] : memref<1x4xf32>) outs(%[[O1]] : memref<1x4xf32>)
// INPLACE-NEXT:    return
// INPLACE-LABEL: func.func @other
// INPLACE:         scf.if
// INPLACE-NEXT:      linalg.copy
// INPLACE:         llvm.mlir.global external constant @rwkv_in_place_states("wkv:0\00")
func.func @step(%t: memref<1x?xi32>, %s0: memref<1x4xf32> {rwkv.state = "wkv:0"},
                %s1: memref<1x4xf32> {rwkv.state = "wkv:1"})
    -> (memref<1x4xf32>, memref<1x4xf32>, memref<1x4xf32>) {
  %l = memref.alloc() : memref<1x4xf32>
  return %l, %s0, %s1 : memref<1x4xf32>, memref<1x4xf32>, memref<1x4xf32>
}

func.func @other(%t: memref<1x?xi32>, %s0: memref<1x4xf32> {rwkv.state = "wkv:0"},
                 %s1: memref<1x4xf32> {rwkv.state = "wkv:1"})
    -> (memref<1x4xf32>, memref<1x4xf32>, memref<1x4xf32>) {
  %l = memref.alloc() : memref<1x4xf32>
  %n = memref.alloc() : memref<1x4xf32>
  return %l, %s0, %n : memref<1x4xf32>, memref<1x4xf32>, memref<1x4xf32>
}
