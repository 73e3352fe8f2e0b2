// rwkv-vectorize-projections with int-dot=vnni (codegen/VectorizeProjections.cpp):
// int8 and packed int4 W[o, i] weights go as loaded into rwkv.x86.dpbusd
// (vpdpbusd) against x quantized per token to 15 bits (two signed bytes),
// or with int-dot=vnni8 to 8 bits (one byte: one vpdpbusd per step).
// The input is lowered and tiled as in rwkv-cpu-pipeline first.
// RUN: rwkv-opt %s --pass-pipeline="builtin.module(rwkv-decompose,convert-rwkv-to-linalg,func.func(convert-elementwise-to-linalg),rwkv-fuse-elementwise,canonicalize,rwkv-tile-and-fuse,canonicalize)" > %t.tiled
// RUN: rwkv-opt %t.tiled --rwkv-vectorize-projections=int-dot=vnni --canonicalize --mlir-print-local-scope | FileCheck %s
// RUN: rwkv-opt %t.tiled --rwkv-vectorize-projections=int-dot=off --canonicalize | FileCheck %s --check-prefix=OFF
// RUN: rwkv-opt %t.tiled --rwkv-vectorize-projections="int-dot=vnni8 vector-width=16" --canonicalize --mlir-print-local-scope | FileCheck %s --check-prefix=X8
// RUN: not rwkv-opt %t.tiled --rwkv-vectorize-projections=int-dot=vpdpbssd 2>&1 | FileCheck %s --check-prefix=BAD

// int-dot=vnni8 on 16 lanes: q = roundeven(clamp(x * 127 / absmax)) is a
// single byte (no hi/lo split); one accumulator per (token, row), so token
// blocks of 4 fit: 4 rows x 4 tokens, 16 vpdpbusd per step of 64 bytes, and
// the 16 sums reduced jointly without the 256 hi + lo combination.
// X8-LABEL: func.func @linear_int8
// X8:         arith.constant dense<1.270000e+02> : vector<64xf32>
// X8:         %[[Q:.+]]:3 = scf.for {{.+}} -> (tensor<1x?xf32>, tensor<1x?x64xi8>, tensor<1x?x2xi32>)
// X8-NOT:       arith.shrsi
// X8:           arith.trunci %{{.+}} : vector<64xi32> to vector<64xi8>
// X8-NOT:       arith.trunci
// X8:         scf.forall
// X8:           scf.for {{.+}} step %c4
// X8-COUNT-16:    rwkv.x86.dpbusd %{{.+}} : vector<64xi8> -> vector<16xi32>
// X8-NOT:         rwkv.x86.dpbusd
// X8:             vector.shuffle
// X8-NOT:         vector.reduction
// X8:             %[[S:.+]] = vector.extract %{{.+}}[0] : i32 from vector<16xi32>
// X8-NOT:         arith.mulf %{{.+}}, %cst{{.*}} fastmath<reassoc,contract> : f32
// X8:             %[[F:.+]] = arith.sitofp %[[S]] : i32 to f32
// X8:             arith.subf %[[F]], %{{.+}} : f32
// int4 and grouped int8: one byte part and one lane correction each.
// X8-LABEL: func.func @linear_int4
// X8:         scf.for {{.+}} -> (tensor<1x?xf32>, tensor<1x?x64xi8>, tensor<1x?x64xi8>, tensor<1x?x16xi32>)
// X8-LABEL: func.func @linear_int8_groups
// X8:         scf.for {{.+}} -> (tensor<1x?xf32>, tensor<1x?x64xi8>, tensor<1x?x16xi32>)

// BAD: rwkv-vectorize-projections: int-dot must be off, vnni or vnni8, not 'vpdpbssd'
// OFF-NOT: rwkv.x86.dpbusd

