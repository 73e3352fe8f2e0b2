// The input is lowered and tiled as in rwkv-cpu-pipeline, then handed to the
// pass under test.
// RUN: rwkv-opt %s -split-input-file --pass-pipeline="builtin.module(rwkv-decompose,convert-rwkv-to-linalg,func.func(convert-elementwise-to-linalg),rwkv-fuse-elementwise,canonicalize,rwkv-tile-and-fuse,canonicalize)" \
// RUN:   | rwkv-opt -split-input-file --rwkv-vectorize-projections --canonicalize --mlir-print-local-scope | FileCheck %s
// The gradient projections, as rwkv-differentiate builds them:
// RUN: rwkv-opt %s -split-input-file --pass-pipeline="builtin.module(rwkv-decompose,rwkv-differentiate,convert-rwkv-to-linalg,func.func(convert-elementwise-to-linalg),rwkv-fuse-elementwise,canonicalize,rwkv-tile-and-fuse,canonicalize)" \
// RUN:   | rwkv-opt -split-input-file --rwkv-vectorize-projections --canonicalize --mlir-print-local-scope | FileCheck %s --check-prefix=GRAD

// rwkv-vectorize-projections (codegen/VectorizeProjections.cpp): the tiled
// projection contraction becomes scf.for loops whose reduction loop carries
// vector accumulators as iter_args (registers), with vector multiply-adds
// that keep the contraction's fastmath flags.

