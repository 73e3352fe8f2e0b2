// RUN: rwkv-opt %s -split-input-file --rwkv-map-parallel-loops-to-gpu -verify-diagnostics | FileCheck %s
// RUN: rwkv-opt %s -split-input-file --rwkv-map-parallel-loops-to-gpu=block-size=8 -verify-diagnostics | FileCheck %s --check-prefix=BS8
// RUN: not rwkv-opt %s --rwkv-map-parallel-loops-to-gpu=block-size=0 2>&1 | FileCheck %s --check-prefix=BS0
// RUN: not rwkv-opt %s --rwkv-map-parallel-loops-to-gpu=block-size=1025 2>&1 | FileCheck %s --check-prefix=BS1025

// rwkv-map-parallel-loops-to-gpu (codegen/CUDA/MapParallelLoopsToGPU.cpp):
// the generic SIMT mapping of the CUDA pipeline. Each outermost scf.parallel
// becomes a gpu.launch with a 1-D grid of `block-size` threads, one thread
// per point of the linearised iteration space (last dimension fastest, so
// neighbouring threads touch neighbouring channels); the bounds may be
// dynamic (the token count), the threads past the end of the last block do
// nothing. Host loops that still touch a buffer run as one-thread kernels,
// since the buffers live on the device. The deallocation lowering's
// bookkeeping (memrefs of i1 / index, dealloc_helper) stays host code.

// BS0:    error: block-size must be in [1, 1024], got 0{{$}}
// BS1025: error: block-size must be in [1, 1024], got 1025{{$}}

// A 2-D nest with a dynamic token count: grid = max(ceildiv(T * 768, 256), 1)
// (an empty space still launches one block, whose threads all fail the
// guard: a zero grid is a launch error), block = 256, thread
// g = bid * 256 + tid guarded by g < T * 768, and (t, c) = (g / 768, g % 768).
// CHECK-LABEL: func.func @dynamic_2d
// CHECK-SAME:    (%[[T:[^:]+]]: index, %[[X:[^:]+]]: memref<?x768xf32>, %[[Y:[^:]+]]: memref<?x768xf32>)
// CHECK-DAG:     %[[C0:.+]] = arith.constant 0 : index
// CHECK-DAG:     %[[C1:.+]] = arith.constant 1 : index
// CHECK-DAG:     %[[C768:.+]] = arith.constant 768 : index
// CHECK:         %[[DIFF0:.+]] = arith.subi %[[T]], %[[C0]] : index
// CHECK:         %[[SPAN0:.+]] = arith.maxsi %[[DIFF0]], %{{.+}} : index
// CHECK:         %[[N0:.+]] = arith.ceildivui %[[SPAN0]], %[[C1]] : index
// CHECK:         %[[P0:.+]] = arith.muli %{{.+}}, %[[N0]] : index
// CHECK:         %[[DIFF1:.+]] = arith.subi %[[C768]], %[[C0]] : index
// CHECK:         %[[SPAN1:.+]] = arith.maxsi %[[DIFF1]], %{{.+}} : index
// CHECK:         %[[N1:.+]] = arith.ceildivui %[[SPAN1]], %[[C1]] : index
// CHECK:         %[[TOTAL:.+]] = arith.muli %[[P0]], %[[N1]] : index
// CHECK:         %[[BLOCK:.+]] = arith.constant 256 : index
// CHECK-DAG:     %[[BLOCKS:.+]] = arith.ceildivui %[[TOTAL]], %[[BLOCK]] : index
// CHECK-DAG:     %[[AT_LEAST:.+]] = arith.constant 1 : index
// CHECK:         %[[GRID:.+]] = arith.maxui %[[BLOCKS]], %[[AT_LEAST]] : index
// CHECK-NOT:     scf.if
// CHECK:         %[[ONE:.+]] = arith.constant 1 : index
// CHECK-NEXT:    gpu.launch blocks(%[[BX:[^,]+]], %{{[^)]+}}) in (%{{[^ ]+}} = %[[GRID]], %{{[^ ]+}} = %[[ONE]], %{{[^ ]+}} = %[[ONE]]) threads(%[[TX:[^,]+]], %{{[^)]+}}) in (%{{[^ ]+}} = %[[BLOCK]], %{{[^ ]+}} = %[[ONE]], %{{[^ ]+}} = %[[ONE]]) {
// CHECK-NEXT:      %[[BASE:.+]] = arith.muli %[[BX]], %[[BLOCK]] : index
// CHECK-NEXT:      %[[G:.+]] = arith.addi %[[BASE]], %[[TX]] : index
// CHECK-NEXT:      %[[IN:.+]] = arith.cmpi ult, %[[G]], %[[TOTAL]] : index
// CHECK-NEXT:      scf.if %[[IN]] {
// CHECK-NEXT:        %[[REM:.+]] = arith.remui %[[G]], %[[N1]] : index
// CHECK-NEXT:        %[[DIV:.+]] = arith.divui %[[G]], %[[N1]] : index
// CHECK-NEXT:        %[[RS:.+]] = arith.muli %[[REM]], %[[C1]] : index
// CHECK-NEXT:        %[[CH:.+]] = arith.addi %[[C0]], %[[RS]] : index
// CHECK-NEXT:        %[[DS:.+]] = arith.muli %[[DIV]], %[[C1]] : index
// CHECK-NEXT:        %[[TOK:.+]] = arith.addi %[[C0]], %[[DS]] : index
// CHECK-NEXT:        %[[V:.+]] = memref.load %[[X]][%[[TOK]], %[[CH]]] : memref<?x768xf32>
// CHECK-NEXT:        memref.store %[[V]], %[[Y]][%[[TOK]], %[[CH]]] : memref<?x768xf32>
// CHECK-NEXT:      }
// CHECK-NEXT:      gpu.terminator
// CHECK-NEXT:    }
// CHECK-NEXT:    return