// x is a slice of a tensor from outside the tile loop: it is quantized once,
// before the scf.forall, per token (batch row 0, every token): absmax, then
// q = roundeven(clamp(x * 32512 / absmax)) split into hi = (q + 128) >> 8 and
// lo = q - 256 hi, and the prefix sums of q at each step of 32 inputs.
// CHECK-LABEL: func.func @linear_int8
// CHECK:         %[[Q:.+]]:4 = scf.for {{.+}} -> (tensor<1x?xf32>, tensor<1x?x64xi8>, tensor<1x?x64xi8>, tensor<1x?x3xi32>)
// CHECK:           vector.reduction <maximumf>
// CHECK:           scf.for {{.+}} step %c32
// CHECK:             arith.minnumf %{{.+}} : vector<32xf32>
// CHECK:             arith.maxnumf %{{.+}} : vector<32xf32>
// CHECK:             math.roundeven %{{.+}} : vector<32xf32>
// CHECK:             %[[QI:.+]] = arith.fptosi %{{.+}} : vector<32xf32> to vector<32xi32>
// CHECK:             %[[HI:.+]] = arith.shrsi %{{.+}}, %{{.+}} : vector<32xi32>
// CHECK:             %[[HI256:.+]] = arith.shli %[[HI]]
// CHECK:             %[[LO:.+]] = arith.subi %[[QI]], %[[HI256]]
// CHECK:             arith.trunci %[[HI]] : vector<32xi32> to vector<32xi8>
// CHECK:             arith.trunci %[[LO]] : vector<32xi32> to vector<32xi8>
// CHECK:             vector.reduction <add>, %[[QI]] : vector<32xi32> into i32
// CHECK:         scf.forall
// CHECK:           %[[SCALE:.+]] = tensor.extract_slice %[[Q]]#0[0, %{{.+}}] [1, %{{.+}}] [1, 1]
// CHECK:           %[[XH:.+]] = tensor.extract_slice %[[Q]]#1[0, %{{.+}}, 0] [1, %{{.+}}, 64] [1, 1, 1]
// CHECK:           %[[XL:.+]] = tensor.extract_slice %[[Q]]#2[0, %{{.+}}, 0] [1, %{{.+}}, 64] [1, 1, 1]
// CHECK:           %[[CUM:.+]] = tensor.extract_slice %[[Q]]#3[0, %{{.+}}, 0] [1, %{{.+}}, 3] [1, 1, 1]
// Two-token blocks: each weight vector is loaded once and made unsigned
// (xor 0x80) for both tokens; each (token, row) has an i32 accumulator for
// hi and one for lo: 2 tokens x 4 rows x 2.
// CHECK:           scf.for {{.+}} step %c2
// CHECK:             scf.for %[[I:[^ ]+]] = %c0 to %c64 step %c32 iter_args({{.+}}) -> (vector<8xi32>, vector<8xi32>, vector<8xi32>, vector<8xi32>, vector<8xi32>, vector<8xi32>, vector<8xi32>, vector<8xi32>, vector<8xi32>, vector<8xi32>, vector<8xi32>, vector<8xi32>, vector<8xi32>, vector<8xi32>, vector<8xi32>, vector<8xi32>)
// CHECK:               %[[H0:.+]] = vector.transfer_read %[[XH]][%c0, %{{.+}}, %[[I]]]{{.+}} : tensor<1x?x64xi8>, vector<32xi8>
// CHECK:               %[[L0:.+]] = vector.transfer_read %[[XL]][%c0, %{{.+}}, %[[I]]]{{.+}} : tensor<1x?x64xi8>, vector<32xi8>
// CHECK:               %[[W:.+]] = vector.transfer_read %{{.+}}[%{{.+}}, %[[I]]]{{.+}} : tensor<16x64xi8>, vector<32xi8>
// CHECK-NOT:           arith.sitofp
// CHECK:               %[[WU:.+]] = arith.xori %[[W]], %{{.+}} : vector<32xi8>
// CHECK:               rwkv.x86.dpbusd %{{.+}}, %[[WU]], %[[H0]] : vector<32xi8> -> vector<8xi32>
// CHECK:               rwkv.x86.dpbusd %{{.+}}, %[[WU]], %[[L0]] : vector<32xi8> -> vector<8xi32>
// CHECK-COUNT-14:      rwkv.x86.dpbusd
// CHECK-NOT:           rwkv.x86.dpbusd
// CHECK:               scf.yield
// The 16 accumulators' lanes are summed together, exactly in i32: pairs
// of accumulators transposed and added (halves of 4 lanes, then 2, then 1),
// 15 adds for the 16 sums instead of a reduction per accumulator.
// CHECK-NOT:         vector.reduction
// CHECK:             vector.shuffle %{{.+}}, %{{.+}} [4, 5, 6, 7, 12, 13, 14, 15] : vector<8xi32>, vector<8xi32>
// CHECK:             vector.shuffle %{{.+}}, %{{.+}} [0, 1, 2, 3, 8, 9, 10, 11] : vector<8xi32>, vector<8xi32>
// CHECK:             arith.addi %{{.+}} : vector<8xi32>
// CHECK-COUNT-6:     arith.addi %{{.+}} : vector<8xi32>
// CHECK:             vector.shuffle %{{.+}}, %{{.+}} [2, 3, 10, 11, 6, 7, 14, 15] : vector<8xi32>, vector<8xi32>
// CHECK-COUNT-4:     arith.addi %{{.+}} : vector<8xi32>
// CHECK:             vector.shuffle %{{.+}}, %{{.+}} [1, 9, 3, 11, 5, 13, 7, 15] : vector<8xi32>, vector<8xi32>
// CHECK:             vector.shuffle %{{.+}}, %{{.+}} [0, 8, 2, 10, 4, 12, 6, 14] : vector<8xi32>, vector<8xi32>
// CHECK:             %[[J:.+]] = arith.addi %{{.+}} : vector<8xi32>
// CHECK:             arith.addi %{{.+}} : vector<8xi32>
// CHECK-NOT:         arith.addi %{{.+}} : vector<8xi32>
// CHECK:             %[[SH:.+]] = vector.extract %[[J]][0] : i32 from vector<8xi32>
// CHECK:             %[[SL:.+]] = vector.extract %[[J]][4] : i32 from vector<8xi32>
// Per output: 256 hi + lo, minus 128 * (the sum of q over the block's
// inputs, from the prefix sums), times the token's and the row's scales.
// CHECK:             %[[XS:.+]] = tensor.extract %[[SCALE]]
// CHECK:             %[[C0:.+]] = tensor.extract %[[CUM]][%c0, %{{.+}}, %c0]
// CHECK:             %[[C2:.+]] = tensor.extract %[[CUM]][%c0, %{{.+}}, %c2]
// CHECK:             %[[SUMQ:.+]] = arith.subi %[[C2]], %[[C0]] : i32
// CHECK:             %[[SUMQF:.+]] = arith.sitofp %[[SUMQ]] : i32 to f32
// CHECK:             %[[BIAS:.+]] = arith.mulf %[[SUMQF]], %{{.+}} : f32
// CHECK:             %[[FH:.+]] = arith.sitofp %[[SH]] : i32 to f32
// CHECK:             %[[FL:.+]] = arith.sitofp %[[SL]] : i32 to f32
// CHECK:             %[[FH256:.+]] = arith.mulf %[[FH]], %{{.+}} fastmath<reassoc,contract> : f32
// CHECK:             %[[S:.+]] = arith.addf %[[FH256]], %[[FL]] fastmath<reassoc,contract> : f32
// CHECK:             arith.subf %[[S]], %[[BIAS]] : f32
// CHECK:             %[[WS:.+]] = tensor.extract %{{.+}}[%{{.+}}] : tensor<16xf32>
// CHECK:             arith.mulf %[[XS]], %[[WS]] : f32
// One token (decode): 4 rows x 2 accumulators.
// CHECK:           scf.for
// CHECK:             scf.for {{.+}} -> (vector<8xi32>, vector<8xi32>, vector<8xi32>, vector<8xi32>, vector<8xi32>, vector<8xi32>, vector<8xi32>, vector<8xi32>)
// CHECK-COUNT-8:       rwkv.x86.dpbusd
// CHECK-NOT:           rwkv.x86.dpbusd
// CHECK:               scf.yield
func.func @linear_int8(%x: tensor<1x?x64xf32>, %q: tensor<16x64xi8>, %s: tensor<16xf32>) -> tensor<1x?x16xf32> {
  %y = rwkv.linear %x, %q scale %s : tensor<1x?x64xf32>, tensor<16x64xi8>, tensor<16xf32> -> tensor<1x?x16xf32>
  return %y : tensor<1x?x16xf32>
}

