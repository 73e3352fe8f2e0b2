// RUN: rwkv-opt %s -split-input-file --convert-scf-to-openmp --canonicalize --rwkv-guard-parallel-regions --rwkv-merge-parallel-regions | FileCheck %s
// RUN: rwkv-opt %s -split-input-file --convert-scf-to-openmp --canonicalize --rwkv-guard-parallel-regions --rwkv-merge-parallel-regions --rwkv-inline-static-schedule | FileCheck %s --check-prefix=INLINE
// RUN: rwkv-opt %s -split-input-file --convert-scf-to-openmp --canonicalize --rwkv-guard-parallel-regions --rwkv-merge-parallel-regions=barriers=false | FileCheck %s --check-prefix=NOBAR

// Two independent products with the serial preparation of the second's
// input between them (as the r and k projections of a layer): the
// preparation moves above the first region, and both loops share one
// region; the first loop does not wait for the other threads.
// CHECK-LABEL: func.func @independent
// CHECK-SAME:    (%[[X:[^:]+]]: memref<256xf32>, %[[W:[^:]+]]: memref<256xf32>
// CHECK:         %[[R:.+]] = memref.alloc() : memref<256xf32>
// CHECK:         %[[Q:.+]] = memref.alloc() : memref<256xf32>
// CHECK:         scf.for
// CHECK:           memref.load %[[X]]
// CHECK:           memref.store %{{.+}}, %[[Q]]
// CHECK:         omp.parallel {
// CHECK-NEXT:      omp.wsloop nowait {
// CHECK:             memref.store %{{.+}}, %[[R]]
// CHECK:           omp.wsloop {
// CHECK:             memref.load %[[Q]]
// CHECK:           omp.terminator
// CHECK-NOT:     omp.parallel
// CHECK:         return %[[R]], %[[K:.+]] :
// NOBAR-LABEL: func.func @independent
// NOBAR:         omp.parallel {
// NOBAR:           omp.wsloop nowait
// NOBAR:           omp.wsloop {
// NOBAR-NOT:     omp.parallel
// INLINE-LABEL: func.func @independent
// INLINE:         omp.parallel {
// INLINE-NOT:       omp.barrier
// INLINE:           omp.terminator
func.func @independent(%x: memref<256xf32>, %w: memref<256xf32>)
    -> (memref<256xf32>, memref<256xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c64 = arith.constant 64 : index
  %c256 = arith.constant 256 : index
  %r = memref.alloc() : memref<256xf32>
  scf.parallel (%i) = (%c0) to (%c256) step (%c64) {
    %v = memref.load %w[%i] : memref<256xf32>
    memref.store %v, %r[%i] : memref<256xf32>
    scf.reduce
  }
  %q = memref.alloc() : memref<256xf32>
  scf.for %i = %c0 to %c256 step %c1 {
    %v = memref.load %x[%i] : memref<256xf32>
    %s = arith.mulf %v, %v : f32
    memref.store %s, %q[%i] : memref<256xf32>
  }
  %k = memref.alloc() : memref<256xf32>
  scf.parallel (%i) = (%c0) to (%c256) step (%c64) {
    %v = memref.load %q[%i] : memref<256xf32>
    memref.store %v, %k[%i] : memref<256xf32>
    scf.reduce
  }
  return %r, %k : memref<256xf32>, memref<256xf32>
}

// -----

// The second product reads what the first writes: one region, and the
// first loop keeps its implicit barrier (an omp.barrier once the schedule
// is inlined, none after the last loop: the join waits).
// CHECK-LABEL: func.func @dependent
// CHECK:         omp.parallel {
// CHECK-NEXT:      omp.wsloop {
// CHECK:           omp.wsloop {
// CHECK:           omp.terminator
// CHECK-NOT:     omp.parallel
// NOBAR-LABEL: func.func @dependent
// NOBAR:         omp.parallel {
// NOBAR:           omp.terminator
// NOBAR:         omp.parallel {
// INLINE-LABEL: func.func @dependent
// INLINE:         omp.parallel {
// INLINE:           scf.for
// INLINE:             memref.store
// INLINE:           omp.barrier
// INLINE:           scf.for
// INLINE:             memref.load
// INLINE-NOT:       omp.barrier
// INLINE:           omp.terminator
func.func @dependent(%w: memref<256xf32>) -> memref<256xf32> {
  %c0 = arith.constant 0 : index
  %c64 = arith.constant 64 : index
  %c256 = arith.constant 256 : index
  %r = memref.alloc() : memref<256xf32>
  scf.parallel (%i) = (%c0) to (%c256) step (%c64) {
    %v = memref.load %w[%i] : memref<256xf32>
    memref.store %v, %r[%i] : memref<256xf32>
    scf.reduce
  }
  %k = memref.alloc() : memref<256xf32>
  scf.parallel (%i) = (%c0) to (%c256) step (%c64) {
    %j = arith.subi %c256, %i : index
    %jj = arith.subi %j, %c64 : index
    %v = memref.load %r[%jj] : memref<256xf32>
    memref.store %v, %k[%i] : memref<256xf32>
    scf.reduce
  }
  return %k : memref<256xf32>
}

// -----