// The block-size option sets the block of a dynamic space.
// BS8-LABEL: func.func @dynamic_2d
// BS8:         %[[BLOCK:.+]] = arith.constant 8 : index
// BS8-DAG:     %[[BLOCKS:.+]] = arith.ceildivui %[[TOTAL:.+]], %[[BLOCK]] : index
// BS8-DAG:     %[[AT_LEAST:.+]] = arith.constant 1 : index
// BS8:         %[[GRID:.+]] = arith.maxui %[[BLOCKS]], %[[AT_LEAST]] : index
// BS8:         gpu.launch blocks(%[[BX:[^,]+]], %{{[^)]+}}) in (%{{[^ ]+}} = %[[GRID]], %{{[^)]+}}) threads(%[[TX:[^,]+]], %{{[^)]+}}) in (%{{[^ ]+}} = %[[BLOCK]],
// BS8-NEXT:      %[[BASE:.+]] = arith.muli %[[BX]], %[[BLOCK]] : index
// BS8-NEXT:      %[[G:.+]] = arith.addi %[[BASE]], %[[TX]] : index
// BS8-NEXT:      arith.cmpi ult, %[[G]], %[[TOTAL]] : index
func.func @dynamic_2d(%t: index, %x: memref<?x768xf32>, %y: memref<?x768xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c768 = arith.constant 768 : index
  scf.parallel (%i, %c) = (%c0, %c0) to (%t, %c768) step (%c1, %c1) {
    %v = memref.load %x[%i, %c] : memref<?x768xf32>
    memref.store %v, %y[%i, %c] : memref<?x768xf32>
    scf.reduce
  }
  return
}

// -----