// W[o, i] (rwkv.linear, bf16): `i` is the vector dimension. Per block of 4
// output rows, the tokens go first in register blocks of 2 (prefill: each
// weight vector is loaded once for both tokens, 2 x 4 accumulators), then
// one at a time (decode: 4 rows x 2 parts = 8 accumulators). A 16-element
// bf16 load is split into its even (shl 16) and odd (and 0xffff0000)
// elements as two f32 vectors; x is split the same way with
// vector.deinterleave. One horizontal reduction per output, added to the
// fused zero fill.
// CHECK-LABEL: func.func @linear
// CHECK-DAG:     %[[HI:.+]] = arith.constant dense<-65536> : vector<8xi32>
// CHECK-DAG:     %[[SH:.+]] = arith.constant dense<16> : vector<8xi32>
// CHECK:         scf.forall
// CHECK:           %[[FILL:.+]] = linalg.fill
// CHECK-NOT:       linalg.generic
// The loop over the batch row (extent 1) folds away.
// CHECK:           %[[NT:.+]] = arith.subi
// CHECK:           scf.for %[[O:[^ ]+]] = %{{.+}} to %{{.+}} step %c4 iter_args(%{{.+}} = %[[FILL]])
// Two tokens per step up to the even part of the tile's token count.
// CHECK:             scf.for %[[T:[^ ]+]] = %{{.+}} to %[[NT]] step %c2
// CHECK:               %[[T1:.+]] = arith.addi %[[T]], %c1
// CHECK:               %{{.+}}:8 = scf.for %[[I:[^ ]+]] = %{{.+}} to %{{.+}} step %c16 iter_args(%[[A0:[^ ]+]] = %[[ZERO:[^,]+]], %{{[^ ]+}} = %[[ZERO]], %{{[^ ]+}} = %[[ZERO]], %{{[^ ]+}} = %[[ZERO]], %[[A4:[^ ]+]] = %[[ZERO]], {{.+}}) -> (vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>)
// CHECK:                 %[[X0:.+]] = vector.transfer_read %{{.+}}[%{{.+}}, %[[T]], %[[I]]], %{{.+}} {in_bounds = [true]} : tensor<1x?x32xf32>, vector<16xf32>
// CHECK:                 %[[X0E:.+]], %[[X0O:.+]] = vector.deinterleave %[[X0]] : vector<16xf32> -> vector<8xf32>
// CHECK:                 %[[X1:.+]] = vector.transfer_read %{{.+}}[%{{.+}}, %[[T1]], %[[I]]], %{{.+}} {in_bounds = [true]} : tensor<1x?x32xf32>, vector<16xf32>
// CHECK:                 %[[X1E:.+]], %[[X1O:.+]] = vector.deinterleave %[[X1]] : vector<16xf32> -> vector<8xf32>
// CHECK:                 %[[WP:.+]] = vector.transfer_read %{{.+}}[%[[O]], %[[I]]], %{{.+}} {in_bounds = [true]} : tensor<16x32xbf16>, vector<16xbf16>
// CHECK:                 %[[WI:.+]] = vector.bitcast %[[WP]] : vector<16xbf16> to vector<8xi32>
// CHECK:                 %[[WEI:.+]] = arith.shli %[[WI]], %[[SH]] : vector<8xi32>
// CHECK:                 %[[WOI:.+]] = arith.andi %[[WI]], %[[HI]] : vector<8xi32>
// CHECK:                 %[[WE:.+]] = vector.bitcast %[[WEI]] : vector<8xi32> to vector<8xf32>
// CHECK:                 %[[WO:.+]] = vector.bitcast %[[WOI]] : vector<8xi32> to vector<8xf32>
// Token 0 and token 1 use the same widened weights.
// CHECK:                 %[[M0:.+]] = arith.mulf %[[X0E]], %[[WE]] fastmath<reassoc,contract> : vector<8xf32>
// CHECK:                 %[[S0:.+]] = arith.addf %[[A0]], %[[M0]] fastmath<reassoc,contract> : vector<8xf32>
// CHECK:                 %[[M1:.+]] = arith.mulf %[[X0O]], %[[WO]] fastmath<reassoc,contract> : vector<8xf32>
// CHECK:                 arith.addf %[[S0]], %[[M1]] fastmath<reassoc,contract> : vector<8xf32>
// CHECK:                 %[[M2:.+]] = arith.mulf %[[X1E]], %[[WE]] fastmath<reassoc,contract> : vector<8xf32>
// CHECK:                 arith.addf %[[A4]], %[[M2]] fastmath<reassoc,contract> : vector<8xf32>
// CHECK-COUNT-3:         vector.bitcast %{{.+}} : vector<16xbf16> to vector<8xi32>
// CHECK:                 scf.yield
// CHECK-COUNT-8:       vector.reduction <add>
// The remaining token (odd token counts; all of decode).
// CHECK:             scf.for %{{.+}} = %[[NT]] to %{{.+}} step %c1
// CHECK:               %[[V:.+]]:8 = scf.for {{.+}} -> (vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>)
// CHECK-COUNT-1:         vector.deinterleave
// CHECK-NOT:             vector.deinterleave
// CHECK:                 scf.yield
// Even and odd parts in separate accumulators, summed once at the end.
// CHECK:               %[[S:.+]] = arith.addf %[[V]]#0, %[[V]]#1 fastmath<reassoc,contract> : vector<8xf32>
// CHECK:               %[[INIT:.+]] = tensor.extract
// CHECK:               %[[R:.+]] = vector.reduction <add>, %[[S]], %[[INIT]] fastmath<reassoc,contract> : vector<8xf32> into f32
// CHECK:               tensor.insert %[[R]]
// CHECK:           scf.forall.in_parallel
func.func @linear(%x: tensor<1x?x32xf32>, %w: tensor<16x32xbf16>) -> tensor<1x?x16xf32> {
  %y = rwkv.linear %x, %w : tensor<1x?x32xf32>, tensor<16x32xbf16> -> tensor<1x?x16xf32>
  return %y : tensor<1x?x16xf32>
}

// -----

