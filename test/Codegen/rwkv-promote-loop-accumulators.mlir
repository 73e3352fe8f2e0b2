// RUN: rwkv-opt %s -split-input-file --rwkv-promote-loop-accumulators | FileCheck %s

// rwkv-promote-loop-accumulators (codegen/CUDA/PromoteLoopAccumulators.cpp):
// convert-linalg-to-parallel-loops leaves a reduction as an scf.for that
// loads the output element, adds to it and stores it back on every
// iteration: in a kernel, a global-memory round trip per multiply-add.
// Inside gpu.launch bodies, a loop that loads and stores one memref element
// at the same loop-invariant indices, and uses that memref nowhere else,
// carries the element as an iter_arg instead: one load before the loop, one
// store after it. Anything less certain (a second store, a conditional one,
// indices that move with the loop, another use of the memref) is left
// alone.

// CHECK-LABEL: func.func @reduction
// CHECK-SAME:    (%[[X:[^:]+]]: memref<?x768xf32>, %[[Y:[^:]+]]: memref<?x1024xf32>, %[[T:[^:]+]]: index, %[[N:[^:]+]]: index)
// CHECK:         gpu.launch
// CHECK-NEXT:      %[[INIT:.+]] = memref.load %[[Y]][%[[T]], %[[N]]] : memref<?x1024xf32>
// CHECK-NEXT:      %[[R:.+]] = scf.for %[[K:.+]] = %{{.+}} to %{{.+}} step %{{.+}} iter_args(%[[ACC:.+]] = %[[INIT]]) -> (f32) {
// CHECK-NEXT:        %[[P:.+]] = memref.load %[[X]][%[[T]], %[[K]]] : memref<?x768xf32>
// CHECK-NEXT:        %[[S:.+]] = arith.addf %[[ACC]], %[[P]] : f32
// CHECK-NEXT:        scf.yield %[[S]] : f32
// CHECK-NEXT:      }
// CHECK-NEXT:      memref.store %[[R]], %[[Y]][%[[T]], %[[N]]] : memref<?x1024xf32>
// CHECK-NEXT:      gpu.terminator
func.func @reduction(%x: memref<?x768xf32>, %y: memref<?x1024xf32>, %t: index, %n: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c768 = arith.constant 768 : index
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %c1, %gy = %c1, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c1, %sy = %c1, %sz = %c1) {
    scf.for %k = %c0 to %c768 step %c1 {
      %p = memref.load %x[%t, %k] : memref<?x768xf32>
      %a = memref.load %y[%t, %n] : memref<?x1024xf32>
      %s = arith.addf %a, %p : f32
      memref.store %s, %y[%t, %n] : memref<?x1024xf32>
    }
    gpu.terminator
  }
  return
}

// -----

// Nested reductions (a matrix-vector product over rows and columns): the
// inner loop is promoted first, after which the outer loop sees one load
// and one store and is promoted too; the element is read and written once.
// CHECK-LABEL: func.func @nested
// CHECK-SAME:    (%[[X:[^:]+]]: memref<4x768xf32>, %[[Y:[^:]+]]: memref<?x1024xf32>, %[[T:[^:]+]]: index, %[[N:[^:]+]]: index)
// CHECK:         gpu.launch
// CHECK-NEXT:      %[[INIT:.+]] = memref.load %[[Y]][%[[T]], %[[N]]] : memref<?x1024xf32>
// CHECK-NEXT:      %[[R:.+]] = scf.for %[[I:.+]] = %{{.+}} to %{{.+}} step %{{.+}} iter_args(%[[OUTER:.+]] = %[[INIT]]) -> (f32) {
// CHECK-NEXT:        %[[RI:.+]] = scf.for %[[K:.+]] = %{{.+}} to %{{.+}} step %{{.+}} iter_args(%[[INNER:.+]] = %[[OUTER]]) -> (f32) {
// CHECK-NEXT:          %[[P:.+]] = memref.load %[[X]][%[[I]], %[[K]]] : memref<4x768xf32>
// CHECK-NEXT:          %[[S:.+]] = arith.addf %[[INNER]], %[[P]] : f32
// CHECK-NEXT:          scf.yield %[[S]] : f32
// CHECK-NEXT:        }
// CHECK-NEXT:        scf.yield %[[RI]] : f32
// CHECK-NEXT:      }
// CHECK-NEXT:      memref.store %[[R]], %[[Y]][%[[T]], %[[N]]] : memref<?x1024xf32>
// CHECK-NEXT:      gpu.terminator
// CHECK-NOT:     memref.store
func.func @nested(%x: memref<4x768xf32>, %y: memref<?x1024xf32>, %t: index, %n: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  %c768 = arith.constant 768 : index
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %c1, %gy = %c1, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c1, %sy = %c1, %sz = %c1) {
    scf.for %i = %c0 to %c4 step %c1 {
      scf.for %k = %c0 to %c768 step %c1 {
        %p = memref.load %x[%i, %k] : memref<4x768xf32>
        %a = memref.load %y[%t, %n] : memref<?x1024xf32>
        %s = arith.addf %a, %p : f32
        memref.store %s, %y[%t, %n] : memref<?x1024xf32>
      }
    }
    gpu.terminator
  }
  return
}

