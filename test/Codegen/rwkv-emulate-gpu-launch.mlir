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
    // expected-error @+1 {{an operand of this warp-wide op is computed by an op that writes memory; cannot emulate}}
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

// -----

// A bf16 mma.sync (rwkv-mma-projections) inside a k loop: the A and B
// fragments of the 32 lanes are recomputed (their slice reads x and W at
// the lane's indices and the loop counter, the same in every lane), and the
// lane's four outputs are summed over k = 0..15 from its C. A register's
// bf16 k % 2 becomes f32 as its 16 bits moved to the top (shift or mask),
// taken from lane 4 * row + (k % 8) / 2, register k / 8.
// CHECK-LABEL: func.func @mma
// CHECK:         scf.parallel (%[[TX:[^,]+]], %{{[^,]+}}, %{{[^)]+}}) = ({{.+}}) to (%c32,
// CHECK:           scf.for %[[K0:.+]] = %{{.+}} to %{{.+}} step %{{.+}} iter_args(%[[C0:[^ ]+]] = {{.+}}) -> (f32, f32, f32, f32)
// CHECK-NOT:         nvvm.mma.sync
// CHECK:             %[[LANE:.+]] = arith.remui %[[TX]], %[[C32:.+]] : index
// CHECK:             %[[BASE:.+]] = arith.subi %[[TX]], %[[LANE]] : index
// CHECK:             %[[FRAGS:.+]]:6 = scf.for %[[L:.+]] = %{{.+}} to %{{.+}} step %{{.+}} iter_args({{.+}}) -> (vector<32xi32>, vector<32xi32>, vector<32xi32>, vector<32xi32>, vector<32xi32>, vector<32xi32>)
// CHECK:               %[[OTHER:.+]] = arith.addi %[[BASE]], %[[L]] : index
// CHECK:               arith.remui %[[OTHER]]
// CHECK:               vector.load %{{.+}}[%{{.+}}, %{{.+}}] : memref<16x64xf32>, vector<2xf32>
// CHECK:               vector.load %{{.+}}[%{{.+}}, %{{.+}}] : memref<8x64xbf16>, vector<2xbf16>
// CHECK:               vector.insert %{{.+}}, %{{.+}} [%[[L]]] : i32 into vector<32xi32>
// CHECK:             %[[D:.+]]:4 = scf.for %[[K:.+]] = %{{.+}} to %{{.+}} step %{{.+}} iter_args(%{{.+}} = %[[C0]], {{.+}}) -> (f32, f32, f32, f32)
// CHECK:               arith.select %{{.+}}, %[[FRAGS]]#2, %[[FRAGS]]#0 : vector<32xi32>
// CHECK:               vector.extract %{{.+}}[%{{.+}}] : i32 from vector<32xi32>
// CHECK:               arith.shli
// CHECK:               arith.andi
// CHECK:               arith.bitcast %{{.+}} : i32 to f32
// CHECK:               arith.select %{{.+}}, %[[FRAGS]]#5, %[[FRAGS]]#4 : vector<32xi32>
// CHECK:               arith.mulf
// CHECK:               arith.addf
// CHECK:             llvm.mlir.poison : !llvm.struct<(f32, f32, f32, f32)>
// CHECK:             llvm.insertvalue %[[D]]#3, %{{.+}}[3]
func.func @mma(%x: memref<16x64xf32>, %w: memref<8x64xbf16>, %y: memref<16x8xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %c4 = arith.constant 4 : index
  %c8 = arith.constant 8 : index
  %c16 = arith.constant 16 : index
  %c32 = arith.constant 32 : index
  %c64 = arith.constant 64 : index
  %zero = arith.constant 0.0 : f32
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %c1, %gy = %c1, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c32, %sy = %c1, %sz = %c1) {
    %lane = arith.remui %tx, %c32 : index
    %g = arith.divui %lane, %c4 : index
    %q = arith.remui %lane, %c4 : index
    %q2 = arith.muli %q, %c2 : index
    %g8 = arith.addi %g, %c8 : index
    %r:4 = scf.for %k0 = %c0 to %c64 step %c16 iter_args(%a0 = %zero, %a1 = %zero, %a2 = %zero, %a3 = %zero) -> (f32, f32, f32, f32) {
      %ka = arith.addi %k0, %q2 : index
      %kb = arith.addi %ka, %c8 : index
      %x0 = vector.load %x[%g, %ka] : memref<16x64xf32>, vector<2xf32>
      %x1 = vector.load %x[%g8, %ka] : memref<16x64xf32>, vector<2xf32>
      %x2 = vector.load %x[%g, %kb] : memref<16x64xf32>, vector<2xf32>
      %x3 = vector.load %x[%g8, %kb] : memref<16x64xf32>, vector<2xf32>
      %h0 = arith.truncf %x0 : vector<2xf32> to vector<2xbf16>
      %h1 = arith.truncf %x1 : vector<2xf32> to vector<2xbf16>
      %h2 = arith.truncf %x2 : vector<2xf32> to vector<2xbf16>
      %h3 = arith.truncf %x3 : vector<2xf32> to vector<2xbf16>
      %i0 = vector.bitcast %h0 : vector<2xbf16> to vector<1xi32>
      %i1 = vector.bitcast %h1 : vector<2xbf16> to vector<1xi32>
      %i2 = vector.bitcast %h2 : vector<2xbf16> to vector<1xi32>
      %i3 = vector.bitcast %h3 : vector<2xbf16> to vector<1xi32>
      %e0 = vector.extract %i0[0] : i32 from vector<1xi32>
      %e1 = vector.extract %i1[0] : i32 from vector<1xi32>
      %e2 = vector.extract %i2[0] : i32 from vector<1xi32>
      %e3 = vector.extract %i3[0] : i32 from vector<1xi32>
      %w0 = vector.load %w[%g, %ka] : memref<8x64xbf16>, vector<2xbf16>
      %w1 = vector.load %w[%g, %kb] : memref<8x64xbf16>, vector<2xbf16>
      %j0 = vector.bitcast %w0 : vector<2xbf16> to vector<1xi32>
      %j1 = vector.bitcast %w1 : vector<2xbf16> to vector<1xi32>
      %b0 = vector.extract %j0[0] : i32 from vector<1xi32>
      %b1 = vector.extract %j1[0] : i32 from vector<1xi32>
      %d = nvvm.mma.sync A[%e0, %e1, %e2, %e3] B[%b0, %b1] C[%a0, %a1, %a2, %a3]
        {layoutA = #nvvm.mma_layout<row>, layoutB = #nvvm.mma_layout<col>,
         multiplicandAPtxType = #nvvm.mma_type<bf16>, multiplicandBPtxType = #nvvm.mma_type<bf16>,
         shape = #nvvm.shape<m = 16, n = 8, k = 16>} : (i32, i32, f32) -> !llvm.struct<(f32, f32, f32, f32)>
      %d0 = llvm.extractvalue %d[0] : !llvm.struct<(f32, f32, f32, f32)>
      %d1 = llvm.extractvalue %d[1] : !llvm.struct<(f32, f32, f32, f32)>
      %d2 = llvm.extractvalue %d[2] : !llvm.struct<(f32, f32, f32, f32)>
      %d3 = llvm.extractvalue %d[3] : !llvm.struct<(f32, f32, f32, f32)>
      scf.yield %d0, %d1, %d2, %d3 : f32, f32, f32, f32
    }
    memref.store %r#0, %y[%g, %q2] : memref<16x8xf32>
    gpu.terminator
  }
  return
}