// W[o, i] with f32 weights: two consecutive 8-lane parts per step, no
// widening and no deinterleave.
// CHECK-LABEL: func.func @linear_f32
// CHECK:         scf.for %{{.+}} step %c2
// CHECK:           scf.for %[[I:[^ ]+]] = {{.+}} step %c16
// CHECK-NOT:         vector.deinterleave
// CHECK:             vector.transfer_read %{{.+}}[%{{.+}}, %{{.+}}, %[[I]]]{{.+}} : tensor<1x?x32xf32>, vector<8xf32>
// CHECK:             %[[I8:.+]] = arith.addi %[[I]], %c8
// CHECK:             vector.transfer_read %{{.+}}[%{{.+}}, %{{.+}}, %[[I8]]]{{.+}} : tensor<1x?x32xf32>, vector<8xf32>
// CHECK:             vector.transfer_read %{{.+}}[%{{.+}}, %[[I]]]{{.+}} : tensor<16x32xf32>, vector<8xf32>
// CHECK:             %[[J8:.+]] = arith.addi %[[I]], %c8
// CHECK:             vector.transfer_read %{{.+}}[%{{.+}}, %[[J8]]]{{.+}} : tensor<16x32xf32>, vector<8xf32>
// CHECK-NOT:         arith.extf
// CHECK:             scf.yield
func.func @linear_f32(%x: tensor<1x?x32xf32>, %w: tensor<16x32xf32>) -> tensor<1x?x16xf32> {
  %y = rwkv.linear %x, %w : tensor<1x?x32xf32>, tensor<16x32xf32> -> tensor<1x?x16xf32>
  return %y : tensor<1x?x16xf32>
}

// -----

// W[o, i] int8 with per-row scales: each i8 vector is widened with sitofp
// (no bf16 pair trick), the reduction runs on the raw integers, and the scale
// is applied once per output after the horizontal sum (never per weight).
// CHECK-LABEL: func.func @linear_int8
// CHECK:         scf.for %{{.+}} step %c2
// CHECK:           scf.for %[[I:[^ ]+]] = {{.+}} step %c16
// CHECK-NOT:         vector.deinterleave
// CHECK:             %[[Q:.+]] = vector.transfer_read %{{.+}}[%{{.+}}, %[[I]]]{{.+}} : tensor<16x32xi8>, vector<8xi8>
// CHECK:             %[[QF:.+]] = arith.sitofp %[[Q]] : vector<8xi8> to vector<8xf32>
// CHECK:             arith.mulf %{{.+}}, %[[QF]] fastmath<reassoc,contract> : vector<8xf32>
// CHECK:             scf.yield
// CHECK:           %[[SUM:.+]] = vector.reduction <add>, %{{[^,]+}} fastmath<reassoc,contract> : vector<8xf32> into f32
// CHECK:           %[[SC:.+]] = tensor.extract %{{.+}}[%{{.+}}] : tensor<16xf32>
// CHECK:           %[[M:.+]] = arith.mulf %[[SUM]], %[[SC]] fastmath<reassoc,contract> : f32
// CHECK:           arith.addf %{{.+}}, %[[M]] fastmath<reassoc,contract> : f32
// CHECK-NOT:     linalg.generic
func.func @linear_int8(%x: tensor<1x?x32xf32>, %q: tensor<16x32xi8>, %s: tensor<16xf32>) -> tensor<1x?x16xf32> {
  %y = rwkv.linear %x, %q scale %s : tensor<1x?x32xf32>, tensor<16x32xi8>, tensor<16xf32> -> tensor<1x?x16xf32>
  return %y : tensor<1x?x16xf32>
}

// -----

