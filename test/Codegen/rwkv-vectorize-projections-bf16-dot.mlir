// rwkv-vectorize-projections with bf16-dot (codegen/VectorizeProjections.cpp):
// bf16 W[o, i] weights go unwidened into x86vector.avx512.dot (vdpbf16ps).
// The input is lowered and tiled as in rwkv-cpu-pipeline first.
// RUN: rwkv-opt %s --pass-pipeline="builtin.module(rwkv-decompose,convert-rwkv-to-linalg,func.func(convert-elementwise-to-linalg),rwkv-fuse-elementwise,canonicalize,rwkv-tile-and-fuse,canonicalize)" > %t.tiled
// RUN: rwkv-opt %t.tiled --rwkv-vectorize-projections=bf16-dot=exact --canonicalize --mlir-print-local-scope | FileCheck %s --check-prefix=EXACT
// RUN: rwkv-opt %t.tiled --rwkv-vectorize-projections=bf16-dot=round --canonicalize --mlir-print-local-scope | FileCheck %s --check-prefix=ROUND
// RUN: not rwkv-opt %t.tiled --rwkv-vectorize-projections=bf16-dot=fast 2>&1 | FileCheck %s --check-prefix=BAD

// exact: x becomes three bf16 tensors once per projection, before the tile
// loop (each tile slices them), each part the bf16 rounding of what the
// parts before it left (x - p0, x - p0 - p1), so that p0 + p1 + p2 = x and
// every product with a bf16 weight is exact.
// EXACT-LABEL: func.func @linear
// EXACT:         %[[E0:.+]] = tensor.empty(%{{.+}}) : tensor<1x?x32xbf16>
// EXACT:         %[[E1:.+]] = tensor.empty(%{{.+}}) : tensor<1x?x32xbf16>
// EXACT:         %[[E2:.+]] = tensor.empty(%{{.+}}) : tensor<1x?x32xbf16>
// EXACT:         %[[Q:.+]]:3 = scf.for {{.+}} iter_args(%{{.+}} = %[[E0]], %{{.+}} = %[[E1]], %{{.+}} = %[[E2]])
// EXACT:             %[[X:.+]] = vector.transfer_read {{.+}} : tensor<1x?x32xf32>, vector<8xf32>
// EXACT:             %[[H:.+]] = arith.truncf %[[X]] : vector<8xf32> to vector<8xbf16>
// EXACT:             vector.transfer_write %[[H]]
// EXACT:             %[[HW:.+]] = arith.extf %[[H]] : vector<8xbf16> to vector<8xf32>
// EXACT:             %[[R1:.+]] = arith.subf %[[X]], %[[HW]] : vector<8xf32>
// EXACT:             %[[M:.+]] = arith.truncf %[[R1]] : vector<8xf32> to vector<8xbf16>
// EXACT:             %[[MW:.+]] = arith.extf %[[M]] : vector<8xbf16> to vector<8xf32>
// EXACT:             %[[R2:.+]] = arith.subf %[[R1]], %[[MW]] : vector<8xf32>
// EXACT:             arith.truncf %[[R2]] : vector<8xf32> to vector<8xbf16>
// EXACT:         scf.forall
// EXACT-NOT:       arith.truncf
// EXACT:           %[[P0:.+]] = tensor.extract_slice %[[Q]]#0[0, %{{.+}}, 0] [1, %{{.+}}, 32]
// EXACT:           %[[P1:.+]] = tensor.extract_slice %[[Q]]#1[0, %{{.+}}, 0] [1, %{{.+}}, 32]
// EXACT:           %[[P2:.+]] = tensor.extract_slice %[[Q]]#2[0, %{{.+}}, 0] [1, %{{.+}}, 32]
// EXACT-NOT:       arith.truncf
// Two-token blocks: each weight vector (16 bf16, loaded as is, no widening)
// meets the three parts of each token in one vdpbf16ps each, chained into
// that (token, row)'s accumulator.
// EXACT:           scf.for
// EXACT:             scf.for {{.+}} step %c2
// EXACT:               scf.for %[[I:[^ ]+]] = {{.+}} step %c16 iter_args(%[[A0:[^ ]+]] = {{.+}}) -> (vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>)
// EXACT:                 %[[T0P0:.+]] = vector.transfer_read %[[P0]][%{{.+}}, %{{.+}}, %[[I]]]{{.+}} : tensor<1x?x32xbf16>, vector<16xbf16>
// EXACT:                 %[[T0P1:.+]] = vector.transfer_read %[[P1]][
// EXACT:                 %[[T0P2:.+]] = vector.transfer_read %[[P2]][
// EXACT-COUNT-3:         vector.transfer_read {{.+}} : tensor<1x?x32xbf16>, vector<16xbf16>
// EXACT-NOT:             arith.extf
// EXACT:                 %[[W:.+]] = vector.transfer_read %{{.+}}[%{{.+}}, %[[I]]]{{.+}} : tensor<16x32xbf16>, vector<16xbf16>
// EXACT-NOT:             arith.extf
// EXACT:                 %[[D0:.+]] = x86vector.avx512.dot %[[A0]], %[[T0P0]], %[[W]] : vector<16xbf16> -> vector<8xf32>
// EXACT:                 %[[D1:.+]] = x86vector.avx512.dot %[[D0]], %[[T0P1]], %[[W]] : vector<16xbf16> -> vector<8xf32>
// EXACT:                 x86vector.avx512.dot %[[D1]], %[[T0P2]], %[[W]] : vector<16xbf16> -> vector<8xf32>
// EXACT-COUNT-21:        x86vector.avx512.dot
// EXACT:                 scf.yield
// EXACT-COUNT-8:       vector.reduction <add>
// One token (decode): the three parts in separate accumulators (independent
// chains), summed once at the end: 4 rows x 3 parts.
// EXACT:             scf.for
// EXACT:               %[[V:.+]]:12 = scf.for
// EXACT-COUNT-12:        x86vector.avx512.dot
// EXACT-NOT:             x86vector.avx512.dot
// EXACT:                 scf.yield
// EXACT:               %[[S0:.+]] = arith.addf %[[V]]#0, %[[V]]#1 fastmath<reassoc,contract>
// EXACT:               %[[S1:.+]] = arith.addf %[[S0]], %[[V]]#2 fastmath<reassoc,contract>
// EXACT:               vector.reduction <add>, %[[S1]]