// Packed int4, groups of 32: x's hi and lo bytes are split into even and odd
// elements like the nibbles, with -8 times the sum of each 8 consecutive
// ones (a vpdpbusd lane) for hi and for lo.
// CHECK-LABEL: func.func @linear_int4
// CHECK:         %[[Q:.+]]:7 = scf.for {{.+}} -> (tensor<1x?xf32>, tensor<1x?x64xi8>, tensor<1x?x64xi8>, tensor<1x?x64xi8>, tensor<1x?x64xi8>, tensor<1x?x16xi32>, tensor<1x?x16xi32>)
// CHECK:           scf.for {{.+}} step %c64
// CHECK:             vector.deinterleave %{{.+}} : vector<64xi32> -> vector<32xi32>
// CHECK:             vector.deinterleave %{{.+}} : vector<64xi32> -> vector<32xi32>
// CHECK:             vector.deinterleave %{{.+}} : vector<32xi32> -> vector<16xi32>
// CHECK:             vector.deinterleave %{{.+}} : vector<16xi32> -> vector<8xi32>
// CHECK:             arith.muli %{{.+}}, %{{.+}} : vector<8xi32>
// CHECK:         scf.forall
// A step is 32 bytes (64 weights, two groups): one xor 0x88 makes both
// nibbles q + 8, an and and a shift take them apart; the lanes of hi and lo
// start from their corrections, meet the even (low nibble) and odd (high
// nibble) bytes, and are scaled by their group's scale (two bf16 scales,
// each over 4 lanes) into one f32 accumulator per (token, row).
// CHECK:           scf.for {{.+}} step %c2
// CHECK:             scf.for %[[J:[^ ]+]] = %c0 to %c64 step %c32 iter_args({{.+}}) -> (vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>)
// CHECK:               %[[EH:.+]] = vector.transfer_read %{{.+}}[%c0, %{{.+}}, %[[J]]]{{.+}} : tensor<1x?x64xi8>, vector<32xi8>
// CHECK:               %[[OH:.+]] = vector.transfer_read %{{.+}}[%c0, %{{.+}}, %[[J]]]{{.+}} : tensor<1x?x64xi8>, vector<32xi8>
// CHECK:               %[[CH:.+]] = vector.transfer_read %{{.+}} : tensor<1x?x16xi32>, vector<8xi32>
// CHECK:               %[[W:.+]] = vector.transfer_read %{{.+}}[%{{.+}}, %[[J]]]{{.+}} : tensor<16x64xi8>, vector<32xi8>
// CHECK:               %[[F:.+]] = arith.xori %[[W]], %{{.+}} : vector<32xi8>
// CHECK:               %[[LOW:.+]] = arith.andi %[[F]], %{{.+}} : vector<32xi8>
// CHECK:               %[[HIGH:.+]] = arith.shrui %[[F]], %{{.+}} : vector<32xi8>
// CHECK:               %[[SC:.+]] = vector.transfer_read %{{.+}} : tensor<16x4xbf16>, vector<2xbf16>
// CHECK:               %[[SCF:.+]] = arith.extf %[[SC]] : vector<2xbf16> to vector<2xf32>
// CHECK:               %[[SV:.+]] = vector.shuffle %[[SCF]], %[[SCF]] [0, 0, 0, 0, 1, 1, 1, 1]
// CHECK:               %[[D0:.+]] = rwkv.x86.dpbusd %[[CH]], %[[LOW]], %[[EH]] : vector<32xi8> -> vector<8xi32>
// CHECK:               rwkv.x86.dpbusd %[[D0]], %[[HIGH]], %[[OH]] : vector<32xi8> -> vector<8xi32>
// CHECK:               rwkv.x86.dpbusd
// CHECK:               rwkv.x86.dpbusd
// CHECK:               arith.mulf %{{.+}}, %[[SV]] fastmath<reassoc,contract> : vector<8xf32>
// CHECK-COUNT-28:      rwkv.x86.dpbusd
// CHECK-NOT:           rwkv.x86.dpbusd
// CHECK:               scf.yield
// No weight scale after the (joint, f32) reduction: only the token's.
// CHECK-NOT:         vector.reduction
// CHECK:             arith.addf %{{.+}} fastmath<reassoc,contract> : vector<8xf32>
// CHECK:             %[[R:.+]] = vector.extract %{{.+}}[0] : f32 from vector<8xf32>
// CHECK:             %[[XS:.+]] = tensor.extract %{{.+}} : tensor<1x?xf32>
// CHECK:             arith.mulf %[[R]], %[[XS]] fastmath<reassoc,contract> : f32
func.func @linear_int4(%x: tensor<1x?x128xf32>, %q: tensor<16x64xi8>, %s: tensor<16x4xbf16>) -> tensor<1x?x16xf32> {
  %y = rwkv.linear %x, %q scale %s group 32 : tensor<1x?x128xf32>, tensor<16x64xi8>, tensor<16x4xbf16> -> tensor<1x?x16xf32>
  return %y : tensor<1x?x16xf32>
}