// W[o, i / 2] packed int4 with bf16 scales per group of 32 inputs: the
// reduction loop steps over the bytes (8 per step = 16 weights, so a step
// never leaves its group) and reads x at twice the byte index, split into
// even and odd elements. Each vector<8xi8> of bytes is sign-extended to i32
// and unpacked in registers: the low nibbles (even columns) via the float
// 2^23 + (n xor 8) - (2^23 + 8), the high nibbles (odd columns) via an
// arithmetic shift by 4 and sitofp. The group scale is read per row and
// step (bf16, widened and broadcast). In the 2-token blocks it scales the
// two weight vectors once for both tokens; with one token (decode) the step's
// two products are summed first and scaled by one multiply-add.
// CHECK-LABEL: func.func @linear_int4
// CHECK-DAG:     %[[FOUR:.+]] = arith.constant dense<4> : vector<8xi32>
// CHECK-DAG:     %[[MAGIC:.+]] = arith.constant dense<0x4B000008> : vector<8xf32>
// CHECK-DAG:     %[[LOW:.+]] = arith.constant dense<15> : vector<8xi32>
// CHECK-DAG:     %[[BITS:.+]] = arith.constant dense<1258291208> : vector<8xi32>
// CHECK:         scf.for %[[O:[^ ]+]] = {{.+}} step %c4
// CHECK:           scf.for %[[T:[^ ]+]] = {{.+}} step %c2
// CHECK:             %{{.+}}:8 = scf.for %[[J:[^ ]+]] = %c0 to %c32 step %c8 iter_args
// CHECK:               %[[I:.+]] = arith.muli %[[J]], %c2 : index
// CHECK:               %[[G:.+]] = arith.divui %[[I]], %c32 : index
// CHECK:               %[[X0:.+]] = vector.transfer_read %{{.+}}[%{{.+}}, %[[T]], %[[I]]]{{.+}} : tensor<1x?x64xf32>, vector<16xf32>
// CHECK:               %[[X0E:.+]], %[[X0O:.+]] = vector.deinterleave %[[X0]] : vector<16xf32> -> vector<8xf32>
// CHECK:               vector.deinterleave
// CHECK:               %[[S:.+]] = tensor.extract %{{.+}}[%[[O]], %[[G]]] : tensor<16x2xbf16>
// CHECK:               %[[SF:.+]] = arith.extf %[[S]] : bf16 to f32
// CHECK:               %[[SV:.+]] = vector.broadcast %[[SF]] : f32 to vector<8xf32>
// CHECK:               %[[Q:.+]] = vector.transfer_read %{{.+}}[%[[O]], %[[J]]], %{{.+}} {in_bounds = [true]} : tensor<16x32xi8>, vector<8xi8>
// CHECK:               %[[QW:.+]] = arith.extsi %[[Q]] : vector<8xi8> to vector<8xi32>
// CHECK:               %[[LO:.+]] = arith.andi %[[QW]], %[[LOW]] : vector<8xi32>
// CHECK:               %[[LOB:.+]] = arith.xori %[[LO]], %[[BITS]] : vector<8xi32>
// CHECK:               %[[LOF:.+]] = vector.bitcast %[[LOB]] : vector<8xi32> to vector<8xf32>
// CHECK:               %[[EVEN:.+]] = arith.subf %[[LOF]], %[[MAGIC]] : vector<8xf32>
// CHECK:               %[[HI:.+]] = arith.shrsi %[[QW]], %[[FOUR]] : vector<8xi32>
// CHECK:               %[[ODD:.+]] = arith.sitofp %[[HI]] : vector<8xi32> to vector<8xf32>
// CHECK:               %[[WE:.+]] = arith.mulf %[[EVEN]], %[[SV]] fastmath<reassoc,contract> : vector<8xf32>
// CHECK:               %[[WO:.+]] = arith.mulf %[[ODD]], %[[SV]] fastmath<reassoc,contract> : vector<8xf32>
// CHECK:               arith.mulf %[[X0E]], %[[WE]] fastmath<reassoc,contract> : vector<8xf32>
// CHECK:               arith.mulf %[[X0O]], %[[WO]] fastmath<reassoc,contract> : vector<8xf32>
// CHECK-COUNT-3:       vector.transfer_read %{{.+}} : tensor<16x32xi8>, vector<8xi8>
// CHECK:               scf.yield
// No row scale after the reduction: the scales were applied per group.
// CHECK-NOT:         tensor<16xf32>
// CHECK-COUNT-8:     vector.reduction <add>
// The remaining tokens, one at a time: one accumulator per row.
// CHECK:           scf.for %{{.+}} step %c1
// CHECK:             %{{.+}}:4 = scf.for %[[J1:[^ ]+]] = %c0 to %c32 step %c8 iter_args(%[[A:[^ ]+]] = %{{[^,]+}}, {{.+}}) -> (vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>)
// CHECK:               %[[XE:.+]], %[[XO:.+]] = vector.deinterleave
// CHECK:               %[[S1:.+]] = vector.broadcast %{{.+}} : f32 to vector<8xf32>
// CHECK:               %[[E1:.+]] = arith.subf
// CHECK:               %[[O1:.+]] = arith.sitofp
// CHECK:               %[[PE:.+]] = arith.mulf %[[XE]], %[[E1]] fastmath<reassoc,contract> : vector<8xf32>
// CHECK:               %[[PO:.+]] = arith.mulf %[[XO]], %[[O1]] fastmath<reassoc,contract> : vector<8xf32>
// CHECK:               %[[SUM:.+]] = arith.addf %[[PE]], %[[PO]] fastmath<reassoc,contract> : vector<8xf32>
// CHECK:               %[[SC:.+]] = arith.mulf %[[SUM]], %[[S1]] fastmath<reassoc,contract> : vector<8xf32>
// CHECK:               arith.addf %[[A]], %[[SC]] fastmath<reassoc,contract> : vector<8xf32>
// CHECK:               scf.yield
// CHECK-COUNT-4:     vector.reduction <add>
// CHECK-NOT:     linalg.generic
func.func @linear_int4(%x: tensor<1x?x64xf32>, %q: tensor<16x32xi8>, %s: tensor<16x2xbf16>) -> tensor<1x?x16xf32> {
  %y = rwkv.linear %x, %q scale %s group 32 : tensor<1x?x64xf32>, tensor<16x32xi8>, tensor<16x2xbf16> -> tensor<1x?x16xf32>
  return %y : tensor<1x?x16xf32>
}

