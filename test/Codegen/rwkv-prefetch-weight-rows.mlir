// RUN: rwkv-opt %s -split-input-file --rwkv-prefetch-weight-rows --mlir-print-local-scope | FileCheck %s

// rwkv-prefetch-weight-rows (codegen/PrefetchWeightRows.cpp): a reduction
// loop that reads a block of rows of a weight memref prefetches, before each
// read, the same column of the row one block further down (clamped to the
// last row); the loop-invariant row arithmetic stays outside the loop.

// CHECK-LABEL: func.func @two_rows
// CHECK-SAME:    (%[[W:[^:]+]]: memref<64x768xbf16>, %[[O:[^:]+]]: index
// CHECK:         %[[O1:.+]] = arith.addi %[[O]], %{{.+}}
// CHECK:         %[[C2:.+]] = arith.constant 2 : index
// CHECK:         %[[D:.+]] = memref.dim %[[W]], %{{.+}} : memref<64x768xbf16>
// CHECK:         %[[LAST:.+]] = arith.subi %[[D]], %{{.+}}
// CHECK:         %[[N0:.+]] = arith.addi %[[O]], %[[C2]]
// CHECK:         %[[P0:.+]] = arith.minui %[[N0]], %[[LAST]]
// CHECK:         %[[N1:.+]] = arith.addi %[[O1]], %[[C2]]
// CHECK:         %[[P1:.+]] = arith.minui %[[N1]], %[[LAST]]
// CHECK:         scf.for %[[I:.+]] = %{{.+}} to %{{.+}} step %{{.+}} iter_args
// CHECK-NEXT:      memref.prefetch %[[W]][%[[P0]], %[[I]]], read, locality<3>, data : memref<64x768xbf16>
// CHECK-NEXT:      vector.transfer_read %[[W]][%[[O]], %[[I]]]
// CHECK-NEXT:      memref.prefetch %[[W]][%[[P1]], %[[I]]], read, locality<3>, data : memref<64x768xbf16>
// CHECK-NEXT:      vector.transfer_read %[[W]][%[[O1]], %[[I]]]
// The input vector (rank 3) is not a weight row: no prefetch.
// CHECK-NOT:       memref.prefetch
// CHECK:           scf.yield
func.func @two_rows(%w: memref<64x768xbf16>, %o: index, %x: memref<1x1x768xbf16>) -> (vector<16xbf16>, vector<16xbf16>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c16 = arith.constant 16 : index
  %c768 = arith.constant 768 : index
  %pad = arith.constant 0.0 : bf16
  %zero = arith.constant dense<0.0> : vector<16xbf16>
  %o1 = arith.addi %o, %c1 : index
  %r:2 = scf.for %i = %c0 to %c768 step %c16 iter_args(%a = %zero, %b = %zero) -> (vector<16xbf16>, vector<16xbf16>) {
    %va = vector.transfer_read %w[%o, %i], %pad {in_bounds = [true]} : memref<64x768xbf16>, vector<16xbf16>
    %vb = vector.transfer_read %w[%o1, %i], %pad {in_bounds = [true]} : memref<64x768xbf16>, vector<16xbf16>
    %vx = vector.transfer_read %x[%c0, %c0, %i], %pad {in_bounds = [true]} : memref<1x1x768xbf16>, vector<16xbf16>
    %na = arith.addf %a, %va : vector<16xbf16>
    %nb = arith.addf %b, %vb : vector<16xbf16>
    %nc = arith.addf %na, %vx : vector<16xbf16>
    scf.yield %nc, %nb : vector<16xbf16>, vector<16xbf16>
  }
  return %r#0, %r#1 : vector<16xbf16>, vector<16xbf16>
}

// -----

// One row is one long stream: left to the hardware prefetcher.
// CHECK-LABEL: func.func @one_row
// CHECK-NOT:     memref.prefetch
func.func @one_row(%w: memref<64x768xbf16>, %o: index) -> vector<16xbf16> {
  %c0 = arith.constant 0 : index
  %c16 = arith.constant 16 : index
  %c768 = arith.constant 768 : index
  %pad = arith.constant 0.0 : bf16
  %zero = arith.constant dense<0.0> : vector<16xbf16>
  %r = scf.for %i = %c0 to %c768 step %c16 iter_args(%a = %zero) -> (vector<16xbf16>) {
    %va = vector.transfer_read %w[%o, %i], %pad {in_bounds = [true]} : memref<64x768xbf16>, vector<16xbf16>
    %na = arith.addf %a, %va : vector<16xbf16>
    scf.yield %na : vector<16xbf16>
  }
  return %r : vector<16xbf16>
}

// -----

// The row depends on the loop (a column walk, the W[i, o] form): no prefetch.
// CHECK-LABEL: func.func @row_varies
// CHECK-NOT:     memref.prefetch
func.func @row_varies(%w: memref<64x768xbf16>, %o: index) -> vector<16xbf16> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c64 = arith.constant 64 : index
  %pad = arith.constant 0.0 : bf16
  %zero = arith.constant dense<0.0> : vector<16xbf16>
  %r = scf.for %i = %c0 to %c64 step %c1 iter_args(%a = %zero) -> (vector<16xbf16>) {
    %va = vector.transfer_read %w[%i, %o], %pad {in_bounds = [true]} : memref<64x768xbf16>, vector<16xbf16>
    %i1 = arith.addi %i, %c1 : index
    %vb = vector.transfer_read %w[%i1, %o], %pad {in_bounds = [true]} : memref<64x768xbf16>, vector<16xbf16>
    %na = arith.addf %a, %va : vector<16xbf16>
    %nb = arith.addf %na, %vb : vector<16xbf16>
    scf.yield %nb : vector<16xbf16>
  }
  return %r : vector<16xbf16>
}
