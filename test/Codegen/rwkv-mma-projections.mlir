// RUN: rwkv-opt %s -split-input-file --pass-pipeline="builtin.module(func.func(rwkv-mma-projections),canonicalize,cse)" | FileCheck %s
// RUN: rwkv-opt %s -split-input-file --pass-pipeline="builtin.module(func.func(rwkv-mma-projections{activations=bf16}),canonicalize,cse)" | FileCheck %s --check-prefix=BF16
// RUN: not rwkv-opt %s -split-input-file --pass-pipeline="builtin.module(func.func(rwkv-mma-projections{activations=fp8}))" 2>&1 | FileCheck %s --check-prefix=BAD

// rwkv-mma-projections (codegen/CUDA/MmaProjections.cpp): a projection
// y[b, t, n] += x[b, t, k] * W[n, k] with f32 x, bf16 W, on the tensor cores
// when it has 16 rows or more (the token count is a run-time value).

// 16 rows or more: one warp per 16 rows x 32 outputs (4 fragments of 8),
// 4 warps per block along the rows. The lane's A fragments are pairs of x
// at rows g, g + 8 (clamped to the last row) and columns k0 + q2, + 8; each
// is split into three bf16 pieces (the rest of the pieces before, rounded),
// and each piece takes one mma with the same B fragment (a pair of the
// weight row n0 + g; n0 = 0 here), the smallest piece first. The accumulators start from
// y; rows past the end store nothing. Fewer rows keep the original op.
// CHECK-LABEL: func.func @proj
// CHECK-SAME:    (%[[X:[^:]+]]: memref<1x?x64xf32>, %[[W:[^:]+]]: memref<32x64xbf16>, %[[Y:[^:]+]]: memref<1x?x32xf32>)
// CHECK:         %[[T:.+]] = memref.dim %[[X]], %c1
// CHECK:         %[[BIG:.+]] = arith.cmpi uge, %[[T]], %c16
// CHECK:         scf.if %[[BIG]] {
// CHECK:           %[[GY:.+]] = arith.ceildivui %[[T]], %c64
// CHECK:           gpu.launch blocks({{.+}}) in (%{{[^ ]+}} = %c1, %{{[^ ]+}} = %[[GY]], %{{[^ ]+}} = %c1) threads(%[[TX:[^,]+]], {{.+}}) in (%{{[^ ]+}} = %c128,
// CHECK:             %[[LANE:.+]] = arith.remui %[[TX]], %c32
// CHECK:             %[[G:.+]] = arith.divui %[[LANE]], %c4
// CHECK:             %[[Q:.+]] = arith.remui %[[LANE]], %c4
// CHECK:             %[[Q2:.+]] = arith.muli %[[Q]], %c2
// CHECK:             %[[M0:.+]] = arith.muli %{{.+}}, %c16
// CHECK:             %[[LIVE:.+]] = arith.cmpi ult, %[[M0]], %[[T]]
// CHECK:             scf.if %[[LIVE]] {
// CHECK:               %[[R0:.+]] = arith.addi %[[M0]], %[[G]]
// CHECK:               %[[R1:.+]] = arith.addi %[[R0]], %c8
// CHECK:               %[[LAST:.+]] = arith.subi %[[T]], %c1
// CHECK:               arith.minui %[[R0]], %[[LAST]]
// CHECK:               %[[C0:.+]] = vector.load %[[Y]][%c0, %{{.+}}, %[[Q2]]] {alignment = 8 : i64} : memref<1x?x32xf32>, vector<2xf32>
// CHECK:               %[[ACC:.+]]:16 = scf.for %[[K0:.+]] = %c0 to %c64 step %c16 iter_args({{.+}}) -> (f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32) {
// CHECK:                 %[[KA:.+]] = arith.addi %[[K0]], %[[Q2]]
// CHECK:                 %[[KB:.+]] = arith.addi %[[KA]], %c8
// CHECK:                 %[[A:.+]] = vector.load %[[X]][%c0, %{{.+}}, %[[KA]]] {alignment = 8 : i64} : memref<1x?x64xf32>, vector<2xf32>
// CHECK:                 %[[HI:.+]] = arith.truncf %[[A]] : vector<2xf32> to vector<2xbf16>
// CHECK:                 vector.bitcast %[[HI]] : vector<2xbf16> to vector<1xi32>
// CHECK:                 %[[HIW:.+]] = arith.extf %[[HI]] : vector<2xbf16> to vector<2xf32>
// CHECK:                 %[[R1X:.+]] = arith.subf %[[A]], %[[HIW]] : vector<2xf32>
// CHECK:                 %[[MID:.+]] = arith.truncf %[[R1X]] : vector<2xf32> to vector<2xbf16>
// CHECK:                 %[[MIDW:.+]] = arith.extf %[[MID]]
// CHECK:                 %[[R2X:.+]] = arith.subf %[[R1X]], %[[MIDW]]
// CHECK:                 arith.truncf %[[R2X]] : vector<2xf32> to vector<2xbf16>
// CHECK:                 vector.load %[[X]][%c0, %{{.+}}, %[[KB]]]
// CHECK:                 %[[B0:.+]] = vector.load %[[W]][%[[G]], %[[KA]]] {alignment = 4 : i64} : memref<32x64xbf16>, vector<2xbf16>
// CHECK:                 %[[B1:.+]] = vector.load %[[W]][%[[G]], %[[KB]]] {alignment = 4 : i64} : memref<32x64xbf16>, vector<2xbf16>
// CHECK:                 %[[D0:.+]] = nvvm.mma.sync A[{{.+}}] B[%{{.+}}, %{{.+}}] C[{{.+}}] {layoutA = #nvvm.mma_layout<row>, layoutB = #nvvm.mma_layout<col>, multiplicandAPtxType = #nvvm.mma_type<bf16>, multiplicandBPtxType = #nvvm.mma_type<bf16>, shape = #nvvm.shape<m = 16, n = 8, k = 16>} : (i32, i32, f32) -> !llvm.struct<(f32, f32, f32, f32)>
// CHECK:                 llvm.extractvalue %[[D0]][3]
// CHECK:                 %[[D1:.+]] = nvvm.mma.sync
// CHECK:                 llvm.extractvalue %[[D1]][3]
// CHECK:                 %[[D2:.+]] = nvvm.mma.sync
// CHECK:                 llvm.extractvalue %[[D2]][3]
// CHECK-NOT:             nvvm.mma.sync A
// CHECK:                 %[[N1:.+]] = arith.addi %[[G]], %c8
// CHECK:                 vector.load %[[W]][%[[N1]], %[[KA]]]
// CHECK-COUNT-9:         nvvm.mma.sync
// CHECK-NOT:             nvvm.mma.sync
// CHECK:                 scf.yield
// CHECK:               %[[IN0:.+]] = arith.cmpi ult, %[[R0]], %[[T]]
// CHECK:               scf.if %[[IN0]] {
// CHECK:                 %[[V:.+]] = vector.from_elements %[[ACC]]#0, %[[ACC]]#1 : vector<2xf32>
// CHECK:                 vector.store %[[V]], %[[Y]][%c0, %{{.+}}, %[[Q2]]] {alignment = 8 : i64}
// CHECK-COUNT-3:         vector.store
// CHECK:               }
// CHECK:               %[[IN1:.+]] = arith.cmpi ult, %[[R1]], %[[T]]
// CHECK:               scf.if %[[IN1]] {
// CHECK:                 vector.from_elements %[[ACC]]#2, %[[ACC]]#3 : vector<2xf32>
// CHECK:           gpu.terminator
// CHECK:         } else {
// CHECK:           linalg.generic
// CHECK-SAME:        rwkv.projection

