// RUN: rwkv-opt %s -split-input-file --rwkv-emulate-gpu-launch -verify-diagnostics | FileCheck %s

// rwkv-emulate-gpu-launch (codegen/CUDA/EmulateGpuLaunch.cpp): checks the
// GPU mapping without a GPU (rwkv-compile --target=cuda --cuda-emulate).
// Each gpu.launch becomes an scf.parallel over its grid around an
// scf.parallel over its block, the block and thread ids (the launch's
// region arguments and the gpu.block_id / gpu.thread_id ops of its body)
// the induction variables, so the CPU back end runs exactly the kernel
// bodies and index arithmetic the CUDA back end compiles. Kernels whose
// threads share memory or synchronise are not independent iterations and
// are refused.

// CHECK-LABEL: func.func @launch
// CHECK-SAME:    (%[[N:[^:]+]]: index, %[[X:[^:]+]]: memref<?xf32>)
// CHECK-DAG:     %[[C1:.+]] = arith.constant 1 : index
// CHECK-DAG:     %[[C2:.+]] = arith.constant 2 : index
// CHECK-DAG:     %[[C256:.+]] = arith.constant 256 : index
// CHECK-DAG:     %[[ZERO:.+]] = arith.constant 0 : index
// CHECK-DAG:     %[[STEP:.+]] = arith.constant 1 : index
// CHECK:         scf.parallel (%[[BX:[^,]+]], %[[BY:[^,]+]], %[[BZ:[^)]+]]) = (%[[ZERO]], %[[ZERO]], %[[ZERO]]) to (%[[N]], %[[C2]], %[[C1]]) step (%[[STEP]], %[[STEP]], %[[STEP]]) {
// CHECK-NEXT:      scf.parallel (%[[TX:[^,]+]], %[[TY:[^,]+]], %[[TZ:[^)]+]]) = (%[[ZERO]], %[[ZERO]], %[[ZERO]]) to (%[[C256]], %[[C1]], %[[C1]]) step (%[[STEP]], %[[STEP]], %[[STEP]]) {
// The block size region argument is the launch operand.
// CHECK-NEXT:        %[[BASE:.+]] = arith.muli %[[BX]], %[[C256]] : index
// CHECK-NEXT:        %[[G:.+]] = arith.addi %[[BASE]], %[[TX]] : index
// CHECK-NEXT:        %[[H:.+]] = arith.addi %[[G]], %[[BY]] : index
// CHECK-NEXT:        %[[CST:.+]] = arith.constant 1.000000e+00 : f32
// CHECK-NEXT:        memref.store %[[CST]], %[[X]][%[[H]]] : memref<?xf32>
// The id ops read the induction variables too.
// CHECK-NEXT:        %[[K:.+]] = arith.addi %[[TX]], %[[BY]] : index
// CHECK-NEXT:        %[[L:.+]] = arith.addi %[[K]], %[[BZ]] : index
// CHECK-NEXT:        memref.store %[[CST]], %[[X]][%[[L]]] : memref<?xf32>
// CHECK-NEXT:        scf.reduce
// CHECK-NEXT:      }
// CHECK-NEXT:      scf.reduce
// CHECK-NEXT:    }
// CHECK-NEXT:    return
// CHECK-NOT:     gpu.
func.func @launch(%n: index, %x: memref<?xf32>) {
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %c256 = arith.constant 256 : index
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %n, %gy = %c2, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c256, %sy = %c1, %sz = %c1) {
    %base = arith.muli %bx, %sx : index
    %g = arith.addi %base, %tx : index
    %h = arith.addi %g, %by : index
    %cst = arith.constant 1.0 : f32
    memref.store %cst, %x[%h] : memref<?xf32>
    %tid = gpu.thread_id x
    %bid = gpu.block_id y
    %bidz = gpu.block_id z
    %k = arith.addi %tid, %bid : index
    %l = arith.addi %k, %bidz : index
    memref.store %cst, %x[%l] : memref<?xf32>
    gpu.terminator
  }
  return
}

// -----

// Two launches in a row (the host code between kernels is kept in order).
// CHECK-LABEL: func.func @two_launches
// CHECK:         scf.parallel
// CHECK:           scf.parallel
// CHECK:             memref.store %{{.+}}, %{{.+}}[%{{.+}}] : memref<4xf32>
// CHECK:         arith.addf
// CHECK:         scf.parallel
// CHECK:           scf.parallel
// CHECK:             memref.store %{{.+}}, %{{.+}}[%{{.+}}] : memref<4xf32>
// CHECK-NOT:     gpu.launch
func.func @two_launches(%x: memref<4xf32>, %a: f32) {
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %c1, %gy = %c1, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c4, %sy = %c1, %sz = %c1) {
    memref.store %a, %x[%tx] : memref<4xf32>
    gpu.terminator
  }
  %b = arith.addf %a, %a : f32
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %c1, %gy = %c1, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c4, %sy = %c1, %sz = %c1) {
    memref.store %b, %x[%tx] : memref<4xf32>
    gpu.terminator
  }
  return
}

// -----

func.func @barrier(%x: memref<4xf32>) {
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  %cst = arith.constant 0.0 : f32
  // expected-error @+1 {{a kernel whose threads synchronise or communicate cannot be emulated}}
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %c1, %gy = %c1, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c4, %sy = %c1, %sz = %c1) {
    memref.store %cst, %x[%tx] : memref<4xf32>
    gpu.barrier
    gpu.terminator
  }
  return
}

