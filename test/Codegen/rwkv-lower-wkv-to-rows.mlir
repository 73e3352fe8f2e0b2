// RUN: rwkv-opt %s -split-input-file --rwkv-lower-wkv-to-rows --mlir-print-local-scope | FileCheck %s

// rwkv-lower-wkv-to-rows (codegen/CUDA/LowerWKVToRows.cpp): the CUDA
// target's sequential WKV7. Row i of a head's N x N state needs only that
// row and the head's r, d, k, a, b vectors and v[i], so each (batch row,
// head, state row) is independent over the whole sequence: an scf.forall
// over (b, h, i) = (2, 2, 4) whose body carries its row through the token
// loop as a vector<4xf32> and writes its column of y (index h * N + i).
// exp(w) is one element-wise op before it. The arithmetic is that of the
// generic lowering: sa = S[i]·a and y = S'[i]·r are reassociable
// reductions, the update is (S d + k v[i]) + sa b with exact arithmetic.
// RWKV-5/6 (rwkv.wkv5, state S[key i][value j]) split along the value
// index j instead: each thread gathers its strided column S[:, j] once,
// carries it through the token loop and scatters it back once.

// CHECK-LABEL: func.func @wkv
// CHECK-SAME:    (%[[R:[^:]+]]: tensor<2x?x8xf32>, %[[W:[^:]+]]: tensor<2x?x8xf32>, %[[K:[^:]+]]: tensor<2x?x8xf32>, %[[V:[^:]+]]: tensor<2x?x8xf32>, %[[A:[^:]+]]: tensor<2x?x8xf32>, %[[B:[^:]+]]: tensor<2x?x8xf32>, %[[S0:[^:]+]]: tensor<2x2x4x4xf32>)
// CHECK:         %[[DECAY:.+]] = linalg.generic
// CHECK-SAME:        iterator_types = ["parallel", "parallel", "parallel"]
// CHECK-SAME:        ins(%[[W]] : tensor<2x?x8xf32>)
// CHECK-NEXT:    ^bb0(%[[IW:[^:]+]]: f32, %{{[^:]+}}: f32):
// CHECK-NEXT:      %[[EXP:.+]] = math.exp %[[IW]] : f32
// CHECK-NEXT:      linalg.yield %[[EXP]] : f32
// CHECK:         %[[YINIT:.+]] = tensor.empty(%{{.+}}) : tensor<2x?x8xf32>
// CHECK:         %[[F:.+]]:2 = scf.forall (%[[BI:.+]], %[[HI:.+]], %[[RI:.+]]) in (2, 2, 4) shared_outs(%[[OY:.+]] = %[[YINIT]], %[[OS:.+]] = %[[S0]]) -> (tensor<2x?x8xf32>, tensor<2x2x4x4xf32>) {
// CHECK:           %[[BASE:.+]] = arith.muli %[[HI]], %{{.+}} : index
// CHECK:           %[[COL:.+]] = arith.addi %[[BASE]], %[[RI]] : index
// CHECK:           %[[T:.+]] = tensor.dim %[[R]], %{{.+}} : tensor<2x?x8xf32>
// CHECK:           %[[SROW:.+]] = tensor.extract_slice %[[OS]][%[[BI]], %[[HI]], %[[RI]], 0] [1, 1, 1, 4] [1, 1, 1, 1] : tensor<2x2x4x4xf32> to tensor<4xf32>
// CHECK:           %[[YCOL:.+]] = tensor.extract_slice %[[OY]][%[[BI]], 0, %[[COL]]] [1, %{{.+}}, 1] [1, 1, 1] : tensor<2x?x8xf32> to tensor<?xf32>
// CHECK:           %[[ROW0:.+]] = vector.transfer_read %[[SROW]][%{{.+}}], %{{.+}} {in_bounds = [true]} : tensor<4xf32>, vector<4xf32>
// CHECK:           %[[LOOP:.+]]:2 = scf.for %[[TI:.+]] = %{{.+}} to %[[T]] step %{{.+}} iter_args(%[[ROW:.+]] = %[[ROW0]], %[[YACC:.+]] = %[[YCOL]]) -> (vector<4xf32>, tensor<?xf32>) {
// CHECK-NEXT:        %[[RV:.+]] = vector.transfer_read %[[R]][%[[BI]], %[[TI]], %[[BASE]]], %{{.+}} {in_bounds = [true]} : tensor<2x?x8xf32>, vector<4xf32>
// CHECK-NEXT:        %[[DV:.+]] = vector.transfer_read %[[DECAY]][%[[BI]], %[[TI]], %[[BASE]]]
// CHECK-NEXT:        %[[KV:.+]] = vector.transfer_read %[[K]][%[[BI]], %[[TI]], %[[BASE]]]
// CHECK-NEXT:        %[[AV:.+]] = vector.transfer_read %[[A]][%[[BI]], %[[TI]], %[[BASE]]]
// CHECK-NEXT:        %[[BV:.+]] = vector.transfer_read %[[B]][%[[BI]], %[[TI]], %[[BASE]]]
// CHECK-NEXT:        %[[VI:.+]] = tensor.extract %[[V]][%[[BI]], %[[TI]], %[[COL]]] : tensor<2x?x8xf32>
// CHECK-NEXT:        %[[SAP:.+]] = arith.mulf %[[ROW]], %[[AV]] fastmath<reassoc,contract> : vector<4xf32>
// CHECK-NEXT:        %[[SA:.+]] = vector.reduction <add>, %[[SAP]] fastmath<reassoc,contract> : vector<4xf32> into f32
// CHECK-NEXT:        %[[SD:.+]] = arith.mulf %[[ROW]], %[[DV]] : vector<4xf32>
// CHECK-NEXT:        %[[VB:.+]] = vector.broadcast %[[VI]] : f32 to vector<4xf32>
// CHECK-NEXT:        %[[KVV:.+]] = arith.mulf %[[KV]], %[[VB]] : vector<4xf32>
// CHECK-NEXT:        %[[SAB:.+]] = vector.broadcast %[[SA]] : f32 to vector<4xf32>
// CHECK-NEXT:        %[[SB:.+]] = arith.mulf %[[SAB]], %[[BV]] : vector<4xf32>
// CHECK-NEXT:        %[[ADD1:.+]] = arith.addf %[[SD]], %[[KVV]] : vector<4xf32>
// CHECK-NEXT:        %[[NEXT:.+]] = arith.addf %[[ADD1]], %[[SB]] : vector<4xf32>
// CHECK-NEXT:        %[[YP:.+]] = arith.mulf %[[NEXT]], %[[RV]] fastmath<reassoc,contract> : vector<4xf32>
// CHECK-NEXT:        %[[YI:.+]] = vector.reduction <add>, %[[YP]] fastmath<reassoc,contract> : vector<4xf32> into f32
// CHECK-NEXT:        %[[YN:.+]] = tensor.insert %[[YI]] into %[[YACC]][%[[TI]]] : tensor<?xf32>
// CHECK-NEXT:        scf.yield %[[NEXT]], %[[YN]] : vector<4xf32>, tensor<?xf32>
// CHECK-NEXT:      }
// CHECK-NEXT:      %[[SNEW:.+]] = vector.transfer_write %[[LOOP]]#0, %[[SROW]][%{{.+}}] {in_bounds = [true]} : vector<4xf32>, tensor<4xf32>
// CHECK-NEXT:      scf.forall.in_parallel {
// CHECK-NEXT:        tensor.parallel_insert_slice %[[LOOP]]#1 into %[[OY]][%[[BI]], 0, %[[COL]]] [1, %{{.+}}, 1] [1, 1, 1] : tensor<?xf32> into tensor<2x?x8xf32>
// CHECK-NEXT:        tensor.parallel_insert_slice %[[SNEW]] into %[[OS]][%[[BI]], %[[HI]], %[[RI]], 0] [1, 1, 1, 4] [1, 1, 1, 1] : tensor<4xf32> into tensor<2x2x4x4xf32>
// CHECK-NEXT:      }
// CHECK-NEXT:    }
// CHECK-NEXT:    return %[[F]]#0, %[[F]]#1 : tensor<2x?x8xf32>, tensor<2x2x4x4xf32>
func.func @wkv(%r: tensor<2x?x8xf32>, %w: tensor<2x?x8xf32>, %k: tensor<2x?x8xf32>, %v: tensor<2x?x8xf32>, %a: tensor<2x?x8xf32>, %b: tensor<2x?x8xf32>, %s: tensor<2x2x4x4xf32>) -> (tensor<2x?x8xf32>, tensor<2x2x4x4xf32>) {
  %y, %ns = rwkv.wkv %r, %w, %k, %v, %a, %b, %s : tensor<2x?x8xf32>, tensor<2x2x4x4xf32>
  return %y, %ns : tensor<2x?x8xf32>, tensor<2x2x4x4xf32>
}