// round: x rounded to bf16 once, before the tile loop; one vdpbf16ps per
// token, row and step.
// ROUND-LABEL: func.func @linear
// ROUND:         scf.for
// ROUND:           arith.truncf %{{.+}} : vector<8xf32> to vector<8xbf16>
// ROUND-NOT:       arith.subf
// ROUND:           scf.yield
// ROUND:         scf.forall
// ROUND-NOT:       arith.truncf
// ROUND:         scf.for {{.+}} step %c2
// ROUND:           scf.for {{.+}} -> (vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>)
// ROUND-COUNT-8:     x86vector.avx512.dot
// ROUND-NOT:         x86vector.avx512.dot
// ROUND:             scf.yield
// ROUND:         scf.for
// ROUND:           scf.for {{.+}} -> (vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>)
// ROUND-COUNT-4:     x86vector.avx512.dot
// ROUND-NOT:         x86vector.avx512.dot

// BAD: rwkv-vectorize-projections: bf16-dot must be off, exact or round, not 'fast'
func.func @linear(%x: tensor<1x?x32xf32>, %w: tensor<16x32xbf16>) -> tensor<1x?x16xf32> {
  %y = rwkv.linear %x, %w : tensor<1x?x32xf32>, tensor<16x32xbf16> -> tensor<1x?x16xf32>
  return %y : tensor<1x?x16xf32>
}

// f32 weights keep the FMA path (no dot products, no conversion).
// EXACT-LABEL: func.func @linear_f32
// EXACT-NOT:     x86vector.avx512.dot
// EXACT-NOT:     arith.truncf
// EXACT:         arith.mulf
// EXACT-NOT:     x86vector.avx512.dot
// EXACT:         return
func.func @linear_f32(%x: tensor<1x?x32xf32>, %w: tensor<16x32xf32>) -> tensor<1x?x16xf32> {
  %y = rwkv.linear %x, %w : tensor<1x?x32xf32>, tensor<16x32xf32> -> tensor<1x?x16xf32>
  return %y : tensor<1x?x16xf32>
}
