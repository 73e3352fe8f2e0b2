// RUN: rwkv-opt %s -split-input-file --pass-pipeline='builtin.module(func.func(rwkv-lower-kernel-transfers))' -verify-diagnostics | FileCheck %s

// rwkv-lower-kernel-transfers (codegen/CUDA/LowerKernelTransfers.cpp):
// convert-gpu-to-nvvm lowers vector.load / store but not vector transfers.
// Inside a gpu.launch, an in-bounds rank-1 transfer over a unit-stride
// dimension is a vector.load / vector.store at the same indices; host code
// is left alone (the CPU back end lowers its transfers itself); a transfer
// that cannot become a plain load or store is an error at this pass, not a
// failed cast in the NVVM translation much later. A load or store whose
// element offset is provably a multiple of 4 (whole buffers start 16-byte
// aligned; subview offsets and indices are followed through constants,
// products and sums) gets alignment = 16, so that NVPTX emits
// ld.global.v4 instead of one scalar load per element.

// CHECK-LABEL: func.func @row
// CHECK-SAME:    (%[[M:[^:]+]]: memref<?x64xf32>, %[[I:[^:]+]]: index, %[[H:[^:]+]]: memref<64xf32>)
// CHECK:         gpu.launch
// CHECK-NEXT:      %[[V:.+]] = vector.load %[[M]][%[[I]], %{{.+}}] {alignment = 16 : i64} : memref<?x64xf32>, vector<64xf32>
// CHECK-NEXT:      %[[D:.+]] = arith.addf %[[V]], %[[V]] : vector<64xf32>
// CHECK-NEXT:      vector.store %[[D]], %[[M]][%[[I]], %{{.+}}] {alignment = 16 : i64} : memref<?x64xf32>, vector<64xf32>
// CHECK-NEXT:      gpu.terminator
// CHECK:         vector.transfer_read %[[H]]
func.func @row(%m: memref<?x64xf32>, %i: index, %h: memref<64xf32>) -> vector<64xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %cst = arith.constant 0.0 : f32
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %c1, %gy = %c1, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c1, %sy = %c1, %sz = %c1) {
    %v = vector.transfer_read %m[%i, %c0], %cst {in_bounds = [true]} : memref<?x64xf32>, vector<64xf32>
    %d = arith.addf %v, %v : vector<64xf32>
    vector.transfer_write %d, %m[%i, %c0] {in_bounds = [true]} : vector<64xf32>, memref<?x64xf32>
    gpu.terminator
  }
  %hv = vector.transfer_read %h[%c0], %cst {in_bounds = [true]} : memref<64xf32>, vector<64xf32>
  return %hv : vector<64xf32>
}

// -----

// A column (the vector runs along a strided dimension) is a gather, not a
// load: an error names the transfer.
func.func @column(%m: memref<64x64xf32>, %j: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %cst = arith.constant 0.0 : f32
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %c1, %gy = %c1, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c1, %sy = %c1, %sz = %c1) {
    // expected-error @+1 {{vector transfer in a kernel is not an in-bounds rank-1 access to a unit-stride dimension}}
    %v = vector.transfer_read %m[%c0, %j], %cst {in_bounds = [true], permutation_map = affine_map<(d0, d1) -> (d0)>} : memref<64x64xf32>, vector<64xf32>
    vector.print %v : vector<64xf32>
    gpu.terminator
  }
  return
}

// -----

// Possibly out of bounds (no in_bounds): a masked access, also refused.
func.func @maybe_out_of_bounds(%m: memref<?xf32>, %i: index) {
  %c1 = arith.constant 1 : index
  %cst = arith.constant 0.0 : f32
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %c1, %gy = %c1, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c1, %sy = %c1, %sz = %c1) {
    // expected-error @+1 {{vector transfer in a kernel is not an in-bounds rank-1 access to a unit-stride dimension}}
    %v = vector.transfer_read %m[%i], %cst : memref<?xf32>, vector<8xf32>
    vector.print %v : vector<8xf32>
    gpu.terminator
  }
  return
}

// -----

