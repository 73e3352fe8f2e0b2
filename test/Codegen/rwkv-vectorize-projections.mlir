// The input is lowered and tiled as in rwkv-cpu-pipeline, then handed to the
// pass under test.
// RUN: rwkv-opt %s -split-input-file --pass-pipeline="builtin.module(rwkv-decompose,convert-rwkv-to-linalg,func.func(convert-elementwise-to-linalg),rwkv-fuse-elementwise,canonicalize,rwkv-tile-and-fuse,canonicalize)" \
// RUN:   | rwkv-opt -split-input-file --rwkv-vectorize-projections --canonicalize --mlir-print-local-scope | FileCheck %s

// rwkv-vectorize-projections (codegen/VectorizeProjections.cpp): the tiled
// projection contraction becomes scf.for loops whose reduction loop carries
// vector accumulators as iter_args (registers), with vector multiply-adds
// that keep the contraction's fastmath flags.

// W[o, i] (rwkv.linear): `i` is the vector dimension; 4 output rows per step,
// 2 vectors of the 32 input channels each, so 8 accumulators; one horizontal
// reduction per output, added to the fused zero fill.
// CHECK-LABEL: func.func @linear
// CHECK:         scf.forall
// CHECK:           %[[FILL:.+]] = linalg.fill
// CHECK-NOT:       linalg.generic
// The loop over the batch row (extent 1) folds away.
// CHECK:           scf.for %[[T:[^ ]+]] = %{{.+}} to %{{.+}} step %{{.+}} iter_args(%{{.+}} = %[[FILL]])
// CHECK:             scf.for %[[O:[^ ]+]] = %{{.+}} to %{{.+}} step %c4 iter_args
// CHECK:                 %[[V:.+]]:8 = scf.for %[[I:[^ ]+]] = %{{.+}} to %{{.+}} step %{{.+}} iter_args(%[[A0:[^ ]+]] = %[[ZERO:[^,]+]], {{.+}}) -> (vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>)
// CHECK:                   %[[XV:.+]] = vector.transfer_read %{{.+}}[%{{.+}}, %[[T]], %[[I]]], %{{.+}} {in_bounds = [true]} : tensor<1x?x32xf32>, vector<8xf32>
// CHECK:                   %[[WV:.+]] = vector.transfer_read %{{.+}}[%[[O]], %[[I]]], %{{.+}} {in_bounds = [true]} : tensor<16x32xbf16>, vector<8xbf16>
// CHECK:                   %[[WF:.+]] = arith.extf %[[WV]] : vector<8xbf16> to vector<8xf32>
// CHECK:                   %[[M:.+]] = arith.mulf %[[XV]], %[[WF]] fastmath<reassoc,contract> : vector<8xf32>
// CHECK:                   arith.addf %[[A0]], %[[M]] fastmath<reassoc,contract> : vector<8xf32>
// CHECK:                   scf.yield {{.+}} : vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>
// CHECK:                 %[[S:.+]] = arith.addf %[[V]]#0, %[[V]]#1 fastmath<reassoc,contract> : vector<8xf32>
// CHECK:                 %[[INIT:.+]] = tensor.extract
// CHECK:                 %[[R:.+]] = vector.reduction <add>, %[[S]], %[[INIT]] fastmath<reassoc,contract> : vector<8xf32> into f32
// CHECK:                 tensor.insert %[[R]]
// CHECK:           scf.forall.in_parallel
func.func @linear(%x: tensor<1x?x32xf32>, %w: tensor<16x32xbf16>) -> tensor<1x?x16xf32> {
  %y = rwkv.linear %x, %w : tensor<1x?x32xf32>, tensor<16x32xbf16> -> tensor<1x?x16xf32>
  return %y : tensor<1x?x16xf32>
}

// -----

// W[i, o] (LoRA, f32): `o` is the vector dimension, outer-product form; the
// accumulator vectors are read before and written after the reduction loop.
// CHECK-LABEL: func.func @lora
// CHECK:         scf.for %[[I:[^ ]+]] = {{.+}} iter_args(%[[A:[^ ]+]] = %{{.+}}) -> (vector<8xf32>)
// CHECK:           %[[XS:.+]] = tensor.extract %{{.+}}[%{{.+}}, %{{.+}}, %[[I]]] : tensor<1x?x16xf32>
// CHECK:           %[[XB:.+]] = vector.broadcast %[[XS]] : f32 to vector<8xf32>
// CHECK:           %[[WV:.+]] = vector.transfer_read %{{.+}}[%[[I]], %{{.+}}], %{{.+}} {in_bounds = [true]} : tensor<16x8xf32>, vector<8xf32>
// CHECK:           %[[M:.+]] = arith.mulf %[[XB]], %[[WV]] fastmath<reassoc,contract> : vector<8xf32>
// CHECK:           arith.addf %[[A]], %[[M]] fastmath<reassoc,contract> : vector<8xf32>
// CHECK:         vector.transfer_write
func.func @lora(%x: tensor<1x?x16xf32>, %d: tensor<16x8xf32>, %u: tensor<8x16xf32>) -> tensor<1x?x16xf32> {
  %0 = rwkv.lora %x, %d, %u : tensor<1x?x16xf32>, tensor<16x8xf32>, tensor<8x16xf32> -> tensor<1x?x16xf32>
  return %0 : tensor<1x?x16xf32>
}
