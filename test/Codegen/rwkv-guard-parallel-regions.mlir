// RUN: rwkv-opt %s -split-input-file --convert-scf-to-openmp --canonicalize --rwkv-guard-parallel-regions | FileCheck %s

// One tile loop with a dynamic trip count (tokens of a prompt of unknown
// length): the region forks only when there is a second tile.
// CHECK-LABEL: func.func @tiles
// CHECK-SAME:    (%[[N:[^:]+]]: index
// CHECK-DAG:     %[[C0:.+]] = arith.constant 0 : index
// CHECK-DAG:     %[[C21:.+]] = arith.constant 21 : index
// CHECK:         %[[NEXT:.+]] = arith.addi %[[C0]], %[[C21]] : index
// CHECK:         %[[MORE:.+]] = arith.cmpi slt, %[[NEXT]], %[[N]] : index
// CHECK:         omp.parallel if(%[[MORE]]) {
// CHECK:           omp.loop_nest (%{{.+}}) : index = (%[[C0]]) to (%[[N]]) step (%[[C21]])
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

// Two tiled dimensions (batch row, tokens): more than one iteration in
// either is enough.
// CHECK-LABEL: func.func @tiles2d
// CHECK-SAME:    (%[[B:[^:]+]]: index, %[[N:[^:]+]]: index
// CHECK:         %[[M0:.+]] = arith.cmpi slt, %{{.+}}, %[[B]] : index
// CHECK:         %[[M1:.+]] = arith.cmpi slt, %{{.+}}, %[[N]] : index
// CHECK:         %[[ANY:.+]] = arith.ori %[[M0]], %[[M1]] : i1
// CHECK:         omp.parallel if(%[[ANY]])
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

// -----

// Statically more than one tile (the output-channel tiles of a projection):
// no clause, always fork.
// CHECK-LABEL: func.func @static_tiles
// CHECK-NOT:     arith.cmpi
// CHECK:         omp.parallel {
func.func @static_tiles(%buf: memref<256xf32>) {
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
