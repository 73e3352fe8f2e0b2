// RUN: rwkv-opt %s -split-input-file --pass-pipeline="builtin.module(func.func(rwkv-warp-reductions{lower-to-shuffles=false vector-width=1}))" | FileCheck %s
// RUN: rwkv-opt %s -split-input-file --pass-pipeline="builtin.module(func.func(rwkv-warp-reductions))" | FileCheck %s --check-prefix=SHFL
// RUN: rwkv-opt %s -split-input-file --pass-pipeline="builtin.module(func.func(rwkv-warp-reductions{lower-to-shuffles=false}))" | FileCheck %s --check-prefix=VEC

// rwkv-warp-reductions (codegen/CUDA/WarpReductions.cpp): one warp per
// reduction instead of one thread. The input is what
// rwkv-map-parallel-loops-to-gpu and rwkv-promote-loop-accumulators make of
// a projection y[t, o] += x[t, i] * W[o, i] (one thread per output, which
// walks the 768 inputs alone: the threads of a warp read 32 different rows).

// Every thread becomes a warp: 32 times the blocks; each lane recomputes the
// ids of the thread it replaces (warp index w = global id / 32: block w /
// 256, thread w % 256), so the guard and the indices stay uniform across the
// warp. Lane l sums inputs l, l + 32, ... (a warp reads 32 consecutive
// weights of one row), the subgroup reduction sums the lanes, the initial
// value is added once, and lane 0 alone stores.
// CHECK-LABEL: func.func @gemv
// CHECK-SAME:    (%[[X:[^:]+]]: memref<?x768xf32>, %[[W:[^:]+]]: memref<1024x768xbf16>, %[[Y:[^:]+]]: memref<?x1024xf32>, %[[N:[^:]+]]: index, %[[GRID:[^:]+]]: index)
// CHECK:         %[[GRID32:.+]] = arith.muli %[[GRID]], %{{.+}} : index
// CHECK:         gpu.launch blocks(%[[BX:[^,]+]], %{{[^,]+}}, %{{[^)]+}}) in (%{{[^ ]+}} = %[[GRID32]], %{{[^ ]+}} = %{{[^,]+}}, %{{[^ ]+}} = %{{[^)]+}}) threads(%[[TX:[^,]+]], %{{.+}}) in (%{{[^ ]+}} = %[[C256:[^,]+]],
// CHECK:           %[[BASE:.+]] = arith.muli %[[BX]], %{{.+}} : index
// CHECK:           %[[G:.+]] = arith.addi %[[BASE]], %[[TX]] : index
// CHECK:           %[[LANE:.+]] = arith.remui %[[TX]], %[[C32:.+]] : index
// CHECK:           %[[WARP:.+]] = arith.divui %[[G]], %[[C32]] : index
// CHECK:           %[[OB:.+]] = arith.divui %[[WARP]], %[[B:.+]] : index
// CHECK:           %[[OT:.+]] = arith.remui %[[WARP]], %[[B]] : index
// CHECK:           %[[OBASE:.+]] = arith.muli %[[OB]], %[[C256]] : index
// CHECK:           %[[OG:.+]] = arith.addi %[[OBASE]], %[[OT]] : index
// CHECK:           scf.if
// CHECK:             %[[INIT:.+]] = memref.load %[[Y]]
// CHECK:             %[[ZERO:.+]] = arith.constant 0.000000e+00 : f32
// CHECK:             %[[LB:.+]] = arith.addi %{{.+}}, %[[LANE]] : index
// CHECK:             %[[P:.+]] = scf.for %[[I:[^ ]+]] = %[[LB]] to %{{.+}} step %[[S32:[^ ]+]] iter_args(%{{.+}} = %[[ZERO]]) -> (f32) {
// CHECK:               memref.load %[[W]][%{{.+}}, %[[I]]] : memref<1024x768xbf16>
// CHECK:             %[[T:.+]] = gpu.subgroup_reduce add %[[P]] uniform : (f32) -> f32
// CHECK:             %[[R:.+]] = arith.addf %[[INIT]], %[[T]] fastmath<reassoc,contract> : f32
// CHECK:             %[[FIRST:.+]] = arith.cmpi eq, %[[LANE]], %{{.+}} : index
// CHECK:             scf.if %[[FIRST]] {
// CHECK-NEXT:          memref.store %[[R]], %[[Y]]
// CHECK-NEXT:        }

