// RUN: rwkv-opt %s -split-input-file --rwkv-parallelize-wkv | FileCheck %s

// Each (batch row, head) runs its own recurrence: activations are sliced to
// the head's N columns, the state to its [N, N] block, and the results are
// inserted back in parallel.
// CHECK-LABEL: func.func @wkv
// CHECK-SAME:    (%[[R:[^:]+]]: tensor<2x16x128xf32>, {{.*}}, %[[S:[^:]+]]: tensor<2x2x64x64xf32>)
// CHECK:         %[[F:.+]]:2 = scf.forall (%[[I:.+]], %[[H:.+]]) in (2, 2) shared_outs(%[[OY:.+]] = %{{.+}}, %[[OS:.+]] = %{{.+}}) -> (tensor<2x16x128xf32>, tensor<2x2x64x64xf32>)
// CHECK:           %[[COL:.+]] = arith.muli %[[H]], %c64
// CHECK:           %[[RS:.+]] = tensor.extract_slice %[[R]][%[[I]], 0, %[[COL]]] [1, 16, 64] [1, 1, 1] : tensor<2x16x128xf32> to tensor<1x16x64xf32>
// CHECK:           %[[SS:.+]] = tensor.extract_slice %[[S]][%[[I]], %[[H]], 0, 0] [1, 1, 64, 64] [1, 1, 1, 1] : tensor<2x2x64x64xf32> to tensor<1x1x64x64xf32>
// CHECK:           %[[Y:.+]], %[[NS:.+]] = rwkv.wkv %[[RS]], {{.*}}, %[[SS]] {chunk_length = 8 : i64, mode = #rwkv<wkv_mode chunked>} : tensor<1x16x64xf32>, tensor<1x1x64x64xf32>
// CHECK:           scf.forall.in_parallel
// CHECK:             tensor.parallel_insert_slice %[[Y]] into %[[OY]][%[[I]], 0, %{{.+}}] [1, 16, 64] [1, 1, 1]
// CHECK:             tensor.parallel_insert_slice %[[NS]] into %[[OS]][%[[I]], %[[H]], 0, 0] [1, 1, 64, 64] [1, 1, 1, 1]
// CHECK:         return %[[F]]#0, %[[F]]#1
func.func @wkv(%r: tensor<2x16x128xf32>, %w: tensor<2x16x128xf32>, %k: tensor<2x16x128xf32>, %v: tensor<2x16x128xf32>,
               %a: tensor<2x16x128xf32>, %b: tensor<2x16x128xf32>, %s: tensor<2x2x64x64xf32>)
    -> (tensor<2x16x128xf32>, tensor<2x2x64x64xf32>) {
  %y, %ns = rwkv.wkv %r, %w, %k, %v, %a, %b, %s {mode = #rwkv<wkv_mode chunked>, chunk_length = 8} : tensor<2x16x128xf32>, tensor<2x2x64x64xf32>
  return %y, %ns : tensor<2x16x128xf32>, tensor<2x2x64x64xf32>
}

// -----

// The gradient too: nine operands and seven results, all per head.
// CHECK-LABEL: func.func @wkv_grad
// CHECK:         scf.forall (%{{.+}}, %{{.+}}) in (1, 2) shared_outs({{.*}}) -> (tensor<1x16x128xf32>, tensor<1x16x128xf32>, tensor<1x16x128xf32>, tensor<1x16x128xf32>, tensor<1x16x128xf32>, tensor<1x16x128xf32>, tensor<1x2x64x64xf32>)
// CHECK:           rwkv.wkv_grad {{.*}} : tensor<1x16x64xf32>, tensor<1x1x64x64xf32>
// CHECK-COUNT-7:     tensor.parallel_insert_slice
func.func @wkv_grad(%r: tensor<1x16x128xf32>, %s: tensor<1x2x64x64xf32>, %dy: tensor<1x16x128xf32>)
    -> (tensor<1x16x128xf32>, tensor<1x16x128xf32>, tensor<1x16x128xf32>, tensor<1x16x128xf32>, tensor<1x16x128xf32>, tensor<1x16x128xf32>, tensor<1x2x64x64xf32>) {
  %dr, %dw, %dk, %dv, %da, %db, %ds = rwkv.wkv_grad %r, %r, %r, %r, %r, %r, %s, %dy, %s : tensor<1x16x128xf32>, tensor<1x2x64x64xf32>
  return %dr, %dw, %dk, %dv, %da, %db, %ds : tensor<1x16x128xf32>, tensor<1x16x128xf32>, tensor<1x16x128xf32>, tensor<1x16x128xf32>, tensor<1x16x128xf32>, tensor<1x16x128xf32>, tensor<1x2x64x64xf32>
}

// -----

// One token (decode) and a single head are left alone.
// CHECK-LABEL: func.func @decode
// CHECK-NOT:     scf.forall
// CHECK:         rwkv.wkv {{.*}} : tensor<1x1x128xf32>, tensor<1x2x64x64xf32>
// CHECK-NOT:     scf.forall
// CHECK:         rwkv.wkv {{.*}} : tensor<1x8x64xf32>, tensor<1x1x64x64xf32>
// CHECK-NOT:     scf.forall
func.func @decode(%x: tensor<1x1x128xf32>, %s: tensor<1x2x64x64xf32>, %x1: tensor<1x8x64xf32>, %s1: tensor<1x1x64x64xf32>)
    -> (tensor<1x1x128xf32>, tensor<1x8x64xf32>) {
  %y, %ns = rwkv.wkv %x, %x, %x, %x, %x, %x, %s : tensor<1x1x128xf32>, tensor<1x2x64x64xf32>
  %y1, %ns1 = rwkv.wkv %x1, %x1, %x1, %x1, %x1, %x1, %s1 : tensor<1x8x64xf32>, tensor<1x1x64x64xf32>
  return %y, %y1 : tensor<1x1x128xf32>, tensor<1x8x64xf32>
}

// -----

// A dynamic T (an inference function, which also decodes one token at a
// time): the per-head forall runs only for T > 1; one token keeps the whole
// op, which updates the state in place (no per-head state buffers).
// CHECK-LABEL: func.func @dynamic_tokens
// CHECK-SAME:    (%[[X:[^:]+]]: tensor<2x?x128xf32>, %[[S:[^:]+]]: tensor<2x2x64x64xf32>)
// CHECK:         %[[T:.+]] = tensor.dim %[[X]], %c1
// CHECK:         %[[MANY:.+]] = arith.cmpi ugt, %[[T]], %c1
// CHECK:         %[[IF:.+]]:2 = scf.if %[[MANY]] -> (tensor<2x?x128xf32>, tensor<2x2x64x64xf32>)
// The new state goes into the old one (the shared output starts as the state
// operand, and each head reads its slice from there), so that it bufferizes
// in place like the else branch and the function copies no state.
// CHECK:           %[[F:.+]]:2 = scf.forall (%[[I:.+]], %[[H:.+]]) in (2, 2) shared_outs(%[[OY:.+]] = %{{.+}}, %[[OS:.+]] = %[[S]])
// CHECK:             %[[SS:.+]] = tensor.extract_slice %[[OS]][%[[I]], %[[H]], 0, 0] [1, 1, 64, 64]
// CHECK:             %{{.+}}, %[[NS1:.+]] = rwkv.wkv {{.*}}, %[[SS]] : tensor<1x?x64xf32>, tensor<1x1x64x64xf32>
// CHECK:             tensor.parallel_insert_slice %[[NS1]] into %[[OS]][%[[I]], %[[H]], 0, 0] [1, 1, 64, 64]
// CHECK:           scf.yield %[[F]]#0, %[[F]]#1
// CHECK:         } else {
// CHECK-NOT:       scf.forall
// CHECK:           %[[Y:.+]], %[[NS:.+]] = rwkv.wkv %[[X]], {{.*}}, %[[S]] {rwkv.one_token_branch} : tensor<2x?x128xf32>, tensor<2x2x64x64xf32>
// CHECK:           scf.yield %[[Y]], %[[NS]]
// CHECK:         return %[[IF]]#0, %[[IF]]#1
func.func @dynamic_tokens(%xd: tensor<2x?x128xf32>, %sd: tensor<2x2x64x64xf32>)
    -> (tensor<2x?x128xf32>, tensor<2x2x64x64xf32>) {
  %y, %ns = rwkv.wkv %xd, %xd, %xd, %xd, %xd, %xd, %sd : tensor<2x?x128xf32>, tensor<2x2x64x64xf32>
  return %y, %ns : tensor<2x?x128xf32>, tensor<2x2x64x64xf32>
}