// BF16-LABEL: func.func @proj
// BF16:         scf.for
// BF16-COUNT-4:   nvvm.mma.sync
// BF16-NOT:       nvvm.mma.sync
// BF16:           scf.yield

// BAD: activations must be f32, bf16x2 or bf16, got 'fp8'
func.func @proj(%x: memref<1x?x64xf32>, %w: memref<32x64xbf16>, %y: memref<1x?x32xf32>) {
  linalg.generic {indexing_maps = [affine_map<(b, t, n, k) -> (b, t, k)>, affine_map<(b, t, n, k) -> (n, k)>, affine_map<(b, t, n, k) -> (b, t, n)>], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%x, %w : memref<1x?x64xf32>, memref<32x64xbf16>) outs(%y : memref<1x?x32xf32>) attrs = {rwkv.projection} {
  ^bb0(%in: f32, %in_w: bf16, %out: f32):
    %e = arith.extf %in_w : bf16 to f32
    %m = arith.mulf %in, %e fastmath<reassoc,contract> : f32
    %a = arith.addf %out, %m fastmath<reassoc,contract> : f32
    linalg.yield %a : f32
  }
  return
}

// -----

// A weight stored [in, out] (the LoRA factors): the B pair lies in two rows,
// two scalar loads. Batch 2: the row is split into (b, t) = (r / T, r % T).
// 24 outputs: 3 fragments of 8, so one fragment per warp.
// CHECK-LABEL: func.func @lora
// CHECK:         %[[T:.+]] = memref.dim %{{.+}}, %c1
// CHECK:         %[[ROWS:.+]] = arith.muli %[[T]], %c2
// CHECK:         arith.cmpi uge, %[[ROWS]], %c16
// CHECK:         gpu.launch blocks({{.+}}) in (%{{[^ ]+}} = %c3,
// CHECK:           arith.remui %{{.+}}, %[[T]]
// CHECK:           arith.divui %{{.+}}, %[[T]]
// CHECK:           scf.for
// CHECK:             memref.load %{{.+}} : memref<32x24xbf16>
// CHECK:             memref.load %{{.+}} : memref<32x24xbf16>
// CHECK:             vector.from_elements %{{.+}}, %{{.+}} : vector<2xbf16>
// CHECK-COUNT-3:     nvvm.mma.sync
// CHECK-NOT:         nvvm.mma.sync
// CHECK:             scf.yield
func.func @lora(%x: memref<2x?x32xf32>, %w: memref<32x24xbf16>, %y: memref<2x?x24xf32>) {
  linalg.generic {indexing_maps = [affine_map<(b, t, n, k) -> (b, t, k)>, affine_map<(b, t, n, k) -> (k, n)>, affine_map<(b, t, n, k) -> (b, t, n)>], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%x, %w : memref<2x?x32xf32>, memref<32x24xbf16>) outs(%y : memref<2x?x24xf32>) attrs = {rwkv.projection} {
  ^bb0(%in: f32, %in_w: bf16, %out: f32):
    %e = arith.extf %in_w : bf16 to f32
    %m = arith.mulf %e, %in fastmath<reassoc,contract> : f32
    %a = arith.addf %m, %out fastmath<reassoc,contract> : f32
    linalg.yield %a : f32
  }
  return
}