// Grouped int8 (llama.cpp's Q8_0), groups of 16: x's hi and lo bytes as for
// per-row int8, with -128 times the sum of each 4 consecutive ones (a
// vpdpbusd lane) for hi and for lo instead of prefix sums.
// CHECK-LABEL: func.func @linear_int8_groups
// CHECK:         %[[Q:.+]]:5 = scf.for {{.+}} -> (tensor<1x?xf32>, tensor<1x?x64xi8>, tensor<1x?x64xi8>, tensor<1x?x16xi32>, tensor<1x?x16xi32>)
// CHECK:           scf.for {{.+}} step %c32
// CHECK:             arith.trunci %{{.+}} : vector<32xi32> to vector<32xi8>
// CHECK:             arith.trunci %{{.+}} : vector<32xi32> to vector<32xi8>
// CHECK:             vector.deinterleave %{{.+}} : vector<32xi32> -> vector<16xi32>
// CHECK:             vector.deinterleave %{{.+}} : vector<16xi32> -> vector<8xi32>
// CHECK:             arith.muli %{{.+}}, %{{.+}} : vector<8xi32>
// CHECK-NOT:         vector.reduction
// CHECK:         scf.forall
// A step is 32 weights (two groups): the weights made unsigned once (xor
// 0x80) for both tokens; the lanes of hi and lo start from their
// corrections, so each step's lanes are exact and are scaled by their
// group's scale (two bf16 scales, each over 4 lanes) into one f32
// accumulator per (token, row).
// CHECK:           scf.for {{.+}} step %c2
// CHECK:             scf.for %[[I:[^ ]+]] = %c0 to %c64 step %c32 iter_args({{.+}}) -> (vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>)
// CHECK:               %[[H:.+]] = vector.transfer_read %{{.+}}[%c0, %{{.+}}, %[[I]]]{{.+}} : tensor<1x?x64xi8>, vector<32xi8>
// CHECK:               %[[CH:.+]] = vector.transfer_read %{{.+}} : tensor<1x?x16xi32>, vector<8xi32>
// CHECK:               %[[L:.+]] = vector.transfer_read %{{.+}}[%c0, %{{.+}}, %[[I]]]{{.+}} : tensor<1x?x64xi8>, vector<32xi8>
// CHECK:               %[[CL:.+]] = vector.transfer_read %{{.+}} : tensor<1x?x16xi32>, vector<8xi32>
// CHECK:               %[[W:.+]] = vector.transfer_read %{{.+}}[%{{.+}}, %[[I]]]{{.+}} : tensor<16x64xi8>, vector<32xi8>
// CHECK-NOT:           arith.sitofp %{{.+}} : vector<32xi8>
// CHECK:               %[[WU:.+]] = arith.xori %[[W]], %{{.+}} : vector<32xi8>
// CHECK:               %[[SC:.+]] = vector.transfer_read %{{.+}} : tensor<16x4xbf16>, vector<2xbf16>
// CHECK:               %[[SCF:.+]] = arith.extf %[[SC]] : vector<2xbf16> to vector<2xf32>
// CHECK:               %[[SV:.+]] = vector.shuffle %[[SCF]], %[[SCF]] [0, 0, 0, 0, 1, 1, 1, 1]
// CHECK:               %[[DH:.+]] = rwkv.x86.dpbusd %[[CH]], %[[WU]], %[[H]] : vector<32xi8> -> vector<8xi32>
// CHECK:               %[[FH:.+]] = arith.sitofp %[[DH]] : vector<8xi32> to vector<8xf32>
// CHECK:               %[[DL:.+]] = rwkv.x86.dpbusd %[[CL]], %[[WU]], %[[L]] : vector<32xi8> -> vector<8xi32>
// CHECK:               %[[FL:.+]] = arith.sitofp %[[DL]] : vector<8xi32> to vector<8xf32>
// CHECK:               %[[FH256:.+]] = arith.mulf %[[FH]], %{{.+}} fastmath<reassoc,contract> : vector<8xf32>
// CHECK:               %[[F:.+]] = arith.addf %[[FH256]], %[[FL]] fastmath<reassoc,contract> : vector<8xf32>
// CHECK:               arith.mulf %[[F]], %[[SV]] fastmath<reassoc,contract> : vector<8xf32>
// CHECK-COUNT-14:      rwkv.x86.dpbusd
// CHECK-NOT:           rwkv.x86.dpbusd
// CHECK:               scf.yield
// No weight scale and no prefix-sum bias after the reduction: only the
// token's scale.
// CHECK-NOT:         tensor<16xf32>
// CHECK-NOT:         vector.reduction
// CHECK:             %[[R:.+]] = vector.extract %{{.+}}[0] : f32 from vector<8xf32>
// CHECK:             %[[XS:.+]] = tensor.extract %{{.+}} : tensor<1x?xf32>
// CHECK-NOT:         arith.subf
// CHECK:             arith.mulf %[[R]], %[[XS]] fastmath<reassoc,contract> : f32
func.func @linear_int8_groups(%x: tensor<1x?x64xf32>, %q: tensor<16x64xi8>, %s: tensor<16x4xbf16>) -> tensor<1x?x16xf32> {
  %y = rwkv.linear %x, %q scale %s group 16 int8 : tensor<1x?x64xf32>, tensor<16x64xi8>, tensor<16x4xbf16> -> tensor<1x?x16xf32>
  return %y : tensor<1x?x16xf32>
}