// -----

// int4 groups smaller than a step (16 weights with 8 lanes) are left to the
// scalar path: correct, only slower.
// CHECK-LABEL: func.func @linear_int4_small_group
// CHECK:         linalg.generic
// CHECK-NOT:     vector.transfer_read
func.func @linear_int4_small_group(%x: tensor<1x?x64xf32>, %q: tensor<16x32xi8>, %s: tensor<16x8xbf16>) -> tensor<1x?x16xf32> {
  %y = rwkv.linear %x, %q scale %s group 8 : tensor<1x?x64xf32>, tensor<16x32xi8>, tensor<16x8xbf16> -> tensor<1x?x16xf32>
  return %y : tensor<1x?x16xf32>
}

// -----

// Grouped int8 W[o, i] with bf16 scales per group of 32 inputs (llama.cpp's
// Q8_0): as per-row int8 the bytes are read and widened with sitofp, and a
// step (16 weights) never leaves its group. The group's scale is read per
// row and step: in the 2-token blocks it scales both weight vectors once for
// both tokens; with one token the step's two products are summed first and
// scaled by one multiply-add. No row scale after the reduction.
// CHECK-LABEL: func.func @linear_int8_groups
// CHECK:         scf.for %[[O:[^ ]+]] = {{.+}} step %c4
// CHECK:           scf.for %{{.+}} step %c2
// CHECK:             %{{.+}}:8 = scf.for %[[I:[^ ]+]] = %c0 to %c64 step %c16 iter_args
// CHECK:               %[[G:.+]] = arith.divui %[[I]], %c32 : index
// CHECK-NOT:           vector.deinterleave
// CHECK:               %[[Q:.+]] = vector.transfer_read %{{.+}}[%[[O]], %[[I]]]{{.+}} : tensor<16x64xi8>, vector<8xi8>
// CHECK:               %[[QF:.+]] = arith.sitofp %[[Q]] : vector<8xi8> to vector<8xf32>
// CHECK:               arith.sitofp
// CHECK:               %[[S:.+]] = tensor.extract %{{.+}}[%[[O]], %[[G]]] : tensor<16x2xbf16>
// CHECK:               %[[SF:.+]] = arith.extf %[[S]] : bf16 to f32
// CHECK:               %[[SV:.+]] = vector.broadcast %[[SF]] : f32 to vector<8xf32>
// CHECK:               %[[W:.+]] = arith.mulf %[[QF]], %[[SV]] fastmath<reassoc,contract> : vector<8xf32>
// CHECK:               arith.mulf %{{.+}}, %[[W]] fastmath<reassoc,contract> : vector<8xf32>
// CHECK:               scf.yield
// CHECK-NOT:         tensor<16xf32>
// CHECK-COUNT-8:     vector.reduction <add>
// CHECK:           scf.for %{{.+}} step %c1
// CHECK:             %{{.+}}:4 = scf.for %[[I1:[^ ]+]] = %c0 to %c64 step %c16 iter_args(%[[A:[^ ]+]] = %{{[^,]+}}, {{.+}}) -> (vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>)
// CHECK:               %[[S1:.+]] = vector.broadcast %{{.+}} : f32 to vector<8xf32>
// CHECK:               %[[Q0:.+]] = arith.sitofp %{{.+}} : vector<8xi8> to vector<8xf32>
// CHECK:               %[[Q1:.+]] = arith.sitofp %{{.+}} : vector<8xi8> to vector<8xf32>
// CHECK:               %[[P0:.+]] = arith.mulf %{{.+}}, %[[Q0]] fastmath<reassoc,contract> : vector<8xf32>
// CHECK:               %[[P1:.+]] = arith.mulf %{{.+}}, %[[Q1]] fastmath<reassoc,contract> : vector<8xf32>
// CHECK:               %[[SUM:.+]] = arith.addf %[[P0]], %[[P1]] fastmath<reassoc,contract> : vector<8xf32>
// CHECK:               %[[SC:.+]] = arith.mulf %[[SUM]], %[[S1]] fastmath<reassoc,contract> : vector<8xf32>
// CHECK:               arith.addf %[[A]], %[[SC]] fastmath<reassoc,contract> : vector<8xf32>
// CHECK:               scf.yield
// CHECK-COUNT-4:     vector.reduction <add>
// CHECK-NOT:     linalg.generic
func.func @linear_int8_groups(%x: tensor<1x?x64xf32>, %q: tensor<16x64xi8>, %s: tensor<16x2xbf16>) -> tensor<1x?x16xf32> {
  %y = rwkv.linear %x, %q scale %s group 32 int8 : tensor<1x?x64xf32>, tensor<16x64xi8>, tensor<16x2xbf16> -> tensor<1x?x16xf32>
  return %y : tensor<1x?x16xf32>
}