// -----

// Left alone: f32 weights (no bf16 mma), an input width that is not a
// multiple of 16, and a body that is not a dot product.
// CHECK-LABEL: func.func @not_bf16
// CHECK-NOT:     gpu.launch
// CHECK:         linalg.generic
func.func @not_bf16(%x: memref<1x?x64xf32>, %w: memref<32x64xf32>, %y: memref<1x?x32xf32>) {
  linalg.generic {indexing_maps = [affine_map<(b, t, n, k) -> (b, t, k)>, affine_map<(b, t, n, k) -> (n, k)>, affine_map<(b, t, n, k) -> (b, t, n)>], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%x, %w : memref<1x?x64xf32>, memref<32x64xf32>) outs(%y : memref<1x?x32xf32>) attrs = {rwkv.projection} {
  ^bb0(%in: f32, %in_w: f32, %out: f32):
    %m = arith.mulf %in, %in_w fastmath<reassoc,contract> : f32
    %a = arith.addf %out, %m fastmath<reassoc,contract> : f32
    linalg.yield %a : f32
  }
  return
}

// -----

// CHECK-LABEL: func.func @odd_width
// CHECK-NOT:     gpu.launch
// CHECK:         linalg.generic
func.func @odd_width(%x: memref<1x?x40xf32>, %w: memref<32x40xbf16>, %y: memref<1x?x32xf32>) {
  linalg.generic {indexing_maps = [affine_map<(b, t, n, k) -> (b, t, k)>, affine_map<(b, t, n, k) -> (n, k)>, affine_map<(b, t, n, k) -> (b, t, n)>], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%x, %w : memref<1x?x40xf32>, memref<32x40xbf16>) outs(%y : memref<1x?x32xf32>) attrs = {rwkv.projection} {
  ^bb0(%in: f32, %in_w: bf16, %out: f32):
    %e = arith.extf %in_w : bf16 to f32
    %m = arith.mulf %in, %e fastmath<reassoc,contract> : f32
    %a = arith.addf %out, %m fastmath<reassoc,contract> : f32
    linalg.yield %a : f32
  }
  return
}

// -----

// CHECK-LABEL: func.func @not_a_dot
// CHECK-NOT:     gpu.launch
// CHECK:         linalg.generic
func.func @not_a_dot(%x: memref<1x?x64xf32>, %w: memref<32x64xbf16>, %y: memref<1x?x32xf32>) {
  linalg.generic {indexing_maps = [affine_map<(b, t, n, k) -> (b, t, k)>, affine_map<(b, t, n, k) -> (n, k)>, affine_map<(b, t, n, k) -> (b, t, n)>], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%x, %w : memref<1x?x64xf32>, memref<32x64xbf16>) outs(%y : memref<1x?x32xf32>) attrs = {rwkv.projection} {
  ^bb0(%in: f32, %in_w: bf16, %out: f32):
    %e = arith.extf %in_w : bf16 to f32
    %m = arith.mulf %in, %e fastmath<reassoc,contract> : f32
    %a = arith.maximumf %out, %m : f32
    linalg.yield %a : f32
  }
  return
}