// Alignment: a state row of a subview at (h, i) (offset h * 4096 + i * 64),
// a head's slice at h * 64 + 8 (a multiple of 8 elements), and two accesses
// that prove nothing (a dynamic column, an odd constant offset).
// CHECK-LABEL: func.func @alignment
// CHECK:         vector.load %{{.+}}[%{{.+}}] {alignment = 16 : i64} : memref<64xf32, strided<[1], offset: ?>>
// CHECK:         vector.load %{{.+}} {alignment = 16 : i64} : memref<?x768xf32>, vector<8xf32>
// CHECK:         vector.load %{{.+}} : memref<?x768xf32>, vector<8xf32>
// CHECK-NOT:     alignment
// CHECK:         vector.load %{{.+}}[%{{.+}}, %{{.+}}] : memref<?x768xf32>, vector<8xf32>
// CHECK-NOT:     alignment
// CHECK:         gpu.terminator
func.func @alignment(%s: memref<2x12x64x64xf32>, %x: memref<?x768xf32>, %h: index, %i: index, %t: index, %j: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c3 = arith.constant 3 : index
  %c8 = arith.constant 8 : index
  %c64 = arith.constant 64 : index
  %cst = arith.constant 0.0 : f32
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %c1, %gy = %c1, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c1, %sy = %c1, %sz = %c1) {
    %row = memref.subview %s[1, %h, %i, 0] [1, 1, 1, 64] [1, 1, 1, 1] : memref<2x12x64x64xf32> to memref<64xf32, strided<[1], offset: ?>>
    %r = vector.transfer_read %row[%c0], %cst {in_bounds = [true]} : memref<64xf32, strided<[1], offset: ?>>, vector<64xf32>
    %base = arith.muli %h, %c64 : index
    %col = arith.addi %base, %c8 : index
    %a = vector.transfer_read %x[%t, %col], %cst {in_bounds = [true]} : memref<?x768xf32>, vector<8xf32>
    %odd = arith.addi %base, %c3 : index
    %b = vector.transfer_read %x[%t, %odd], %cst {in_bounds = [true]} : memref<?x768xf32>, vector<8xf32>
    %c = vector.transfer_read %x[%t, %j], %cst {in_bounds = [true]} : memref<?x768xf32>, vector<8xf32>
    vector.print %r : vector<64xf32>
    vector.print %a : vector<8xf32>
    vector.print %b : vector<8xf32>
    vector.print %c : vector<8xf32>
    gpu.terminator
  }
  return
}

// -----

// A loop counter is what its start and step are multiples of: a warp lane's
// vector loads (rwkv-warp-reductions: lane * 8, stepping by 256) are
// 16-byte aligned, a counter that starts at an odd element is not.
// CHECK-LABEL: func.func @loop_counter
// CHECK:         vector.load %{{.+}} {alignment = 16 : i64} : memref<1024x768xbf16>, vector<8xbf16>
// CHECK:         vector.load %{{.+}} : memref<1024x768xbf16>, vector<8xbf16>
// CHECK-NOT:     alignment
// CHECK:         gpu.terminator
func.func @loop_counter(%w: memref<1024x768xbf16>, %o: index) {
  %c1 = arith.constant 1 : index
  %c3 = arith.constant 3 : index
  %c8 = arith.constant 8 : index
  %c256 = arith.constant 256 : index
  %c768 = arith.constant 768 : index
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %c1, %gy = %c1, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c256, %sy = %c1, %sz = %c1) {
    %lane = arith.remui %tx, %c256 : index
    %lb = arith.muli %lane, %c8 : index
    scf.for %i = %lb to %c768 step %c256 {
      %v = vector.load %w[%o, %i] : memref<1024x768xbf16>, vector<8xbf16>
      vector.print %v : vector<8xbf16>
    }
    %lb3 = arith.addi %lb, %c3 : index
    scf.for %i = %lb3 to %c768 step %c256 {
      %v = vector.load %w[%o, %i] : memref<1024x768xbf16>, vector<8xbf16>
      vector.print %v : vector<8xbf16>
    }
    gpu.terminator
  }
  return
}