// -----

// A static token count (a training step's [B, T] batch): each thread's y
// column is a static tensor<T>, carried as such through the token loop.
// CHECK-LABEL: func.func @static_tokens
// CHECK:         scf.forall (%[[BI:.+]], %[[HI:.+]], %[[RI:.+]]) in (2, 2, 4) shared_outs(%[[OY:.+]] = %{{.+}}, %{{.+}} = %{{.+}}) -> (tensor<2x6x8xf32>, tensor<2x2x4x4xf32>)
// CHECK:           %[[YCOL:.+]] = tensor.extract_slice %[[OY]][%[[BI]], 0, %{{.+}}] [1, 6, 1] [1, 1, 1] : tensor<2x6x8xf32> to tensor<6xf32>
// CHECK:           scf.for {{.+}} iter_args(%{{.+}} = %{{.+}}, %{{.+}} = %[[YCOL]]) -> (vector<4xf32>, tensor<6xf32>)
// CHECK:           tensor.parallel_insert_slice %{{.+}} into %[[OY]][%[[BI]], 0, %{{.+}}] [1, 6, 1] [1, 1, 1] : tensor<6xf32> into tensor<2x6x8xf32>
func.func @static_tokens(%r: tensor<2x6x8xf32>, %s: tensor<2x2x4x4xf32>) -> (tensor<2x6x8xf32>, tensor<2x2x4x4xf32>) {
  %y, %ns = rwkv.wkv %r, %r, %r, %r, %r, %r, %s : tensor<2x6x8xf32>, tensor<2x2x4x4xf32>
  return %y, %ns : tensor<2x6x8xf32>, tensor<2x2x4x4xf32>
}