// By default (vector-width=8) a lane takes 8 consecutive inputs per step,
// 256 apart (768 = 3 x 32 x 8): the weight row as vector<8xbf16> loads
// (16 bytes, one ld.global.v4 once rwkv-lower-kernel-transfers has proved
// the alignment), x as vector<8xf32>, the product and the sum on vectors,
// and the lane's 8 partial sums reduced once after the loop.
// VEC-LABEL: func.func @gemv
// VEC-SAME:    (%[[X:[^:]+]]: memref<?x768xf32>, %[[W:[^:]+]]: memref<1024x768xbf16>,
// VEC:           %[[LANE:.+]] = arith.remui %{{.+}}, %{{.+}} : index
// VEC:             %[[ZERO:.+]] = arith.constant dense<0.000000e+00> : vector<8xf32>
// VEC:             %[[OFF:.+]] = arith.muli %[[LANE]], %{{.+}} : index
// VEC:             %[[LB:.+]] = arith.addi %{{.+}}, %[[OFF]] : index
// VEC:             %[[STEP:.+]] = arith.constant 256 : index
// VEC:             %[[P:.+]] = scf.for %[[I:[^ ]+]] = %[[LB]] to %{{.+}} step %[[STEP]] iter_args(%[[A:[^ ]+]] = %[[ZERO]]) -> (vector<8xf32>) {
// VEC-NEXT:          %[[XV:.+]] = vector.load %[[X]][%{{.+}}, %[[I]]] : memref<?x768xf32>, vector<8xf32>
// VEC-NEXT:          %[[WV:.+]] = vector.load %[[W]][%{{.+}}, %[[I]]] : memref<1024x768xbf16>, vector<8xbf16>
// VEC-NEXT:          %[[WE:.+]] = arith.extf %[[WV]] : vector<8xbf16> to vector<8xf32>
// VEC-NEXT:          %[[PR:.+]] = arith.mulf %[[XV]], %[[WE]] fastmath<reassoc,contract> : vector<8xf32>
// VEC-NEXT:          %[[S:.+]] = arith.addf %[[A]], %[[PR]] fastmath<reassoc,contract> : vector<8xf32>
// VEC-NEXT:          scf.yield %[[S]] : vector<8xf32>
// VEC-NEXT:        }
// VEC-NEXT:        %[[RED:.+]] = vector.reduction <add>, %[[P]] fastmath<reassoc,contract> : vector<8xf32> into f32
// VEC-NEXT:        %[[T:.+]] = gpu.subgroup_reduce add %[[RED]] uniform : (f32) -> f32

// With the default lowering, upstream's butterfly: xor 1, 2, 4, 8, 16.
// SHFL-LABEL: func.func @gemv
// SHFL-NOT:     gpu.subgroup_reduce
// SHFL:         gpu.shuffle  xor %{{.+}}, %{{.+}}, %{{.+}} : f32
// SHFL-COUNT-4: gpu.shuffle  xor
// SHFL-NOT:     gpu.shuffle
// SHFL:         return
func.func @gemv(%x: memref<?x768xf32>, %w: memref<1024x768xbf16>, %y: memref<?x1024xf32>, %n: index, %grid: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c256 = arith.constant 256 : index
  %c768 = arith.constant 768 : index
  %c1024 = arith.constant 1024 : index
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %grid, %gy = %c1, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c256, %sy = %c1, %sz = %c1) {
    %base = arith.muli %bx, %c256 : index
    %g = arith.addi %base, %tx : index
    %in = arith.cmpi ult, %g, %n : index
    scf.if %in {
      %t = arith.divui %g, %c1024 : index
      %o = arith.remui %g, %c1024 : index
      %init = memref.load %y[%t, %o] : memref<?x1024xf32>
      %r = scf.for %i = %c0 to %c768 step %c1 iter_args(%a = %init) -> (f32) {
        %xv = memref.load %x[%t, %i] : memref<?x768xf32>
        %wv = memref.load %w[%o, %i] : memref<1024x768xbf16>
        %we = arith.extf %wv : bf16 to f32
        %p = arith.mulf %xv, %we fastmath<reassoc,contract> : f32
        %s = arith.addf %a, %p fastmath<reassoc,contract> : f32
        scf.yield %s : f32
      }
      memref.store %r, %y[%t, %o] : memref<?x1024xf32>
    }
    gpu.terminator
  }
  return
}