// Lower bound and step: the trip count is ceildiv(max(n - 4, 0), 3) (an
// empty range counts 0, not a wrapped unsigned span) and the thread's
// induction variable 4 + g * 3.
// CHECK-LABEL: func.func @offset_step
// CHECK-SAME:    (%[[N:[^:]+]]: index, %[[X:[^:]+]]: memref<?xf32>)
// CHECK-DAG:     %[[C3:.+]] = arith.constant 3 : index
// CHECK-DAG:     %[[C4:.+]] = arith.constant 4 : index
// CHECK:         %[[DIFF:.+]] = arith.subi %[[N]], %[[C4]] : index
// CHECK:         %[[SPAN:.+]] = arith.maxsi %[[DIFF]], %{{.+}} : index
// CHECK:         %[[CNT:.+]] = arith.ceildivui %[[SPAN]], %[[C3]] : index
// CHECK:         %[[TOTAL:.+]] = arith.muli %{{.+}}, %[[CNT]] : index
// CHECK:         gpu.launch
// CHECK:           %[[G:.+]] = arith.addi
// CHECK-NEXT:      %[[IN:.+]] = arith.cmpi ult, %[[G]], %[[TOTAL]] : index
// CHECK-NEXT:      scf.if %[[IN]] {
// CHECK-NEXT:        %[[S:.+]] = arith.muli %[[G]], %[[C3]] : index
// CHECK-NEXT:        %[[I:.+]] = arith.addi %[[C4]], %[[S]] : index
// CHECK-NEXT:        memref.store %{{.+}}, %[[X]][%[[I]]] : memref<?xf32>
func.func @offset_step(%n: index, %x: memref<?xf32>) {
  %c3 = arith.constant 3 : index
  %c4 = arith.constant 4 : index
  %cst = arith.constant 1.0 : f32
  scf.parallel (%i) = (%c4) to (%n) step (%c3) {
    memref.store %cst, %x[%i] : memref<?xf32>
    scf.reduce
  }
  return
}

// -----

// A small static space (3 x 4 = 12 points) is one block of exactly 12
// threads, not 12 busy threads in a block of 256.
// CHECK-LABEL: func.func @static_12
// CHECK:         %[[BLOCK:.+]] = arith.constant 12 : index
// CHECK:         %[[GRID:.+]] = arith.maxui %{{.+}}, %{{.+}} : index
// CHECK:         gpu.launch blocks(%{{[^)]+}}) in (%{{[^ ]+}} = %[[GRID]], %{{[^)]+}}) threads(%{{[^)]+}}) in (%{{[^ ]+}} = %[[BLOCK]],
// CHECK-NOT:     arith.constant 256

// A block size below the static count wins.
// BS8-LABEL: func.func @static_12
// BS8:         %[[BLOCK:.+]] = arith.constant 8 : index
// BS8:         %[[GRID:.+]] = arith.maxui %{{.+}}, %{{.+}} : index
// BS8:         gpu.launch blocks(%{{[^)]+}}) in (%{{[^ ]+}} = %[[GRID]], %{{[^)]+}}) threads(%{{[^)]+}}) in (%{{[^ ]+}} = %[[BLOCK]],
func.func @static_12(%x: memref<3x4xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c3 = arith.constant 3 : index
  %c4 = arith.constant 4 : index
  %cst = arith.constant 1.0 : f32
  scf.parallel (%i, %j) = (%c0, %c0) to (%c3, %c4) step (%c1, %c1) {
    memref.store %cst, %x[%i, %j] : memref<3x4xf32>
    scf.reduce
  }
  return
}

// -----