// 48 inputs are no multiple of an 8-lane step (32 bytes): the steps take
// half the lanes (16 bytes, an xmm vpdpbusd) rather than the widening path.
// CHECK-LABEL: func.func @linear_int8_narrow
// CHECK:         scf.forall
// CHECK:           rwkv.x86.dpbusd %{{.+}} : vector<16xi8> -> vector<4xi32>
func.func @linear_int8_narrow(%x: tensor<1x?x48xf32>, %q: tensor<16x48xi8>, %s: tensor<16xf32>) -> tensor<1x?x16xf32> {
  %y = rwkv.linear %x, %q scale %s : tensor<1x?x48xf32>, tensor<16x48xi8>, tensor<16xf32> -> tensor<1x?x16xf32>
  return %y : tensor<1x?x16xf32>
}

// bf16 weights keep their path (no integer dot products).
// CHECK-LABEL: func.func @linear_bf16
// CHECK-NOT:     rwkv.x86.dpbusd
// CHECK:         return
func.func @linear_bf16(%x: tensor<1x?x64xf32>, %w: tensor<16x64xbf16>) -> tensor<1x?x16xf32> {
  %y = rwkv.linear %x, %w : tensor<1x?x64xf32>, tensor<16x64xbf16> -> tensor<1x?x16xf32>
  return %y : tensor<1x?x16xf32>
}
