// RUN: rwkv-opt %s -split-input-file --convert-rwkv-to-linalg --mlir-print-local-scope | FileCheck %s
// RUN: rwkv-opt %s -split-input-file --convert-rwkv-to-linalg | FileCheck %s --check-prefix=NOOPS
// RUN: rwkv-opt %s -split-input-file --convert-rwkv-to-linalg="chunked-wkv=false" --mlir-print-local-scope | FileCheck %s --check-prefix=SEQ

// convert-rwkv-to-linalg (codegen/RWKVToLinalg): one case per primitive op.
// C = 8 channels, H = 2 heads of N = 4, bf16 weights (widened with arith.extf
// inside the generic bodies, never as a separate converted copy). Affine maps
// are printed inline (--mlir-print-local-scope) so each generic's maps are
// checked where they are used.

// No rwkv op survives the conversion (the `rwkv.projection` tag does).
// NOOPS-NOT: rwkv.{{(embed|layer_norm|token_shift|mix|linear|lora|l2_normalize|wkv|group_norm|head|cross_entropy)(_grad)? }}
// NOOPS-NOT: = rwkv.
// The cross-entropy cases with V = 1024 and 1000 never materialise [N, V]
// logits, only tiles of 512 vocabulary rows (V = 40 is a single tile).
// NOOPS-NOT: x{{1000|1024}}xf32>

// embed: a gather generic over (b, t, c) reading the token id and extracting
// (id, c) from the table.
// CHECK-LABEL: func.func @embed
// CHECK-SAME:    (%[[TABLE:[^:]+]]: tensor<32x8xbf16>, %[[IDS:[^:]+]]: tensor<2x?xi32>)
// CHECK:         %[[INIT:.+]] = tensor.empty(%{{.+}}) : tensor<2x?x8xf32>
// CHECK:         %[[E:.+]] = linalg.generic
// CHECK-SAME:      indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>]
// CHECK-SAME:      iterator_types = ["parallel", "parallel", "parallel"]
// CHECK-SAME:      ins(%[[IDS]] : tensor<2x?xi32>) outs(%[[INIT]] : tensor<2x?x8xf32>)
// CHECK-NEXT:    ^bb0(%[[ID:[^:]+]]: i32, %{{[^:]+}}: f32):
// CHECK-NEXT:      %[[ROW:.+]] = arith.index_cast %[[ID]] : i32 to index
// CHECK-NEXT:      %[[COL:.+]] = linalg.index 2 : index
// CHECK-NEXT:      %[[V:.+]] = tensor.extract %[[TABLE]][%[[ROW]], %[[COL]]] : tensor<32x8xbf16>
// CHECK-NEXT:      %[[VF:.+]] = arith.extf %[[V]] : bf16 to f32
// CHECK-NEXT:      linalg.yield %[[VF]] : f32
// CHECK:         return %[[E]]
func.func @embed(%table: tensor<32x8xbf16>, %ids: tensor<2x?xi32>) -> tensor<2x?x8xf32> {
  %0 = rwkv.embed %table, %ids : tensor<32x8xbf16>, tensor<2x?xi32> -> tensor<2x?x8xf32>
  return %0 : tensor<2x?x8xf32>
}

// -----

// layer_norm: two last-dim reductions (sum, then the centred sum of squares)
// whose accumulation is fastmath<reassoc,contract>, and one all-parallel
// normalise generic with sqrt/divf and the bf16 affine.
// CHECK-LABEL: func.func @layer_norm
// CHECK-SAME:    (%[[X:[^:]+]]: tensor<2x?x8xf32>, %[[W:[^:]+]]: tensor<8xbf16>, %[[B:[^:]+]]: tensor<8xbf16>)
// CHECK:         %[[N:.+]] = arith.sitofp %{{.+}} : i64 to f32
// CHECK:         %[[Z0:.+]] = linalg.fill ins(%{{.+}} : f32) outs(%{{.+}} : tensor<2x?xf32>)
// CHECK:         %[[SUM:.+]] = linalg.generic
// CHECK-SAME:      indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1)>]
// CHECK-SAME:      iterator_types = ["parallel", "parallel", "reduction"]
// CHECK-SAME:      ins(%[[X]] : tensor<2x?x8xf32>) outs(%[[Z0]] : tensor<2x?xf32>)
// CHECK-NEXT:    ^bb0(%[[SX:[^:]+]]: f32, %[[SACC:[^:]+]]: f32):
// CHECK-NEXT:      %[[SS:.+]] = arith.addf %[[SACC]], %[[SX]] fastmath<reassoc,contract> : f32
// CHECK-NEXT:      linalg.yield %[[SS]] : f32
// CHECK:         %[[Z1:.+]] = linalg.fill ins(%{{.+}} : f32) outs(%{{.+}} : tensor<2x?xf32>)
// CHECK:         %[[SQ:.+]] = linalg.generic
// CHECK-SAME:      indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1)>, affine_map<(d0, d1, d2) -> (d0, d1)>]
// CHECK-SAME:      iterator_types = ["parallel", "parallel", "reduction"]
// CHECK-SAME:      ins(%[[X]], %[[SUM]] : tensor<2x?x8xf32>, tensor<2x?xf32>) outs(%[[Z1]] : tensor<2x?xf32>)
// CHECK-NEXT:    ^bb0(%[[IX:[^:]+]]: f32, %[[IS:[^:]+]]: f32, %[[ACC:[^:]+]]: f32):
// CHECK-NEXT:      %[[MEAN:.+]] = arith.divf %[[IS]], %[[N]] : f32
// CHECK-NEXT:      %[[D:.+]] = arith.subf %[[IX]], %[[MEAN]] : f32
// CHECK-NEXT:      %[[D2:.+]] = arith.mulf %[[D]], %[[D]] : f32
// CHECK-NEXT:      %[[S:.+]] = arith.addf %[[ACC]], %[[D2]] fastmath<reassoc,contract> : f32
// CHECK-NEXT:      linalg.yield %[[S]] : f32
// CHECK:         %[[Y:.+]] = linalg.generic
// CHECK-SAME:      indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1)>, affine_map<(d0, d1, d2) -> (d0, d1)>, affine_map<(d0, d1, d2) -> (d2)>, affine_map<(d0, d1, d2) -> (d2)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>]
// CHECK-SAME:      iterator_types = ["parallel", "parallel", "parallel"]
// CHECK-SAME:      ins(%[[X]], %[[SUM]], %[[SQ]], %[[W]], %[[B]] : tensor<2x?x8xf32>, tensor<2x?xf32>, tensor<2x?xf32>, tensor<8xbf16>, tensor<8xbf16>)
// CHECK-NEXT:    ^bb0(%[[I0:[^:]+]]: f32, %[[I1:[^:]+]]: f32, %[[I2:[^:]+]]: f32, %[[IW:[^:]+]]: bf16, %[[IB:[^:]+]]: bf16, %{{[^:]+}}: f32):
// CHECK-NEXT:      %[[M:.+]] = arith.divf %[[I1]], %[[N]] : f32
// CHECK-NEXT:      %[[VAR:.+]] = arith.divf %[[I2]], %[[N]] : f32
// CHECK-NEXT:      %[[EPS:.+]] = arith.constant 9.99999974E-6 : f32
// CHECK-NEXT:      %[[VE:.+]] = arith.addf %[[VAR]], %[[EPS]] : f32
// CHECK-NEXT:      %[[SD:.+]] = math.sqrt %[[VE]] : f32
// CHECK-NEXT:      %[[XC:.+]] = arith.subf %[[I0]], %[[M]] : f32
// CHECK-NEXT:      %[[XN:.+]] = arith.divf %[[XC]], %[[SD]] : f32
// CHECK-NEXT:      %[[WF:.+]] = arith.extf %[[IW]] : bf16 to f32
// CHECK-NEXT:      %[[BF:.+]] = arith.extf %[[IB]] : bf16 to f32
// CHECK-NEXT:      %[[MW:.+]] = arith.mulf %[[XN]], %[[WF]] : f32
// CHECK-NEXT:      %[[R:.+]] = arith.addf %[[MW]], %[[BF]] : f32
// CHECK-NEXT:      linalg.yield %[[R]] : f32
// CHECK:         return %[[Y]]
func.func @layer_norm(%x: tensor<2x?x8xf32>, %w: tensor<8xbf16>, %b: tensor<8xbf16>) -> tensor<2x?x8xf32> {
  %0 = rwkv.layer_norm %x, %w, %b : tensor<2x?x8xf32>, tensor<8xbf16> -> tensor<2x?x8xf32>
  return %0 : tensor<2x?x8xf32>
}

// -----

// token_shift: two gather generics without inputs. `shifted` selects prev[b, c]
// at t = 0 and x[b, max(t, 1) - 1, c] otherwise; `last` reads x[b, T - 1, c].
// CHECK-LABEL: func.func @token_shift
// CHECK-SAME:    (%[[X:[^:]+]]: tensor<2x?x8xf32>, %[[PREV:[^:]+]]: tensor<2x8xf32>)
// CHECK:         %[[T:.+]] = tensor.dim %[[X]], %{{.+}} : tensor<2x?x8xf32>
// CHECK:         %[[TLAST:.+]] = arith.subi %[[T]], %{{.+}} : index
// CHECK:         %[[SH:.+]] = linalg.generic
// CHECK-SAME:      indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>]
// CHECK-SAME:      iterator_types = ["parallel", "parallel", "parallel"]
// CHECK-SAME:      outs(%{{.+}} : tensor<2x?x8xf32>)
// CHECK-NEXT:    ^bb0(%{{[^:]+}}: f32):
// CHECK-NEXT:      %[[BI:.+]] = linalg.index 0 : index
// CHECK-NEXT:      %[[TI:.+]] = linalg.index 1 : index
// CHECK-NEXT:      %[[CI:.+]] = linalg.index 2 : index
// CHECK:           %[[FIRST:.+]] = arith.cmpi eq, %[[TI]], %{{.+}} : index
// CHECK-NEXT:      %[[TMAX:.+]] = arith.maxui %[[TI]], %{{.+}} : index
// CHECK-NEXT:      %[[TPREV:.+]] = arith.subi %[[TMAX]], %{{.+}} : index
// CHECK-NEXT:      %[[FROMX:.+]] = tensor.extract %[[X]][%[[BI]], %[[TPREV]], %[[CI]]] : tensor<2x?x8xf32>
// CHECK-NEXT:      %[[FROMP:.+]] = tensor.extract %[[PREV]][%[[BI]], %[[CI]]] : tensor<2x8xf32>
// CHECK-NEXT:      %[[SEL:.+]] = arith.select %[[FIRST]], %[[FROMP]], %[[FROMX]] : f32
// CHECK-NEXT:      linalg.yield %[[SEL]] : f32
// CHECK:         %[[LAST:.+]] = linalg.generic
// CHECK-SAME:      indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>]
// CHECK-SAME:      iterator_types = ["parallel", "parallel"]
// CHECK-SAME:      outs(%{{.+}} : tensor<2x8xf32>)
// CHECK-NEXT:    ^bb0(%{{[^:]+}}: f32):
// CHECK-NEXT:      %[[LB:.+]] = linalg.index 0 : index
// CHECK-NEXT:      %[[LC:.+]] = linalg.index 1 : index
// CHECK-NEXT:      %[[LV:.+]] = tensor.extract %[[X]][%[[LB]], %[[TLAST]], %[[LC]]] : tensor<2x?x8xf32>
// CHECK-NEXT:      linalg.yield %[[LV]] : f32
// CHECK:         return %[[SH]], %[[LAST]]
func.func @token_shift(%x: tensor<2x?x8xf32>, %prev: tensor<2x8xf32>) -> (tensor<2x?x8xf32>, tensor<2x8xf32>) {
  %s, %l = rwkv.token_shift %x, %prev : tensor<2x?x8xf32>, tensor<2x8xf32>
  return %s, %l : tensor<2x?x8xf32>, tensor<2x8xf32>
}

// -----

// mix: x + (shifted - x) * mu, element-wise, mu broadcast along (b, t).
// CHECK-LABEL: func.func @mix
// CHECK-SAME:    (%[[X:[^:]+]]: tensor<2x?x8xf32>, %[[S:[^:]+]]: tensor<2x?x8xf32>, %[[MU:[^:]+]]: tensor<8xbf16>)
// CHECK:         %[[Y:.+]] = linalg.generic
// CHECK-SAME:      indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d2)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>]
// CHECK-SAME:      iterator_types = ["parallel", "parallel", "parallel"]
// CHECK-SAME:      ins(%[[X]], %[[S]], %[[MU]] : tensor<2x?x8xf32>, tensor<2x?x8xf32>, tensor<8xbf16>)
// CHECK-NEXT:    ^bb0(%[[IX:[^:]+]]: f32, %[[IS:[^:]+]]: f32, %[[IMU:[^:]+]]: bf16, %{{[^:]+}}: f32):
// CHECK-NEXT:      %[[MUF:.+]] = arith.extf %[[IMU]] : bf16 to f32
// CHECK-NEXT:      %[[D:.+]] = arith.subf %[[IS]], %[[IX]] : f32
// CHECK-NEXT:      %[[P:.+]] = arith.mulf %[[D]], %[[MUF]] : f32
// CHECK-NEXT:      %[[R:.+]] = arith.addf %[[IX]], %[[P]] : f32
// CHECK-NEXT:      linalg.yield %[[R]] : f32
// CHECK:         return %[[Y]]
func.func @mix(%x: tensor<2x?x8xf32>, %s: tensor<2x?x8xf32>, %mu: tensor<8xbf16>) -> tensor<2x?x8xf32> {
  %0 = rwkv.mix %x, %s, %mu : tensor<2x?x8xf32>, tensor<8xbf16> -> tensor<2x?x8xf32>
  return %0 : tensor<2x?x8xf32>
}

// -----

// linear: a (b, t, o, i) contraction with the [O, I] weight, a zero-filled
// accumulator, fastmath<reassoc,contract> and the rwkv.projection tag.
// CHECK-LABEL: func.func @linear
// CHECK-SAME:    (%[[X:[^:]+]]: tensor<2x?x8xf32>, %[[W:[^:]+]]: tensor<16x8xbf16>)
// CHECK:         %[[ZERO:.+]] = arith.constant 0.000000e+00 : f32
// CHECK-NEXT:    %[[ACC:.+]] = linalg.fill ins(%[[ZERO]] : f32) outs(%{{.+}} : tensor<2x?x16xf32>) -> tensor<2x?x16xf32>
// CHECK-NEXT:    %[[Y:.+]] = linalg.generic
// CHECK-SAME:      indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>, affine_map<(d0, d1, d2, d3) -> (d2, d3)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>]
// CHECK-SAME:      iterator_types = ["parallel", "parallel", "parallel", "reduction"]
// CHECK-SAME:      ins(%[[X]], %[[W]] : tensor<2x?x8xf32>, tensor<16x8xbf16>) outs(%[[ACC]] : tensor<2x?x16xf32>)
// CHECK-SAME:      attrs = {rwkv.projection}
// CHECK-NEXT:    ^bb0(%[[IX:[^:]+]]: f32, %[[IW:[^:]+]]: bf16, %[[IACC:[^:]+]]: f32):
// CHECK-NEXT:      %[[WF:.+]] = arith.extf %[[IW]] : bf16 to f32
// CHECK-NEXT:      %[[P:.+]] = arith.mulf %[[IX]], %[[WF]] fastmath<reassoc,contract> : f32
// CHECK-NEXT:      %[[S:.+]] = arith.addf %[[IACC]], %[[P]] fastmath<reassoc,contract> : f32
// CHECK-NEXT:      linalg.yield %[[S]] : f32
// CHECK:         return %[[Y]]
func.func @linear(%x: tensor<2x?x8xf32>, %w: tensor<16x8xbf16>) -> tensor<2x?x16xf32> {
  %0 = rwkv.linear %x, %w : tensor<2x?x8xf32>, tensor<16x8xbf16> -> tensor<2x?x16xf32>
  return %0 : tensor<2x?x16xf32>
}

// -----