// -----

// Grouped int8 with groups smaller than a vector (4 weights, 8 lanes) is
// left to the scalar path: correct, only slower.
// CHECK-LABEL: func.func @linear_int8_small_group
// CHECK:         linalg.generic
// CHECK-NOT:     vector.transfer_read
func.func @linear_int8_small_group(%x: tensor<1x?x64xf32>, %q: tensor<16x64xi8>, %s: tensor<16x16xbf16>) -> tensor<1x?x16xf32> {
  %y = rwkv.linear %x, %q scale %s group 4 int8 : tensor<1x?x64xf32>, tensor<16x64xi8>, tensor<16x16xbf16> -> tensor<1x?x16xf32>
  return %y : tensor<1x?x16xf32>
}

// -----

// A static batch of 4 rows (rwkv-compile --batch 4; the tile holds the
// whole batch): per block of 4 weight rows, the batch rows go in blocks of 2
// (8-lane vectors) with one token each, so a batched decode step reads and
// widens every weight vector once for 2 sequences: x is read at batch rows
// %B and %B + 1 of the same token, the weight rows once.
// CHECK-LABEL: func.func @linear_batched
// CHECK:         scf.forall (%{{.+}}) = (0) to (%{{.+}}) step (16)
// CHECK:           scf.for %[[O:[^ ]+]] = %c0 to %c16 step %c4
// CHECK:             scf.for %[[B:[^ ]+]] = %c0 to %c4 step %c2
// CHECK:               scf.for %[[T:[^ ]+]] = %c0 to %{{.+}} step %c1
// CHECK:                 %[[B1:.+]] = arith.addi %[[B]], %c1
// CHECK:                 scf.for %[[I:[^ ]+]] = %c0 to %c32 step %c16 iter_args({{.+}}) -> (vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>)
// CHECK:                   vector.transfer_read %{{.+}}[%[[B]], %[[T]], %[[I]]]{{.+}} : tensor<4x?x32xf32>, vector<8xf32>
// CHECK:                   vector.transfer_read %{{.+}}[%[[B1]], %[[T]], %[[I]]]{{.+}} : tensor<4x?x32xf32>, vector<8xf32>
// CHECK:                   %[[Q:.+]] = vector.transfer_read %{{.+}}[%[[O]], %[[I]]]{{.+}} : tensor<16x32xi8>, vector<8xi8>
// CHECK-COUNT-7:           vector.transfer_read %{{.+}} : tensor<16x32xi8>, vector<8xi8>
// CHECK-NOT:               vector.transfer_read
// CHECK:                   scf.yield
// CHECK-COUNT-8:         vector.reduction <add>
func.func @linear_batched(%x: tensor<4x?x32xf32>, %q: tensor<16x32xi8>, %s: tensor<16xf32>) -> tensor<4x?x16xf32> {
  %y = rwkv.linear %x, %q scale %s : tensor<4x?x32xf32>, tensor<16x32xi8>, tensor<16xf32> -> tensor<4x?x16xf32>
  return %y : tensor<4x?x16xf32>
}