// -----

// Host loops are not the pass's business (the CPU pipeline keeps its own
// loop shapes).
// CHECK-LABEL: func.func @host_loop
// CHECK-NOT:     iter_args
// CHECK:         scf.for
// CHECK-NEXT:      memref.load
// CHECK-NEXT:      memref.load
// CHECK-NEXT:      arith.addf
// CHECK-NEXT:      memref.store
func.func @host_loop(%x: memref<768xf32>, %y: memref<1xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c768 = arith.constant 768 : index
  scf.for %k = %c0 to %c768 step %c1 {
    %p = memref.load %x[%k] : memref<768xf32>
    %a = memref.load %y[%c0] : memref<1xf32>
    %s = arith.addf %a, %p : f32
    memref.store %s, %y[%c0] : memref<1xf32>
  }
  return
}

// -----

// Loops that must stay as they are: every one keeps its loads and stores in
// the body and gets no iter_args.
// CHECK-LABEL: func.func @not_promoted
// CHECK-NOT:     iter_args
// A second store (to another buffer).
// CHECK:         scf.for
// CHECK-NEXT:      memref.load %{{.+}} : memref<768xf32>
// CHECK-NEXT:      memref.load %[[Y:[^\[]+]][%{{.+}}] : memref<4xf32>
// CHECK-NEXT:      arith.addf
// CHECK-NEXT:      memref.store %{{.+}}, %[[Y]][%{{.+}}] : memref<4xf32>
// CHECK-NEXT:      memref.store %{{.+}} : memref<4xf32>
// CHECK-NEXT:    }
// A store that does not run on every iteration.
// CHECK-NEXT:    scf.for
// CHECK-NEXT:      memref.load
// CHECK-NEXT:      memref.load
// CHECK-NEXT:      arith.addf
// CHECK-NEXT:      scf.if
// CHECK-NEXT:        memref.store
// CHECK-NEXT:      }
// CHECK-NEXT:    }
// Indices that vary with the loop: a different element every iteration.
// CHECK-NEXT:    scf.for %[[K:[^ ]+]] =
// CHECK-NEXT:      memref.load
// CHECK-NEXT:      memref.load %{{.+}}[%[[K]]] : memref<4xf32>
// CHECK-NEXT:      arith.addf
// CHECK-NEXT:      memref.store %{{.+}}, %{{.+}}[%[[K]]] : memref<4xf32>
// CHECK-NEXT:    }
// Load and store of different elements.
// CHECK-NEXT:    scf.for
// CHECK-NEXT:      memref.load
// CHECK-NEXT:      memref.load
// CHECK-NEXT:      arith.addf
// CHECK-NEXT:      memref.store
// CHECK-NEXT:    }
// Another use of the memref in the loop (a view of it).
// CHECK-NEXT:    scf.for
// CHECK-NEXT:      memref.load
// CHECK-NEXT:      memref.load
// CHECK-NEXT:      arith.addf
// CHECK-NEXT:      memref.store
// CHECK-NEXT:      memref.subview
// CHECK-NEXT:      memref.load
// CHECK-NEXT:    }
// CHECK-NEXT:    gpu.terminator
func.func @not_promoted(%x: memref<768xf32>, %y: memref<4xf32>, %z: memref<4xf32>, %c: i1) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  %c768 = arith.constant 768 : index
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %c1, %gy = %c1, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c1, %sy = %c1, %sz = %c1) {
    scf.for %k = %c0 to %c768 step %c1 {
      %p = memref.load %x[%k] : memref<768xf32>
      %a = memref.load %y[%c0] : memref<4xf32>
      %s = arith.addf %a, %p : f32
      memref.store %s, %y[%c0] : memref<4xf32>
      memref.store %s, %z[%c0] : memref<4xf32>
    }
    scf.for %k = %c0 to %c768 step %c1 {
      %p = memref.load %x[%k] : memref<768xf32>
      %a = memref.load %y[%c0] : memref<4xf32>
      %s = arith.addf %a, %p : f32
      scf.if %c {
        memref.store %s, %y[%c0] : memref<4xf32>
      }
    }
    scf.for %k = %c0 to %c4 step %c1 {
      %p = memref.load %x[%k] : memref<768xf32>
      %a = memref.load %y[%k] : memref<4xf32>
      %s = arith.addf %a, %p : f32
      memref.store %s, %y[%k] : memref<4xf32>
    }
    scf.for %k = %c0 to %c4 step %c1 {
      %p = memref.load %x[%k] : memref<768xf32>
      %a = memref.load %y[%c0] : memref<4xf32>
      %s = arith.addf %a, %p : f32
      memref.store %s, %y[%c1] : memref<4xf32>
    }
    scf.for %k = %c0 to %c4 step %c1 {
      %p = memref.load %x[%k] : memref<768xf32>
      %a = memref.load %y[%c0] : memref<4xf32>
      %s = arith.addf %a, %p : f32
      memref.store %s, %y[%c0] : memref<4xf32>
      %v = memref.subview %y[1] [2] [1] : memref<4xf32> to memref<2xf32, strided<[1], offset: 1>>
      %e = memref.load %v[%c0] : memref<2xf32, strided<[1], offset: 1>>
    }
    gpu.terminator
  }
  return
}