// A host loop that touches device buffers (a reduction with no parallel
// dimension) runs whole on one thread: a 1 x 1 launch around the scf.for.
// CHECK-LABEL: func.func @host_loop
// CHECK-SAME:    (%[[X:[^:]+]]: memref<16xf32>, %[[Y:[^:]+]]: memref<1xf32>)
// CHECK-DAG:     %[[C0:.+]] = arith.constant 0 : index
// CHECK-DAG:     %[[C4:.+]] = arith.constant 4 : index
// CHECK-DAG:     %[[C16:.+]] = arith.constant 16 : index
// CHECK:         %[[ONE:.+]] = arith.constant 1 : index
// CHECK-NEXT:    %[[ONE_:.+]] = arith.constant 1 : index
// CHECK-NEXT:    gpu.launch blocks(%{{[^)]+}}) in (%{{[^ ]+}} = %[[ONE]], %{{[^ ]+}} = %[[ONE_]], %{{[^ ]+}} = %[[ONE_]]) threads(%{{[^)]+}}) in (%{{[^ ]+}} = %[[ONE]], %{{[^ ]+}} = %[[ONE_]], %{{[^ ]+}} = %[[ONE_]]) {
// CHECK-NEXT:      scf.for %[[K:.+]] = %[[C0]] to %[[C16]] step %[[C4]] {
// CHECK-NEXT:        %[[A:.+]] = memref.load %[[Y]][%[[C0]]] : memref<1xf32>
// CHECK-NEXT:        %[[B:.+]] = memref.load %[[X]][%[[K]]] : memref<16xf32>
// CHECK-NEXT:        %[[S:.+]] = arith.addf %[[A]], %[[B]] : f32
// CHECK-NEXT:        memref.store %[[S]], %[[Y]][%[[C0]]] : memref<1xf32>
// CHECK-NEXT:      }
// CHECK-NEXT:      gpu.terminator
// CHECK-NEXT:    }
// CHECK-NEXT:    return
func.func @host_loop(%x: memref<16xf32>, %y: memref<1xf32>) {
  %c0 = arith.constant 0 : index
  %c4 = arith.constant 4 : index
  %c16 = arith.constant 16 : index
  scf.for %k = %c0 to %c16 step %c4 {
    %a = memref.load %y[%c0] : memref<1xf32>
    %b = memref.load %x[%k] : memref<16xf32>
    %s = arith.addf %a, %b : f32
    memref.store %s, %y[%c0] : memref<1xf32>
  }
  return
}

// -----

// Only the outermost scf.parallel is mapped; the inner one stays a loop of
// the thread (scf-parallel-for-to-nested-fors lowers it later).
// CHECK-LABEL: func.func @nested
// CHECK-SAME:    (%[[N:[^:]+]]: index, %[[X:[^:]+]]: memref<?x8xf32>)
// CHECK-DAG:     %[[C0:.+]] = arith.constant 0 : index
// CHECK-DAG:     %[[C1:.+]] = arith.constant 1 : index
// CHECK-DAG:     %[[C8:.+]] = arith.constant 8 : index
// CHECK-NOT:     scf.parallel
// CHECK:         gpu.launch
// CHECK:           scf.if
// CHECK:             %[[I:.+]] = arith.addi %[[C0]], %{{.+}} : index
// CHECK-NEXT:        scf.parallel (%[[J:.+]]) = (%[[C0]]) to (%[[C8]]) step (%[[C1]]) {
// CHECK-NEXT:          memref.store %{{.+}}, %[[X]][%[[I]], %[[J]]] : memref<?x8xf32>
// CHECK-NOT:     gpu.launch
// CHECK:         return
func.func @nested(%n: index, %x: memref<?x8xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c8 = arith.constant 8 : index
  %cst = arith.constant 0.0 : f32
  scf.parallel (%i) = (%c0) to (%n) step (%c1) {
    scf.parallel (%j) = (%c0) to (%c8) step (%c1) {
      memref.store %cst, %x[%i, %j] : memref<?x8xf32>
      scf.reduce
    }
    scf.reduce
  }
  return
}

// -----

// The deallocation lowering's ownership flags (i1) and base addresses
// (index) are host memory: reading and writing them stays host code, even
// when the host uses the value read.
// CHECK-LABEL: func.func @host_bookkeeping
// CHECK-SAME:    (%[[F:[^:]+]]: memref<2xi1>, %[[P:[^:]+]]: memref<2xindex>)
// CHECK-NOT:     gpu.launch
// CHECK:         %[[B:.+]] = memref.load %[[F]][%{{.+}}] : memref<2xi1>
// CHECK-NEXT:    %[[Q:.+]] = memref.load %[[P]][%{{.+}}] : memref<2xindex>
// CHECK-NEXT:    memref.store %[[Q]], %[[P]][%{{.+}}] : memref<2xindex>
// CHECK-NEXT:    return %[[B]] : i1
func.func @host_bookkeeping(%f: memref<2xi1>, %p: memref<2xindex>) -> i1 {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %b = memref.load %f[%c0] : memref<2xi1>
  %q = memref.load %p[%c0] : memref<2xindex>
  memref.store %q, %p[%c1] : memref<2xindex>
  return %b : i1
}