// -----

// Long f32 rows: the 4 rows of a block would be 128 KiB, so the token blocks
// walk the reduction in chunks of 1024 (16 KiB of weights, reused from L1 by
// every token block) and accumulate partial sums in the tile; the single
// tokens (decode) still stream each row in one pass.
// CHECK-LABEL: func.func @long_rows
// CHECK:         scf.for %{{.+}} step %c4
// CHECK:           scf.for %[[K:[^ ]+]] = %c0 to %c8192 step %c1024
// CHECK:             scf.for %{{.+}} step %c2
// CHECK:               %[[KE:.+]] = arith.addi %[[K]], %c1024
// CHECK:               scf.for %{{.+}} = %[[K]] to %[[KE]] step %c16
// CHECK:           scf.for %{{.+}} step %c1
// CHECK:             scf.for %{{.+}} = %c0 to %c8192 step %c16
func.func @long_rows(%x: tensor<1x?x8192xf32>, %w: tensor<16x8192xf32>) -> tensor<1x?x16xf32> {
  %y = rwkv.linear %x, %w : tensor<1x?x8192xf32>, tensor<16x8192xf32> -> tensor<1x?x16xf32>
  return %y : tensor<1x?x16xf32>
}

// -----

// One tile covers a static batch and sequence, so the tile loops fold away
// and the second projection reads the first one's result directly (a B = 1,
// T = 16 training library did): both are rewritten, the second reading the
// first's replacement.
// CHECK-LABEL: func.func @chain
// CHECK-NOT:     linalg.generic
// CHECK:         %[[H:.+]] = scf.for
// CHECK:           vector.transfer_read %{{.+}} : tensor<64x32xf32>, vector<8xf32>
// CHECK:         scf.for
// CHECK:           vector.transfer_read %[[H]]{{.+}} : tensor<1x16x64xf32>, vector<8xf32>
// CHECK-NOT:     linalg.generic
func.func @chain(%x: tensor<1x16x32xf32>, %w1: tensor<64x32xf32>, %w2: tensor<16x64xf32>) -> tensor<1x16x16xf32> {
  %h = rwkv.linear %x, %w1 : tensor<1x16x32xf32>, tensor<64x32xf32> -> tensor<1x16x64xf32>
  %y = rwkv.linear %h, %w2 : tensor<1x16x64xf32>, tensor<16x64xf32> -> tensor<1x16x16xf32>
  return %y : tensor<1x16x16xf32>
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

// -----

// W[i, o] over a static batch of 4 rows (rwkv-compile --batch 4): each step
// reads (and widens, bf16) the weight vector of input i once and multiplies
// it with the broadcast x of the 4 batch rows, one accumulator per row.
// CHECK-LABEL: func.func @lora_batched
// CHECK:         scf.for %[[T:[^ ]+]] = %c0 to %{{.+}} step %c1
// CHECK:           scf.for %[[I:[^ ]+]] = {{.+}} iter_args({{.+}}) -> (vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>)
// CHECK:             tensor.extract %{{.+}}[%c0, %[[T]], %[[I]]] : tensor<4x?x16xf32>
// CHECK:             tensor.extract %{{.+}}[%c1, %[[T]], %[[I]]] : tensor<4x?x16xf32>
// CHECK:             tensor.extract %{{.+}}[%c2, %[[T]], %[[I]]] : tensor<4x?x16xf32>
// CHECK:             tensor.extract %{{.+}}[%c3, %[[T]], %[[I]]] : tensor<4x?x16xf32>
// CHECK:             %[[WV:.+]] = vector.transfer_read %{{.+}}[%[[I]], %{{.+}}], %{{.+}} {in_bounds = [true]} : tensor<16x8xbf16>, vector<8xbf16>
// CHECK:             %[[WF:.+]] = arith.extf %[[WV]] : vector<8xbf16> to vector<8xf32>
// CHECK-NOT:         vector.transfer_read
// CHECK-COUNT-4:     arith.mulf %{{.+}}, %[[WF]] fastmath<reassoc,contract> : vector<8xf32>
// CHECK:             scf.yield
// CHECK-COUNT-4:   vector.transfer_write
func.func @lora_batched(%x: tensor<4x?x16xf32>, %d: tensor<16x8xbf16>, %u: tensor<8x16xbf16>) -> tensor<4x?x16xf32> {
  %0 = rwkv.lora %x, %d, %u : tensor<4x?x16xf32>, tensor<16x8xbf16>, tensor<8x16xbf16> -> tensor<4x?x16xf32>
  return %0 : tensor<4x?x16xf32>
}

// -----

// Training: dW[o, i] = sum_n dy[n, o] x[n, i] of a linear layer is the
// projection [1, O, N] x [I, N] (dyᵀ, xᵀ materialised once), so it takes
// the same register-blocked W[o, i] path with the N = 32 tokens as the
// reduction: per tile of 16 weight rows, blocks of 4 dW columns x 2 dW rows,
// 8 vector accumulators over the tokens, then one horizontal reduction per
// dW element.
// GRAD-LABEL: func.func @linear_train_grad
// GRAD:         %[[XT:.+]] = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d1, d0)>, {{.*}} outs(%{{.+}} : tensor<32x32xf32>)
// GRAD:         %[[DYT:.+]] = tensor.expand_shape %{{.+}} {{.*}} into tensor<1x64x32xf32>
// GRAD:         %[[DW:.+]] = scf.forall (%[[O:.+]]) = (0) to (64) step (16) shared_outs(%{{.+}} = %{{.+}}) -> (tensor<1x64x32xf32>) {
// GRAD:           %[[DYS:.+]] = tensor.extract_slice %[[DYT]][0, %[[O]], 0] [1, 16, 32] [1, 1, 1]
// GRAD:           %[[FILL:.+]] = linalg.fill
// GRAD-NOT:       linalg.generic
// GRAD:           scf.for %[[I:[^ ]+]] = %c0 to %c32 step %c4 iter_args(%{{.+}} = %[[FILL]])
// GRAD:             scf.for %[[R:[^ ]+]] = %c0 to %c16 step %c2
// GRAD:               %{{.+}}:8 = scf.for %[[N:[^ ]+]] = %c0 to %c32 step %c16 iter_args({{.+}}) -> (vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>)
// GRAD:                 vector.transfer_read %[[DYS]][%c0, %[[R]], %[[N]]]
// GRAD:                 vector.transfer_read %[[XT]][%[[I]], %[[N]]], %{{.+}} {in_bounds = [true]} : tensor<32x32xf32>, vector<8xf32>
// GRAD:                 arith.mulf {{.+}} fastmath<reassoc,contract> : vector<8xf32>
// GRAD:                 scf.yield
// GRAD-COUNT-8:       vector.reduction <add>
// GRAD:           scf.forall.in_parallel
// GRAD:         %[[DWC:.+]] = tensor.collapse_shape %[[DW]] {{.*}} into tensor<64x32xf32>
// GRAD:         return %{{.+}}, %{{.+}}, %[[DWC]], %{{.+}} :
func.func @linear_train(%x: tensor<2x16x32xf32>, %w: tensor<64x32xf32>, %head: tensor<16x64xf32>, %tgt: tensor<2x16xi32>)
    -> tensor<f32> attributes {rwkv.gradient = "linear_train_grad"} {
  %y = rwkv.linear %x, %w : tensor<2x16x32xf32>, tensor<64x32xf32> -> tensor<2x16x64xf32>
  %l = rwkv.cross_entropy %y, %head, %tgt : tensor<2x16x64xf32>, tensor<16x64xf32>, tensor<2x16xi32> -> tensor<f32>
  return %l : tensor<f32>
}