// -----

// The sequential gradient (a training step), segments of 2 tokens over
// T = 5 (the last segment has 1): a forall over (b, h, i) saves each row of
// the state at the 3 segment starts; then per segment, last first, a forall
// over (b, h, i) recomputes its rows (S_{t-1} and sa saved, slot `cnt` the
// end state) and walks the tokens backwards with row i of G (dv and dsa
// its dot products with k and b, G saved, G ⊙ d + dsa a), and the column
// sums over i are linalg reductions over (b, t, h, j):
// dk = Σ G v, db = Σ G sa, dd = Σ G ⊙ S_{t-1}, da = Σ dsa S_{t-1},
// dr = Σ S_t dy, then dw = dd ⊙ d.
// CHECK-LABEL: func.func @wkv_grad
// CHECK-SAME:    (%[[R:[^:]+]]: tensor<2x5x8xf32>, %[[W:[^:]+]]: tensor<2x5x8xf32>, %[[K:[^:]+]]: tensor<2x5x8xf32>, %[[V:[^:]+]]: tensor<2x5x8xf32>, %[[A:[^:]+]]: tensor<2x5x8xf32>, %[[B:[^:]+]]: tensor<2x5x8xf32>, %[[S0:[^:]+]]: tensor<2x2x4x4xf32>, %[[DY:[^:]+]]: tensor<2x5x8xf32>, %[[DS:[^:]+]]: tensor<2x2x4x4xf32>)
// CHECK-NOT:     rwkv.wkv_grad
// CHECK:         %[[DECAY:.+]] = linalg.generic {{.+}} ins(%[[W]] : tensor<2x5x8xf32>)
// CHECK:           math.exp
// CHECK:         %[[CKPT:.+]] = scf.forall (%{{.+}}, %{{.+}}, %{{.+}}) in (2, 2, 4) shared_outs(%{{.+}} = %{{.+}}) -> (tensor<3x2x2x4x4xf32>)
// CHECK:           scf.for {{.+}} -> (vector<4xf32>, tensor<3x4xf32>)
// CHECK:         %[[SEGS:.+]]:11 = scf.for %[[SR:.+]] = %{{.+}} to %{{.+}} step %{{.+}} iter_args(%[[G:[^ ]+]] = %[[DS]],
// CHECK:           %[[SEG:.+]] = arith.subi %{{.+}}, %[[SR]] : index
// CHECK:           %[[ROWS:.+]]:6 = scf.forall (%{{.+}}, %{{.+}}, %{{.+}}) in (2, 2, 4) shared_outs(
// CHECK:             vector.transfer_read %[[CKPT]][%[[SEG]],
// CHECK:             scf.for {{.+}} -> (vector<4xf32>, tensor<3x4xf32>, tensor<2xf32>)
// CHECK:             scf.for {{.+}} -> (vector<4xf32>, tensor<2x4xf32>, tensor<2xf32>, tensor<?xf32>)
// CHECK-COUNT-2:       vector.reduction <add>
// CHECK:               arith.mulf
// CHECK:               arith.mulf
// CHECK:               arith.addf
// CHECK:               scf.yield
// CHECK:             scf.forall.in_parallel
// CHECK-COUNT-6:       tensor.parallel_insert_slice
// CHECK:           %[[VS:.+]] = tensor.expand_shape %{{.+}} {{\[}}[0], [1], [2, 3]] output_shape [2, %{{.+}}, 2, 4] : tensor<2x?x8xf32> into tensor<2x?x2x4xf32>
// CHECK:           %[[DYS:.+]] = tensor.expand_shape
// CHECK:           %[[DS4:.+]] = tensor.expand_shape
// CHECK:           %[[ZERO:.+]] = linalg.fill
// CHECK:           %[[DK:.+]] = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3, d4) -> (d1, d0, d2, d4, d3)>, affine_map<(d0, d1, d2, d3, d4) -> (d0, d1, d2, d4)>, affine_map<(d0, d1, d2, d3, d4) -> (d0, d1, d2, d3)>], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]} ins(%{{.+}}, %[[VS]] :
// CHECK:           %[[DB:.+]] = linalg.generic {{.+}} -> (d1, d0, d2, d4)>, {{.+}} iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
// CHECK:           %[[DD:.+]] = linalg.generic {{.+}} iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
// CHECK:           %[[DA:.+]] = linalg.generic {{.+}} iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
// CHECK:           %[[DR:.+]] = linalg.generic {{.+}} iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]} ins(%{{.+}}, %[[DYS]] :
// CHECK:           %[[DW:.+]] = linalg.generic {{.+}} ins(%[[DD]], %[[DS4]] :
// CHECK:             arith.mulf
// CHECK:           tensor.collapse_shape %[[DR]]
// CHECK:           scf.yield %[[ROWS]]#4,
// CHECK:         return %[[SEGS]]#1, %[[SEGS]]#2, %[[SEGS]]#3, %[[SEGS]]#4, %[[SEGS]]#5, %[[SEGS]]#6, %[[SEGS]]#0
func.func @wkv_grad(%r: tensor<2x5x8xf32>, %w: tensor<2x5x8xf32>, %k: tensor<2x5x8xf32>, %v: tensor<2x5x8xf32>, %a: tensor<2x5x8xf32>, %b: tensor<2x5x8xf32>, %s: tensor<2x2x4x4xf32>, %dy: tensor<2x5x8xf32>, %ds: tensor<2x2x4x4xf32>) -> (tensor<2x5x8xf32>, tensor<2x5x8xf32>, tensor<2x5x8xf32>, tensor<2x5x8xf32>, tensor<2x5x8xf32>, tensor<2x5x8xf32>, tensor<2x2x4x4xf32>) {
  %0:7 = rwkv.wkv_grad %r, %w, %k, %v, %a, %b, %s, %dy, %ds {chunk_length = 2 : i64} : tensor<2x5x8xf32>, tensor<2x2x4x4xf32>
  return %0#0, %0#1, %0#2, %0#3, %0#4, %0#5, %0#6 : tensor<2x5x8xf32>, tensor<2x5x8xf32>, tensor<2x5x8xf32>, tensor<2x5x8xf32>, tensor<2x5x8xf32>, tensor<2x5x8xf32>, tensor<2x2x4x4xf32>
}