// int8 linear: the row scale is a third input indexed by the output (d2) and
// multiplies the widened weight in the body (never a materialised f32 copy).
// CHECK-LABEL: func.func @linear_int8
// CHECK-SAME:    (%[[X:[^:]+]]: tensor<2x?x8xf32>, %[[Q:[^:]+]]: tensor<16x8xi8>, %[[SC:[^:]+]]: tensor<16xf32>)
// CHECK:         %[[Y:.+]] = linalg.generic
// CHECK-SAME:      indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>, affine_map<(d0, d1, d2, d3) -> (d2, d3)>, affine_map<(d0, d1, d2, d3) -> (d2)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>]
// CHECK-SAME:      ins(%[[X]], %[[Q]], %[[SC]] : tensor<2x?x8xf32>, tensor<16x8xi8>, tensor<16xf32>)
// CHECK-SAME:      attrs = {rwkv.projection}
// CHECK-NEXT:    ^bb0(%[[IX:[^:]+]]: f32, %[[IQ:[^:]+]]: i8, %[[IS:[^:]+]]: f32, %[[IACC:[^:]+]]: f32):
// CHECK-NEXT:      %[[WF:.+]] = arith.sitofp %[[IQ]] : i8 to f32
// CHECK-NEXT:      %[[WS:.+]] = arith.mulf %[[WF]], %[[IS]] fastmath<reassoc,contract> : f32
// CHECK-NEXT:      %[[P:.+]] = arith.mulf %[[IX]], %[[WS]] fastmath<reassoc,contract> : f32
// CHECK-NEXT:      %[[S:.+]] = arith.addf %[[IACC]], %[[P]] fastmath<reassoc,contract> : f32
// CHECK-NEXT:      linalg.yield %[[S]] : f32
// CHECK:         return %[[Y]]
func.func @linear_int8(%x: tensor<2x?x8xf32>, %q: tensor<16x8xi8>, %s: tensor<16xf32>) -> tensor<2x?x16xf32> {
  %0 = rwkv.linear %x, %q scale %s : tensor<2x?x8xf32>, tensor<16x8xi8>, tensor<16xf32> -> tensor<2x?x16xf32>
  return %0 : tensor<2x?x16xf32>
}

// -----

// int8 embedding: the gathered element is widened and scaled by its row's
// (token's) scale.
// CHECK-LABEL: func.func @embed_int8
// CHECK-SAME:    (%[[Q:[^:]+]]: tensor<32x8xi8>, %[[IDS:[^:]+]]: tensor<2x?xi32>, %[[SC:[^:]+]]: tensor<32xf32>)
// CHECK:         linalg.generic
// CHECK:           %[[ROW:.+]] = arith.index_cast
// CHECK:           %[[E:.+]] = tensor.extract %[[Q]][%[[ROW]], %{{.+}}] : tensor<32x8xi8>
// CHECK:           %[[EF:.+]] = arith.sitofp %[[E]] : i8 to f32
// CHECK:           %[[ES:.+]] = tensor.extract %[[SC]][%[[ROW]]] : tensor<32xf32>
// CHECK:           %[[V:.+]] = arith.mulf %[[EF]], %[[ES]] : f32
// CHECK:           linalg.yield %[[V]] : f32
func.func @embed_int8(%q: tensor<32x8xi8>, %ids: tensor<2x?xi32>, %s: tensor<32xf32>) -> tensor<2x?x8xf32> {
  %0 = rwkv.embed %q, %ids scale %s : tensor<32x8xi8>, tensor<2x?xi32>, tensor<32xf32> -> tensor<2x?x8xf32>
  return %0 : tensor<2x?x8xf32>
}

// -----

// int4 linear (group 4): the packed bytes are read at column floordiv 2 and
// the bf16 group scales at column floordiv 4. In the body the nibble of
// the column is unpacked in registers (shift it to the top of the byte:
// by 4 for an even column, by 0 for an odd one, then an arithmetic shift
// right by 4 restores its sign), widened, and multiplied by the widened
// group scale; accumulation stays f32.
// CHECK-LABEL: func.func @linear_int4
// CHECK-SAME:    (%[[X:[^:]+]]: tensor<2x?x8xf32>, %[[Q:[^:]+]]: tensor<16x4xi8>, %[[SC:[^:]+]]: tensor<16x2xbf16>)
// CHECK:         %[[Y:.+]] = linalg.generic
// CHECK-SAME:      indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>, affine_map<(d0, d1, d2, d3) -> (d2, d3 floordiv 2)>, affine_map<(d0, d1, d2, d3) -> (d2, d3 floordiv 4)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>]
// CHECK-SAME:      ins(%[[X]], %[[Q]], %[[SC]] : tensor<2x?x8xf32>, tensor<16x4xi8>, tensor<16x2xbf16>)
// CHECK-SAME:      attrs = {rwkv.projection}
// CHECK-NEXT:    ^bb0(%[[IX:[^:]+]]: f32, %[[IQ:[^:]+]]: i8, %[[IS:[^:]+]]: bf16, %[[IACC:[^:]+]]: f32):
// CHECK-NEXT:      %[[COL:.+]] = linalg.index 3 : index
// CHECK-NEXT:      %[[COL8:.+]] = arith.index_cast %[[COL]] : index to i8
// CHECK-NEXT:      %[[C1:.+]] = arith.constant 1 : i8
// CHECK-NEXT:      %[[ODD:.+]] = arith.andi %[[COL8]], %[[C1]] : i8
// CHECK-NEXT:      %[[C4:.+]] = arith.constant 4 : i8
// CHECK-NEXT:      %[[C2:.+]] = arith.constant 2 : i8
// CHECK-NEXT:      %[[ODD4:.+]] = arith.shli %[[ODD]], %[[C2]] : i8
// CHECK-NEXT:      %[[LEFT:.+]] = arith.subi %[[C4]], %[[ODD4]] : i8
// CHECK-NEXT:      %[[TOP:.+]] = arith.shli %[[IQ]], %[[LEFT]] : i8
// CHECK-NEXT:      %[[NIB:.+]] = arith.shrsi %[[TOP]], %[[C4]] : i8
// CHECK-NEXT:      %[[WF:.+]] = arith.sitofp %[[NIB]] : i8 to f32
// CHECK-NEXT:      %[[SF:.+]] = arith.extf %[[IS]] : bf16 to f32
// CHECK-NEXT:      %[[WS:.+]] = arith.mulf %[[WF]], %[[SF]] fastmath<reassoc,contract> : f32
// CHECK-NEXT:      %[[P:.+]] = arith.mulf %[[IX]], %[[WS]] fastmath<reassoc,contract> : f32
// CHECK-NEXT:      %[[S:.+]] = arith.addf %[[IACC]], %[[P]] fastmath<reassoc,contract> : f32
// CHECK-NEXT:      linalg.yield %[[S]] : f32
// CHECK:         return %[[Y]]
func.func @linear_int4(%x: tensor<2x?x8xf32>, %q: tensor<16x4xi8>, %s: tensor<16x2xbf16>) -> tensor<2x?x16xf32> {
  %0 = rwkv.linear %x, %q scale %s group 4 : tensor<2x?x8xf32>, tensor<16x4xi8>, tensor<16x2xbf16> -> tensor<2x?x16xf32>
  return %0 : tensor<2x?x16xf32>
}

// -----