// -----

// A device buffer read into a value the host goes on to use cannot become a
// kernel.
func.func @host_load_used(%y: memref<1xf32>) -> f32 {
  %c0 = arith.constant 0 : index
  // expected-error @+1 {{host code reads device memory into a value the host uses}}
  %a = memref.load %y[%c0] : memref<1xf32>
  return %a : f32
}

// -----

// A scalar the host reads only to compute what it stores (a loss divided by
// its count) runs on one device thread with its whole chain: the loads, the
// arithmetic and the store are one single-thread kernel.
// CHECK-LABEL: func.func @scalar_chain
// CHECK-SAME:    (%[[S:[^:]+]]: memref<f32>, %[[N:[^:]+]]: memref<f32>, %[[OUT:[^:]+]]: memref<f32>)
// CHECK:         gpu.launch
// CHECK-NEXT:      %[[A:.+]] = memref.load %[[S]][] : memref<f32>
// CHECK-NEXT:      %[[B:.+]] = memref.load %[[N]][] : memref<f32>
// CHECK-NEXT:      %[[Q:.+]] = arith.divf %[[A]], %[[B]] : f32
// CHECK-NEXT:      memref.store %[[Q]], %[[OUT]][] : memref<f32>
// CHECK-NEXT:      gpu.terminator
// CHECK-NEXT:    }
// CHECK-NEXT:    return
func.func @scalar_chain(%s: memref<f32>, %n: memref<f32>, %out: memref<f32>) {
  %a = memref.load %s[] : memref<f32>
  %b = memref.load %n[] : memref<f32>
  %q = arith.divf %a, %b : f32
  memref.store %q, %out[] : memref<f32>
  return
}

// -----

// The embedding gradient's scatter-add: a host loop over tokens reads each
// token's row id from device memory and adds its row of dy into that row of
// demb. Every access of the inner loop is column %j of a row-major buffer
// of width 16, so the loops are interchanged: one thread per column walks
// the tokens in order (no atomics, the CPU's summation order), and no host
// code reads device memory.
// CHECK-LABEL: func.func @column_scatter
// CHECK-SAME:    (%[[IDS:[^:]+]]: memref<4xi32>, %[[DY:[^:]+]]: memref<2x2x16xf32>, %[[DE:[^:]+]]: memref<8x16xf32>)
// CHECK:         %[[DY2:.+]] = memref.collapse_shape %[[DY]]
// CHECK:         gpu.launch
// CHECK:           scf.if
// CHECK:             %[[J:.+]] = arith.addi %{{.+}}, %{{.+}} : index
// CHECK-NEXT:        scf.for %[[T:.+]] = %{{.+}} to %{{.+}} step %{{.+}} {
// CHECK-NEXT:          %[[ID:.+]] = memref.load %[[IDS]][%[[T]]] : memref<4xi32>
// CHECK-NEXT:          %[[ROW:.+]] = arith.index_cast %[[ID]] : i32 to index
// CHECK-NEXT:          %[[DEROW:.+]] = memref.subview %[[DE]][%[[ROW]], 0] [1, 16] [1, 1]
// CHECK-NEXT:          %[[DYROW:.+]] = memref.subview %[[DY2]][%[[T]], 0] [1, 16] [1, 1]
// CHECK-NEXT:          %[[G:.+]] = memref.load %[[DYROW]][%[[J]]]
// CHECK-NEXT:          %[[E:.+]] = memref.load %[[DEROW]][%[[J]]]
// CHECK-NEXT:          %[[SUM:.+]] = arith.addf %[[E]], %[[G]] : f32
// CHECK-NEXT:          memref.store %[[SUM]], %[[DEROW]][%[[J]]]
// CHECK-NEXT:        }
// CHECK-NOT:     gpu.launch
// CHECK:         return
func.func @column_scatter(%ids: memref<4xi32>, %dy: memref<2x2x16xf32>, %de: memref<8x16xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  %c16 = arith.constant 16 : index
  %dy2 = memref.collapse_shape %dy [[0, 1], [2]] : memref<2x2x16xf32> into memref<4x16xf32>
  scf.for %t = %c0 to %c4 step %c1 {
    %id = memref.load %ids[%t] : memref<4xi32>
    %row = arith.index_cast %id : i32 to index
    %derow = memref.subview %de[%row, 0] [1, 16] [1, 1] : memref<8x16xf32> to memref<16xf32, strided<[1], offset: ?>>
    %dyrow = memref.subview %dy2[%t, 0] [1, 16] [1, 1] : memref<4x16xf32> to memref<16xf32, strided<[1], offset: ?>>
    scf.parallel (%j) = (%c0) to (%c16) step (%c1) {
      %g = memref.load %dyrow[%j] : memref<16xf32, strided<[1], offset: ?>>
      %e = memref.load %derow[%j] : memref<16xf32, strided<[1], offset: ?>>
      %sum = arith.addf %e, %g : f32
      memref.store %sum, %derow[%j] : memref<16xf32, strided<[1], offset: ?>>
      scf.reduce
    }
  }
  return
}