// -----

// Left alone: a reduction shorter than min-trip-count (64), one whose add
// may not be reassociated, and a launch whose blocks are not whole warps.
// CHECK-LABEL: func.func @left_alone
// CHECK-NOT:     gpu.subgroup_reduce
// CHECK-NOT:     step %c32
// CHECK:         return
func.func @left_alone(%x: memref<?x768xf32>, %y: memref<?xf32>, %n: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c16 = arith.constant 16 : index
  %c48 = arith.constant 48 : index
  %c256 = arith.constant 256 : index
  %c768 = arith.constant 768 : index
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %n, %gy = %c1, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c256, %sy = %c1, %sz = %c1) {
    %init = memref.load %y[%bx] : memref<?xf32>
    %r = scf.for %i = %c0 to %c16 step %c1 iter_args(%a = %init) -> (f32) {
      %v = memref.load %x[%bx, %i] : memref<?x768xf32>
      %s = arith.addf %a, %v fastmath<reassoc,contract> : f32
      scf.yield %s : f32
    }
    memref.store %r, %y[%bx] : memref<?xf32>
    gpu.terminator
  }
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %n, %gy = %c1, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c256, %sy = %c1, %sz = %c1) {
    %init = memref.load %y[%bx] : memref<?xf32>
    %r = scf.for %i = %c0 to %c768 step %c1 iter_args(%a = %init) -> (f32) {
      %v = memref.load %x[%bx, %i] : memref<?x768xf32>
      %s = arith.addf %a, %v : f32
      scf.yield %s : f32
    }
    memref.store %r, %y[%bx] : memref<?xf32>
    gpu.terminator
  }
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %n, %gy = %c1, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c48, %sy = %c1, %sz = %c1) {
    %init = memref.load %y[%bx] : memref<?xf32>
    %r = scf.for %i = %c0 to %c768 step %c1 iter_args(%a = %init) -> (f32) {
      %v = memref.load %x[%bx, %i] : memref<?x768xf32>
      %s = arith.addf %a, %v fastmath<reassoc,contract> : f32
      scf.yield %s : f32
    }
    memref.store %r, %y[%bx] : memref<?xf32>
    gpu.terminator
  }
  return
}

// -----

// Left alone: a launch that writes through something other than
// memref.store (here an atomic), which lane 0 alone could not be made to do
// without knowing its result's uses.
// CHECK-LABEL: func.func @other_writes
// CHECK-NOT:     gpu.subgroup_reduce
// CHECK:         return
func.func @other_writes(%x: memref<?x768xf32>, %y: memref<?xf32>, %n: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c256 = arith.constant 256 : index
  %c768 = arith.constant 768 : index
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %n, %gy = %c1, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c256, %sy = %c1, %sz = %c1) {
    %init = memref.load %y[%bx] : memref<?xf32>
    %r = scf.for %i = %c0 to %c768 step %c1 iter_args(%a = %init) -> (f32) {
      %v = memref.load %x[%bx, %i] : memref<?x768xf32>
      %s = arith.addf %a, %v fastmath<reassoc,contract> : f32
      scf.yield %s : f32
    }
    %old = memref.atomic_rmw addf %r, %y[%bx] : (f32, memref<?xf32>) -> f32
    gpu.terminator
  }
  return
}

// -----

// Left alone: the kernel reads back what it stores (lanes 1-31 would read
// what lane 0 writes, with nothing ordering them).
// CHECK-LABEL: func.func @reads_back
// CHECK-NOT:     gpu.subgroup_reduce
// CHECK:         return
func.func @reads_back(%x: memref<?x768xf32>, %y: memref<?xf32>, %n: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c256 = arith.constant 256 : index
  %c768 = arith.constant 768 : index
  %cst = arith.constant 0.0 : f32
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %n, %gy = %c1, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c256, %sy = %c1, %sz = %c1) {
    memref.store %cst, %x[%bx, %c0] : memref<?x768xf32>
    %init = memref.load %y[%bx] : memref<?xf32>
    %r = scf.for %i = %c0 to %c768 step %c1 iter_args(%a = %init) -> (f32) {
      %v = memref.load %x[%bx, %i] : memref<?x768xf32>
      %s = arith.addf %a, %v fastmath<reassoc,contract> : f32
      scf.yield %s : f32
    }
    memref.store %r, %y[%bx] : memref<?xf32>
    gpu.terminator
  }
  return
}