// -----

func.func @shared_memory(%x: memref<4xf32>) {
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  // expected-error @+1 {{only synchronous launches without shared memory or clusters can be emulated}}
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %c1, %gy = %c1, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c4, %sy = %c1, %sz = %c1)
             workgroup(%w : memref<4xf32, #gpu.address_space<workgroup>>) {
    %v = memref.load %x[%tx] : memref<4xf32>
    memref.store %v, %w[%tx] : memref<4xf32, #gpu.address_space<workgroup>>
    gpu.terminator
  }
  return
}

// -----

// The block dimension read through an op (rather than the region argument)
// is not mapped.
func.func @block_dim(%x: memref<4xindex>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  // expected-error @+1 {{a kernel reads its launch geometry through an op the emulation does not map}}
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %c1, %gy = %c1, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c1, %sy = %c1, %sz = %c1) {
    %d = gpu.block_dim x
    memref.store %d, %x[%c0] : memref<4xindex>
    gpu.terminator
  }
  return
}

// -----

// gpu.subgroup_reduce add (rwkv-warp-reductions): each lane recomputes the
// operand of the 32 lanes of its warp (the backward slice of the operand,
// with the lane's thread id: warp base + l) into a vector, sums it in the
// butterfly order of the GPU's shuffles (partner = lane xor 1, 2, 4, 8, 16,
// own value first), and takes its own lane's sum.
// CHECK-LABEL: func.func @subgroup_reduce
// CHECK:         scf.parallel
// CHECK:           scf.parallel (%[[TX:[^,]+]], %{{[^,]+}}, %{{[^)]+}}) =
// CHECK:             %[[LANE:.+]] = arith.remui %[[TX]], %{{.+}} : index
// CHECK:             %[[BASE:.+]] = arith.subi %[[TX]], %[[LANE]] : index
// CHECK:             %[[ALL:.+]] = scf.for %[[L:[^ ]+]] = {{.+}} iter_args(%[[V:[^ ]+]] = {{.+}}) -> (vector<32xf32>) {
// CHECK:               %[[T:.+]] = arith.addi %[[BASE]], %[[L]] : index
// CHECK:               %[[P:.+]] = memref.load %{{.+}}[%[[T]]] : memref<64xf32>
// CHECK:               %[[INS:.+]] = vector.insert %[[P]], %[[V]] [%[[L]]] : f32 into vector<32xf32>
// CHECK:               scf.yield %[[INS]]
// CHECK:             %[[S1:.+]] = vector.shuffle %[[ALL]], %[[ALL]] [1, 0, 3, 2,
// CHECK:             %[[A1:.+]] = arith.addf %[[ALL]], %[[S1]] : vector<32xf32>
// CHECK:             vector.shuffle %[[A1]], %[[A1]] [2, 3, 0, 1,
// CHECK:             vector.shuffle %{{.+}} [4, 5, 6, 7, 0,
// CHECK:             vector.shuffle %{{.+}} [8, 9,
// CHECK:             %[[S16:.+]] = vector.shuffle %{{.+}} [16, 17,
// CHECK:             %[[A16:.+]] = arith.addf %{{.+}}, %[[S16]] : vector<32xf32>
// CHECK:             %[[MINE:.+]] = vector.extract %[[A16]][%[[LANE]]] : f32 from vector<32xf32>
// CHECK:             memref.store %[[MINE]], %{{.+}}[%[[TX]]] : memref<64xf32>
// CHECK-NOT:     gpu.
func.func @subgroup_reduce(%x: memref<64xf32>, %y: memref<64xf32>) {
  %c1 = arith.constant 1 : index
  %c64 = arith.constant 64 : index
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %c1, %gy = %c1, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c64, %sy = %c1, %sz = %c1) {
    %v = memref.load %x[%tx] : memref<64xf32>
    %s = gpu.subgroup_reduce add %v uniform : (f32) -> f32
    memref.store %s, %y[%tx] : memref<64xf32>
    gpu.terminator
  }
  return
}

// -----

// The operand must be recomputable: an op that writes memory is not.
func.func @subgroup_reduce_writes(%x: memref<64xf32>, %a: f32) {
  %c1 = arith.constant 1 : index
  %c64 = arith.constant 64 : index
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %c1, %gy = %c1, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c64, %sy = %c1, %sz = %c1) {
    %v = memref.atomic_rmw addf %a, %x[%tx] : (f32, memref<64xf32>) -> f32
    // expected-error @+1 {{the operand of a gpu.subgroup_reduce is computed by an op that writes memory; cannot emulate}}
    %s = gpu.subgroup_reduce add %v uniform : (f32) -> f32
    memref.store %s, %x[%tx] : memref<64xf32>
    gpu.terminator
  }
  return
}

// -----

// Whole warps only: a 48-thread block has a partial one.
func.func @subgroup_reduce_partial_warp(%x: memref<64xf32>) {
  %c1 = arith.constant 1 : index
  %c48 = arith.constant 48 : index
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %c1, %gy = %c1, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c48, %sy = %c1, %sz = %c1) {
    %v = memref.load %x[%tx] : memref<64xf32>
    // expected-error @+1 {{only a float gpu.subgroup_reduce add over whole warps of a 1-D block can be emulated}}
    %s = gpu.subgroup_reduce add %v uniform : (f32) -> f32
    memref.store %s, %x[%tx] : memref<64xf32>
    gpu.terminator
  }
  return
}
