// RUN: rwkv-opt %s -split-input-file --convert-scf-to-openmp --canonicalize --rwkv-guard-parallel-regions --rwkv-inline-static-schedule | FileCheck %s

// One tile loop: thread t of n runs the t-th block of ceil(count / n)
// iterations in an scf.for, no work-shared loop is left, and the `if`
// clause of rwkv-guard-parallel-regions stays.
// CHECK-LABEL: func.func @tiles
// CHECK-SAME:    (%[[N:[^:]+]]: index, %[[BUF:[^:]+]]: memref<?xf32>)
// CHECK-DAG:     %[[C0:.+]] = arith.constant 0 : index
// CHECK-DAG:     %[[C21:.+]] = arith.constant 21 : index
// CHECK:         omp.parallel if(%{{.+}}) {
// CHECK-NOT:       omp.wsloop
// CHECK:           %[[T32:.+]] = llvm.call @omp_get_thread_num() : () -> i32
// CHECK:           %[[T:.+]] = arith.index_cast %[[T32]] : i32 to index
// CHECK:           %[[NT32:.+]] = llvm.call @omp_get_num_threads() : () -> i32
// CHECK:           %[[NT:.+]] = arith.index_cast %[[NT32]] : i32 to index
// CHECK:           %[[SPAN:.+]] = arith.subi %[[N]], %[[C0]] : index
// CHECK:           %[[CNT0:.+]] = arith.ceildivsi %[[SPAN]], %[[C21]] : index
// CHECK:           %[[CNT:.+]] = arith.maxsi %[[CNT0]], %{{.+}} : index
// CHECK:           %[[CHUNK:.+]] = arith.ceildivsi %[[CNT]], %[[NT]] : index
// CHECK:           %[[B0:.+]] = arith.muli %[[T]], %[[CHUNK]] : index
// CHECK:           %[[BEGIN:.+]] = arith.minsi %[[B0]], %[[CNT]] : index
// CHECK:           %[[E0:.+]] = arith.addi %[[BEGIN]], %[[CHUNK]] : index
// CHECK:           %[[END:.+]] = arith.minsi %[[E0]], %[[CNT]] : index
// CHECK:           scf.for %[[L:.+]] = %[[BEGIN]] to %[[END]] step %{{.+}} {
// CHECK:             %[[OFF:.+]] = arith.muli %[[L]], %[[C21]] : index
// CHECK:             %[[I:.+]] = arith.addi %[[C0]], %[[OFF]] : index
// CHECK:             memref.store %{{.+}}, %[[BUF]][%[[I]]]
// CHECK:           }
// CHECK-NEXT:      omp.terminator
// CHECK:         llvm.func @omp_get_thread_num() -> i32
// CHECK:         llvm.func @omp_get_num_threads() -> i32
func.func @tiles(%n: index, %buf: memref<?xf32>) {
  %c0 = arith.constant 0 : index
  %c21 = arith.constant 21 : index
  %cst = arith.constant 1.0 : f32
  scf.parallel (%i) = (%c0) to (%n) step (%c21) {
    memref.store %cst, %buf[%i] : memref<?xf32>
    scf.reduce
  }
  return
}

// -----

// Two dimensions (batch rows, token tiles) are linearized with the inner
// one fastest, as the runtime's collapsed loop did; each function's loop is
// rewritten and libomp's queries are declared once.
// CHECK-LABEL: func.func @tiles2d
// CHECK-SAME:    (%[[B:[^:]+]]: index, %[[N:[^:]+]]: index, %[[BUF:[^:]+]]: memref<?x?xf32>)
// CHECK:         omp.parallel
// CHECK:           %[[ROWS:.+]] = arith.maxsi %{{.+}}, %{{.+}} : index
// CHECK:           %[[TILES:.+]] = arith.maxsi %{{.+}}, %{{.+}} : index
// CHECK:           %[[CNT:.+]] = arith.muli %[[ROWS]], %[[TILES]] : index
// CHECK:           scf.for %[[L:.+]] = %{{.+}} to %{{.+}} step
// CHECK:             %[[J0:.+]] = arith.remui %[[L]], %[[TILES]] : index
// CHECK:             %[[I0:.+]] = arith.divui %[[L]], %[[TILES]] : index
// CHECK:             %[[J1:.+]] = arith.muli %[[J0]], %{{.+}} : index
// CHECK:             %[[J:.+]] = arith.addi %{{.+}}, %[[J1]] : index
// CHECK:             %[[I1:.+]] = arith.muli %[[I0]], %{{.+}} : index
// CHECK:             %[[I:.+]] = arith.addi %{{.+}}, %[[I1]] : index
// CHECK:             memref.store %{{.+}}, %[[BUF]][%[[I]], %[[J]]]
// CHECK-LABEL: func.func @other
// CHECK:         llvm.call @omp_get_thread_num
// CHECK-NOT:     omp.wsloop
// CHECK:         llvm.func @omp_get_thread_num() -> i32
// CHECK-NOT:     llvm.func @omp_get_thread_num
func.func @tiles2d(%b: index, %n: index, %buf: memref<?x?xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c21 = arith.constant 21 : index
  %cst = arith.constant 1.0 : f32
  scf.parallel (%i, %j) = (%c0, %c0) to (%b, %n) step (%c1, %c21) {
    memref.store %cst, %buf[%i, %j] : memref<?x?xf32>
    scf.reduce
  }
  return
}
func.func @other(%buf: memref<256xf32>) {
  %c0 = arith.constant 0 : index
  %c64 = arith.constant 64 : index
  %c256 = arith.constant 256 : index
  %cst = arith.constant 1.0 : f32
  scf.parallel (%i) = (%c0) to (%c256) step (%c64) {
    memref.store %cst, %buf[%i] : memref<256xf32>
    scf.reduce
  }
  return
}

// -----

// A reduction needs the runtime's combination: the work-shared loop stays,
// and nothing is declared.
// CHECK-LABEL: func.func @sum
// CHECK:         omp.parallel {
// CHECK-NEXT:      omp.wsloop reduction(
// CHECK-NOT:     omp_get_thread_num
func.func @sum(%buf: memref<64xf32>) -> f32 {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c64 = arith.constant 64 : index
  %zero = arith.constant 0.0 : f32
  %r = scf.parallel (%i) = (%c0) to (%c64) step (%c1) init (%zero) -> f32 {
    %v = memref.load %buf[%i] : memref<64xf32>
    scf.reduce(%v : f32) {
    ^bb0(%a: f32, %b: f32):
      %s = arith.addf %a, %b : f32
      scf.reduce.return %s : f32
    }
  }
  return %r : f32
}

// -----

// A region with more in it than the loop (here a barrier before it) is left
// to the runtime.
// CHECK-LABEL: func.func @not_alone
// CHECK:         omp.parallel {
// CHECK-NEXT:      omp.barrier
// CHECK-NEXT:      omp.wsloop {
func.func @not_alone(%buf: memref<256xf32>) {
  %c0 = arith.constant 0 : index
  %c64 = arith.constant 64 : index
  %c256 = arith.constant 256 : index
  %cst = arith.constant 1.0 : f32
  omp.parallel {
    omp.barrier
    omp.wsloop {
      omp.loop_nest (%i) : index = (%c0) to (%c256) step (%c64) {
        memref.store %cst, %buf[%i] : memref<256xf32>
        omp.yield
      }
    }
    omp.terminator
  }
  return
}