// The int4 head reads its matrix the same way.
// CHECK-LABEL: func.func @head_int4
// CHECK:         linalg.generic
// CHECK-SAME:      affine_map<(d0, d1, d2, d3) -> (d2, d3 floordiv 2)>, affine_map<(d0, d1, d2, d3) -> (d2, d3 floordiv 8)>
// CHECK-SAME:      tensor<32x4xi8>, tensor<32x1xbf16>
// CHECK:           arith.shrsi
func.func @head_int4(%x: tensor<2x?x8xf32>, %q: tensor<32x4xi8>, %s: tensor<32x1xbf16>) -> tensor<2x1x32xf32> {
  %0 = rwkv.head %x, %q scale %s group 8 {positions = #rwkv<positions last>} : tensor<2x?x8xf32>, tensor<32x4xi8>, tensor<32x1xbf16> -> tensor<2x1x32xf32>
  return %0 : tensor<2x1x32xf32>
}

// -----

// int4 embedding: the gathered byte is column / 2 of the token's row, its
// nibble is unpacked as in the projections, and the scale is that of the
// token's row and the column's group.
// CHECK-LABEL: func.func @embed_int4
// CHECK-SAME:    (%[[Q:[^:]+]]: tensor<32x4xi8>, %[[IDS:[^:]+]]: tensor<2x?xi32>, %[[SC:[^:]+]]: tensor<32x2xbf16>)
// CHECK:         linalg.generic
// CHECK:           %[[ROW:.+]] = arith.index_cast %{{.+}} : i32 to index
// CHECK:           %[[COL:.+]] = linalg.index 2 : index
// CHECK:           %[[BYTE:.+]] = arith.divui %[[COL]], %c2
// CHECK:           %[[E:.+]] = tensor.extract %[[Q]][%[[ROW]], %[[BYTE]]] : tensor<32x4xi8>
// CHECK:           %[[TOP:.+]] = arith.shli %[[E]], %{{.+}} : i8
// CHECK:           %[[NIB:.+]] = arith.shrsi %[[TOP]], %{{.+}} : i8
// CHECK:           %[[EF:.+]] = arith.sitofp %[[NIB]] : i8 to f32
// CHECK:           %[[G:.+]] = arith.divui %[[COL]], %c4
// CHECK:           %[[ES:.+]] = tensor.extract %[[SC]][%[[ROW]], %[[G]]] : tensor<32x2xbf16>
// CHECK:           %[[ESF:.+]] = arith.extf %[[ES]] : bf16 to f32
// CHECK:           %[[V:.+]] = arith.mulf %[[EF]], %[[ESF]] : f32
// CHECK:           linalg.yield %[[V]] : f32
func.func @embed_int4(%q: tensor<32x4xi8>, %ids: tensor<2x?xi32>, %s: tensor<32x2xbf16>) -> tensor<2x?x8xf32> {
  %0 = rwkv.embed %q, %ids scale %s group 4 : tensor<32x4xi8>, tensor<2x?xi32>, tensor<32x2xbf16> -> tensor<2x?x8xf32>
  return %0 : tensor<2x?x8xf32>
}

// -----

// An int4 dequantize that no projection folded: every element of the
// [16, 8] f32 result from byte column / 2 and scale column / 4.
// CHECK-LABEL: func.func @dequantize_int4
// CHECK:         %[[INIT:.+]] = tensor.empty() : tensor<16x8xf32>
// CHECK:         linalg.generic {{.+}} outs(%[[INIT]] : tensor<16x8xf32>)
// CHECK:           %[[R:.+]] = linalg.index 0 : index
// CHECK:           %[[C:.+]] = linalg.index 1 : index
// CHECK:           %[[B:.+]] = arith.divui %[[C]], %c2
// CHECK:           tensor.extract %{{.+}}[%[[R]], %[[B]]] : tensor<16x4xi8>
// CHECK:           arith.shrsi
// CHECK:           %[[G:.+]] = arith.divui %[[C]], %c4
// CHECK:           tensor.extract %{{.+}}[%[[R]], %[[G]]] : tensor<16x2xbf16>
func.func @dequantize_int4(%q: tensor<16x4xi8>, %s: tensor<16x2xbf16>) -> tensor<16x8xf32> {
  %0 = rwkv.dequantize %q, %s group 4 : tensor<16x4xi8>, tensor<16x2xbf16> -> tensor<16x8xf32>
  return %0 : tensor<16x8xf32>
}

// -----

// Grouped int8 (group 4 int8, llama.cpp's Q8_0): the weight is read at
// (row, column) like per-row int8, the bf16 scale at column floordiv 4; no
// nibble arithmetic.
// CHECK-LABEL: func.func @linear_int8_groups
// CHECK-SAME:    (%[[X:[^:]+]]: tensor<2x?x8xf32>, %[[Q:[^:]+]]: tensor<16x8xi8>, %[[SC:[^:]+]]: tensor<16x2xbf16>)
// CHECK:         linalg.generic
// CHECK-SAME:      indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>, affine_map<(d0, d1, d2, d3) -> (d2, d3)>, affine_map<(d0, d1, d2, d3) -> (d2, d3 floordiv 4)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>]
// CHECK-SAME:      ins(%[[X]], %[[Q]], %[[SC]] : tensor<2x?x8xf32>, tensor<16x8xi8>, tensor<16x2xbf16>)
// CHECK-NEXT:    ^bb0(%[[IX:[^:]+]]: f32, %[[IQ:[^:]+]]: i8, %[[IS:[^:]+]]: bf16, %[[IACC:[^:]+]]: f32):
// CHECK-NEXT:      %[[WF:.+]] = arith.sitofp %[[IQ]] : i8 to f32
// CHECK-NEXT:      %[[SF:.+]] = arith.extf %[[IS]] : bf16 to f32
// CHECK-NEXT:      %[[WS:.+]] = arith.mulf %[[WF]], %[[SF]] fastmath<reassoc,contract> : f32
// CHECK-NEXT:      %[[P:.+]] = arith.mulf %[[IX]], %[[WS]] fastmath<reassoc,contract> : f32
// CHECK-NEXT:      %[[S:.+]] = arith.addf %[[IACC]], %[[P]] fastmath<reassoc,contract> : f32
// CHECK-NEXT:      linalg.yield %[[S]] : f32
func.func @linear_int8_groups(%x: tensor<2x?x8xf32>, %q: tensor<16x8xi8>, %s: tensor<16x2xbf16>) -> tensor<2x?x16xf32> {
  %0 = rwkv.linear %x, %q scale %s group 4 int8 : tensor<2x?x8xf32>, tensor<16x8xi8>, tensor<16x2xbf16> -> tensor<2x?x16xf32>
  return %0 : tensor<2x?x16xf32>
}

// -----

// A grouped int8 embedding and dequantize: the byte at (row, column), the
// scale at (row, column / 4).
// CHECK-LABEL: func.func @embed_dequantize_int8_groups
// CHECK:         linalg.generic
// CHECK:           %[[ROW:.+]] = arith.index_cast %{{.+}} : i32 to index
// CHECK:           %[[COL:.+]] = linalg.index 2 : index
// CHECK-NOT:       arith.shrsi
// CHECK:           %[[E:.+]] = tensor.extract %{{.+}}[%[[ROW]], %[[COL]]] : tensor<32x8xi8>
// CHECK-NEXT:      %[[EF:.+]] = arith.sitofp %[[E]] : i8 to f32
// CHECK-NEXT:      %[[G:.+]] = arith.divui %[[COL]], %c4
// CHECK-NEXT:      tensor.extract %{{.+}}[%[[ROW]], %[[G]]] : tensor<32x2xbf16>
// CHECK:         linalg.generic
// CHECK:           %[[R:.+]] = linalg.index 0 : index
// CHECK:           %[[C:.+]] = linalg.index 1 : index
// CHECK-NOT:       arith.shrsi
// CHECK:           tensor.extract %{{.+}}[%[[R]], %[[C]]] : tensor<32x8xi8>
// CHECK-NEXT:      arith.sitofp
// CHECK-NEXT:      %[[G2:.+]] = arith.divui %[[C]], %c4
// CHECK-NEXT:      tensor.extract %{{.+}}[%[[R]], %[[G2]]] : tensor<32x2xbf16>
func.func @embed_dequantize_int8_groups(%q: tensor<32x8xi8>, %ids: tensor<2x?xi32>, %s: tensor<32x2xbf16>) -> (tensor<2x?x8xf32>, tensor<32x8xf32>) {
  %0 = rwkv.embed %q, %ids scale %s group 4 int8 : tensor<32x8xi8>, tensor<2x?xi32>, tensor<32x2xbf16> -> tensor<2x?x8xf32>
  %1 = rwkv.dequantize %q, %s group 4 int8 : tensor<32x8xi8>, tensor<32x2xbf16> -> tensor<32x8xf32>
  return %0, %1 : tensor<2x?x8xf32>, tensor<32x8xf32>
}

// -----

// A dequantize that no projection folded is materialised element-wise.
// CHECK-LABEL: func.func @dequantize
// CHECK-SAME:    (%[[Q:[^:]+]]: tensor<16x8xi8>, %[[SC:[^:]+]]: tensor<16xf32>)
// CHECK:         linalg.generic
// CHECK-SAME:      indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d0)>, affine_map<(d0, d1) -> (d0, d1)>]
// CHECK-SAME:      ins(%[[Q]], %[[SC]] : tensor<16x8xi8>, tensor<16xf32>)
// CHECK:           arith.sitofp %{{.+}} : i8 to f32
// CHECK:           arith.mulf
func.func @dequantize(%q: tensor<16x8xi8>, %s: tensor<16xf32>) -> tensor<16x8xf32> {
  %0 = rwkv.dequantize %q, %s : tensor<16x8xi8>, tensor<16xf32> -> tensor<16x8xf32>
  return %0 : tensor<16x8xf32>
}

// -----

// lora tanh: down projection ([I, R] weight: map (d3, d2)), tanh in its own
// all-parallel generic, up projection ([R, O] weight).
// CHECK-LABEL: func.func @lora_tanh
// CHECK-SAME:    (%[[X:[^:]+]]: tensor<2x?x8xf32>, %[[D:[^:]+]]: tensor<8x3xbf16>, %[[U:[^:]+]]: tensor<3x8xbf16>)
// CHECK:         %[[H:.+]] = linalg.generic
// CHECK-SAME:      indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>, affine_map<(d0, d1, d2, d3) -> (d3, d2)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>]
// CHECK-SAME:      iterator_types = ["parallel", "parallel", "parallel", "reduction"]
// CHECK-SAME:      ins(%[[X]], %[[D]] : tensor<2x?x8xf32>, tensor<8x3xbf16>) outs(%{{.+}} : tensor<2x?x3xf32>)
// CHECK-SAME:      attrs = {rwkv.projection}
// CHECK:           arith.extf %{{.+}} : bf16 to f32
// CHECK:           arith.mulf {{.+}} fastmath<reassoc,contract> : f32
// CHECK:           arith.addf {{.+}} fastmath<reassoc,contract> : f32
// CHECK:         %[[ACT:.+]] = linalg.generic
// CHECK-SAME:      indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>]
// CHECK-SAME:      iterator_types = ["parallel", "parallel", "parallel"]
// CHECK-SAME:      ins(%[[H]] : tensor<2x?x3xf32>)
// CHECK-NEXT:    ^bb0(%[[IH:[^:]+]]: f32, %{{[^:]+}}: f32):
// CHECK-NEXT:      %[[TANH:.+]] = math.tanh %[[IH]] : f32
// CHECK-NEXT:      linalg.yield %[[TANH]] : f32
// CHECK:         %[[Y:.+]] = linalg.generic
// CHECK-SAME:      indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>, affine_map<(d0, d1, d2, d3) -> (d3, d2)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>]
// CHECK-SAME:      iterator_types = ["parallel", "parallel", "parallel", "reduction"]
// CHECK-SAME:      ins(%[[ACT]], %[[U]] : tensor<2x?x3xf32>, tensor<3x8xbf16>) outs(%{{.+}} : tensor<2x?x8xf32>)
// CHECK-SAME:      attrs = {rwkv.projection}
// CHECK:           arith.extf %{{.+}} : bf16 to f32
// CHECK:         return %[[Y]]
func.func @lora_tanh(%x: tensor<2x?x8xf32>, %d: tensor<8x3xbf16>, %u: tensor<3x8xbf16>) -> tensor<2x?x8xf32> {
  %0 = rwkv.lora %x, %d, %u {activation = #rwkv<activation tanh>} : tensor<2x?x8xf32>, tensor<8x3xbf16>, tensor<3x8xbf16> -> tensor<2x?x8xf32>
  return %0 : tensor<2x?x8xf32>
}

// -----

// lora sigmoid: 1 / (1 + exp(-h)) between the two projections.
// CHECK-LABEL: func.func @lora_sigmoid
// CHECK-SAME:    (%[[X:[^:]+]]: tensor<2x?x8xf32>, %[[D:[^:]+]]: tensor<8x3xbf16>, %[[U:[^:]+]]: tensor<3x8xbf16>)
// CHECK:         %[[H:.+]] = linalg.generic {{.+}} ins(%[[X]], %[[D]] : {{.+}} attrs = {rwkv.projection}
// CHECK:         %[[ACT:.+]] = linalg.generic
// CHECK-SAME:      iterator_types = ["parallel", "parallel", "parallel"]
// CHECK-SAME:      ins(%[[H]] : tensor<2x?x3xf32>)
// CHECK-NEXT:    ^bb0(%[[IH:[^:]+]]: f32, %{{[^:]+}}: f32):
// CHECK-NEXT:      %[[NEG:.+]] = arith.negf %[[IH]] : f32
// CHECK-NEXT:      %[[EXP:.+]] = math.exp %[[NEG]] : f32
// CHECK-NEXT:      %[[ONE:.+]] = arith.constant 1.000000e+00 : f32
// CHECK-NEXT:      %[[DEN:.+]] = arith.addf %[[ONE]], %[[EXP]] : f32
// CHECK-NEXT:      %[[SIG:.+]] = arith.divf %[[ONE]], %[[DEN]] : f32
// CHECK-NEXT:      linalg.yield %[[SIG]] : f32
// CHECK:         %[[Y:.+]] = linalg.generic {{.+}} ins(%[[ACT]], %[[U]] : {{.+}} attrs = {rwkv.projection}
// CHECK:         return %[[Y]]
func.func @lora_sigmoid(%x: tensor<2x?x8xf32>, %d: tensor<8x3xbf16>, %u: tensor<3x8xbf16>) -> tensor<2x?x8xf32> {
  %0 = rwkv.lora %x, %d, %u {activation = #rwkv<activation sigmoid>} : tensor<2x?x8xf32>, tensor<8x3xbf16>, tensor<3x8xbf16> -> tensor<2x?x8xf32>
  return %0 : tensor<2x?x8xf32>
}

// -----

// lora without activation: the down projection feeds the up projection
// directly; f32 weights need no extf.
// CHECK-LABEL: func.func @lora_none
// CHECK-SAME:    (%[[X:[^:]+]]: tensor<2x?x8xf32>, %[[D:[^:]+]]: tensor<8x3xf32>, %[[U:[^:]+]]: tensor<3x8xf32>)
// CHECK-NOT:     arith.extf
// CHECK:         %[[H:.+]] = linalg.generic {{.+}} ins(%[[X]], %[[D]] : tensor<2x?x8xf32>, tensor<8x3xf32>) {{.+}} attrs = {rwkv.projection}
// CHECK-NEXT:    ^bb0(%[[IX:[^:]+]]: f32, %[[IW:[^:]+]]: f32, %[[IACC:[^:]+]]: f32):
// CHECK-NEXT:      %[[P:.+]] = arith.mulf %[[IX]], %[[IW]] fastmath<reassoc,contract> : f32
// CHECK-NEXT:      %[[S:.+]] = arith.addf %[[IACC]], %[[P]] fastmath<reassoc,contract> : f32
// CHECK-NEXT:      linalg.yield %[[S]] : f32
// CHECK-NOT:     math.
// CHECK:         %[[Y:.+]] = linalg.generic {{.+}} ins(%[[H]], %[[U]] : tensor<2x?x3xf32>, tensor<3x8xf32>) {{.+}} attrs = {rwkv.projection}
// CHECK-NOT:     arith.extf
// CHECK:         return %[[Y]]
func.func @lora_none(%x: tensor<2x?x8xf32>, %d: tensor<8x3xf32>, %u: tensor<3x8xf32>) -> tensor<2x?x8xf32> {
  %0 = rwkv.lora %x, %d, %u : tensor<2x?x8xf32>, tensor<8x3xf32>, tensor<3x8xf32> -> tensor<2x?x8xf32>
  return %0 : tensor<2x?x8xf32>
}

// -----

// l2_normalize: split into heads, sum of squares over the head dimension
// (fastmath<reassoc,contract> accumulation), x / max(sqrt(ss), eps), merge
// heads.
// CHECK-LABEL: func.func @l2_normalize
// CHECK-SAME:    (%[[X:[^:]+]]: tensor<2x?x8xf32>)
// CHECK:         %[[X4:.+]] = tensor.expand_shape %[[X]] {{\[}}[0], [1], [2, 3]] output_shape [2, %{{.+}}, 2, 4] : tensor<2x?x8xf32> into tensor<2x?x2x4xf32>
// CHECK:         %[[SS:.+]] = linalg.generic
// CHECK-SAME:      indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>]
// CHECK-SAME:      iterator_types = ["parallel", "parallel", "parallel", "reduction"]
// CHECK-SAME:      ins(%[[X4]] : tensor<2x?x2x4xf32>) outs(%{{.+}} : tensor<2x?x2xf32>)
// CHECK-NEXT:    ^bb0(%[[IX:[^:]+]]: f32, %[[IACC:[^:]+]]: f32):
// CHECK-NEXT:      %[[SQ:.+]] = arith.mulf %[[IX]], %[[IX]] : f32
// CHECK-NEXT:      %[[S:.+]] = arith.addf %[[IACC]], %[[SQ]] fastmath<reassoc,contract> : f32
// CHECK:         %[[Y4:.+]] = linalg.generic
// CHECK-SAME:      indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>]
// CHECK-SAME:      iterator_types = ["parallel", "parallel", "parallel", "parallel"]
// CHECK-SAME:      ins(%[[X4]], %[[SS]] : tensor<2x?x2x4xf32>, tensor<2x?x2xf32>)
// CHECK-NEXT:    ^bb0(%[[JX:[^:]+]]: f32, %[[JSS:[^:]+]]: f32, %{{[^:]+}}: f32):
// CHECK-NEXT:      %[[NORM:.+]] = math.sqrt %[[JSS]] : f32
// CHECK-NEXT:      %[[EPS:.+]] = arith.constant 9.99999996E-13 : f32
// CHECK-NEXT:      %[[DEN:.+]] = arith.maximumf %[[NORM]], %[[EPS]] : f32
// CHECK-NEXT:      %[[Q:.+]] = arith.divf %[[JX]], %[[DEN]] : f32
// CHECK-NEXT:      linalg.yield %[[Q]] : f32
// CHECK:         %[[Y:.+]] = tensor.collapse_shape %[[Y4]] {{\[}}[0], [1], [2, 3]] : tensor<2x?x2x4xf32> into tensor<2x?x8xf32>
// CHECK:         return %[[Y]]
func.func @l2_normalize(%x: tensor<2x?x8xf32>) -> tensor<2x?x8xf32> {
  %0 = rwkv.l2_normalize %x {num_heads = 2 : i64} : tensor<2x?x8xf32> -> tensor<2x?x8xf32>
  return %0 : tensor<2x?x8xf32>
}

// -----

// wkv: an scf.for over the tokens carrying (state, y) and the three [B, H, N]
// per-token temporaries (sa, exp(w), y_t), allocated once before the loop:
// fresh ones would bufferize to an allocation per token. Per step: sa = S a
// (reduction over the key index, fastmath<reassoc,contract>, into the zeroed
// carried buffer), d = exp(w) into its carried buffer, the in-place update
// whose outs is the loop-carried state (exact arithmetic), y = S' r
// (reduction) inserted at row t.
// CHECK-LABEL: func.func @wkv
// CHECK-SAME:    (%[[R:[^:]+]]: tensor<2x?x8xf32>, %[[W:[^:]+]]: tensor<2x?x8xf32>, %[[K:[^:]+]]: tensor<2x?x8xf32>, %[[V:[^:]+]]: tensor<2x?x8xf32>, %[[A:[^:]+]]: tensor<2x?x8xf32>, %[[B:[^:]+]]: tensor<2x?x8xf32>, %[[S0:[^:]+]]: tensor<2x2x4x4xf32>)
// CHECK:         %[[YINIT:.+]] = tensor.empty(%{{.+}}) : tensor<2x?x8xf32>
// CHECK:         %[[T:.+]] = tensor.dim %[[R]], %{{.+}} : tensor<2x?x8xf32>
// CHECK-DAG:     %[[ZERO:.+]] = arith.constant 0.000000e+00 : f32
// CHECK-DAG:     %[[SABUF:.+]] = tensor.empty() : tensor<2x2x4xf32>
// CHECK-DAG:     %[[DBUF:.+]] = tensor.empty() : tensor<2x2x4xf32>
// CHECK-DAG:     %[[YTBUF:.+]] = tensor.empty() : tensor<2x2x4xf32>
// CHECK:         %[[LOOP:.+]]:5 = scf.for %[[IV:.+]] = %{{.+}} to %[[T]] step %{{.+}} iter_args(%[[S:.+]] = %[[S0]], %[[YACC:.+]] = %[[YINIT]], %[[SAC:.+]] = %[[SABUF]], %[[DC:.+]] = %[[DBUF]], %[[YTC:.+]] = %[[YTBUF]]) -> (tensor<2x2x4x4xf32>, tensor<2x?x8xf32>, tensor<2x2x4xf32>, tensor<2x2x4xf32>, tensor<2x2x4xf32>) {
// CHECK:           %[[RS:.+]] = tensor.extract_slice %[[R]][0, %[[IV]], 0] [2, 1, 8] [1, 1, 1] : tensor<2x?x8xf32> to tensor<2x8xf32>
// CHECK-NEXT:      %[[RT:.+]] = tensor.expand_shape %[[RS]] {{\[}}[0], [1, 2]] output_shape [2, 2, 4] : tensor<2x8xf32> into tensor<2x2x4xf32>
// CHECK:           %[[WS:.+]] = tensor.extract_slice %[[W]][0, %[[IV]], 0]
// CHECK-NEXT:      %[[WT:.+]] = tensor.expand_shape %[[WS]]
// CHECK:           %[[KS:.+]] = tensor.extract_slice %[[K]][0, %[[IV]], 0]
// CHECK-NEXT:      %[[KT:.+]] = tensor.expand_shape %[[KS]]
// CHECK:           %[[VS:.+]] = tensor.extract_slice %[[V]][0, %[[IV]], 0]
// CHECK-NEXT:      %[[VT:.+]] = tensor.expand_shape %[[VS]]
// CHECK:           %[[AS:.+]] = tensor.extract_slice %[[A]][0, %[[IV]], 0]
// CHECK-NEXT:      %[[AT:.+]] = tensor.expand_shape %[[AS]]
// CHECK:           %[[BS:.+]] = tensor.extract_slice %[[B]][0, %[[IV]], 0]
// CHECK-NEXT:      %[[BT:.+]] = tensor.expand_shape %[[BS]]
// CHECK:           %[[SAZ:.+]] = linalg.fill ins(%[[ZERO]] : f32) outs(%[[SAC]] : tensor<2x2x4xf32>)
// CHECK:           %[[SA:.+]] = linalg.generic
// CHECK-SAME:        indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>]
// CHECK-SAME:        iterator_types = ["parallel", "parallel", "parallel", "reduction"]
// CHECK-SAME:        ins(%[[S]], %[[AT]] : tensor<2x2x4x4xf32>, tensor<2x2x4xf32>) outs(%[[SAZ]] : tensor<2x2x4xf32>)
// CHECK-NEXT:      ^bb0(%[[SAS:[^:]+]]: f32, %[[SAA:[^:]+]]: f32, %[[SAACC:[^:]+]]: f32):
// CHECK-NEXT:        %[[SAP:.+]] = arith.mulf %[[SAS]], %[[SAA]] fastmath<reassoc,contract> : f32
// CHECK-NEXT:        %[[SAR:.+]] = arith.addf %[[SAACC]], %[[SAP]] fastmath<reassoc,contract> : f32
// CHECK-NEXT:        linalg.yield %[[SAR]] : f32
// CHECK:           %[[DECAY:.+]] = linalg.generic
// CHECK-SAME:        iterator_types = ["parallel", "parallel", "parallel"]
// CHECK-SAME:        ins(%[[WT]] : tensor<2x2x4xf32>) outs(%[[DC]] : tensor<2x2x4xf32>)
// CHECK-NEXT:      ^bb0(%[[IW:[^:]+]]: f32, %{{[^:]+}}: f32):
// CHECK-NEXT:        %[[EXP:.+]] = math.exp %[[IW]] : f32
// CHECK-NEXT:        linalg.yield %[[EXP]] : f32
// CHECK:           %[[SNEW:.+]] = linalg.generic
// CHECK-SAME:        indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>]
// CHECK-SAME:        iterator_types = ["parallel", "parallel", "parallel", "parallel"]
// CHECK-SAME:        ins(%[[DECAY]], %[[KT]], %[[VT]], %[[SA]], %[[BT]] : tensor<2x2x4xf32>, tensor<2x2x4xf32>, tensor<2x2x4xf32>, tensor<2x2x4xf32>, tensor<2x2x4xf32>)
// CHECK-SAME:        outs(%[[S]] : tensor<2x2x4x4xf32>)
// CHECK-NEXT:      ^bb0(%[[ID:[^:]+]]: f32, %[[IK:[^:]+]]: f32, %[[IV2:[^:]+]]: f32, %[[ISA:[^:]+]]: f32, %[[IB:[^:]+]]: f32, %[[IS:[^:]+]]: f32):
// CHECK-NEXT:        %[[SD:.+]] = arith.mulf %[[IS]], %[[ID]] : f32
// CHECK-NEXT:        %[[KV:.+]] = arith.mulf %[[IK]], %[[IV2]] : f32
// CHECK-NEXT:        %[[SB:.+]] = arith.mulf %[[ISA]], %[[IB]] : f32
// CHECK-NEXT:        %[[ADD1:.+]] = arith.addf %[[SD]], %[[KV]] : f32
// CHECK-NEXT:        %[[ADD2:.+]] = arith.addf %[[ADD1]], %[[SB]] : f32
// CHECK-NEXT:        linalg.yield %[[ADD2]] : f32
// CHECK:           %[[YTZ:.+]] = linalg.fill ins(%[[ZERO]] : f32) outs(%[[YTC]] : tensor<2x2x4xf32>)
// CHECK:           %[[YT:.+]] = linalg.generic
// CHECK-SAME:        indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>]
// CHECK-SAME:        iterator_types = ["parallel", "parallel", "parallel", "reduction"]
// CHECK-SAME:        ins(%[[SNEW]], %[[RT]] : tensor<2x2x4x4xf32>, tensor<2x2x4xf32>) outs(%[[YTZ]] : tensor<2x2x4xf32>)
// CHECK-NEXT:      ^bb0(%[[YS:[^:]+]]: f32, %[[YR:[^:]+]]: f32, %[[YACC2:[^:]+]]: f32):
// CHECK-NEXT:        %[[YP:.+]] = arith.mulf %[[YS]], %[[YR]] fastmath<reassoc,contract> : f32
// CHECK-NEXT:        %[[YSUM:.+]] = arith.addf %[[YACC2]], %[[YP]] fastmath<reassoc,contract> : f32
// CHECK-NEXT:        linalg.yield %[[YSUM]] : f32
// CHECK:           %[[YROW:.+]] = tensor.collapse_shape %[[YT]] {{\[}}[0], [1, 2]] : tensor<2x2x4xf32> into tensor<2x8xf32>
// CHECK:           %[[YNEXT:.+]] = tensor.insert_slice %[[YROW]] into %[[YACC]][0, %[[IV]], 0] [2, 1, 8] [1, 1, 1] : tensor<2x8xf32> into tensor<2x?x8xf32>
// CHECK-NEXT:      scf.yield %[[SNEW]], %[[YNEXT]], %[[SA]], %[[DECAY]], %[[YT]] : tensor<2x2x4x4xf32>, tensor<2x?x8xf32>, tensor<2x2x4xf32>, tensor<2x2x4xf32>, tensor<2x2x4xf32>
// CHECK-NEXT:    }
// CHECK-NEXT:    return %[[LOOP]]#1, %[[LOOP]]#0
func.func @wkv(%r: tensor<2x?x8xf32>, %w: tensor<2x?x8xf32>, %k: tensor<2x?x8xf32>,
               %v: tensor<2x?x8xf32>, %a: tensor<2x?x8xf32>, %b: tensor<2x?x8xf32>,
               %s: tensor<2x2x4x4xf32>) -> (tensor<2x?x8xf32>, tensor<2x2x4x4xf32>) {
  %y, %ns = rwkv.wkv %r, %w, %k, %v, %a, %b, %s : tensor<2x?x8xf32>, tensor<2x2x4x4xf32>
  return %y, %ns : tensor<2x?x8xf32>, tensor<2x2x4x4xf32>
}

// -----

// wkv {mode = chunked}: the chunk-parallel (WY) form of spec §2.6. An scf.for
// over chunks of chunk_length = 4 tokens carries the state and y; the chunk
// size is min(4, T - t0), so a last partial chunk is handled. In a chunk:
// the inclusive / exclusive log-decay cumsums, the four masked intra-chunk
// matrices from one exp of a difference per element, T_inv = (I - A_ab)^-1
// by forward substitution (an scf.for over rows), then matmul-like generics
// (reduction, then a contiguous parallel dim) for A_ak V, W / U, u, Y and
// the end state, which is updated in place.
// CHECK-LABEL: func.func @wkv_chunked
// CHECK-SAME:    (%[[R:[^:]+]]: tensor<2x?x8xf32>, %[[W:[^:]+]]: tensor<2x?x8xf32>, %[[K:[^:]+]]: tensor<2x?x8xf32>, %[[V:[^:]+]]: tensor<2x?x8xf32>, %[[A:[^:]+]]: tensor<2x?x8xf32>, %[[B:[^:]+]]: tensor<2x?x8xf32>, %[[S0:[^:]+]]: tensor<2x2x4x4xf32>)
// CHECK:         %[[LC:.+]] = arith.constant 4 : index
// CHECK-NEXT:    %[[LOOP:.+]]:2 = scf.for %[[T0:[^ ]+]] = %{{[^ ]+}} to %[[T:[^ ]+]] step %[[LC]] iter_args(%[[S:.+]] = %[[S0]], %[[YACC:.+]] = %{{.+}}) -> (tensor<2x2x4x4xf32>, tensor<2x?x8xf32>) {
// CHECK-NEXT:      %[[REST:.+]] = arith.subi %[[T]], %[[T0]] : index
// CHECK-NEXT:      %[[L:.+]] = arith.minsi %[[LC]], %[[REST]] : index
// CHECK:           tensor.extract_slice %[[W]][0, %[[T0]], 0] [2, %[[L]], 8] [1, 1, 1]
// CHECK:           %[[WC:.+]] = tensor.expand_shape %{{.+}} {{\[}}[0], [1], [2, 3]] output_shape [2, %[[L]], 2, 4] : tensor<2x?x8xf32> into tensor<2x?x2x4xf32>
// Γ and Γ⁻ over (b, h, t, i, c): t <= i and t < i.
// CHECK:           %[[G:.+]]:2 = linalg.generic
// CHECK-SAME:        indexing_maps = [affine_map<(d0, d1, d2, d3, d4) -> (d0, d2, d1, d4)>, affine_map<(d0, d1, d2, d3, d4) -> (d0, d1, d3, d4)>, affine_map<(d0, d1, d2, d3, d4) -> (d0, d1, d3, d4)>]
// CHECK-SAME:        iterator_types = ["parallel", "parallel", "reduction", "parallel", "parallel"]
// CHECK-SAME:        ins(%[[WC]] : tensor<2x?x2x4xf32>)
// CHECK:             %[[GT:.+]] = linalg.index 2 : index
// CHECK-NEXT:        %[[GI:.+]] = linalg.index 3 : index
// CHECK:             arith.cmpi ule, %[[GT]], %[[GI]] : index
// CHECK-NEXT:        arith.cmpi ult, %[[GT]], %[[GI]] : index
// CHECK:           } -> (tensor<2x2x?x4xf32>, tensor<2x2x?x4xf32>)
// CHECK:           %[[LAST:.+]] = arith.subi %[[L]], %{{.+}} : index
// CHECK-NEXT:      %[[GL:.+]] = tensor.extract_slice %[[G]]#0[0, 0, %[[LAST]], 0] [2, 2, 1, 4] [1, 1, 1, 1] : tensor<2x2x?x4xf32> to tensor<2x2x1x4xf32>
// Gated vectors: r e^Γ, a e^Γ⁻, (k, b) e^{Γ_L - Γ}, a shifted up one token,
// and k, b, Γ transposed to [B, H, N, L].
// CHECK:           %[[GATED:.+]]:8 = linalg.generic
// CHECK-SAME:        iterator_types = ["parallel", "parallel", "parallel", "parallel"]
// CHECK-SAME:        ins(%{{.+}}, %{{.+}}, %{{.+}}, %{{.+}}, %[[G]]#0, %[[G]]#1, %[[GL]] :
// CHECK:             math.exp
// CHECK:             math.exp
// CHECK:             %[[TOEND:.+]] = arith.subf
// CHECK-NEXT:        math.exp %[[TOEND]] : f32
// CHECK:           } -> (tensor<2x2x?x4xf32>, tensor<2x2x?x4xf32>, tensor<2x2x?x4xf32>, tensor<2x2x?x4xf32>, tensor<2x2x?x4xf32>, tensor<2x2x4x?xf32>, tensor<2x2x4x?xf32>, tensor<2x2x4x?xf32>)
// A_qk, A_qb, A_ak', A_ab' over (b, h, i, c, j), masked to j <= i, with
// e^{Γ_i - Γ_j} as the exp of the difference.
// CHECK:           %[[AM:.+]]:4 = linalg.generic
// CHECK-SAME:        iterator_types = ["parallel", "parallel", "parallel", "reduction", "parallel"]
// CHECK-SAME:        ins(%{{.+}}, %[[GATED]]#4, %[[GATED]]#5, %[[GATED]]#6, %[[G]]#0, %[[GATED]]#7 :
// CHECK-NEXT:      ^bb0(%{{[^:]+}}: f32, %{{[^:]+}}: f32, %{{[^:]+}}: f32, %{{[^:]+}}: f32, %[[GI2:[^:]+]]: f32, %[[GJ:[^:]+]]: f32,
// CHECK-NEXT:        %[[AI:.+]] = linalg.index 2 : index
// CHECK-NEXT:        %[[AJ:.+]] = linalg.index 4 : index
// CHECK-NEXT:        %[[LOWER:.+]] = arith.cmpi ule, %[[AJ]], %[[AI]] : index
// CHECK:             %[[DIFF:.+]] = arith.subf %[[GI2]], %[[GJ]] : f32
// CHECK-NEXT:        %[[E:.+]] = math.exp %[[DIFF]] : f32
// CHECK-NEXT:        arith.select %[[LOWER]], %[[E]], %{{.+}} : f32
// CHECK:           } -> (tensor<2x2x?x?xf32>, tensor<2x2x?x?xf32>, tensor<2x2x?x?xf32>, tensor<2x2x?x?xf32>)
// A_ak, A_ab: rows shifted down by one.
// CHECK:           %[[AKB:.+]]:2 = linalg.generic
// CHECK:             tensor.extract %[[AM]]#2
// CHECK:             tensor.extract %[[AM]]#3
// The triangular solve: rows 1..L-1, each a reduction over earlier rows.
// CHECK:           %[[TINV:.+]] = scf.for %[[ROW:.+]] = %[[ONE:.+]] to %[[L]] step %[[ONE]] iter_args(%[[TACC:.+]] = %{{.+}}) -> (tensor<2x2x?x?xf32>) {
// CHECK:             %[[AROW:.+]] = tensor.extract_slice %[[AKB]]#1[0, 0, %[[ROW]], 0] [2, 2, 1, %[[L]]]
// CHECK-NEXT:        %[[SOLVED:.+]] = linalg.generic
// CHECK-SAME:          indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d1, 0, d2)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, 0, d3)>]
// CHECK-SAME:          iterator_types = ["parallel", "parallel", "reduction", "parallel"]
// CHECK-SAME:          ins(%[[AROW]], %[[TACC]] :
// CHECK:             %[[COPIED:.+]] = linalg.copy ins(%[[SOLVED]] : tensor<2x2x1x?xf32>)
// CHECK-NEXT:        %[[TNEXT:.+]] = tensor.insert_slice %[[COPIED]] into %[[TACC]][0, 0, %[[ROW]], 0]
// CHECK-NEXT:        scf.yield %[[TNEXT]]
// A_ak V, then W and U from T_inv, all (b, h, i, m, n) with n innermost.
// CHECK:           %[[AKV:.+]] = linalg.generic
// CHECK-SAME:        iterator_types = ["parallel", "parallel", "parallel", "reduction", "parallel"]
// CHECK-SAME:        ins(%[[AKB]]#0, %{{.+}} :
// CHECK:           %[[WU:.+]]:2 = linalg.generic
// CHECK-SAME:        iterator_types = ["parallel", "parallel", "parallel", "reduction", "parallel"]
// CHECK-SAME:        ins(%[[TINV]], %[[GATED]]#1, %[[AKV]] :
// u = U + W S0ᵀ and Y = (r e^Γ) S0ᵀ + A_qk V + A_qb u, Y in its slice of y.
// CHECK:           %[[S0T:.+]] = linalg.generic
// CHECK-SAME:        indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d1, d3, d2)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>]
// CHECK-SAME:        ins(%[[S]] : tensor<2x2x4x4xf32>)
// CHECK:           %[[U:.+]] = linalg.generic
// CHECK-SAME:        ins(%[[WU]]#0, %[[S0T]] : tensor<2x2x?x4xf32>, tensor<2x2x4x4xf32>) outs(%[[WU]]#1 : tensor<2x2x?x4xf32>)
// CHECK:           %[[YSLICE:.+]] = tensor.extract_slice %[[YACC]][0, %[[T0]], 0] [2, %[[L]], 8] [1, 1, 1]
// CHECK:           %[[Y1:.+]] = linalg.generic
// CHECK-SAME:        ins(%[[GATED]]#0, %[[S0T]] :
// CHECK:           %[[Y2:.+]] = linalg.generic
// CHECK-SAME:        ins(%[[AM]]#0, %{{.+}}, %[[AM]]#1, %[[U]] :
// CHECK-SAME:        outs(%[[Y1]] : tensor<2x?x2x4xf32>)
// S_end = S0 e^{Γ_L} + Σ_j v_j kG_jᵀ + u_j bG_jᵀ, in place on the state.
// CHECK:           %[[DECAY:.+]] = linalg.generic
// CHECK-SAME:        ins(%[[GL]] : tensor<2x2x1x4xf32>)
// CHECK:           %[[SDEC:.+]] = linalg.generic
// CHECK-SAME:        ins(%[[DECAY]] : tensor<2x2x1x4xf32>) outs(%[[S]] : tensor<2x2x4x4xf32>)
// CHECK:           %[[SEND:.+]] = linalg.generic
// CHECK-SAME:        iterator_types = ["parallel", "parallel", "parallel", "reduction", "parallel"]
// CHECK-SAME:        ins(%{{.+}}, %[[GATED]]#2, %[[U]], %[[GATED]]#3 :
// CHECK-SAME:        outs(%[[SDEC]] : tensor<2x2x4x4xf32>)
// CHECK:           %[[YROWS:.+]] = tensor.collapse_shape %[[Y2]] {{\[}}[0], [1], [2, 3]] : tensor<2x?x2x4xf32> into tensor<2x?x8xf32>
// CHECK-NEXT:      %[[YNEXT:.+]] = tensor.insert_slice %[[YROWS]] into %[[YACC]][0, %[[T0]], 0] [2, %[[L]], 8] [1, 1, 1]
// CHECK-NEXT:      scf.yield %[[SEND]], %[[YNEXT]] : tensor<2x2x4x4xf32>, tensor<2x?x8xf32>
// CHECK-NEXT:    }
// CHECK-NEXT:    return %[[LOOP]]#1, %[[LOOP]]#0
// With chunked-wkv=false (the CPU pipeline's default) a chunked wkv is the
// token-by-token recurrence: a loop over tokens (step 1), no triangular solve.
// SEQ-LABEL: func.func @wkv_chunked
// SEQ:         scf.for %{{.+}} = %c0 to %{{.+}} step %c1{{(_[0-9]+)?}} iter_args
// SEQ-NOT:     arith.minsi
// SEQ:         return
func.func @wkv_chunked(%r: tensor<2x?x8xf32>, %w: tensor<2x?x8xf32>, %k: tensor<2x?x8xf32>,
                       %v: tensor<2x?x8xf32>, %a: tensor<2x?x8xf32>, %b: tensor<2x?x8xf32>,
                       %s: tensor<2x2x4x4xf32>) -> (tensor<2x?x8xf32>, tensor<2x2x4x4xf32>) {
  %y, %ns = rwkv.wkv %r, %w, %k, %v, %a, %b, %s {mode = #rwkv<wkv_mode chunked>, chunk_length = 4 : i64}
      : tensor<2x?x8xf32>, tensor<2x2x4x4xf32>
  return %y, %ns : tensor<2x?x8xf32>, tensor<2x2x4x4xf32>
}

// -----

// group_norm: layer_norm per group after splitting the channels (and the
// weight and bias) into [groups, C / groups]; RWKV-7's ln_x epsilon 64e-5.
// CHECK-LABEL: func.func @group_norm
// CHECK-SAME:    (%[[X:[^:]+]]: tensor<2x?x8xf32>, %[[W:[^:]+]]: tensor<8xbf16>, %[[B:[^:]+]]: tensor<8xbf16>)
// CHECK-DAG:     %[[X4:.+]] = tensor.expand_shape %[[X]] {{\[}}[0], [1], [2, 3]] output_shape [2, %{{.+}}, 2, 4] : tensor<2x?x8xf32> into tensor<2x?x2x4xf32>
// CHECK-DAG:     %[[W2:.+]] = tensor.expand_shape %[[W]] {{\[}}[0, 1]] output_shape [2, 4] : tensor<8xbf16> into tensor<2x4xbf16>
// CHECK-DAG:     %[[B2:.+]] = tensor.expand_shape %[[B]] {{\[}}[0, 1]] output_shape [2, 4] : tensor<8xbf16> into tensor<2x4xbf16>
// CHECK:         %[[SUM:.+]] = linalg.generic
// CHECK-SAME:      iterator_types = ["parallel", "parallel", "parallel", "reduction"]
// CHECK-SAME:      ins(%[[X4]] : tensor<2x?x2x4xf32>) outs(%{{.+}} : tensor<2x?x2xf32>)
// CHECK:         %[[SQ:.+]] = linalg.generic
// CHECK-SAME:      iterator_types = ["parallel", "parallel", "parallel", "reduction"]
// CHECK-SAME:      ins(%[[X4]], %[[SUM]] : tensor<2x?x2x4xf32>, tensor<2x?x2xf32>) outs(%{{.+}} : tensor<2x?x2xf32>)
// CHECK:         %[[Y4:.+]] = linalg.generic
// CHECK-SAME:      indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>, affine_map<(d0, d1, d2, d3) -> (d2, d3)>, affine_map<(d0, d1, d2, d3) -> (d2, d3)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>]
// CHECK-SAME:      iterator_types = ["parallel", "parallel", "parallel", "parallel"]
// CHECK-SAME:      ins(%[[X4]], %[[SUM]], %[[SQ]], %[[W2]], %[[B2]] :
// CHECK:           %[[EPS:.+]] = arith.constant 6.400000e-04 : f32
// CHECK:           math.sqrt
// CHECK:           arith.divf
// CHECK:           arith.extf %{{.+}} : bf16 to f32
// CHECK:           arith.extf %{{.+}} : bf16 to f32
// CHECK:         %[[Y:.+]] = tensor.collapse_shape %[[Y4]] {{\[}}[0], [1], [2, 3]] : tensor<2x?x2x4xf32> into tensor<2x?x8xf32>
// CHECK:         return %[[Y]]
func.func @group_norm(%x: tensor<2x?x8xf32>, %w: tensor<8xbf16>, %b: tensor<8xbf16>) -> tensor<2x?x8xf32> {
  %0 = rwkv.group_norm %x, %w, %b {num_groups = 2 : i64} : tensor<2x?x8xf32>, tensor<8xbf16> -> tensor<2x?x8xf32>
  return %0 : tensor<2x?x8xf32>
}

// -----

// head (last): only the last token is sliced out and projected.
// CHECK-LABEL: func.func @head_last
// CHECK-SAME:    (%[[X:[^:]+]]: tensor<2x?x8xf32>, %[[W:[^:]+]]: tensor<32x8xbf16>)
// CHECK:         tensor.dim %[[X]], %{{.+}} : tensor<2x?x8xf32>
// CHECK:         %[[TL:.+]] = arith.subi %{{.+}}, %{{.+}} : index
// CHECK-NEXT:    %[[XL:.+]] = tensor.extract_slice %[[X]][0, %[[TL]], 0] [2, 1, 8] [1, 1, 1] : tensor<2x?x8xf32> to tensor<2x1x8xf32>
// CHECK:         %[[Y:.+]] = linalg.generic
// CHECK-SAME:      indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>, affine_map<(d0, d1, d2, d3) -> (d2, d3)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>]
// CHECK-SAME:      iterator_types = ["parallel", "parallel", "parallel", "reduction"]
// CHECK-SAME:      ins(%[[XL]], %[[W]] : tensor<2x1x8xf32>, tensor<32x8xbf16>) outs(%{{.+}} : tensor<2x1x32xf32>)
// CHECK-SAME:      attrs = {rwkv.projection}
// CHECK:           arith.extf %{{.+}} : bf16 to f32
// CHECK:           arith.mulf {{.+}} fastmath<reassoc,contract> : f32
// CHECK:           arith.addf {{.+}} fastmath<reassoc,contract> : f32
// CHECK:         return %[[Y]] : tensor<2x1x32xf32>
func.func @head_last(%x: tensor<2x?x8xf32>, %w: tensor<32x8xbf16>) -> tensor<2x1x32xf32> {
  %0 = rwkv.head %x, %w {positions = #rwkv<positions last>} : tensor<2x?x8xf32>, tensor<32x8xbf16> -> tensor<2x1x32xf32>
  return %0 : tensor<2x1x32xf32>
}

// -----

// head (all): every position is projected; no slice.
// CHECK-LABEL: func.func @head_all
// CHECK-SAME:    (%[[X:[^:]+]]: tensor<2x?x8xf32>, %[[W:[^:]+]]: tensor<32x8xbf16>)
// CHECK-NOT:     tensor.extract_slice
// CHECK:         %[[Y:.+]] = linalg.generic
// CHECK-SAME:      indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>, affine_map<(d0, d1, d2, d3) -> (d2, d3)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>]
// CHECK-SAME:      iterator_types = ["parallel", "parallel", "parallel", "reduction"]
// CHECK-SAME:      ins(%[[X]], %[[W]] : tensor<2x?x8xf32>, tensor<32x8xbf16>) outs(%{{.+}} : tensor<2x?x32xf32>)
// CHECK-SAME:      attrs = {rwkv.projection}
// CHECK:           arith.extf %{{.+}} : bf16 to f32
// CHECK:           arith.mulf {{.+}} fastmath<reassoc,contract> : f32
// CHECK:           arith.addf {{.+}} fastmath<reassoc,contract> : f32
// CHECK:         return %[[Y]] : tensor<2x?x32xf32>
func.func @head_all(%x: tensor<2x?x8xf32>, %w: tensor<32x8xbf16>) -> tensor<2x?x32xf32> {
  %0 = rwkv.head %x, %w : tensor<2x?x8xf32>, tensor<32x8xbf16> -> tensor<2x?x32xf32>
  return %0 : tensor<2x?x32xf32>
}

// -----

// cross_entropy: an scf.for over tiles of 512 vocabulary rows (1024 = 2
// static tiles) carrying the rows' running (max, Σ exp, z[target]); per
// tile only [N, 512] logits, as an rwkv.projection of [1, N, C] with the
// bf16 head rows, the tile's row max, Σ exp(z - max(old, tile max)) with
// z[target] selected (not gathered) at the global index v0 + v, merged in
// place (the old sum rescaled by exp(old max - new max)). Then Σ over the
// counted rows of max + log Σ - z[target]; the mean is 0 when no target
// counts.
// CHECK-LABEL: func.func @cross_entropy
// CHECK-SAME:    (%[[X:[^:]+]]: tensor<2x?x8xf32>, %[[W:[^:]+]]: tensor<1024x8xbf16>, %[[T:[^:]+]]: tensor<2x?xi32>)
// CHECK-DAG:     %[[X2:.+]] = tensor.collapse_shape %[[X]] {{\[}}[0, 1], [2]] : tensor<2x?x8xf32> into tensor<?x8xf32>
// CHECK-DAG:     %[[T1:.+]] = tensor.collapse_shape %[[T]] {{\[}}[0, 1]] : tensor<2x?xi32> into tensor<?xi32>
// CHECK:         %[[X3:.+]] = tensor.expand_shape %[[X2]] {{\[}}[0, 1], [2]] {{.*}} into tensor<1x?x8xf32>
// CHECK-DAG:     %[[TILE:.+]] = arith.constant 512 : index
// CHECK:         %[[LOOP:.+]]:3 = scf.for %[[V0:[^ ]+]] = %{{.+}} to %{{.+}} step %[[TILE]] iter_args(%[[MX:.+]] = %{{.+}}, %[[SM:.+]] = %{{.+}}, %[[ZT:.+]] = %{{.+}}) -> (tensor<?xf32>, tensor<?xf32>, tensor<?xf32>) {
// CHECK:           %[[WS:.+]] = tensor.extract_slice %[[W]][%[[V0]], 0] [512, 8] [1, 1] : tensor<1024x8xbf16> to tensor<512x8xbf16>
// CHECK:           %[[Z3:.+]] = linalg.generic
// CHECK-SAME:        iterator_types = ["parallel", "parallel", "parallel", "reduction"]
// CHECK-SAME:        ins(%[[X3]], %[[WS]] : tensor<1x?x8xf32>, tensor<512x8xbf16>) outs(%{{.+}} : tensor<1x?x512xf32>) attrs = {rwkv.projection}
// CHECK:             arith.extf %{{.+}} : bf16 to f32
// CHECK:           %[[Z:.+]] = tensor.collapse_shape %[[Z3]] {{.*}} into tensor<?x512xf32>
// CHECK:           %[[TMAX:.+]] = linalg.generic
// CHECK-SAME:        iterator_types = ["parallel", "reduction"]
// CHECK-SAME:        ins(%[[Z]] : tensor<?x512xf32>)
// CHECK:             arith.maximumf
// CHECK:           %[[ST:.+]]:2 = linalg.generic
// CHECK-SAME:        iterator_types = ["parallel", "reduction"]
// CHECK-SAME:        ins(%[[Z]], %[[MX]], %[[TMAX]], %[[T1]] : tensor<?x512xf32>, tensor<?xf32>, tensor<?xf32>, tensor<?xi32>) outs(%{{.+}}, %[[ZT]] : tensor<?xf32>, tensor<?xf32>)
// CHECK-NEXT:      ^bb0(%[[SZV:[^:]+]]: f32, %[[SMO:[^:]+]]: f32, %[[SMT:[^:]+]]: f32, %[[ST_T:[^:]+]]: i32, %[[SACC:[^:]+]]: f32, %[[ZTA:[^:]+]]: f32):
// CHECK-NEXT:        %[[M:.+]] = arith.maximumf %[[SMO]], %[[SMT]] : f32
// CHECK-NEXT:        %[[D:.+]] = arith.subf %[[SZV]], %[[M]] : f32
// CHECK-NEXT:        %[[E:.+]] = math.exp %[[D]] : f32
// CHECK-NEXT:        arith.addf %[[SACC]], %[[E]] fastmath<reassoc,contract> : f32
// CHECK-NEXT:        %[[VL:.+]] = linalg.index 1 : index
// CHECK-NEXT:        %[[VG:.+]] = arith.addi %[[VL]], %[[V0]] : index
// CHECK-NEXT:        %[[VI:.+]] = arith.index_cast %[[VG]] : index to i32
// CHECK-NEXT:        %[[HIT:.+]] = arith.cmpi eq, %[[VI]], %[[ST_T]] : i32
// CHECK-NEXT:        arith.select %[[HIT]], %[[SZV]], %[[ZTA]] : f32
// CHECK:           %[[MG:.+]]:2 = linalg.generic
// CHECK-SAME:        iterator_types = ["parallel"]
// CHECK-SAME:        ins(%[[TMAX]], %[[ST]]#0 : tensor<?xf32>, tensor<?xf32>) outs(%[[MX]], %[[SM]] : tensor<?xf32>, tensor<?xf32>)
// CHECK-NEXT:      ^bb0(%[[CT:[^:]+]]: f32, %[[CS:[^:]+]]: f32, %[[CMO:[^:]+]]: f32, %[[CSO:[^:]+]]: f32):
// CHECK-NEXT:        %[[CM:.+]] = arith.maximumf %[[CMO]], %[[CT]] : f32
// CHECK-NEXT:        %[[CD:.+]] = arith.subf %[[CMO]], %[[CM]] : f32
// CHECK-NEXT:        %[[CR:.+]] = math.exp %[[CD]] : f32
// CHECK-NEXT:        %[[CSC:.+]] = arith.mulf %[[CSO]], %[[CR]] : f32
// CHECK-NEXT:        %[[CSN:.+]] = arith.addf %[[CSC]], %[[CS]] : f32
// CHECK-NEXT:        linalg.yield %[[CM]], %[[CSN]] : f32, f32
// CHECK:           scf.yield %[[MG]]#0, %[[MG]]#1, %[[ST]]#1 : tensor<?xf32>, tensor<?xf32>, tensor<?xf32>
// CHECK:         %[[ACC:.+]]:2 = linalg.generic
// CHECK-SAME:      indexing_maps = [affine_map<(d0) -> (d0)>, affine_map<(d0) -> (d0)>, affine_map<(d0) -> (d0)>, affine_map<(d0) -> (d0)>, affine_map<(d0) -> ()>, affine_map<(d0) -> ()>]
// CHECK-SAME:      iterator_types = ["reduction"]
// CHECK-SAME:      ins(%[[LOOP]]#0, %[[LOOP]]#1, %[[LOOP]]#2, %[[T1]] : {{.+}}) outs(%{{.+}}, %{{.+}} : tensor<f32>, tensor<f32>)
// CHECK:           math.log
// CHECK:           arith.extsi %{{.+}} : i32 to i64
// CHECK:           arith.cmpi ne, %{{.+}}, %{{.+}} : i64
// CHECK:         %[[L:.+]] = linalg.generic
// CHECK-SAME:      iterator_types = []
// CHECK-SAME:      ins(%[[ACC]]#0, %[[ACC]]#1 : tensor<f32>, tensor<f32>)
// CHECK:           arith.cmpf ogt
// CHECK:           arith.divf
// CHECK:           arith.select
// CHECK:         return %[[L]] : tensor<f32>
func.func @cross_entropy(%x: tensor<2x?x8xf32>, %w: tensor<1024x8xbf16>, %t: tensor<2x?xi32>) -> tensor<f32> {
  %0 = rwkv.cross_entropy %x, %w, %t : tensor<2x?x8xf32>, tensor<1024x8xbf16>, tensor<2x?xi32> -> tensor<f32>
  return %0 : tensor<f32>
}

// -----

// wkv_grad (sequential, chunk_length = 3): a forward scf.for over the
// nseg = ceil(T / 3) segments saves each segment's start state into the
// checkpoint tensor [nseg, B, H, N, N] (the last segment's tokens are not
// run). Then an scf.for over the segments in reverse (seg = nseg - 1 - iv):
// recompute the segment's states into a [3, B, H, N, N] buffer and its sa
// vectors into [3, B, H, N] (writing dr = S_tᵀ dy), then walk its min(3,
// T - t0) tokens backwards (j = n - 1 - jj) updating G in place.
// CHECK-LABEL: func.func @wkv_grad
// CHECK-SAME:    (%[[R:[^:]+]]: tensor<2x?x8xf32>, %{{[^:]+}}: tensor<2x?x8xf32>, %{{[^:]+}}: tensor<2x?x8xf32>, %{{[^:]+}}: tensor<2x?x8xf32>, %{{[^:]+}}: tensor<2x?x8xf32>, %{{[^:]+}}: tensor<2x?x8xf32>, %[[S0:[^:]+]]: tensor<2x2x4x4xf32>, %[[DY:[^:]+]]: tensor<2x?x8xf32>, %[[DS:[^:]+]]: tensor<2x2x4x4xf32>)
// CHECK:         %[[T:.+]] = tensor.dim %[[R]]
// CHECK:         %[[TP:.+]] = arith.addi %[[T]], %c2 : index
// CHECK-NEXT:    %[[NSEG:.+]] = arith.divui %[[TP]], %c3 : index
// CHECK:         %[[STOP:.+]] = arith.muli %{{.+}}, %c3{{(_[0-9]+)?}} : index
// CHECK:         %[[CKINIT:.+]] = tensor.empty(%[[NSEG]]) : tensor<?x2x2x4x4xf32>
// CHECK-NEXT:    %[[FWD:.+]]:2 = scf.for %[[SEG:.+]] = %{{.+}} to %[[NSEG]] step %{{.+}} iter_args(%[[FS:.+]] = %[[S0]], %[[CK:.+]] = %[[CKINIT]]) -> (tensor<2x2x4x4xf32>, tensor<?x2x2x4x4xf32>) {
// CHECK:           %[[SLOT:.+]] = tensor.extract_slice %[[CK]][%[[SEG]], 0, 0, 0, 0] [1, 2, 2, 4, 4] [1, 1, 1, 1, 1] : tensor<?x2x2x4x4xf32> to tensor<2x2x4x4xf32>
// CHECK-NEXT:      %[[SAVED:.+]] = linalg.copy ins(%[[FS]] : tensor<2x2x4x4xf32>) outs(%[[SLOT]] : tensor<2x2x4x4xf32>)
// CHECK-NEXT:      %[[CKNEXT:.+]] = tensor.insert_slice %[[SAVED]] into %[[CK]][%[[SEG]], 0, 0, 0, 0]
// CHECK:           %[[TEND:.+]] = arith.minui %{{.+}}, %[[STOP]] : index
// CHECK-NEXT:      %[[STEPS:.+]] = scf.for %{{.+}} = %{{.+}} to %[[TEND]] step %{{.+}} iter_args(%[[ST:.+]] = %[[FS]]) -> (tensor<2x2x4x4xf32>) {
// CHECK:             linalg.generic {{.+}} outs(%[[ST]] : tensor<2x2x4x4xf32>)
// CHECK:           scf.yield %[[STEPS]], %[[CKNEXT]] : tensor<2x2x4x4xf32>, tensor<?x2x2x4x4xf32>
// CHECK:         %[[BUF:.+]] = tensor.empty() : tensor<3x2x2x4x4xf32>
// CHECK-NEXT:    %[[SABUF:.+]] = tensor.empty() : tensor<3x2x2x4xf32>
// CHECK-NEXT:    %[[BWD:.+]]:9 = scf.for %[[IV:.+]] = %{{.+}} to %[[NSEG]] step %{{.+}} iter_args(%[[G:[^ ]+]] = %[[DS]], %[[DR:[^ ]+]] = %{{.+}}, %{{.+}} = %{{.+}}, %{{.+}} = %{{.+}}, %{{.+}} = %{{.+}}, %{{.+}} = %{{.+}}, %{{.+}} = %{{.+}}, %[[B0:[^ ]+]] = %[[BUF]], %[[SA0:[^ ]+]] = %[[SABUF]])
// CHECK-NEXT:      %[[REV:.+]] = arith.subi %[[NSEG]], %[[IV]] : index
// CHECK-NEXT:      %[[SEGB:.+]] = arith.subi %[[REV]], %c1 : index
// CHECK-NEXT:      %[[T0:.+]] = arith.muli %[[SEGB]], %c3 : index
// CHECK-NEXT:      %[[REST:.+]] = arith.subi %[[T]], %[[T0]] : index
// CHECK-NEXT:      %[[N:.+]] = arith.minui %c3, %[[REST]] : index
// CHECK-NEXT:      %[[CKS:.+]] = tensor.extract_slice %[[FWD]]#1[%[[SEGB]], 0, 0, 0, 0] [1, 2, 2, 4, 4]
// Recompute: S_{t-1} into the buffer, sa, the update, dr.
// CHECK-NEXT:      %[[RE:.+]]:4 = scf.for %[[J:.+]] = %c0 to %[[N]] step %c1 iter_args(%[[RS:[^ ]+]] = %[[CKS]], %[[RB:[^ ]+]] = %[[B0]], %[[RSA:[^ ]+]] = %[[SA0]], %[[RDR:[^ ]+]] = %[[DR]])
// CHECK:             linalg.copy ins(%[[RS]] : tensor<2x2x4x4xf32>)
// CHECK:             tensor.insert_slice %{{.+}} into %[[RB]][%[[J]], 0, 0, 0, 0]
// CHECK:             %[[UPD:.+]] = linalg.generic {{.+}} outs(%[[RS]] : tensor<2x2x4x4xf32>)
// CHECK:             linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d1, d3, d2)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%[[UPD]], %{{.+}} : tensor<2x2x4x4xf32>, tensor<2x2x4xf32>)
// CHECK:             scf.yield %[[UPD]], %{{.+}}, %{{.+}}, %{{.+}} : tensor<2x2x4x4xf32>, tensor<3x2x2x4x4xf32>, tensor<3x2x2x4xf32>, tensor<2x?x8xf32>
// Tokens backwards: G += dy rᵀ in place, ..., G = G D + dsa aᵀ in place.
// CHECK:           %[[BACK:.+]]:6 = scf.for %[[JJ:.+]] = %c0 to %[[N]] step %c1 iter_args(%[[GB:[^ ]+]] = %[[G]],
// CHECK-NEXT:        %[[NJ:.+]] = arith.subi %[[N]], %[[JJ]] : index
// CHECK-NEXT:        %[[JB:.+]] = arith.subi %[[NJ]], %c1 : index
// CHECK-NEXT:        arith.addi %[[T0]], %[[JB]] : index
// CHECK-NEXT:        tensor.extract_slice %[[RE]]#1[%[[JB]], 0, 0, 0, 0]
// CHECK-NEXT:        tensor.extract_slice %[[RE]]#2[%[[JB]], 0, 0, 0]
// CHECK:             %[[GR:.+]] = linalg.generic {{.+}} iterator_types = ["parallel", "parallel", "parallel", "parallel"]} {{.+}} outs(%[[GB]] : tensor<2x2x4x4xf32>)
// CHECK:             %{{.+}}:2 = linalg.generic {{.+}} iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%[[GR]],
// CHECK:             %{{.+}}:4 = linalg.generic {{.+}} iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%[[GR]],
// CHECK:             %[[GN:.+]] = linalg.generic {{.+}} outs(%[[GR]] : tensor<2x2x4x4xf32>)
// CHECK:             scf.yield %[[GN]],
// CHECK:           scf.yield %[[BACK]]#0, %[[RE]]#3, %[[BACK]]#1, %[[BACK]]#2, %[[BACK]]#3, %[[BACK]]#4, %[[BACK]]#5, %[[RE]]#1, %[[RE]]#2
// CHECK:         return %[[BWD]]#1, %[[BWD]]#2, %[[BWD]]#3, %[[BWD]]#4, %[[BWD]]#5, %[[BWD]]#6, %[[BWD]]#0
func.func @wkv_grad(%r: tensor<2x?x8xf32>, %w: tensor<2x?x8xf32>, %k: tensor<2x?x8xf32>,
                    %v: tensor<2x?x8xf32>, %a: tensor<2x?x8xf32>, %b: tensor<2x?x8xf32>,
                    %s: tensor<2x2x4x4xf32>, %dy: tensor<2x?x8xf32>, %ds: tensor<2x2x4x4xf32>)
    -> (tensor<2x?x8xf32>, tensor<2x?x8xf32>, tensor<2x?x8xf32>, tensor<2x?x8xf32>,
        tensor<2x?x8xf32>, tensor<2x?x8xf32>, tensor<2x2x4x4xf32>) {
  %dr, %dw, %dk, %dv, %da, %db, %dstate = rwkv.wkv_grad %r, %w, %k, %v, %a, %b, %s, %dy, %ds
      {chunk_length = 3 : i64} : tensor<2x?x8xf32>, tensor<2x2x4x4xf32>
  return %dr, %dw, %dk, %dv, %da, %db, %dstate
      : tensor<2x?x8xf32>, tensor<2x?x8xf32>, tensor<2x?x8xf32>, tensor<2x?x8xf32>,
        tensor<2x?x8xf32>, tensor<2x?x8xf32>, tensor<2x2x4x4xf32>
}

// -----

// wkv_grad of one head (state [1, 1, N, N], what rwkv-parallelize-wkv
// leaves): the row form. d = exp(w) once for all tokens; every token step is
// an scf.for over the N state rows on vector<N> rows, in place: the
// checkpoint forward and the recompute (sa_i = S[i]·a as a vector.reduction,
// the update, dr accumulated in a vector), then per row of the backward step
// dv_i and dsa_i as reductions and dk, db, dd, da carried as vectors.
// CHECK-LABEL: func.func @wkv_grad_row
// CHECK:         %[[D:.+]] = linalg.generic {{.+}} ins(%{{[^ ]+}} : tensor<1x?x4xf32>)
// CHECK:           math.exp
// Checkpoint forward: per token, per row.
// CHECK:         scf.for {{.+}} -> (tensor<1x1x4x4xf32>, tensor<?x1x1x4x4xf32>)
// CHECK:           scf.for {{.+}} -> (tensor<1x1x4x4xf32>)
// CHECK:             vector.transfer_read %[[D]]
// CHECK:             scf.for %[[I:.+]] = %c0{{.*}} to %c4 step %c1{{.*}} iter_args(%[[S:.+]] = %{{.+}}) -> (tensor<1x1x4x4xf32>)
// CHECK:               vector.transfer_read %[[S]][%{{.+}}, %{{.+}}, %[[I]], %{{.+}}]{{.*}} : tensor<1x1x4x4xf32>, vector<4xf32>
// CHECK:               vector.reduction <add>, %{{.+}} fastmath<reassoc,contract> : vector<4xf32> into f32
// CHECK:               vector.transfer_write %{{.+}}, %[[S]][%{{.+}}, %{{.+}}, %[[I]], %{{.+}}]
// Segments in reverse; the recompute saves S_{t-1} rows and sa, carries dr.
// CHECK:         scf.for {{.+}} -> (tensor<1x1x4x4xf32>, tensor<1x?x4xf32>, tensor<1x?x4xf32>, tensor<1x?x4xf32>, tensor<1x?x4xf32>, tensor<1x?x4xf32>, tensor<1x?x4xf32>, tensor<3x1x1x4x4xf32>, tensor<3x1x1x4xf32>)
// CHECK:           scf.for {{.+}} -> (tensor<1x1x4x4xf32>, tensor<3x1x1x4x4xf32>, tensor<3x1x1x4xf32>, tensor<1x?x4xf32>)
// CHECK:             scf.for {{.+}} -> (tensor<1x1x4x4xf32>, tensor<3x1x1x4x4xf32>, tensor<3x1x1x4xf32>, vector<4xf32>)
// CHECK:               vector.transfer_write {{.+}} : vector<4xf32>, tensor<3x1x1x4x4xf32>
// CHECK:               tensor.insert {{.+}} : tensor<3x1x1x4xf32>
// Backward tokens: G rows, dv by tensor.insert, dk/db/dd/da in vectors.
// CHECK:           scf.for {{.+}} -> (tensor<1x1x4x4xf32>, tensor<1x?x4xf32>, tensor<1x?x4xf32>, tensor<1x?x4xf32>, tensor<1x?x4xf32>, tensor<1x?x4xf32>)
// CHECK:             scf.for {{.+}} -> (tensor<1x1x4x4xf32>, tensor<1x?x4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>)
// CHECK-COUNT-2:       vector.reduction <add>
// CHECK:               tensor.insert {{.+}} : tensor<1x?x4xf32>
// CHECK:               vector.transfer_write {{.+}} : vector<4xf32>, tensor<1x1x4x4xf32>
// CHECK-NOT:     linalg.generic
// CHECK:         return
func.func @wkv_grad_row(%r: tensor<1x?x4xf32>, %w: tensor<1x?x4xf32>, %k: tensor<1x?x4xf32>,
                        %v: tensor<1x?x4xf32>, %a: tensor<1x?x4xf32>, %b: tensor<1x?x4xf32>,
                        %s: tensor<1x1x4x4xf32>, %dy: tensor<1x?x4xf32>, %ds: tensor<1x1x4x4xf32>)
    -> (tensor<1x?x4xf32>, tensor<1x?x4xf32>, tensor<1x?x4xf32>, tensor<1x?x4xf32>,
        tensor<1x?x4xf32>, tensor<1x?x4xf32>, tensor<1x1x4x4xf32>) {
  %dr, %dw, %dk, %dv, %da, %db, %dstate = rwkv.wkv_grad %r, %w, %k, %v, %a, %b, %s, %dy, %ds
      {chunk_length = 3 : i64} : tensor<1x?x4xf32>, tensor<1x1x4x4xf32>
  return %dr, %dw, %dk, %dv, %da, %db, %dstate
      : tensor<1x?x4xf32>, tensor<1x?x4xf32>, tensor<1x?x4xf32>, tensor<1x?x4xf32>,
        tensor<1x?x4xf32>, tensor<1x?x4xf32>, tensor<1x1x4x4xf32>
}

// -----

// cross_entropy_grad (l2wrap): the count of counted targets and dloss / n
// first; then the vocabulary statistics (as in cross_entropy, here with the
// first argmax: z == tile max, minsi of the global index, taken over the
// running one only when the tile max is strictly larger); then a second
// loop over the vocabulary tiles (V = 1000: min(512, V - v0) rows)
// carrying (dx [1, N, C], dW). Per tile: the logits projection, the
// all-parallel g = (softmax - onehot) * scale + l2wrap * scale * max at the
// argmax written as [N, tile] and [tile, N], dx += g W[tile] (a projection
// with the tile's rows transposed to [C, tile], accumulating into the
// loop-carried dx) and dW[tile] = gᵀ x (a projection with xᵀ [C, N],
// transposed once), inserted at row v0. No [B, T, V] tensor.
// CHECK-LABEL: func.func @cross_entropy_grad
// CHECK-SAME:    (%[[X:[^:]+]]: tensor<2x?x8xf32>, %[[W:[^:]+]]: tensor<1000x8xbf16>, %[[T:[^:]+]]: tensor<2x?xi64>, %[[DL:[^:]+]]: tensor<f32>)
// CHECK:         %[[CNT:.+]] = linalg.generic
// CHECK-SAME:      iterator_types = ["reduction"]
// CHECK-SAME:      outs(%{{.+}} : tensor<f32>)
// CHECK:         %[[SCALE:.+]] = linalg.generic
// CHECK-SAME:      iterator_types = []
// CHECK-SAME:      ins(%[[DL]], %[[CNT]] : tensor<f32>, tensor<f32>)
// CHECK:         %[[X3:.+]] = tensor.expand_shape %[[X2:[^ ]+]] {{.*}} into tensor<1x?x8xf32>
// CHECK:         %[[STATS:.+]]:3 = scf.for %[[S0:[^ ]+]] = {{.+}} -> (tensor<?xf32>, tensor<?xf32>, tensor<?xi64>) {
// CHECK:           %[[SSZ:.+]] = arith.minsi
// CHECK:           tensor.extract_slice %[[W]][%[[S0]], 0] [%[[SSZ]], 8] [1, 1] : tensor<1000x8xbf16> to tensor<?x8xbf16>
// CHECK:           attrs = {rwkv.projection}
// CHECK:           %[[SST:.+]]:2 = linalg.generic
// CHECK-SAME:        iterator_types = ["parallel", "reduction"]
// CHECK-SAME:        outs(%{{.+}}, %{{.+}} : tensor<?xf32>, tensor<?xi64>)
// CHECK:             math.exp
// CHECK:             %[[ISMAX:.+]] = arith.cmpf oeq
// CHECK-NEXT:        %[[LOWER:.+]] = arith.minsi
// CHECK-NEXT:        arith.select %[[ISMAX]], %[[LOWER]], %{{.+}} : i64
// CHECK:           linalg.generic
// CHECK-SAME:        iterator_types = ["parallel"]
// CHECK-SAME:        ins(%{{.+}}, %[[SST]]#0, %[[SST]]#1 : tensor<?xf32>, tensor<?xf32>, tensor<?xi64>)
// CHECK:             %[[GREW:.+]] = arith.cmpf ogt
// CHECK-NEXT:        arith.select %[[GREW]], %{{.+}}, %{{.+}} : i64
// CHECK:         %[[XT:.+]] = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d1, d0)>, {{.*}} ins(%[[X2]] : tensor<?x8xf32>) outs(%{{.+}} : tensor<8x?xf32>)
// CHECK:         %[[DX0:.+]] = linalg.fill ins(%{{.+}} : f32) outs(%{{.+}} : tensor<1x?x8xf32>)
// CHECK:         %[[DW0:.+]] = tensor.empty() : tensor<1000x8xf32>
// CHECK:         %[[LOOP:.+]]:2 = scf.for %[[V0:[^ ]+]] = %{{.+}} to %{{.+}} step %{{.+}} iter_args(%[[DXACC:.+]] = %[[DX0]], %[[DWACC:.+]] = %[[DW0]]) -> (tensor<1x?x8xf32>, tensor<1000x8xf32>) {
// CHECK:           %[[SZ:.+]] = arith.minsi
// CHECK:           %[[WS:.+]] = tensor.extract_slice %[[W]][%[[V0]], 0] [%[[SZ]], 8] [1, 1]
// CHECK:           %[[Z3:.+]] = linalg.generic
// CHECK-SAME:        ins(%[[X3]], %[[WS]] : tensor<1x?x8xf32>, tensor<?x8xbf16>) {{.*}} attrs = {rwkv.projection}
// CHECK:           %[[Z:.+]] = tensor.collapse_shape %[[Z3]]
// CHECK:           %[[G:.+]]:2 = linalg.generic
// CHECK-SAME:        indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d0)>, affine_map<(d0, d1) -> (d0)>, affine_map<(d0, d1) -> (d0)>, affine_map<(d0, d1) -> ()>, affine_map<(d0, d1) -> (d0)>, affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d1, d0)>]
// CHECK-SAME:        iterator_types = ["parallel", "parallel"]
// CHECK-SAME:        ins(%[[Z]], %[[STATS]]#0, %[[STATS]]#1, %{{.+}}, %[[SCALE]], %[[STATS]]#2 :
// CHECK:             arith.divf
// CHECK:             linalg.index 1 : index
// CHECK-NEXT:        arith.addi %{{.+}}, %[[V0]] : index
// CHECK:             %[[L2:.+]] = arith.constant 9.99999974E-5 : f32
// CHECK:             arith.cmpi ne, %{{.+}}, %{{.+}} : i64
// CHECK:             linalg.yield %[[GV:.+]], %[[GV]] : f32, f32
// CHECK:           %[[WT:.+]] = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d1, d0)>, {{.*}} ins(%[[WS]] : tensor<?x8xbf16>) outs(%{{.+}} : tensor<8x?xbf16>)
// CHECK:           %[[GE:.+]] = tensor.expand_shape %[[G]]#0
// CHECK:           %[[DX:.+]] = linalg.generic
// CHECK-SAME:        ins(%[[GE]], %[[WT]] : tensor<1x?x?xf32>, tensor<8x?xbf16>) outs(%[[DXACC]] : tensor<1x?x8xf32>) attrs = {rwkv.projection}
// CHECK:           %[[GTE:.+]] = tensor.expand_shape %[[G]]#1
// CHECK:           %[[DW3:.+]] = linalg.generic
// CHECK-SAME:        ins(%[[GTE]], %[[XT]] : tensor<1x?x?xf32>, tensor<8x?xf32>) {{.*}} attrs = {rwkv.projection}
// CHECK:           %[[DWR:.+]] = tensor.collapse_shape %[[DW3]]
// CHECK:           %[[DW:.+]] = tensor.insert_slice %[[DWR]] into %[[DWACC]][%[[V0]], 0] [%[[SZ]], 8] [1, 1]
// CHECK:           scf.yield %[[DX]], %[[DW]] : tensor<1x?x8xf32>, tensor<1000x8xf32>
// CHECK:         %[[DXF:.+]] = tensor.collapse_shape %[[LOOP]]#0
// CHECK:         %[[DXOUT:.+]] = tensor.expand_shape %[[DXF]] {{\[}}[0, 1], [2]] output_shape [2, %{{.+}}, 8] : tensor<?x8xf32> into tensor<2x?x8xf32>
// CHECK:         return %[[DXOUT]], %[[LOOP]]#1
func.func @cross_entropy_grad(%x: tensor<2x?x8xf32>, %w: tensor<1000x8xbf16>, %t: tensor<2x?xi64>, %d: tensor<f32>) -> (tensor<2x?x8xf32>, tensor<1000x8xf32>) {
  %0, %1 = rwkv.cross_entropy_grad %x, %w, %t, %d {l2wrap = 1.0e-4 : f32} : tensor<2x?x8xf32>, tensor<1000x8xbf16>, tensor<2x?xi64> -> tensor<2x?x8xf32>, tensor<1000x8xf32>
  return %0, %1 : tensor<2x?x8xf32>, tensor<1000x8xf32>
}

// -----

// cross_entropy_grad without l2wrap: no argmax reduction.
// CHECK-LABEL: func.func @cross_entropy_grad_plain
// CHECK:         scf.for
// CHECK-NOT:       arith.cmpf oeq
// CHECK-NOT:       tensor<?xi64>
// CHECK:         return
func.func @cross_entropy_grad_plain(%x: tensor<1x4x8xf32>, %w: tensor<40x8xf32>, %t: tensor<1x4xi32>, %d: tensor<f32>) -> (tensor<1x4x8xf32>, tensor<40x8xf32>) {
  %0, %1 = rwkv.cross_entropy_grad %x, %w, %t, %d : tensor<1x4x8xf32>, tensor<40x8xf32>, tensor<1x4xi32> -> tensor<1x4x8xf32>, tensor<40x8xf32>
  return %0, %1 : tensor<1x4x8xf32>, tensor<40x8xf32>
}

// -----

// cross_entropy and cross_entropy_grad of the same logits (a training step)
// are lowered together at the gradient: one statistics loop (max, Σ and
// z[target]) gives both the loss and the softmax of the gradient loop, so
// the logits are computed twice, not three times.
// CHECK-LABEL: func.func @cross_entropy_pair
// CHECK:         %[[STATS:.+]]:3 = scf.for {{.+}} -> (tensor<4xf32>, tensor<4xf32>, tensor<4xf32>)
// CHECK-COUNT-1:   linalg.generic {{.+}}rwkv.projection
// CHECK:         %[[GRAD:.+]]:2 = scf.for {{.+}} -> (tensor<1x4x8xf32>, tensor<40x8xf32>)
// CHECK-COUNT-3:   linalg.generic {{.+}}rwkv.projection
// CHECK:         %[[SUM:.+]]:2 = linalg.generic {{.+}} ins(%[[STATS]]#0, %[[STATS]]#1, %[[STATS]]#2,
// CHECK:         %[[LOSS:.+]] = linalg.generic {{.+}} ins(%[[SUM]]#0, %[[SUM]]#1 : tensor<f32>, tensor<f32>)
// CHECK-NOT:     scf.for
// CHECK:         return %[[LOSS]], %{{.+}}, %[[GRAD]]#1
func.func @cross_entropy_pair(%x: tensor<1x4x8xf32>, %w: tensor<40x8xf32>, %t: tensor<1x4xi32>, %d: tensor<f32>) -> (tensor<f32>, tensor<1x4x8xf32>, tensor<40x8xf32>) {
  %l = rwkv.cross_entropy %x, %w, %t : tensor<1x4x8xf32>, tensor<40x8xf32>, tensor<1x4xi32> -> tensor<f32>
  %0, %1 = rwkv.cross_entropy_grad %x, %w, %t, %d : tensor<1x4x8xf32>, tensor<40x8xf32>, tensor<1x4xi32> -> tensor<1x4x8xf32>, tensor<40x8xf32>
  return %l, %0, %1 : tensor<f32>, tensor<1x4x8xf32>, tensor<40x8xf32>
}

// -----

// embed_grad: a zero [V, C] table, then a loop over the B*T positions that
// adds the dy row into row tokens[p] (clamped to row 0 and masked to +0 when
// the id is out of range) by an extract_slice / generic / insert_slice of
// that one row: O(B*T*C), no loop or reduction over V.
// CHECK-LABEL: func.func @embed_grad
// CHECK-SAME:    (%[[IDS:[^:]+]]: tensor<2x?xi32>, %[[DY:[^:]+]]: tensor<2x?x8xf32>)
// CHECK-DAG:     %[[DY2:.+]] = tensor.collapse_shape %[[DY]] {{\[}}[0, 1], [2]] : tensor<2x?x8xf32> into tensor<?x8xf32>
// CHECK-DAG:     %[[IDS1:.+]] = tensor.collapse_shape %[[IDS]] {{\[}}[0, 1]] : tensor<2x?xi32> into tensor<?xi32>
// CHECK:         %[[TABLE:.+]] = linalg.fill ins(%{{.+}} : f32) outs(%{{.+}} : tensor<32x8xf32>)
// CHECK:         %[[N:.+]] = tensor.dim %[[DY2]]
// CHECK:         %[[LOOP:.+]] = scf.for %[[P:.+]] = %{{.+}} to %[[N]] step %{{.+}} iter_args(%[[ACC:.+]] = %[[TABLE]]) -> (tensor<32x8xf32>) {
// CHECK-NEXT:      %[[ID:.+]] = tensor.extract %[[IDS1]][%[[P]]] : tensor<?xi32>
// CHECK-NEXT:      %[[ROW:.+]] = arith.index_cast %[[ID]] : i32 to index
// CHECK:           %[[OK:.+]] = arith.andi
// CHECK:           %[[SAFE:.+]] = arith.select %[[OK]], %[[ROW]], %{{.+}} : index
// CHECK-NEXT:      %[[DST:.+]] = tensor.extract_slice %[[ACC]][%[[SAFE]], 0] [1, 8] [1, 1] : tensor<32x8xf32> to tensor<8xf32>
// CHECK-NEXT:      %[[SRC:.+]] = tensor.extract_slice %[[DY2]][%[[P]], 0] [1, 8] [1, 1] : tensor<?x8xf32> to tensor<8xf32>
// CHECK-NEXT:      %[[SUM:.+]] = linalg.generic
// CHECK-SAME:        iterator_types = ["parallel"]
// CHECK-SAME:        ins(%[[SRC]] : tensor<8xf32>) outs(%[[DST]] : tensor<8xf32>)
// CHECK:             arith.select %[[OK]]
// CHECK:           %[[NEXT:.+]] = tensor.insert_slice %[[SUM]] into %[[ACC]][%[[SAFE]], 0] [1, 8] [1, 1] : tensor<8xf32> into tensor<32x8xf32>
// CHECK-NEXT:      scf.yield %[[NEXT]] : tensor<32x8xf32>
// CHECK:         return %[[LOOP]]
func.func @embed_grad(%ids: tensor<2x?xi32>, %dy: tensor<2x?x8xf32>) -> tensor<32x8xf32> {
  %0 = rwkv.embed_grad %ids, %dy : tensor<2x?xi32>, tensor<2x?x8xf32> -> tensor<32x8xf32>
  return %0 : tensor<32x8xf32>
}

// -----

// layer_norm_grad: the forward's two-pass statistics (sum, centred sum of
// squares), mean and rsqrt(var + eps) per row, one reduction for Σ gw and
// Σ gw * xhat (gw = dy * weight, bf16 widened), the all-parallel dx, and
// dweight / dbias as one generic reducing over (b, t), parallel over c.
// CHECK-LABEL: func.func @layer_norm_grad
// CHECK-SAME:    (%[[X:[^:]+]]: tensor<2x?x8xf32>, %[[W:[^:]+]]: tensor<8xbf16>, %[[DY:[^:]+]]: tensor<2x?x8xf32>)
// CHECK:         %[[SUM:.+]] = linalg.generic
// CHECK-SAME:      iterator_types = ["parallel", "parallel", "reduction"]
// CHECK-SAME:      ins(%[[X]] : tensor<2x?x8xf32>) outs(%{{.+}} : tensor<2x?xf32>)
// CHECK:         %[[SQ:.+]] = linalg.generic
// CHECK-SAME:      iterator_types = ["parallel", "parallel", "reduction"]
// CHECK-SAME:      ins(%[[X]], %[[SUM]] : tensor<2x?x8xf32>, tensor<2x?xf32>) outs(%{{.+}} : tensor<2x?xf32>)
// CHECK:         %[[STATS:.+]]:2 = linalg.generic
// CHECK-SAME:      iterator_types = ["parallel", "parallel"]
// CHECK-SAME:      ins(%[[SUM]], %[[SQ]] : tensor<2x?xf32>, tensor<2x?xf32>)
// CHECK:           arith.constant 9.99999974E-6 : f32
// CHECK:           math.rsqrt
// CHECK:         %[[SUMS:.+]]:2 = linalg.generic
// CHECK-SAME:      indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d2)>, affine_map<(d0, d1, d2) -> (d0, d1)>, affine_map<(d0, d1, d2) -> (d0, d1)>, affine_map<(d0, d1, d2) -> (d0, d1)>, affine_map<(d0, d1, d2) -> (d0, d1)>]
// CHECK-SAME:      iterator_types = ["parallel", "parallel", "reduction"]
// CHECK-SAME:      ins(%[[X]], %[[DY]], %[[W]], %[[STATS]]#0, %[[STATS]]#1 :
// CHECK:           arith.extf %{{.+}} : bf16 to f32
// CHECK:           arith.addf {{.+}} fastmath<reassoc,contract> : f32
// CHECK:         %[[DX:.+]] = linalg.generic
// CHECK-SAME:      iterator_types = ["parallel", "parallel", "parallel"]
// CHECK-SAME:      ins(%[[X]], %[[DY]], %[[W]], %[[STATS]]#0, %[[STATS]]#1, %[[SUMS]]#0, %[[SUMS]]#1 :
// CHECK:         %[[P:.+]]:2 = linalg.generic
// CHECK-SAME:      indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1)>, affine_map<(d0, d1, d2) -> (d0, d1)>, affine_map<(d0, d1, d2) -> (d2)>, affine_map<(d0, d1, d2) -> (d2)>]
// CHECK-SAME:      iterator_types = ["reduction", "reduction", "parallel"]
// CHECK-SAME:      ins(%[[X]], %[[DY]], %[[STATS]]#0, %[[STATS]]#1 : {{.+}}) outs(%{{.+}}, %{{.+}} : tensor<8xf32>, tensor<8xf32>)
// CHECK:         return %[[DX]], %[[P]]#0, %[[P]]#1
func.func @layer_norm_grad(%x: tensor<2x?x8xf32>, %w: tensor<8xbf16>, %dy: tensor<2x?x8xf32>) -> (tensor<2x?x8xf32>, tensor<8xf32>, tensor<8xf32>) {
  %0, %1, %2 = rwkv.layer_norm_grad %x, %w, %dy : tensor<2x?x8xf32>, tensor<8xbf16> -> tensor<2x?x8xf32>, tensor<8xf32>, tensor<8xf32>
  return %0, %1, %2 : tensor<2x?x8xf32>, tensor<8xf32>, tensor<8xf32>
}

// -----

// group_norm_grad: the layer_norm_grad structure on [B, T, G, C/G] with the
// weight as [G, C/G]; dweight / dbias reduce over (b, t) and are merged back
// to [C].
// CHECK-LABEL: func.func @group_norm_grad
// CHECK-SAME:    (%[[X:[^:]+]]: tensor<2x?x8xf32>, %[[W:[^:]+]]: tensor<8xbf16>, %[[DY:[^:]+]]: tensor<2x?x8xf32>)
// CHECK-DAG:     %[[X4:.+]] = tensor.expand_shape %[[X]] {{\[}}[0], [1], [2, 3]] output_shape [2, %{{.+}}, 2, 4] : tensor<2x?x8xf32> into tensor<2x?x2x4xf32>
// CHECK-DAG:     %[[DY4:.+]] = tensor.expand_shape %[[DY]] {{\[}}[0], [1], [2, 3]] output_shape [2, %{{.+}}, 2, 4] : tensor<2x?x8xf32> into tensor<2x?x2x4xf32>
// CHECK-DAG:     %[[W2:.+]] = tensor.expand_shape %[[W]] {{\[}}[0, 1]] output_shape [2, 4] : tensor<8xbf16> into tensor<2x4xbf16>
// CHECK:         %[[STATS:.+]]:2 = linalg.generic
// CHECK:           arith.constant 6.400000e-04 : f32
// CHECK:         %[[SUMS:.+]]:2 = linalg.generic
// CHECK-SAME:      iterator_types = ["parallel", "parallel", "parallel", "reduction"]
// CHECK-SAME:      ins(%[[X4]], %[[DY4]], %[[W2]], %[[STATS]]#0, %[[STATS]]#1 :
// CHECK:         %[[DX4:.+]] = linalg.generic
// CHECK-SAME:      iterator_types = ["parallel", "parallel", "parallel", "parallel"]
// CHECK:         %[[P:.+]]:2 = linalg.generic
// CHECK-SAME:      affine_map<(d0, d1, d2, d3) -> (d2, d3)>, affine_map<(d0, d1, d2, d3) -> (d2, d3)>]
// CHECK-SAME:      iterator_types = ["reduction", "reduction", "parallel", "parallel"]
// CHECK-SAME:      outs(%{{.+}}, %{{.+}} : tensor<2x4xf32>, tensor<2x4xf32>)
// CHECK:         %[[DX:.+]] = tensor.collapse_shape %[[DX4]] {{\[}}[0], [1], [2, 3]] : tensor<2x?x2x4xf32> into tensor<2x?x8xf32>
// CHECK:         %[[DW:.+]] = tensor.collapse_shape %[[P]]#0 {{\[}}[0, 1]] : tensor<2x4xf32> into tensor<8xf32>
// CHECK:         %[[DB:.+]] = tensor.collapse_shape %[[P]]#1 {{\[}}[0, 1]] : tensor<2x4xf32> into tensor<8xf32>
// CHECK:         return %[[DX]], %[[DW]], %[[DB]]
func.func @group_norm_grad(%x: tensor<2x?x8xf32>, %w: tensor<8xbf16>, %dy: tensor<2x?x8xf32>) -> (tensor<2x?x8xf32>, tensor<8xf32>, tensor<8xf32>) {
  %0, %1, %2 = rwkv.group_norm_grad %x, %w, %dy {num_groups = 2 : i64} : tensor<2x?x8xf32>, tensor<8xbf16> -> tensor<2x?x8xf32>, tensor<8xf32>, tensor<8xf32>
  return %0, %1, %2 : tensor<2x?x8xf32>, tensor<8xf32>, tensor<8xf32>
}

// -----

// l2_normalize_grad: per head ||x||² and x · dy in one reduction, then
// dx = (dy - x (x·dy) / ||x||²) / ||x|| where ||x|| > eps, dy / eps otherwise.
// CHECK-LABEL: func.func @l2_normalize_grad
// CHECK-SAME:    (%[[X:[^:]+]]: tensor<2x?x8xf32>, %[[DY:[^:]+]]: tensor<2x?x8xf32>)
// CHECK:         %[[X4:.+]] = tensor.expand_shape %[[X]] {{\[}}[0], [1], [2, 3]]
// CHECK:         %[[DY4:.+]] = tensor.expand_shape %[[DY]] {{\[}}[0], [1], [2, 3]]
// CHECK:         %[[S:.+]]:2 = linalg.generic
// CHECK-SAME:      iterator_types = ["parallel", "parallel", "parallel", "reduction"]
// CHECK-SAME:      ins(%[[X4]], %[[DY4]] : tensor<2x?x2x4xf32>, tensor<2x?x2x4xf32>) outs(%{{.+}}, %{{.+}} : tensor<2x?x2xf32>, tensor<2x?x2xf32>)
// CHECK:         %[[DX4:.+]] = linalg.generic
// CHECK-SAME:      iterator_types = ["parallel", "parallel", "parallel", "parallel"]
// CHECK-SAME:      ins(%[[X4]], %[[DY4]], %[[S]]#0, %[[S]]#1 :
// CHECK-NEXT:    ^bb0(%[[IX:[^:]+]]: f32, %[[IDY:[^:]+]]: f32, %[[ISS:[^:]+]]: f32, %[[IDOT:[^:]+]]: f32, %{{[^:]+}}: f32):
// CHECK-NEXT:      %[[EPS:.+]] = arith.constant 9.99999996E-13 : f32
// CHECK-NEXT:      %[[NORM:.+]] = math.sqrt %[[ISS]] : f32
// CHECK-NEXT:      %[[Q:.+]] = arith.divf %[[IDOT]], %[[ISS]] : f32
// CHECK-NEXT:      %[[XQ:.+]] = arith.mulf %[[IX]], %[[Q]] : f32
// CHECK-NEXT:      %[[T:.+]] = arith.subf %[[IDY]], %[[XQ]] : f32
// CHECK-NEXT:      %[[UN:.+]] = arith.divf %[[T]], %[[NORM]] : f32
// CHECK-NEXT:      %[[CL:.+]] = arith.divf %[[IDY]], %[[EPS]] : f32
// CHECK-NEXT:      %[[BIG:.+]] = arith.cmpf ogt, %[[NORM]], %[[EPS]] : f32
// CHECK-NEXT:      %[[R:.+]] = arith.select %[[BIG]], %[[UN]], %[[CL]] : f32
// CHECK-NEXT:      linalg.yield %[[R]] : f32
// CHECK:         %[[DX:.+]] = tensor.collapse_shape %[[DX4]] {{\[}}[0], [1], [2, 3]] : tensor<2x?x2x4xf32> into tensor<2x?x8xf32>
// CHECK:         return %[[DX]]
func.func @l2_normalize_grad(%x: tensor<2x?x8xf32>, %dy: tensor<2x?x8xf32>) -> tensor<2x?x8xf32> {
  %0 = rwkv.l2_normalize_grad %x, %dy {num_heads = 2 : i64} : tensor<2x?x8xf32> -> tensor<2x?x8xf32>
  return %0 : tensor<2x?x8xf32>
}

// -----

// token_shift_grad: two gathers. dinput[b, t, c] selects dlast[b, c] at
// t = T - 1 and dshifted[b, min(t + 1, T - 1), c] otherwise; dprev[b, c]
// reads dshifted[b, 0, c].
// CHECK-LABEL: func.func @token_shift_grad
// CHECK-SAME:    (%[[DS:[^:]+]]: tensor<2x?x8xf32>, %[[DL:[^:]+]]: tensor<2x8xf32>)
// CHECK:         %[[T:.+]] = tensor.dim %[[DS]], %{{.+}} : tensor<2x?x8xf32>
// CHECK:         %[[TLAST:.+]] = arith.subi %[[T]], %{{.+}} : index
// CHECK:         %[[DIN:.+]] = linalg.generic
// CHECK-SAME:      indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d2)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>]
// CHECK-SAME:      iterator_types = ["parallel", "parallel", "parallel"]
// CHECK-SAME:      ins(%[[DL]] : tensor<2x8xf32>) outs(%{{.+}} : tensor<2x?x8xf32>)
// CHECK-NEXT:    ^bb0(%[[ILAST:[^:]+]]: f32, %{{[^:]+}}: f32):
// CHECK-NEXT:      %[[BI:.+]] = linalg.index 0 : index
// CHECK-NEXT:      %[[TI:.+]] = linalg.index 1 : index
// CHECK-NEXT:      %[[CI:.+]] = linalg.index 2 : index
// CHECK-NEXT:      %[[ISLAST:.+]] = arith.cmpi eq, %[[TI]], %[[TLAST]] : index
// CHECK:           %[[TN:.+]] = arith.addi %[[TI]], %{{.+}} : index
// CHECK-NEXT:      %[[TC:.+]] = arith.minui %[[TN]], %[[TLAST]] : index
// CHECK-NEXT:      %[[FROMS:.+]] = tensor.extract %[[DS]][%[[BI]], %[[TC]], %[[CI]]] : tensor<2x?x8xf32>
// CHECK-NEXT:      %[[SEL:.+]] = arith.select %[[ISLAST]], %[[ILAST]], %[[FROMS]] : f32
// CHECK-NEXT:      linalg.yield %[[SEL]] : f32
// CHECK:         %[[DPREV:.+]] = linalg.generic
// CHECK-SAME:      outs(%{{.+}} : tensor<2x8xf32>)
// CHECK:           tensor.extract %[[DS]][%{{.+}}, %{{.+}}, %{{.+}}] : tensor<2x?x8xf32>
// CHECK:         return %[[DIN]], %[[DPREV]]
func.func @token_shift_grad(%ds: tensor<2x?x8xf32>, %dl: tensor<2x8xf32>) -> (tensor<2x?x8xf32>, tensor<2x8xf32>) {
  %0, %1 = rwkv.token_shift_grad %ds, %dl : tensor<2x?x8xf32>, tensor<2x8xf32>
  return %0, %1 : tensor<2x?x8xf32>, tensor<2x8xf32>
}

// -----

// wkv_grad {mode = chunked}: a forward scf.for over chunks in WY form (its
// (I - A_ab)^-1 solve loop, no per-token loop) saves every chunk's start
// state plus S_T (nchunk + 1 slots), then an scf.for over the chunks in
// reverse carries H = dL/dS_end and the gradients (no per-token state
// buffer); per chunk of min(3, T - t0) tokens: the solve again, the chunk
// matmuls, and H updated in place. With chunked-wkv=false the sequential
// lowering takes it (the [3, B, H, N, N] state buffer).
// CHECK-LABEL: func.func @wkv_grad_chunked
// CHECK-SAME:    %[[DS:[^:]+]]: tensor<2x2x4x4xf32>)
// CHECK:         %[[NCH:.+]] = arith.divui %{{.+}}, %c3 : index
// CHECK:         %[[SLOTS:.+]] = arith.addi %[[NCH]], %c1{{(_[0-9]+)?}} : index
// CHECK-NEXT:    %[[CKINIT:.+]] = tensor.empty(%[[SLOTS]]) : tensor<?x2x2x4x4xf32>
// CHECK-NEXT:    %[[FWD:.+]]:2 = scf.for %{{.+}} = %{{.+}} to %[[NCH]] step %{{.+}} iter_args(%{{.+}} = %{{.+}}, %{{.+}} = %[[CKINIT]])
// CHECK-NOT:       -> (tensor<2x2x4x4xf32>) {
// CHECK:           scf.for {{.+}} -> (tensor<2x2x?x?xf32>) {
// CHECK-NOT:       -> (tensor<2x2x4x4xf32>) {
// CHECK:           scf.yield %{{.+}}, %{{.+}} : tensor<2x2x4x4xf32>, tensor<?x2x2x4x4xf32>
// CHECK:         %[[LASTSLOT:.+]] = tensor.extract_slice %[[FWD]]#1[%[[NCH]], 0, 0, 0, 0]
// CHECK-NEXT:    %[[FINAL:.+]] = linalg.copy ins(%[[FWD]]#0 : tensor<2x2x4x4xf32>) outs(%[[LASTSLOT]] : tensor<2x2x4x4xf32>)
// CHECK-NEXT:    %[[CK:.+]] = tensor.insert_slice %[[FINAL]] into %[[FWD]]#1[%[[NCH]], 0, 0, 0, 0]
// CHECK-NOT:     tensor<3x2x2x4x4xf32>
// CHECK:         %[[BWD:.+]]:7 = scf.for %[[IV:.+]] = %c0 to %[[NCH]] step %c1 iter_args(%[[H:[^ ]+]] = %[[DS]],
// CHECK-NEXT:      %[[REV:.+]] = arith.subi %[[NCH]], %[[IV]] : index
// CHECK-NEXT:      %[[C:.+]] = arith.subi %[[REV]], %c1 : index
// CHECK-NEXT:      %[[T0:.+]] = arith.muli %[[C]], %c3 : index
// CHECK:           %[[L:.+]] = arith.minui %c3, %{{.+}} : index
// CHECK-NEXT:      tensor.extract_slice %[[CK]][%[[C]], 0, 0, 0, 0]
// CHECK-NEXT:      %[[NEXT:.+]] = arith.addi %[[C]], %c1 : index
// CHECK-NEXT:      tensor.extract_slice %[[CK]][%[[NEXT]], 0, 0, 0, 0]
// CHECK:           scf.for %{{.+}} = %{{.+}} to %[[L]] step %{{.+}} iter_args(%{{.+}}) -> (tensor<2x2x?x?xf32>)
// CHECK:           %[[HD:.+]] = linalg.generic {{.+}} outs(%[[H]] : tensor<2x2x4x4xf32>)
// CHECK:           %[[H1:.+]] = linalg.generic {{.+}} iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]} {{.+}} outs(%[[HD]] : tensor<2x2x4x4xf32>)
// CHECK:           %[[H2:.+]] = linalg.generic {{.+}} iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]} {{.+}} outs(%[[H1]] : tensor<2x2x4x4xf32>)
// CHECK:           scf.yield %[[H2]],
// CHECK:         return %[[BWD]]#1, %[[BWD]]#2, %[[BWD]]#3, %[[BWD]]#4, %[[BWD]]#5, %[[BWD]]#6, %[[BWD]]#0
// SEQ-LABEL: func.func @wkv_grad_chunked
// SEQ:         tensor.empty() : tensor<3x2x2x4x4xf32>
// SEQ:         return
func.func @wkv_grad_chunked(%r: tensor<2x?x8xf32>, %w: tensor<2x?x8xf32>, %k: tensor<2x?x8xf32>,
                            %v: tensor<2x?x8xf32>, %a: tensor<2x?x8xf32>, %b: tensor<2x?x8xf32>,
                            %s: tensor<2x2x4x4xf32>, %dy: tensor<2x?x8xf32>, %ds: tensor<2x2x4x4xf32>)
    -> (tensor<2x?x8xf32>, tensor<2x?x8xf32>, tensor<2x?x8xf32>, tensor<2x?x8xf32>,
        tensor<2x?x8xf32>, tensor<2x?x8xf32>, tensor<2x2x4x4xf32>) {
  %dr, %dw, %dk, %dv, %da, %db, %dstate = rwkv.wkv_grad %r, %w, %k, %v, %a, %b, %s, %dy, %ds
      {mode = #rwkv<wkv_mode chunked>, chunk_length = 3 : i64} : tensor<2x?x8xf32>, tensor<2x2x4x4xf32>
  return %dr, %dw, %dk, %dv, %da, %db, %dstate
      : tensor<2x?x8xf32>, tensor<2x?x8xf32>, tensor<2x?x8xf32>, tensor<2x?x8xf32>,
        tensor<2x?x8xf32>, tensor<2x?x8xf32>, tensor<2x2x4x4xf32>
}

// -----

// RWKV-4: one scf.for over tokens carrying (aa, bb, pp) and y; each step is a
// single element-wise generic over [B, C] with four results, updating the
// state in place (the state is its init) in the stable form of spec §4.2.
// CHECK-LABEL: func.func @wkv4
// CHECK-SAME:    (%[[W:.+]]: tensor<8xf32>, %[[U:.+]]: tensor<8xf32>, %[[K:.+]]: tensor<2x?x8xf32>, %[[V:.+]]: tensor<2x?x8xf32>, %[[AA:.+]]: tensor<2x8xf32>, %[[BB:.+]]: tensor<2x8xf32>, %[[PP:.+]]: tensor<2x8xf32>)
// CHECK:         %[[LOOP:.+]]:4 = scf.for %[[T:.+]] = %{{.+}} to %{{.+}} step %{{.+}} iter_args(%[[A:.+]] = %[[AA]], %[[B:.+]] = %[[BB]], %[[P:.+]] = %[[PP]], %[[Y:.+]] = %{{.+}})
// CHECK:           %[[KT:.+]] = tensor.extract_slice %[[K]][0, %[[T]], 0] [2, 1, 8] [1, 1, 1] : tensor<2x?x8xf32> to tensor<2x8xf32>
// CHECK:           %[[VT:.+]] = tensor.extract_slice %[[V]][0, %[[T]], 0] [2, 1, 8] [1, 1, 1] : tensor<2x?x8xf32> to tensor<2x8xf32>
// CHECK:           %[[STEP:.+]]:4 = linalg.generic
// CHECK-SAME:        affine_map<(d0, d1) -> (d1)>, affine_map<(d0, d1) -> (d1)>
// CHECK-SAME:        iterator_types = ["parallel", "parallel"]
// CHECK-SAME:        ins(%[[KT]], %[[VT]], %[[W]], %[[U]] :
// CHECK-SAME:        outs(%[[A]], %[[B]], %[[P]], %{{.+}} :
// CHECK:           ^bb0(%[[k:.+]]: f32, %[[v:.+]]: f32, %[[w:.+]]: f32, %[[u:.+]]: f32, %[[a:.+]]: f32, %[[b:.+]]: f32, %[[p:.+]]: f32, %{{.+}}: f32):
// CHECK:             %[[WW:.+]] = arith.addf %[[u]], %[[k]]
// CHECK:             %[[M:.+]] = arith.maximumf %[[p]], %[[WW]]
// CHECK:             math.exp
// CHECK:             math.exp
// CHECK:             %[[OUT:.+]] = arith.divf
// CHECK:             %[[WW2:.+]] = arith.addf %[[w]], %[[p]]
// CHECK:             %[[P2:.+]] = arith.maximumf %[[WW2]], %[[k]]
// CHECK:             linalg.yield %{{.+}}, %{{.+}}, %[[P2]], %[[OUT]] : f32, f32, f32, f32
// CHECK:           %[[INS:.+]] = tensor.insert_slice %[[STEP]]#3 into %[[Y]][0, %[[T]], 0] [2, 1, 8] [1, 1, 1]
// CHECK:           scf.yield %[[STEP]]#0, %[[STEP]]#1, %[[STEP]]#2, %[[INS]]
// CHECK:         return %[[LOOP]]#3, %[[LOOP]]#0, %[[LOOP]]#1, %[[LOOP]]#2
// NOOPS-NOT:     rwkv.wkv4
func.func @wkv4(%w: tensor<8xf32>, %u: tensor<8xf32>, %k: tensor<2x?x8xf32>, %v: tensor<2x?x8xf32>, %aa: tensor<2x8xf32>, %bb: tensor<2x8xf32>, %pp: tensor<2x8xf32>)
    -> (tensor<2x?x8xf32>, tensor<2x8xf32>, tensor<2x8xf32>, tensor<2x8xf32>) {
  %y, %a, %b, %p = rwkv.wkv4 %w, %u, %k, %v, %aa, %bb, %pp : tensor<8xf32>, tensor<2x?x8xf32>, tensor<2x8xf32>
  return %y, %a, %b, %p : tensor<2x?x8xf32>, tensor<2x8xf32>, tensor<2x8xf32>, tensor<2x8xf32>
}

// -----

// RWKV-5: the static decay exp(-exp(w)) is computed once, before the token
// loop; per token y[j] = Σ_i r[i] (u[i] k[i] v[j] + S[i][j]) reduces over
// the key index d2 with the value index d3 innermost, then S = k vᵀ + d S in
// place.
// CHECK-LABEL: func.func @wkv5_static
// CHECK-SAME:    (%[[R:.+]]: tensor<2x?x8xf32>, %[[W:.+]]: tensor<8xf32>, %[[U:.+]]: tensor<8xf32>, %[[S:.+]]: tensor<2x2x4x4xf32>)
// CHECK:         %[[D:.+]] = linalg.generic {{.*}} ins(%[[W]] : tensor<8xf32>)
// CHECK:           math.exp
// CHECK:           arith.negf
// CHECK:           math.exp
// CHECK:         %[[DH:.+]] = tensor.expand_shape %[[D]] {{\[\[}}0, 1]] output_shape [2, 4]
// CHECK:         %[[UH:.+]] = tensor.expand_shape %[[U]] {{\[\[}}0, 1]] output_shape [2, 4]
// CHECK:         scf.for %{{.+}} = %{{.+}} to %{{.+}} step %{{.+}} iter_args(%[[ST:.+]] = %[[S]], %{{.+}} = %{{.+}}) -> (tensor<2x2x4x4xf32>, tensor<2x?x8xf32>)
// CHECK-NOT:       math.exp
// CHECK:           %[[YT:.+]] = linalg.generic
// CHECK-SAME:        affine_map<(d0, d1, d2, d3) -> (d1, d2)>
// CHECK-SAME:        iterator_types = ["parallel", "parallel", "reduction", "parallel"]
// CHECK-SAME:        ins(%[[ST]], %{{.+}}, %[[UH]], %{{.+}}, %{{.+}} :
// CHECK:           %[[NS:.+]] = linalg.generic
// CHECK-SAME:        affine_map<(d0, d1, d2, d3) -> (d1, d2)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
// CHECK-SAME:        iterator_types = ["parallel", "parallel", "parallel", "parallel"]
// CHECK-SAME:        ins(%{{.+}}, %{{.+}}, %[[DH]] :
// CHECK-SAME:        outs(%[[ST]] : tensor<2x2x4x4xf32>)
// CHECK:           scf.yield %[[NS]], %{{.+}}
func.func @wkv5_static(%r: tensor<2x?x8xf32>, %w: tensor<8xf32>, %u: tensor<8xf32>, %s: tensor<2x2x4x4xf32>) -> (tensor<2x?x8xf32>, tensor<2x2x4x4xf32>) {
  %y, %ns = rwkv.wkv5 %r, %w, %r, %r, %u, %s : tensor<2x?x8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<2x2x4x4xf32>
  return %y, %ns : tensor<2x?x8xf32>, tensor<2x2x4x4xf32>
}

// -----

// RWKV-6: the decay is per token, so it is computed inside the loop.
// CHECK-LABEL: func.func @wkv5_dynamic
// CHECK-SAME:    (%[[R:.+]]: tensor<2x?x8xf32>, %[[W:.+]]: tensor<2x?x8xf32>,
// CHECK:         scf.for
// CHECK:           %[[WT:.+]] = tensor.extract_slice %[[W]]
// CHECK:           %[[D:.+]] = linalg.generic {{.*}} ins(%[[WT]] : tensor<2x8xf32>)
// CHECK:             math.exp
// CHECK:             arith.negf
// CHECK:             math.exp
// CHECK:           %[[DH:.+]] = tensor.expand_shape %[[D]] {{\[\[}}0], [1, 2]] output_shape [2, 2, 4]
// CHECK:           linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "reduction", "parallel"]
// CHECK:           linalg.generic {{.*}} ins(%{{.+}}, %{{.+}}, %[[DH]] :
func.func @wkv5_dynamic(%r: tensor<2x?x8xf32>, %w: tensor<2x?x8xf32>, %u: tensor<8xf32>, %s: tensor<2x2x4x4xf32>) -> (tensor<2x?x8xf32>, tensor<2x2x4x4xf32>) {
  %y, %ns = rwkv.wkv5 %r, %w, %r, %r, %u, %s : tensor<2x?x8xf32>, tensor<2x?x8xf32>, tensor<8xf32>, tensor<2x2x4x4xf32>
  return %y, %ns : tensor<2x?x8xf32>, tensor<2x2x4x4xf32>
}