// -----

// A fragment computed from a value that differs between lanes inside the
// kernel (here a loop's running value) cannot be recomputed for another
// lane.
func.func @mma_lane_varying(%w: memref<8x64xbf16>, %y: memref<32xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  %c32 = arith.constant 32 : index
  %zero = arith.constant 0.0 : f32
  %i = arith.constant 0 : i32
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %c1, %gy = %c1, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c32, %sy = %c1, %sz = %c1) {
    %r = scf.for %k = %c0 to %c4 step %c1 iter_args(%acc = %i) -> (i32) {
      // expected-error @+1 {{an operand of this warp-wide op depends on a value that differs between lanes inside the kernel; cannot emulate}}
      %d = nvvm.mma.sync A[%acc, %acc, %acc, %acc] B[%acc, %acc] C[%zero, %zero, %zero, %zero]
        {layoutA = #nvvm.mma_layout<row>, layoutB = #nvvm.mma_layout<col>,
         multiplicandAPtxType = #nvvm.mma_type<bf16>, multiplicandBPtxType = #nvvm.mma_type<bf16>,
         shape = #nvvm.shape<m = 16, n = 8, k = 16>} : (i32, i32, f32) -> !llvm.struct<(f32, f32, f32, f32)>
      %d0 = llvm.extractvalue %d[0] : !llvm.struct<(f32, f32, f32, f32)>
      %n = arith.fptosi %d0 : f32 to i32
      scf.yield %n : i32
    }
    gpu.terminator
  }
  return
}