// -----

// Not interchanged when a column reads another column (here j + 1 of the
// row it writes): the iterations of different columns depend on each other
// across tokens. The host loop still reads device memory, which is refused.
func.func @column_scatter_neighbour(%ids: memref<4xi32>, %de: memref<8x16xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  %c16 = arith.constant 16 : index
  scf.for %t = %c0 to %c4 step %c1 {
    // expected-error @+1 {{host code reads device memory into a value the host uses}}
    %id = memref.load %ids[%t] : memref<4xi32>
    %row = arith.index_cast %id : i32 to index
    %derow = memref.subview %de[%row, 0] [1, 16] [1, 1] : memref<8x16xf32> to memref<16xf32, strided<[1], offset: ?>>
    scf.parallel (%j) = (%c0) to (%c16) step (%c1) {
      %j1 = arith.addi %j, %c1 : index
      %e = memref.load %derow[%j1] : memref<16xf32, strided<[1], offset: ?>>
      memref.store %e, %derow[%j] : memref<16xf32, strided<[1], offset: ?>>
      scf.reduce
    }
  }
  return
}

// -----

// Bookkeeping memrefs are host memory, so a kernel must not touch them.
func.func @kernel_flags(%n: index, %f: memref<?xi1>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %true = arith.constant true
  scf.parallel (%i) = (%c0) to (%n) step (%c1) {
    // expected-error @+1 {{a kernel accesses a memref of i1 or index, which this pipeline keeps on the host}}
    memref.store %true, %f[%i] : memref<?xi1>
    scf.reduce
  }
  return
}

// -----

// The deallocation lowering's helper is host code by construction: its
// loops are neither mapped nor wrapped.
// CHECK-LABEL: func.func @dealloc_helper
// CHECK-NOT:     gpu.launch
// CHECK:         scf.parallel
// CHECK:         scf.for
// CHECK-NOT:     gpu.launch
func.func @dealloc_helper(%x: memref<4xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  %cst = arith.constant 0.0 : f32
  scf.parallel (%i) = (%c0) to (%c4) step (%c1) {
    memref.store %cst, %x[%i] : memref<4xf32>
    scf.reduce
  }
  scf.for %k = %c0 to %c4 step %c1 {
    memref.store %cst, %x[%k] : memref<4xf32>
  }
  return
}

// -----

// A host loop that reads a bookkeeping flag and writes model data would
// become a one-thread kernel reading host memory: refused.
func.func @mixed(%f: memref<4xi1>, %x: memref<4xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  %z = arith.constant 0.0 : f32
  scf.for %k = %c0 to %c4 step %c1 {
    // expected-error @+1 {{a kernel accesses a memref of i1 or index, which this pipeline keeps on the host}}
    %b = memref.load %f[%k] : memref<4xi1>
    %v = arith.select %b, %z, %z : f32
    memref.store %v, %x[%k] : memref<4xf32>
  }
  return
}