// The serial code between reads what the first region writes, and the
// second region needs it: it cannot move, and the regions stay apart.
// CHECK-LABEL: func.func @serial_between
// CHECK:         omp.parallel {
// CHECK:           omp.terminator
// CHECK:         scf.for
// CHECK:         omp.parallel {
// CHECK:           omp.terminator
func.func @serial_between(%w: memref<256xf32>) -> memref<256xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c64 = arith.constant 64 : index
  %c256 = arith.constant 256 : index
  %r = memref.alloc() : memref<256xf32>
  scf.parallel (%i) = (%c0) to (%c256) step (%c64) {
    %v = memref.load %w[%i] : memref<256xf32>
    memref.store %v, %r[%i] : memref<256xf32>
    scf.reduce
  }
  %q = memref.alloc() : memref<256xf32>
  scf.for %i = %c0 to %c256 step %c1 {
    %v = memref.load %r[%i] : memref<256xf32>
    memref.store %v, %q[%i] : memref<256xf32>
  }
  %k = memref.alloc() : memref<256xf32>
  scf.parallel (%i) = (%c0) to (%c256) step (%c64) {
    %v = memref.load %q[%i] : memref<256xf32>
    memref.store %v, %k[%i] : memref<256xf32>
    scf.reduce
  }
  return %k : memref<256xf32>
}

// -----

// Code between that the second region does not need stays after the merged
// region, even when it reads what the first writes.
// CHECK-LABEL: func.func @unneeded_between
// CHECK:         omp.parallel {
// CHECK:           omp.wsloop nowait
// CHECK:           omp.wsloop
// CHECK:           omp.terminator
// CHECK:         scf.for
// CHECK-NOT:     omp.parallel
func.func @unneeded_between(%w: memref<256xf32>, %x: memref<256xf32>)
    -> (memref<256xf32>, memref<256xf32>, memref<256xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c64 = arith.constant 64 : index
  %c256 = arith.constant 256 : index
  %r = memref.alloc() : memref<256xf32>
  scf.parallel (%i) = (%c0) to (%c256) step (%c64) {
    %v = memref.load %w[%i] : memref<256xf32>
    memref.store %v, %r[%i] : memref<256xf32>
    scf.reduce
  }
  %q = memref.alloc() : memref<256xf32>
  scf.for %i = %c0 to %c256 step %c1 {
    %v = memref.load %r[%i] : memref<256xf32>
    memref.store %v, %q[%i] : memref<256xf32>
  }
  %k = memref.alloc() : memref<256xf32>
  scf.parallel (%i) = (%c0) to (%c256) step (%c64) {
    %v = memref.load %x[%i] : memref<256xf32>
    memref.store %v, %k[%i] : memref<256xf32>
    scf.reduce
  }
  return %r, %q, %k : memref<256xf32>, memref<256xf32>, memref<256xf32>
}

// -----

// Function arguments may be the same buffer (in-place states): writes to
// two of them are ordered by the barrier.
// CHECK-LABEL: func.func @arguments_may_alias
// CHECK:         omp.parallel {
// CHECK-NEXT:      omp.wsloop {
// CHECK:           omp.wsloop {
// CHECK-NOT:     omp.parallel
func.func @arguments_may_alias(%a: memref<256xf32>, %b: memref<256xf32>) {
  %c0 = arith.constant 0 : index
  %c64 = arith.constant 64 : index
  %c256 = arith.constant 256 : index
  %cst = arith.constant 1.0 : f32
  scf.parallel (%i) = (%c0) to (%c256) step (%c64) {
    memref.store %cst, %a[%i] : memref<256xf32>
    scf.reduce
  }
  scf.parallel (%i) = (%c0) to (%c256) step (%c64) {
    memref.store %cst, %b[%i] : memref<256xf32>
    scf.reduce
  }
  return
}

// -----

// An op whose effects are unknown (a call) between the regions could touch
// anything: nothing moves across it.
// CHECK-LABEL: func.func @unknown_between
// CHECK:         omp.parallel {
// CHECK:           omp.terminator
// CHECK:         call @touch
// CHECK:         omp.parallel {
func.func private @touch(memref<256xf32>)
func.func @unknown_between(%w: memref<256xf32>) -> memref<256xf32> {
  %c0 = arith.constant 0 : index
  %c64 = arith.constant 64 : index
  %c256 = arith.constant 256 : index
  %r = memref.alloc() : memref<256xf32>
  scf.parallel (%i) = (%c0) to (%c256) step (%c64) {
    %v = memref.load %w[%i] : memref<256xf32>
    memref.store %v, %r[%i] : memref<256xf32>
    scf.reduce
  }
  %q = memref.alloc() : memref<256xf32>
  call @touch(%q) : (memref<256xf32>) -> ()
  scf.parallel (%i) = (%c0) to (%c256) step (%c64) {
    %v = memref.load %q[%i] : memref<256xf32>
    memref.store %v, %q[%i] : memref<256xf32>
    scf.reduce
  }
  return %r : memref<256xf32>
}

// -----

// Regions that fork only for more than one tile (a dynamic prompt length)
// are left alone: in decode they run on the caller.
// CHECK-LABEL: func.func @guarded
// CHECK:         omp.parallel if(
// CHECK:         omp.parallel if(
func.func @guarded(%n: index, %a: memref<?xf32>, %b: memref<?xf32>) {
  %c0 = arith.constant 0 : index
  %c16 = arith.constant 16 : index
  %cst = arith.constant 1.0 : f32
  scf.parallel (%i) = (%c0) to (%n) step (%c16) {
    memref.store %cst, %a[%i] : memref<?xf32>
    scf.reduce
  }
  scf.parallel (%i) = (%c0) to (%n) step (%c16) {
    memref.store %cst, %b[%i] : memref<?xf32>
    scf.reduce
  }
  return
}