// -----

// The [in, out] LoRA factors read W[i, o]: consecutive inputs are a column,
// not a vector, so each lane keeps one element per step (32 apart). A loop
// of 96 inputs is no multiple of 32 x 2 either: one element per step.
// And an input taken from a loop-invariant scalar (the norm's mean) is
// broadcast: (x - mean)^2 on vector<8xf32>.
// VEC-LABEL: func.func @not_vectors
// VEC-NOT:       vector.load
// VEC:           scf.for {{.+}} -> (f32)
// VEC-NOT:       vector.load
// VEC:           scf.for {{.+}} -> (f32)
// VEC:           %[[M:.+]] = memref.load %{{.+}}[%{{.+}}] : memref<?xf32>
// VEC:           scf.for {{.+}} -> (vector<8xf32>)
// VEC-NEXT:        %[[XV:.+]] = vector.load
// VEC-NEXT:        %[[MEAN:.+]] = vector.broadcast %[[M]] : f32 to vector<8xf32>
// VEC-NEXT:        %[[D:.+]] = arith.subf %[[XV]], %[[MEAN]] : vector<8xf32>
// VEC-NEXT:        arith.mulf %[[D]], %[[D]] fastmath<reassoc,contract> : vector<8xf32>
// VEC:         return
func.func @not_vectors(%x: memref<?x768xf32>, %w: memref<768x64xbf16>, %y: memref<?xf32>, %n: index, %means: memref<?xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c96 = arith.constant 96 : index
  %c256 = arith.constant 256 : index
  %c768 = arith.constant 768 : index
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %n, %gy = %c1, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c256, %sy = %c1, %sz = %c1) {
    %o = arith.remui %tx, %c96 : index
    %init = memref.load %y[%bx] : memref<?xf32>
    %r = scf.for %i = %c0 to %c768 step %c1 iter_args(%a = %init) -> (f32) {
      %xv = memref.load %x[%bx, %i] : memref<?x768xf32>
      %wv = memref.load %w[%i, %o] : memref<768x64xbf16>
      %we = arith.extf %wv : bf16 to f32
      %p = arith.mulf %xv, %we fastmath<reassoc,contract> : f32
      %s = arith.addf %a, %p fastmath<reassoc,contract> : f32
      scf.yield %s : f32
    }
    memref.store %r, %y[%bx] : memref<?xf32>
    gpu.terminator
  }
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %n, %gy = %c1, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c256, %sy = %c1, %sz = %c1) {
    %init = memref.load %y[%bx] : memref<?xf32>
    %r = scf.for %i = %c0 to %c96 step %c1 iter_args(%a = %init) -> (f32) {
      %v = memref.load %x[%bx, %i] : memref<?x768xf32>
      %s = arith.addf %a, %v fastmath<reassoc,contract> : f32
      scf.yield %s : f32
    }
    memref.store %r, %y[%bx] : memref<?xf32>
    gpu.terminator
  }
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %n, %gy = %c1, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c256, %sy = %c1, %sz = %c1) {
    %mean = memref.load %means[%bx] : memref<?xf32>
    %zero = arith.constant 0.0 : f32
    %r = scf.for %i = %c0 to %c768 step %c1 iter_args(%a = %zero) -> (f32) {
      %v = memref.load %x[%bx, %i] : memref<?x768xf32>
      %d = arith.subf %v, %mean : f32
      %q = arith.mulf %d, %d fastmath<reassoc,contract> : f32
      %s = arith.addf %a, %q fastmath<reassoc,contract> : f32
      scf.yield %s : f32
    }
    memref.store %r, %y[%bx] : memref<?xf32>
    gpu.terminator
  }
  return
}