// -----

// The chunked gradient and one with a dynamic token count (an inference
// module never has one) are left to rwkv-parallelize-wkv and
// convert-rwkv-to-linalg.
// CHECK-LABEL: func.func @wkv_grad_left
// CHECK:         rwkv.wkv_grad {{.+}} {mode = #rwkv<wkv_mode chunked>}
// CHECK:         rwkv.wkv_grad {{.+}} : tensor<2x?x8xf32>
func.func @wkv_grad_left(%r: tensor<2x5x8xf32>, %s: tensor<2x2x4x4xf32>, %d: tensor<2x?x8xf32>) -> (tensor<2x5x8xf32>, tensor<2x?x8xf32>) {
  %0:7 = rwkv.wkv_grad %r, %r, %r, %r, %r, %r, %s, %r, %s {mode = #rwkv<wkv_mode chunked>} : tensor<2x5x8xf32>, tensor<2x2x4x4xf32>
  %1:7 = rwkv.wkv_grad %d, %d, %d, %d, %d, %d, %s, %d, %s : tensor<2x?x8xf32>, tensor<2x2x4x4xf32>
  return %0#0, %1#0 : tensor<2x5x8xf32>, tensor<2x?x8xf32>
}

// -----

// The chunked form is left to convert-rwkv-to-linalg.
// CHECK-LABEL: func.func @chunked
// CHECK:         rwkv.wkv {{.+}} {mode = #rwkv<wkv_mode chunked>}
// CHECK-NOT:     scf.forall
func.func @chunked(%r: tensor<2x?x8xf32>, %s: tensor<2x2x4x4xf32>) -> (tensor<2x?x8xf32>, tensor<2x2x4x4xf32>) {
  %y, %ns = rwkv.wkv %r, %r, %r, %r, %r, %r, %s {mode = #rwkv<wkv_mode chunked>} : tensor<2x?x8xf32>, tensor<2x2x4x4xf32>
  return %y, %ns : tensor<2x?x8xf32>, tensor<2x2x4x4xf32>
}

// -----

// A dynamic batch has no static thread count for the rows: left alone.
// CHECK-LABEL: func.func @dynamic_batch
// CHECK:         rwkv.wkv
// CHECK-NOT:     scf.forall
func.func @dynamic_batch(%r: tensor<?x?x8xf32>, %s: tensor<?x2x4x4xf32>) -> (tensor<?x?x8xf32>, tensor<?x2x4x4xf32>) {
  %y, %ns = rwkv.wkv %r, %r, %r, %r, %r, %r, %s : tensor<?x?x8xf32>, tensor<?x2x4x4xf32>
  return %y, %ns : tensor<?x?x8xf32>, tensor<?x2x4x4xf32>
}

// -----

// RWKV-6 (per-token decay): d = exp(-exp(w)) over [B, T, C] before the
// loop; thread (b, h, j) carries column j of the head's state (4 scalar
// reads, 4 scalar writes), y[j] = reduce(r * ((u * k) * v[j] + S)) with
// the old state, S' = k * v[j] + d * S, the arithmetic of WKV456.cpp.
// CHECK-LABEL: func.func @wkv6
// CHECK-SAME:    (%[[R:[^:]+]]: tensor<2x?x8xf32>, %[[W:[^:]+]]: tensor<2x?x8xf32>, %[[K:[^:]+]]: tensor<2x?x8xf32>, %[[V:[^:]+]]: tensor<2x?x8xf32>, %[[U:[^:]+]]: tensor<8xf32>, %[[S0:[^:]+]]: tensor<2x2x4x4xf32>)
// CHECK:         %[[DECAY:.+]] = linalg.generic
// CHECK-SAME:        ins(%[[W]] : tensor<2x?x8xf32>)
// CHECK-NEXT:    ^bb0(%[[IW:[^:]+]]: f32, %{{[^:]+}}: f32):
// CHECK-NEXT:      %[[E:.+]] = math.exp %[[IW]] : f32
// CHECK-NEXT:      %[[NE:.+]] = arith.negf %[[E]] : f32
// CHECK-NEXT:      %[[D:.+]] = math.exp %[[NE]] : f32
// CHECK-NEXT:      linalg.yield %[[D]] : f32
// CHECK:         scf.forall (%[[BI:.+]], %[[HI:.+]], %[[JI:.+]]) in (2, 2, 4) shared_outs(%[[OY:.+]] = %{{.+}}, %[[OS:.+]] = %[[S0]])
// CHECK:           %[[BASE:.+]] = arith.muli %[[HI]], %{{.+}} : index
// CHECK:           %[[COL:.+]] = arith.addi %[[BASE]], %[[JI]] : index
// CHECK:           %[[SCOL:.+]] = tensor.extract_slice %[[OS]][%[[BI]], %[[HI]], 0, %[[JI]]] [1, 1, 4, 1] [1, 1, 1, 1] : tensor<2x2x4x4xf32> to tensor<4xf32>
// CHECK-COUNT-4:   tensor.extract %[[SCOL]][%{{.+}}] : tensor<4xf32>
// CHECK:           %[[COL0:.+]] = vector.from_elements %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}} : vector<4xf32>
// CHECK:           %[[LOOP:.+]]:2 = scf.for %[[TI:.+]] = %{{.+}} to %{{.+}} step %{{.+}} iter_args(%[[ST:.+]] = %[[COL0]], %{{.+}} = %{{.+}}) -> (vector<4xf32>, tensor<?xf32>) {
// CHECK-NEXT:        %[[RV:.+]] = vector.transfer_read %[[R]][%[[BI]], %[[TI]], %[[BASE]]]
// CHECK-NEXT:        %[[KV:.+]] = vector.transfer_read %[[K]][%[[BI]], %[[TI]], %[[BASE]]]
// CHECK-NEXT:        %[[UV:.+]] = vector.transfer_read %[[U]][%[[BASE]]]
// CHECK-NEXT:        %[[DV:.+]] = vector.transfer_read %[[DECAY]][%[[BI]], %[[TI]], %[[BASE]]]
// CHECK-NEXT:        %[[VJ:.+]] = tensor.extract %[[V]][%[[BI]], %[[TI]], %[[COL]]] : tensor<2x?x8xf32>
// CHECK-NEXT:        %[[VB:.+]] = vector.broadcast %[[VJ]] : f32 to vector<4xf32>
// CHECK-NEXT:        %[[UK:.+]] = arith.mulf %[[UV]], %[[KV]] : vector<4xf32>
// CHECK-NEXT:        %[[UKV:.+]] = arith.mulf %[[UK]], %[[VB]] : vector<4xf32>
// CHECK-NEXT:        %[[SUM:.+]] = arith.addf %[[UKV]], %[[ST]] : vector<4xf32>
// CHECK-NEXT:        %[[P:.+]] = arith.mulf %[[RV]], %[[SUM]] fastmath<reassoc,contract> : vector<4xf32>
// CHECK-NEXT:        %[[YJ:.+]] = vector.reduction <add>, %[[P]] fastmath<reassoc,contract> : vector<4xf32> into f32
// CHECK-NEXT:        %[[KVB:.+]] = arith.mulf %[[KV]], %[[VB]] : vector<4xf32>
// CHECK-NEXT:        %[[DS:.+]] = arith.mulf %[[DV]], %[[ST]] : vector<4xf32>
// CHECK-NEXT:        %[[NEXT:.+]] = arith.addf %[[KVB]], %[[DS]] : vector<4xf32>
// CHECK-NEXT:        %[[YN:.+]] = tensor.insert %[[YJ]] into %{{.+}}[%[[TI]]] : tensor<?xf32>
// CHECK-NEXT:        scf.yield %[[NEXT]], %[[YN]] : vector<4xf32>, tensor<?xf32>
// CHECK-NEXT:      }
// CHECK-COUNT-4:   vector.extract %[[LOOP]]#0[{{[0-3]}}] : f32 from vector<4xf32>
// CHECK:           scf.forall.in_parallel {
// CHECK-NEXT:        tensor.parallel_insert_slice %[[LOOP]]#1 into %[[OY]][%[[BI]], 0, %[[COL]]]
// CHECK-NEXT:        tensor.parallel_insert_slice %{{.+}} into %[[OS]][%[[BI]], %[[HI]], 0, %[[JI]]] [1, 1, 4, 1] [1, 1, 1, 1] : tensor<4xf32> into tensor<2x2x4x4xf32>
func.func @wkv6(%r: tensor<2x?x8xf32>, %w: tensor<2x?x8xf32>, %k: tensor<2x?x8xf32>, %v: tensor<2x?x8xf32>, %u: tensor<8xf32>, %s: tensor<2x2x4x4xf32>) -> (tensor<2x?x8xf32>, tensor<2x2x4x4xf32>) {
  %y, %ns = rwkv.wkv5 %r, %w, %k, %v, %u, %s : tensor<2x?x8xf32>, tensor<2x?x8xf32>, tensor<8xf32>, tensor<2x2x4x4xf32>
  return %y, %ns : tensor<2x?x8xf32>, tensor<2x2x4x4xf32>
}

// -----

// RWKV-5 (one decay per channel): d over [C] once, read per head in the
// loop.
// CHECK-LABEL: func.func @wkv5
// CHECK-SAME:    (%{{[^:]+}}: tensor<1x?x8xf32>, %[[W:[^:]+]]: tensor<8xf32>,
// CHECK:         %[[DECAY:.+]] = linalg.generic
// CHECK-SAME:        ins(%[[W]] : tensor<8xf32>)
// CHECK:         scf.forall (%{{.+}}, %[[HI:.+]], %{{.+}}) in (1, 2, 4)
// CHECK:           %[[BASE:.+]] = arith.muli %[[HI]], %{{.+}} : index
// CHECK:           scf.for
// CHECK:             vector.transfer_read %[[DECAY]][%[[BASE]]], %{{.+}} {in_bounds = [true]} : tensor<8xf32>, vector<4xf32>
func.func @wkv5(%r: tensor<1x?x8xf32>, %w: tensor<8xf32>, %k: tensor<1x?x8xf32>, %v: tensor<1x?x8xf32>, %u: tensor<8xf32>, %s: tensor<1x2x4x4xf32>) -> (tensor<1x?x8xf32>, tensor<1x2x4x4xf32>) {
  %y, %ns = rwkv.wkv5 %r, %w, %k, %v, %u, %s : tensor<1x?x8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<1x2x4x4xf32>
  return %y, %ns : tensor<1x?x8xf32>, tensor<1x2x4x4xf32>
}
