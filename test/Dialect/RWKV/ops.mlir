// RUN: rwkv-opt %s | rwkv-opt | FileCheck %s
// RUN: rwkv-opt %s --mlir-print-op-generic | rwkv-opt | FileCheck %s

// Round trip of every rwkv op and attribute, in the custom and the generic
// form. Shapes: C = 8 channels, H = 2 heads of N = 4, F = 16, V = 32.

// CHECK: module attributes {rwkv.config = #rwkv.config<version = 7, n_layer = 2, n_embd = 8, n_head = 2, head_size = 4, dim_ffn = 16, vocab_size = 32, lora_w = 2, lora_a = 3, lora_v = 4, lora_g = 5>}
module attributes {rwkv.config = #rwkv.config<version = 7, n_layer = 2, n_embd = 8, n_head = 2, head_size = 4, dim_ffn = 16, vocab_size = 32, lora_w = 2, lora_a = 3, lora_v = 4, lora_g = 5>} {

// CHECK-LABEL: func.func @config_attr
// CHECK-SAME:    rwkv.config = #rwkv.config<version = 6, n_layer = 24, n_embd = 2048, n_head = 32, head_size = 64, dim_ffn = 7168, vocab_size = 65536, lora_w = 64, lora_a = 64, lora_v = 32, lora_g = 128>
func.func @config_attr() attributes {rwkv.config = #rwkv.config<version = 6, n_layer = 24, n_embd = 2048, n_head = 32, head_size = 64, dim_ffn = 7168, vocab_size = 65536, lora_w = 64, lora_a = 64, lora_v = 32, lora_g = 128>} {
  return
}

// CHECK-LABEL: func.func @embed
// CHECK-SAME:    (%[[TABLE:.+]]: tensor<32x8xbf16>, %[[IDS:.+]]: tensor<2x?xi32>, %[[TABLE16:.+]]: tensor<32x8xf16>, %[[IDS64:.+]]: tensor<?x5xi64>)
func.func @embed(%table: tensor<32x8xbf16>, %ids: tensor<2x?xi32>,
                 %table16: tensor<32x8xf16>, %ids64: tensor<?x5xi64>)
    -> (tensor<2x?x8xf32>, tensor<?x5x8xf32>) {
  // CHECK: %[[E0:.+]] = rwkv.embed %[[TABLE]], %[[IDS]] : tensor<32x8xbf16>, tensor<2x?xi32> -> tensor<2x?x8xf32>
  %0 = rwkv.embed %table, %ids : tensor<32x8xbf16>, tensor<2x?xi32> -> tensor<2x?x8xf32>
  // CHECK: %[[E1:.+]] = rwkv.embed %[[TABLE16]], %[[IDS64]] : tensor<32x8xf16>, tensor<?x5xi64> -> tensor<?x5x8xf32>
  %1 = rwkv.embed %table16, %ids64 : tensor<32x8xf16>, tensor<?x5xi64> -> tensor<?x5x8xf32>
  // CHECK: return %[[E0]], %[[E1]]
  return %0, %1 : tensor<2x?x8xf32>, tensor<?x5x8xf32>
}

// CHECK-LABEL: func.func @layer_norm
// CHECK-SAME:    (%[[X:.+]]: tensor<2x?x8xf32>, %[[W:.+]]: tensor<8xbf16>, %[[B:.+]]: tensor<8xbf16>, %[[X2:.+]]: tensor<?x8xf32>, %[[W32:.+]]: tensor<8xf32>)
func.func @layer_norm(%x: tensor<2x?x8xf32>, %w: tensor<8xbf16>, %b: tensor<8xbf16>,
                      %x2: tensor<?x8xf32>, %w32: tensor<8xf32>)
    -> (tensor<2x?x8xf32>, tensor<2x?x8xf32>, tensor<?x8xf32>) {
  // The default epsilon (1e-5) is elided when printed.
  // CHECK: %[[Y0:.+]] = rwkv.layer_norm %[[X]], %[[W]], %[[B]] : tensor<2x?x8xf32>, tensor<8xbf16> -> tensor<2x?x8xf32>
  %0 = rwkv.layer_norm %x, %w, %b : tensor<2x?x8xf32>, tensor<8xbf16> -> tensor<2x?x8xf32>
  // CHECK: %[[Y1:.+]] = rwkv.layer_norm %[[X]], %[[W]], %[[B]] {epsilon = 1.000000e-03 : f32} : tensor<2x?x8xf32>, tensor<8xbf16> -> tensor<2x?x8xf32>
  %1 = rwkv.layer_norm %x, %w, %b {epsilon = 1.0e-3 : f32} : tensor<2x?x8xf32>, tensor<8xbf16> -> tensor<2x?x8xf32>
  // LayerNorm accepts any rank >= 1.
  // CHECK: %[[Y2:.+]] = rwkv.layer_norm %[[X2]], %[[W32]], %[[W32]] : tensor<?x8xf32>, tensor<8xf32> -> tensor<?x8xf32>
  %2 = rwkv.layer_norm %x2, %w32, %w32 : tensor<?x8xf32>, tensor<8xf32> -> tensor<?x8xf32>
  // CHECK: return %[[Y0]], %[[Y1]], %[[Y2]]
  return %0, %1, %2 : tensor<2x?x8xf32>, tensor<2x?x8xf32>, tensor<?x8xf32>
}

// CHECK-LABEL: func.func @token_shift
// CHECK-SAME:    (%[[X:.+]]: tensor<2x?x8xf32>, %[[PREV:.+]]: tensor<2x8xf32>, %[[XD:.+]]: tensor<?x1x?xf32>, %[[PD:.+]]: tensor<?x?xf32>)
func.func @token_shift(%x: tensor<2x?x8xf32>, %prev: tensor<2x8xf32>,
                       %xd: tensor<?x1x?xf32>, %pd: tensor<?x?xf32>)
    -> (tensor<2x?x8xf32>, tensor<2x8xf32>, tensor<?x1x?xf32>, tensor<?x?xf32>) {
  // CHECK: %[[S:.+]], %[[L:.+]] = rwkv.token_shift %[[X]], %[[PREV]] : tensor<2x?x8xf32>, tensor<2x8xf32>
  %s, %l = rwkv.token_shift %x, %prev : tensor<2x?x8xf32>, tensor<2x8xf32>
  // CHECK: %[[SD:.+]], %[[LD:.+]] = rwkv.token_shift %[[XD]], %[[PD]] : tensor<?x1x?xf32>, tensor<?x?xf32>
  %sd, %ld = rwkv.token_shift %xd, %pd : tensor<?x1x?xf32>, tensor<?x?xf32>
  // CHECK: return %[[S]], %[[L]], %[[SD]], %[[LD]]
  return %s, %l, %sd, %ld : tensor<2x?x8xf32>, tensor<2x8xf32>, tensor<?x1x?xf32>, tensor<?x?xf32>
}

// CHECK-LABEL: func.func @mix
// CHECK-SAME:    (%[[X:.+]]: tensor<2x?x8xf32>, %[[S:.+]]: tensor<2x?x8xf32>, %[[MU:.+]]: tensor<8xbf16>, %[[MU16:.+]]: tensor<8xf16>, %[[MU32:.+]]: tensor<8xf32>)
func.func @mix(%x: tensor<2x?x8xf32>, %s: tensor<2x?x8xf32>, %mu: tensor<8xbf16>,
               %mu16: tensor<8xf16>, %mu32: tensor<8xf32>)
    -> (tensor<2x?x8xf32>, tensor<2x?x8xf32>, tensor<2x?x8xf32>) {
  // CHECK: %[[M0:.+]] = rwkv.mix %[[X]], %[[S]], %[[MU]] : tensor<2x?x8xf32>, tensor<8xbf16> -> tensor<2x?x8xf32>
  %0 = rwkv.mix %x, %s, %mu : tensor<2x?x8xf32>, tensor<8xbf16> -> tensor<2x?x8xf32>
  // CHECK: %[[M1:.+]] = rwkv.mix %[[X]], %[[S]], %[[MU16]] : tensor<2x?x8xf32>, tensor<8xf16> -> tensor<2x?x8xf32>
  %1 = rwkv.mix %x, %s, %mu16 : tensor<2x?x8xf32>, tensor<8xf16> -> tensor<2x?x8xf32>
  // CHECK: %[[M2:.+]] = rwkv.mix %[[X]], %[[S]], %[[MU32]] : tensor<2x?x8xf32>, tensor<8xf32> -> tensor<2x?x8xf32>
  %2 = rwkv.mix %x, %s, %mu32 : tensor<2x?x8xf32>, tensor<8xf32> -> tensor<2x?x8xf32>
  // CHECK: return %[[M0]], %[[M1]], %[[M2]]
  return %0, %1, %2 : tensor<2x?x8xf32>, tensor<2x?x8xf32>, tensor<2x?x8xf32>
}

// CHECK-LABEL: func.func @linear
// CHECK-SAME:    (%[[X:.+]]: tensor<2x?x8xf32>, %[[W:.+]]: tensor<16x8xbf16>, %[[XD:.+]]: tensor<?x?x?xf32>, %[[WD:.+]]: tensor<?x?xf16>)
func.func @linear(%x: tensor<2x?x8xf32>, %w: tensor<16x8xbf16>,
                  %xd: tensor<?x?x?xf32>, %wd: tensor<?x?xf16>)
    -> (tensor<2x?x16xf32>, tensor<?x?x?xf32>) {
  // CHECK: %[[Y0:.+]] = rwkv.linear %[[X]], %[[W]] : tensor<2x?x8xf32>, tensor<16x8xbf16> -> tensor<2x?x16xf32>
  %0 = rwkv.linear %x, %w : tensor<2x?x8xf32>, tensor<16x8xbf16> -> tensor<2x?x16xf32>
  // CHECK: %[[Y1:.+]] = rwkv.linear %[[XD]], %[[WD]] : tensor<?x?x?xf32>, tensor<?x?xf16> -> tensor<?x?x?xf32>
  %1 = rwkv.linear %xd, %wd : tensor<?x?x?xf32>, tensor<?x?xf16> -> tensor<?x?x?xf32>
  // CHECK: return %[[Y0]], %[[Y1]]
  return %0, %1 : tensor<2x?x16xf32>, tensor<?x?x?xf32>
}

// int8 matrices: rwkv.dequantize, and the scale operand of linear, head and
// embed.
// CHECK-LABEL: func.func @quantized
func.func @quantized(%x: tensor<2x?x8xf32>, %q: tensor<16x8xi8>, %s: tensor<16xf32>,
                     %ids: tensor<2x?xi32>)
    -> (tensor<16x8xf32>, tensor<2x?x16xf32>, tensor<2x1x16xf32>, tensor<2x?x8xf32>) {
  // CHECK: rwkv.dequantize %{{.+}}, %{{.+}} : tensor<16x8xi8>, tensor<16xf32> -> tensor<16x8xf32>
  %0 = rwkv.dequantize %q, %s : tensor<16x8xi8>, tensor<16xf32> -> tensor<16x8xf32>
  // CHECK: rwkv.linear %{{.+}}, %{{.+}} scale %{{.+}} : tensor<2x?x8xf32>, tensor<16x8xi8>, tensor<16xf32> -> tensor<2x?x16xf32>
  %1 = rwkv.linear %x, %q scale %s : tensor<2x?x8xf32>, tensor<16x8xi8>, tensor<16xf32> -> tensor<2x?x16xf32>
  // CHECK: rwkv.head %{{.+}}, %{{.+}} scale %{{.+}} {positions = #rwkv<positions last>} : tensor<2x?x8xf32>, tensor<16x8xi8>, tensor<16xf32> -> tensor<2x1x16xf32>
  %2 = rwkv.head %x, %q scale %s {positions = #rwkv<positions last>} : tensor<2x?x8xf32>, tensor<16x8xi8>, tensor<16xf32> -> tensor<2x1x16xf32>
  // CHECK: rwkv.embed %{{.+}}, %{{.+}} scale %{{.+}} : tensor<16x8xi8>, tensor<2x?xi32>, tensor<16xf32> -> tensor<2x?x8xf32>
  %3 = rwkv.embed %q, %ids scale %s : tensor<16x8xi8>, tensor<2x?xi32>, tensor<16xf32> -> tensor<2x?x8xf32>
  return %0, %1, %2, %3 : tensor<16x8xf32>, tensor<2x?x16xf32>, tensor<2x1x16xf32>, tensor<2x?x8xf32>
}

// Packed int4 matrices (two weights per byte, bf16 scales per group of 4
// inputs): the `group` of dequantize, linear, head and embed.
// CHECK-LABEL: func.func @quantized_int4
func.func @quantized_int4(%x: tensor<2x?x8xf32>, %q: tensor<16x4xi8>, %s: tensor<16x2xbf16>,
                          %ids: tensor<2x?xi32>)
    -> (tensor<16x8xf32>, tensor<2x?x16xf32>, tensor<2x1x16xf32>, tensor<2x?x8xf32>) {
  // CHECK: rwkv.dequantize %{{.+}}, %{{.+}} group 4 : tensor<16x4xi8>, tensor<16x2xbf16> -> tensor<16x8xf32>
  %0 = rwkv.dequantize %q, %s group 4 : tensor<16x4xi8>, tensor<16x2xbf16> -> tensor<16x8xf32>
  // CHECK: rwkv.linear %{{.+}}, %{{.+}} scale %{{.+}} group 4 : tensor<2x?x8xf32>, tensor<16x4xi8>, tensor<16x2xbf16> -> tensor<2x?x16xf32>
  %1 = rwkv.linear %x, %q scale %s group 4 : tensor<2x?x8xf32>, tensor<16x4xi8>, tensor<16x2xbf16> -> tensor<2x?x16xf32>
  // CHECK: rwkv.head %{{.+}}, %{{.+}} scale %{{.+}} group 4 {positions = #rwkv<positions last>} : tensor<2x?x8xf32>, tensor<16x4xi8>, tensor<16x2xbf16> -> tensor<2x1x16xf32>
  %2 = rwkv.head %x, %q scale %s group 4 {positions = #rwkv<positions last>} : tensor<2x?x8xf32>, tensor<16x4xi8>, tensor<16x2xbf16> -> tensor<2x1x16xf32>
  // CHECK: rwkv.embed %{{.+}}, %{{.+}} scale %{{.+}} group 4 : tensor<16x4xi8>, tensor<2x?xi32>, tensor<16x2xbf16> -> tensor<2x?x8xf32>
  %3 = rwkv.embed %q, %ids scale %s group 4 : tensor<16x4xi8>, tensor<2x?xi32>, tensor<16x2xbf16> -> tensor<2x?x8xf32>
  return %0, %1, %2, %3 : tensor<16x8xf32>, tensor<2x?x16xf32>, tensor<2x1x16xf32>, tensor<2x?x8xf32>
}

// Grouped int8 matrices (llama.cpp's Q8_0: one byte per weight, scales per
// group of 4 inputs): `group 4 int8`.
// CHECK-LABEL: func.func @quantized_int8_groups
func.func @quantized_int8_groups(%x: tensor<2x?x8xf32>, %q: tensor<16x8xi8>, %s: tensor<16x2xbf16>,
                                 %ids: tensor<2x?xi32>)
    -> (tensor<16x8xf32>, tensor<2x?x16xf32>, tensor<2x1x16xf32>, tensor<2x?x8xf32>) {
  // CHECK: rwkv.dequantize %{{.+}}, %{{.+}} group 4 int8 : tensor<16x8xi8>, tensor<16x2xbf16> -> tensor<16x8xf32>
  %0 = rwkv.dequantize %q, %s group 4 int8 : tensor<16x8xi8>, tensor<16x2xbf16> -> tensor<16x8xf32>
  // CHECK: rwkv.linear %{{.+}}, %{{.+}} scale %{{.+}} group 4 int8 : tensor<2x?x8xf32>, tensor<16x8xi8>, tensor<16x2xbf16> -> tensor<2x?x16xf32>
  %1 = rwkv.linear %x, %q scale %s group 4 int8 : tensor<2x?x8xf32>, tensor<16x8xi8>, tensor<16x2xbf16> -> tensor<2x?x16xf32>
  // CHECK: rwkv.head %{{.+}}, %{{.+}} scale %{{.+}} group 4 int8 {positions = #rwkv<positions last>} : tensor<2x?x8xf32>, tensor<16x8xi8>, tensor<16x2xbf16> -> tensor<2x1x16xf32>
  %2 = rwkv.head %x, %q scale %s group 4 int8 {positions = #rwkv<positions last>} : tensor<2x?x8xf32>, tensor<16x8xi8>, tensor<16x2xbf16> -> tensor<2x1x16xf32>
  // CHECK: rwkv.embed %{{.+}}, %{{.+}} scale %{{.+}} group 4 int8 : tensor<16x8xi8>, tensor<2x?xi32>, tensor<16x2xbf16> -> tensor<2x?x8xf32>
  %3 = rwkv.embed %q, %ids scale %s group 4 int8 : tensor<16x8xi8>, tensor<2x?xi32>, tensor<16x2xbf16> -> tensor<2x?x8xf32>
  return %0, %1, %2, %3 : tensor<16x8xf32>, tensor<2x?x16xf32>, tensor<2x1x16xf32>, tensor<2x?x8xf32>
}

// CHECK-LABEL: func.func @lora
// CHECK-SAME:    (%[[X:.+]]: tensor<2x?x8xf32>, %[[D:.+]]: tensor<8x3xbf16>, %[[U:.+]]: tensor<3x8xbf16>, %[[D32:.+]]: tensor<8x3xf32>, %[[U16:.+]]: tensor<3x8xf16>)
func.func @lora(%x: tensor<2x?x8xf32>, %d: tensor<8x3xbf16>, %u: tensor<3x8xbf16>,
                %d32: tensor<8x3xf32>, %u16: tensor<3x8xf16>)
    -> (tensor<2x?x8xf32>, tensor<2x?x8xf32>, tensor<2x?x8xf32>, tensor<2x?x8xf32>) {
  // The default activation (none) is elided when printed.
  // CHECK: %[[N0:.+]] = rwkv.lora %[[X]], %[[D]], %[[U]] : tensor<2x?x8xf32>, tensor<8x3xbf16>, tensor<3x8xbf16> -> tensor<2x?x8xf32>
  %0 = rwkv.lora %x, %d, %u : tensor<2x?x8xf32>, tensor<8x3xbf16>, tensor<3x8xbf16> -> tensor<2x?x8xf32>
  // CHECK: %[[N1:.+]] = rwkv.lora %[[X]], %[[D]], %[[U]] : tensor<2x?x8xf32>, tensor<8x3xbf16>, tensor<3x8xbf16> -> tensor<2x?x8xf32>
  %1 = rwkv.lora %x, %d, %u {activation = #rwkv<activation none>} : tensor<2x?x8xf32>, tensor<8x3xbf16>, tensor<3x8xbf16> -> tensor<2x?x8xf32>
  // CHECK: %[[T:.+]] = rwkv.lora %[[X]], %[[D]], %[[U]] {activation = #rwkv<activation tanh>} : tensor<2x?x8xf32>, tensor<8x3xbf16>, tensor<3x8xbf16> -> tensor<2x?x8xf32>
  %2 = rwkv.lora %x, %d, %u {activation = #rwkv<activation tanh>} : tensor<2x?x8xf32>, tensor<8x3xbf16>, tensor<3x8xbf16> -> tensor<2x?x8xf32>
  // CHECK: %[[S:.+]] = rwkv.lora %[[X]], %[[D32]], %[[U16]] {activation = #rwkv<activation sigmoid>} : tensor<2x?x8xf32>, tensor<8x3xf32>, tensor<3x8xf16> -> tensor<2x?x8xf32>
  %3 = rwkv.lora %x, %d32, %u16 {activation = #rwkv<activation sigmoid>} : tensor<2x?x8xf32>, tensor<8x3xf32>, tensor<3x8xf16> -> tensor<2x?x8xf32>
  // CHECK: return %[[N0]], %[[N1]], %[[T]], %[[S]]
  return %0, %1, %2, %3 : tensor<2x?x8xf32>, tensor<2x?x8xf32>, tensor<2x?x8xf32>, tensor<2x?x8xf32>
}

// CHECK-LABEL: func.func @l2_normalize
// CHECK-SAME:    (%[[X:.+]]: tensor<2x?x8xf32>, %[[XD:.+]]: tensor<?x?x?xf32>)
func.func @l2_normalize(%x: tensor<2x?x8xf32>, %xd: tensor<?x?x?xf32>)
    -> (tensor<2x?x8xf32>, tensor<2x?x8xf32>, tensor<?x?x?xf32>) {
  // CHECK: %[[N0:.+]] = rwkv.l2_normalize %[[X]] {num_heads = 2 : i64} : tensor<2x?x8xf32> -> tensor<2x?x8xf32>
  %0 = rwkv.l2_normalize %x {num_heads = 2 : i64} : tensor<2x?x8xf32> -> tensor<2x?x8xf32>
  // CHECK: %[[N1:.+]] = rwkv.l2_normalize %[[X]] {epsilon = 9.99999997E-7 : f32, num_heads = 4 : i64} : tensor<2x?x8xf32> -> tensor<2x?x8xf32>
  %1 = rwkv.l2_normalize %x {num_heads = 4 : i64, epsilon = 1.0e-6 : f32} : tensor<2x?x8xf32> -> tensor<2x?x8xf32>
  // CHECK: %[[N2:.+]] = rwkv.l2_normalize %[[XD]] {num_heads = 3 : i64} : tensor<?x?x?xf32> -> tensor<?x?x?xf32>
  %2 = rwkv.l2_normalize %xd {num_heads = 3 : i64} : tensor<?x?x?xf32> -> tensor<?x?x?xf32>
  // CHECK: return %[[N0]], %[[N1]], %[[N2]]
  return %0, %1, %2 : tensor<2x?x8xf32>, tensor<2x?x8xf32>, tensor<?x?x?xf32>
}

// CHECK-LABEL: func.func @wkv
// CHECK-SAME:    (%[[R:.+]]: tensor<2x?x8xf32>, %[[W:.+]]: tensor<2x?x8xf32>, %[[K:.+]]: tensor<2x?x8xf32>, %[[V:.+]]: tensor<2x?x8xf32>, %[[A:.+]]: tensor<2x?x8xf32>, %[[B:.+]]: tensor<2x?x8xf32>, %[[S:.+]]: tensor<2x2x4x4xf32>, %[[XD:.+]]: tensor<?x?x?xf32>, %[[SD:.+]]: tensor<?x2x4x4xf32>)
func.func @wkv(%r: tensor<2x?x8xf32>, %w: tensor<2x?x8xf32>, %k: tensor<2x?x8xf32>,
               %v: tensor<2x?x8xf32>, %a: tensor<2x?x8xf32>, %b: tensor<2x?x8xf32>,
               %s: tensor<2x2x4x4xf32>, %xd: tensor<?x?x?xf32>, %sd: tensor<?x2x4x4xf32>)
    -> (tensor<2x?x8xf32>, tensor<2x2x4x4xf32>, tensor<2x?x8xf32>, tensor<2x2x4x4xf32>,
        tensor<2x?x8xf32>, tensor<2x2x4x4xf32>, tensor<?x?x?xf32>, tensor<?x2x4x4xf32>) {
  // Defaults (sequential, chunk_length 16) are elided.
  // CHECK: %[[Y0:.+]], %[[S0:.+]] = rwkv.wkv %[[R]], %[[W]], %[[K]], %[[V]], %[[A]], %[[B]], %[[S]] : tensor<2x?x8xf32>, tensor<2x2x4x4xf32>
  %y0, %s0 = rwkv.wkv %r, %w, %k, %v, %a, %b, %s : tensor<2x?x8xf32>, tensor<2x2x4x4xf32>
  // CHECK: %[[Y1:.+]], %[[S1:.+]] = rwkv.wkv %[[R]], %[[W]], %[[K]], %[[V]], %[[A]], %[[B]], %[[S0]] : tensor<2x?x8xf32>, tensor<2x2x4x4xf32>
  %y1, %s1 = rwkv.wkv %r, %w, %k, %v, %a, %b, %s0 {mode = #rwkv<wkv_mode sequential>} : tensor<2x?x8xf32>, tensor<2x2x4x4xf32>
  // CHECK: %[[Y2:.+]], %[[S2:.+]] = rwkv.wkv %[[R]], %[[W]], %[[K]], %[[V]], %[[A]], %[[B]], %[[S1]] {chunk_length = 64 : i64, mode = #rwkv<wkv_mode chunked>} : tensor<2x?x8xf32>, tensor<2x2x4x4xf32>
  %y2, %s2 = rwkv.wkv %r, %w, %k, %v, %a, %b, %s1 {mode = #rwkv<wkv_mode chunked>, chunk_length = 64} : tensor<2x?x8xf32>, tensor<2x2x4x4xf32>
  // CHECK: %[[Y3:.+]], %[[S3:.+]] = rwkv.wkv %[[XD]], %[[XD]], %[[XD]], %[[XD]], %[[XD]], %[[XD]], %[[SD]] {mode = #rwkv<wkv_mode chunked>} : tensor<?x?x?xf32>, tensor<?x2x4x4xf32>
  %y3, %s3 = rwkv.wkv %xd, %xd, %xd, %xd, %xd, %xd, %sd {mode = #rwkv<wkv_mode chunked>} : tensor<?x?x?xf32>, tensor<?x2x4x4xf32>
  // CHECK: return %[[Y0]], %[[S0]], %[[Y1]], %[[S1]], %[[Y2]], %[[S2]], %[[Y3]], %[[S3]]
  return %y0, %s0, %y1, %s1, %y2, %s2, %y3, %s3
      : tensor<2x?x8xf32>, tensor<2x2x4x4xf32>, tensor<2x?x8xf32>, tensor<2x2x4x4xf32>,
        tensor<2x?x8xf32>, tensor<2x2x4x4xf32>, tensor<?x?x?xf32>, tensor<?x2x4x4xf32>
}

// CHECK-LABEL: func.func @group_norm
// CHECK-SAME:    (%[[X:.+]]: tensor<2x?x8xf32>, %[[W:.+]]: tensor<8xf16>, %[[B:.+]]: tensor<8xf16>)
func.func @group_norm(%x: tensor<2x?x8xf32>, %w: tensor<8xf16>, %b: tensor<8xf16>)
    -> (tensor<2x?x8xf32>, tensor<2x?x8xf32>) {
  // CHECK: %[[G0:.+]] = rwkv.group_norm %[[X]], %[[W]], %[[B]] {num_groups = 2 : i64} : tensor<2x?x8xf32>, tensor<8xf16> -> tensor<2x?x8xf32>
  %0 = rwkv.group_norm %x, %w, %b {num_groups = 2 : i64} : tensor<2x?x8xf32>, tensor<8xf16> -> tensor<2x?x8xf32>
  // CHECK: %[[G1:.+]] = rwkv.group_norm %[[X]], %[[W]], %[[B]] {epsilon = 9.99999974E-6 : f32, num_groups = 8 : i64} : tensor<2x?x8xf32>, tensor<8xf16> -> tensor<2x?x8xf32>
  %1 = rwkv.group_norm %x, %w, %b {num_groups = 8 : i64, epsilon = 1.0e-5 : f32} : tensor<2x?x8xf32>, tensor<8xf16> -> tensor<2x?x8xf32>
  // CHECK: return %[[G0]], %[[G1]]
  return %0, %1 : tensor<2x?x8xf32>, tensor<2x?x8xf32>
}

// CHECK-LABEL: func.func @head
// CHECK-SAME:    (%[[X:.+]]: tensor<2x?x8xf32>, %[[W:.+]]: tensor<32x8xbf16>, %[[X3:.+]]: tensor<3x5x8xf32>)
func.func @head(%x: tensor<2x?x8xf32>, %w: tensor<32x8xbf16>, %x3: tensor<3x5x8xf32>)
    -> (tensor<2x?x32xf32>, tensor<2x?x32xf32>, tensor<2x1x32xf32>, tensor<3x5x32xf32>, tensor<3x1x32xf32>) {
  // CHECK: %[[H0:.+]] = rwkv.head %[[X]], %[[W]] : tensor<2x?x8xf32>, tensor<32x8xbf16> -> tensor<2x?x32xf32>
  %0 = rwkv.head %x, %w : tensor<2x?x8xf32>, tensor<32x8xbf16> -> tensor<2x?x32xf32>
  // CHECK: %[[H1:.+]] = rwkv.head %[[X]], %[[W]] : tensor<2x?x8xf32>, tensor<32x8xbf16> -> tensor<2x?x32xf32>
  %1 = rwkv.head %x, %w {positions = #rwkv<positions all>} : tensor<2x?x8xf32>, tensor<32x8xbf16> -> tensor<2x?x32xf32>
  // CHECK: %[[H2:.+]] = rwkv.head %[[X]], %[[W]] {positions = #rwkv<positions last>} : tensor<2x?x8xf32>, tensor<32x8xbf16> -> tensor<2x1x32xf32>
  %2 = rwkv.head %x, %w {positions = #rwkv<positions last>} : tensor<2x?x8xf32>, tensor<32x8xbf16> -> tensor<2x1x32xf32>
  // CHECK: %[[H3:.+]] = rwkv.head %[[X3]], %[[W]] : tensor<3x5x8xf32>, tensor<32x8xbf16> -> tensor<3x5x32xf32>
  %3 = rwkv.head %x3, %w : tensor<3x5x8xf32>, tensor<32x8xbf16> -> tensor<3x5x32xf32>
  // CHECK: %[[H4:.+]] = rwkv.head %[[X3]], %[[W]] {positions = #rwkv<positions last>} : tensor<3x5x8xf32>, tensor<32x8xbf16> -> tensor<3x1x32xf32>
  %4 = rwkv.head %x3, %w {positions = #rwkv<positions last>} : tensor<3x5x8xf32>, tensor<32x8xbf16> -> tensor<3x1x32xf32>
  // CHECK: return %[[H0]], %[[H1]], %[[H2]], %[[H3]], %[[H4]]
  return %0, %1, %2, %3, %4 : tensor<2x?x32xf32>, tensor<2x?x32xf32>, tensor<2x1x32xf32>, tensor<3x5x32xf32>, tensor<3x1x32xf32>
}

// Layer 0: no v_first, no value_residual; the value projection is returned as
// v_first_out.
// CHECK-LABEL: func.func @time_mix_layer0
// CHECK-SAME:    (%[[X:[^:]+]]: tensor<2x?x8xf32>, %[[SH:[^:]+]]: tensor<2x8xf32>, %[[WKV:[^:]+]]: tensor<2x2x4x4xf32>, %[[VEC:[^:]+]]: tensor<8xbf16>, %[[W1:[^:]+]]: tensor<8x2xbf16>, %[[W2:[^:]+]]: tensor<2x8xbf16>, %[[A1:[^:]+]]: tensor<8x3xbf16>, %[[A2:[^:]+]]: tensor<3x8xbf16>, %[[G1:[^:]+]]: tensor<8x5xbf16>, %[[G2:[^:]+]]: tensor<5x8xbf16>, %[[P:[^:]+]]: tensor<8x8xbf16>)
func.func @time_mix_layer0(%x: tensor<2x?x8xf32>, %sh: tensor<2x8xf32>, %wkv: tensor<2x2x4x4xf32>,
                           %vec: tensor<8xbf16>, %w1: tensor<8x2xbf16>, %w2: tensor<2x8xbf16>,
                           %a1: tensor<8x3xbf16>, %a2: tensor<3x8xbf16>,
                           %g1: tensor<8x5xbf16>, %g2: tensor<5x8xbf16>, %p: tensor<8x8xbf16>)
    -> (tensor<2x?x8xf32>, tensor<2x8xf32>, tensor<2x2x4x4xf32>, tensor<2x?x8xf32>) {
  // CHECK:      %[[OUT:.+]], %[[NSH:.+]], %[[NWKV:.+]], %[[VF:.+]] = rwkv.time_mix %[[X]], %[[SH]], %[[WKV]]
  // CHECK-SAME:   lerp(%[[VEC]], %[[VEC]], %[[VEC]], %[[VEC]], %[[VEC]], %[[VEC]])
  // CHECK-SAME:   decay(%[[VEC]], %[[W1]], %[[W2]]) iclr(%[[VEC]], %[[A1]], %[[A2]])
  // CHECK-SAME:   gate(%[[G1]], %[[G2]]) key(%[[VEC]], %[[VEC]], %[[VEC]])
  // CHECK-SAME:   proj(%[[P]], %[[P]], %[[P]], %[[P]]) ln_x(%[[VEC]], %[[VEC]])
  // CHECK-SAME:   : (tensor<2x?x8xf32>, tensor<2x8xf32>, tensor<2x2x4x4xf32>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8x2xbf16>, tensor<2x8xbf16>, tensor<8xbf16>, tensor<8x3xbf16>, tensor<3x8xbf16>, tensor<8x5xbf16>, tensor<5x8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8xbf16>, tensor<8xbf16>)
  // CHECK-SAME:   -> (tensor<2x?x8xf32>, tensor<2x8xf32>, tensor<2x2x4x4xf32>, tensor<2x?x8xf32>)
  // CHECK-NOT:  v_first
  // CHECK-NOT:  value_residual
  // CHECK:      return %[[OUT]], %[[NSH]], %[[NWKV]], %[[VF]]
  %out, %nsh, %nwkv, %vf = rwkv.time_mix %x, %sh, %wkv
      lerp(%vec, %vec, %vec, %vec, %vec, %vec)
      decay(%vec, %w1, %w2) iclr(%vec, %a1, %a2)
      gate(%g1, %g2) key(%vec, %vec, %vec)
      proj(%p, %p, %p, %p) ln_x(%vec, %vec)
      : (tensor<2x?x8xf32>, tensor<2x8xf32>, tensor<2x2x4x4xf32>,
         tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>,
         tensor<8xbf16>, tensor<8x2xbf16>, tensor<2x8xbf16>,
         tensor<8xbf16>, tensor<8x3xbf16>, tensor<3x8xbf16>,
         tensor<8x5xbf16>, tensor<5x8xbf16>,
         tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>,
         tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>,
         tensor<8xbf16>, tensor<8xbf16>)
      -> (tensor<2x?x8xf32>, tensor<2x8xf32>, tensor<2x2x4x4xf32>, tensor<2x?x8xf32>)
  return %out, %nsh, %nwkv, %vf : tensor<2x?x8xf32>, tensor<2x8xf32>, tensor<2x2x4x4xf32>, tensor<2x?x8xf32>
}

// A later layer: v_first and value_residual, f16 weights, chunked WKV.
// CHECK-LABEL: func.func @time_mix_layer1
// CHECK-SAME:    (%[[X:[^:]+]]: tensor<2x?x8xf32>, %[[SH:[^:]+]]: tensor<2x8xf32>, %[[WKV:[^:]+]]: tensor<2x2x4x4xf32>, %[[VF0:[^:]+]]: tensor<2x?x8xf32>, %[[VEC:[^:]+]]: tensor<8xf16>, %[[D:[^:]+]]: tensor<8x4xf16>, %[[U:[^:]+]]: tensor<4x8xf16>, %[[P:[^:]+]]: tensor<8x8xf16>)
func.func @time_mix_layer1(%x: tensor<2x?x8xf32>, %sh: tensor<2x8xf32>, %wkv: tensor<2x2x4x4xf32>,
                           %vf0: tensor<2x?x8xf32>, %vec: tensor<8xf16>,
                           %d: tensor<8x4xf16>, %u: tensor<4x8xf16>, %p: tensor<8x8xf16>)
    -> (tensor<2x?x8xf32>, tensor<2x8xf32>, tensor<2x2x4x4xf32>, tensor<2x?x8xf32>) {
  // CHECK:      %[[OUT:.+]], %[[NSH:.+]], %[[NWKV:.+]], %[[VF:.+]] = rwkv.time_mix %[[X]], %[[SH]], %[[WKV]] v_first(%[[VF0]])
  // CHECK-SAME:   lerp(%[[VEC]], %[[VEC]], %[[VEC]], %[[VEC]], %[[VEC]], %[[VEC]])
  // CHECK-SAME:   decay(%[[VEC]], %[[D]], %[[U]]) iclr(%[[VEC]], %[[D]], %[[U]])
  // CHECK-SAME:   value_residual(%[[VEC]], %[[D]], %[[U]])
  // CHECK-SAME:   gate(%[[D]], %[[U]]) key(%[[VEC]], %[[VEC]], %[[VEC]])
  // CHECK-SAME:   proj(%[[P]], %[[P]], %[[P]], %[[P]]) ln_x(%[[VEC]], %[[VEC]])
  // CHECK-SAME:   {chunk_length = 32 : i64, mode = #rwkv<wkv_mode chunked>}
  // CHECK-SAME:   : (tensor<2x?x8xf32>, tensor<2x8xf32>, tensor<2x2x4x4xf32>, tensor<2x?x8xf32>, tensor<8xf16>, tensor<8xf16>, tensor<8xf16>, tensor<8xf16>, tensor<8xf16>, tensor<8xf16>, tensor<8xf16>, tensor<8x4xf16>, tensor<4x8xf16>, tensor<8xf16>, tensor<8x4xf16>, tensor<4x8xf16>, tensor<8xf16>, tensor<8x4xf16>, tensor<4x8xf16>, tensor<8x4xf16>, tensor<4x8xf16>, tensor<8xf16>, tensor<8xf16>, tensor<8xf16>, tensor<8x8xf16>, tensor<8x8xf16>, tensor<8x8xf16>, tensor<8x8xf16>, tensor<8xf16>, tensor<8xf16>)
  // CHECK-SAME:   -> (tensor<2x?x8xf32>, tensor<2x8xf32>, tensor<2x2x4x4xf32>, tensor<2x?x8xf32>)
  // CHECK:      return %[[OUT]], %[[NSH]], %[[NWKV]], %[[VF]]
  %out, %nsh, %nwkv, %vf = rwkv.time_mix %x, %sh, %wkv v_first(%vf0)
      lerp(%vec, %vec, %vec, %vec, %vec, %vec)
      decay(%vec, %d, %u) iclr(%vec, %d, %u) value_residual(%vec, %d, %u)
      gate(%d, %u) key(%vec, %vec, %vec)
      proj(%p, %p, %p, %p) ln_x(%vec, %vec) {mode = #rwkv<wkv_mode chunked>, chunk_length = 32 : i64}
      : (tensor<2x?x8xf32>, tensor<2x8xf32>, tensor<2x2x4x4xf32>, tensor<2x?x8xf32>,
         tensor<8xf16>, tensor<8xf16>, tensor<8xf16>, tensor<8xf16>, tensor<8xf16>, tensor<8xf16>,
         tensor<8xf16>, tensor<8x4xf16>, tensor<4x8xf16>,
         tensor<8xf16>, tensor<8x4xf16>, tensor<4x8xf16>,
         tensor<8xf16>, tensor<8x4xf16>, tensor<4x8xf16>,
         tensor<8x4xf16>, tensor<4x8xf16>,
         tensor<8xf16>, tensor<8xf16>, tensor<8xf16>,
         tensor<8x8xf16>, tensor<8x8xf16>, tensor<8x8xf16>, tensor<8x8xf16>,
         tensor<8xf16>, tensor<8xf16>)
      -> (tensor<2x?x8xf32>, tensor<2x8xf32>, tensor<2x2x4x4xf32>, tensor<2x?x8xf32>)
  return %out, %nsh, %nwkv, %vf : tensor<2x?x8xf32>, tensor<2x8xf32>, tensor<2x2x4x4xf32>, tensor<2x?x8xf32>
}

// Fully dynamic batch and sequence, f32 weights with dynamic LoRA ranks.
// CHECK-LABEL: func.func @time_mix_dynamic
// CHECK-SAME:    (%[[X:[^:]+]]: tensor<?x?x8xf32>, %[[SH:[^:]+]]: tensor<?x8xf32>, %[[WKV:[^:]+]]: tensor<?x2x4x4xf32>, %[[VF0:[^:]+]]: tensor<?x?x8xf32>, %[[VEC:[^:]+]]: tensor<8xf32>, %[[D:[^:]+]]: tensor<8x?xf32>, %[[U:[^:]+]]: tensor<?x8xf32>, %[[P:[^:]+]]: tensor<8x8xf32>)
func.func @time_mix_dynamic(%x: tensor<?x?x8xf32>, %sh: tensor<?x8xf32>, %wkv: tensor<?x2x4x4xf32>,
                            %vf0: tensor<?x?x8xf32>, %vec: tensor<8xf32>,
                            %d: tensor<8x?xf32>, %u: tensor<?x8xf32>, %p: tensor<8x8xf32>)
    -> (tensor<?x?x8xf32>, tensor<?x8xf32>, tensor<?x2x4x4xf32>, tensor<?x?x8xf32>) {
  // CHECK:      %[[OUT:.+]], %[[NSH:.+]], %[[NWKV:.+]], %[[VF:.+]] = rwkv.time_mix %[[X]], %[[SH]], %[[WKV]] v_first(%[[VF0]])
  // CHECK-SAME:   value_residual(%[[VEC]], %[[D]], %[[U]])
  // CHECK-SAME:   -> (tensor<?x?x8xf32>, tensor<?x8xf32>, tensor<?x2x4x4xf32>, tensor<?x?x8xf32>)
  // CHECK:      return %[[OUT]], %[[NSH]], %[[NWKV]], %[[VF]]
  %out, %nsh, %nwkv, %vf = rwkv.time_mix %x, %sh, %wkv v_first(%vf0)
      lerp(%vec, %vec, %vec, %vec, %vec, %vec)
      decay(%vec, %d, %u) iclr(%vec, %d, %u) value_residual(%vec, %d, %u)
      gate(%d, %u) key(%vec, %vec, %vec)
      proj(%p, %p, %p, %p) ln_x(%vec, %vec)
      : (tensor<?x?x8xf32>, tensor<?x8xf32>, tensor<?x2x4x4xf32>, tensor<?x?x8xf32>,
         tensor<8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<8xf32>,
         tensor<8xf32>, tensor<8x?xf32>, tensor<?x8xf32>,
         tensor<8xf32>, tensor<8x?xf32>, tensor<?x8xf32>,
         tensor<8xf32>, tensor<8x?xf32>, tensor<?x8xf32>,
         tensor<8x?xf32>, tensor<?x8xf32>,
         tensor<8xf32>, tensor<8xf32>, tensor<8xf32>,
         tensor<8x8xf32>, tensor<8x8xf32>, tensor<8x8xf32>, tensor<8x8xf32>,
         tensor<8xf32>, tensor<8xf32>)
      -> (tensor<?x?x8xf32>, tensor<?x8xf32>, tensor<?x2x4x4xf32>, tensor<?x?x8xf32>)
  return %out, %nsh, %nwkv, %vf : tensor<?x?x8xf32>, tensor<?x8xf32>, tensor<?x2x4x4xf32>, tensor<?x?x8xf32>
}

// CHECK-LABEL: func.func @channel_mix
// CHECK-SAME:    (%[[X:[^:]+]]: tensor<2x?x8xf32>, %[[SH:[^:]+]]: tensor<2x8xf32>, %[[MU:[^:]+]]: tensor<8xbf16>, %[[K:[^:]+]]: tensor<16x8xbf16>, %[[V:[^:]+]]: tensor<8x16xbf16>, %[[XD:[^:]+]]: tensor<?x?x8xf32>, %[[SHD:[^:]+]]: tensor<?x8xf32>, %[[MU32:[^:]+]]: tensor<8xf32>, %[[KD:[^:]+]]: tensor<?x8xf16>, %[[VD:[^:]+]]: tensor<8x?xf16>)
func.func @channel_mix(%x: tensor<2x?x8xf32>, %sh: tensor<2x8xf32>, %mu: tensor<8xbf16>,
                       %k: tensor<16x8xbf16>, %v: tensor<8x16xbf16>,
                       %xd: tensor<?x?x8xf32>, %shd: tensor<?x8xf32>, %mu32: tensor<8xf32>,
                       %kd: tensor<?x8xf16>, %vd: tensor<8x?xf16>)
    -> (tensor<2x?x8xf32>, tensor<2x8xf32>, tensor<?x?x8xf32>, tensor<?x8xf32>) {
  // CHECK: %[[O0:.+]], %[[S0:.+]] = rwkv.channel_mix %[[X]], %[[SH]] lerp(%[[MU]]) proj(%[[K]], %[[V]]) : (tensor<2x?x8xf32>, tensor<2x8xf32>, tensor<8xbf16>, tensor<16x8xbf16>, tensor<8x16xbf16>) -> (tensor<2x?x8xf32>, tensor<2x8xf32>)
  %o0, %s0 = rwkv.channel_mix %x, %sh lerp(%mu) proj(%k, %v)
      : (tensor<2x?x8xf32>, tensor<2x8xf32>, tensor<8xbf16>, tensor<16x8xbf16>, tensor<8x16xbf16>)
      -> (tensor<2x?x8xf32>, tensor<2x8xf32>)
  // CHECK: %[[O1:.+]], %[[S1:.+]] = rwkv.channel_mix %[[XD]], %[[SHD]] lerp(%[[MU32]]) proj(%[[KD]], %[[VD]]) : (tensor<?x?x8xf32>, tensor<?x8xf32>, tensor<8xf32>, tensor<?x8xf16>, tensor<8x?xf16>) -> (tensor<?x?x8xf32>, tensor<?x8xf32>)
  %o1, %s1 = rwkv.channel_mix %xd, %shd lerp(%mu32) proj(%kd, %vd)
      : (tensor<?x?x8xf32>, tensor<?x8xf32>, tensor<8xf32>, tensor<?x8xf16>, tensor<8x?xf16>)
      -> (tensor<?x?x8xf32>, tensor<?x8xf32>)
  // CHECK: return %[[O0]], %[[S0]], %[[O1]], %[[S1]]
  return %o0, %s0, %o1, %s1 : tensor<2x?x8xf32>, tensor<2x8xf32>, tensor<?x?x8xf32>, tensor<?x8xf32>
}

// CHECK-LABEL: func.func @block
// CHECK-SAME:    (%[[X:[^:]+]]: tensor<2x?x8xf32>, %[[MU:[^:]+]]: tensor<8xbf16>, %[[PREV:[^:]+]]: tensor<2x8xf32>)
func.func @block(%x: tensor<2x?x8xf32>, %mu: tensor<8xbf16>, %prev: tensor<2x8xf32>)
    -> (tensor<2x?x8xf32>, tensor<2x8xf32>) {
  // CHECK: %[[R:.+]]:2 = rwkv.block layer 3 -> (tensor<2x?x8xf32>, tensor<2x8xf32>) {
  // CHECK:   %[[S:.+]], %[[L:.+]] = rwkv.token_shift %[[X]], %[[PREV]]
  // CHECK:   %[[M:.+]] = rwkv.mix %[[X]], %[[S]], %[[MU]]
  // CHECK:   rwkv.yield %[[M]], %[[L]] : tensor<2x?x8xf32>, tensor<2x8xf32>
  // CHECK: }
  %r:2 = rwkv.block layer 3 -> (tensor<2x?x8xf32>, tensor<2x8xf32>) {
    %s, %l = rwkv.token_shift %x, %prev : tensor<2x?x8xf32>, tensor<2x8xf32>
    %m = rwkv.mix %x, %s, %mu : tensor<2x?x8xf32>, tensor<8xbf16> -> tensor<2x?x8xf32>
    rwkv.yield %m, %l : tensor<2x?x8xf32>, tensor<2x8xf32>
  }
  // A block without results; the empty terminator is implicit and elided.
  // CHECK: rwkv.block layer 0 {
  // CHECK-NEXT: }
  rwkv.block layer 0 {
    rwkv.yield
  }
  // A block with a discardable attribute.
  // CHECK: rwkv.block layer 1 {
  // CHECK-NEXT: } {rwkv.tag = "x"}
  rwkv.block layer 1 {
  } {rwkv.tag = "x"}
  // CHECK: return %[[R]]#0, %[[R]]#1
  return %r#0, %r#1 : tensor<2x?x8xf32>, tensor<2x8xf32>
}

// Nested blocks are allowed.
// CHECK-LABEL: func.func @nested_block
// CHECK-SAME:    (%[[X:[^:]+]]: tensor<1x1x8xf32>)
func.func @nested_block(%x: tensor<1x1x8xf32>) -> tensor<1x1x8xf32> {
  // CHECK: %[[OUTER:.+]] = rwkv.block layer 0 -> (tensor<1x1x8xf32>) {
  // CHECK:   %[[INNER:.+]] = rwkv.block layer 1 -> (tensor<1x1x8xf32>) {
  // CHECK:     rwkv.yield %[[X]] : tensor<1x1x8xf32>
  // CHECK:   }
  // CHECK:   rwkv.yield %[[INNER]] : tensor<1x1x8xf32>
  // CHECK: }
  %0 = rwkv.block layer 0 -> (tensor<1x1x8xf32>) {
    %1 = rwkv.block layer 1 -> (tensor<1x1x8xf32>) {
      rwkv.yield %x : tensor<1x1x8xf32>
    }
    rwkv.yield %1 : tensor<1x1x8xf32>
  }
  // CHECK: return %[[OUTER]]
  return %0 : tensor<1x1x8xf32>
}

}

// RWKV-4's WKV: per-channel w and u, the (aa, bb, pp) state per row.
// CHECK-LABEL: func.func @wkv4
// CHECK-SAME:    (%[[W:.+]]: tensor<8xf32>, %[[K:.+]]: tensor<2x?x8xf32>, %[[S:.+]]: tensor<2x8xf32>)
func.func @wkv4(%w: tensor<8xf32>, %k: tensor<2x?x8xf32>, %s: tensor<2x8xf32>)
    -> (tensor<2x?x8xf32>, tensor<2x8xf32>, tensor<2x8xf32>, tensor<2x8xf32>) {
  // CHECK: rwkv.wkv4 %[[W]], %[[W]], %[[K]], %[[K]], %[[S]], %[[S]], %[[S]] : tensor<8xf32>, tensor<2x?x8xf32>, tensor<2x8xf32>
  %y, %aa, %bb, %pp = rwkv.wkv4 %w, %w, %k, %k, %s, %s, %s : tensor<8xf32>, tensor<2x?x8xf32>, tensor<2x8xf32>
  return %y, %aa, %bb, %pp : tensor<2x?x8xf32>, tensor<2x8xf32>, tensor<2x8xf32>, tensor<2x8xf32>
}

// RWKV-5 (static [C] decay) and RWKV-6 (per-token decay) share rwkv.wkv5.
// CHECK-LABEL: func.func @wkv5
// CHECK-SAME:    (%[[X:.+]]: tensor<2x?x8xf32>, %[[D:.+]]: tensor<8xf32>, %[[S:.+]]: tensor<2x2x4x4xf32>)
func.func @wkv5(%x: tensor<2x?x8xf32>, %d: tensor<8xf32>, %s: tensor<2x2x4x4xf32>)
    -> (tensor<2x?x8xf32>, tensor<2x2x4x4xf32>, tensor<2x?x8xf32>, tensor<2x2x4x4xf32>) {
  // CHECK: rwkv.wkv5 %[[X]], %[[D]], %[[X]], %[[X]], %[[D]], %[[S]] : tensor<2x?x8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<2x2x4x4xf32>
  %y5, %s5 = rwkv.wkv5 %x, %d, %x, %x, %d, %s : tensor<2x?x8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<2x2x4x4xf32>
  // CHECK: rwkv.wkv5 %[[X]], %[[X]], %[[X]], %[[X]], %[[D]], %[[S]] : tensor<2x?x8xf32>, tensor<2x?x8xf32>, tensor<8xf32>, tensor<2x2x4x4xf32>
  %y6, %s6 = rwkv.wkv5 %x, %x, %x, %x, %d, %s : tensor<2x?x8xf32>, tensor<2x?x8xf32>, tensor<8xf32>, tensor<2x2x4x4xf32>
  return %y5, %s5, %y6, %s6 : tensor<2x?x8xf32>, tensor<2x2x4x4xf32>, tensor<2x?x8xf32>, tensor<2x2x4x4xf32>
}

// Configs of RWKV-4 (no heads, no LoRAs) and RWKV-5 (no LoRAs).
// CHECK-LABEL: func.func @config_v4
// CHECK-SAME:    version = 4, n_layer = 2, n_embd = 8, n_head = 0, head_size = 0
func.func @config_v4() attributes {rwkv.config = #rwkv.config<version = 4, n_layer = 2, n_embd = 8, n_head = 0, head_size = 0, dim_ffn = 32, vocab_size = 32, lora_w = 0, lora_a = 0, lora_v = 0, lora_g = 0>} {
  return
}
// CHECK-LABEL: func.func @config_v5
// CHECK-SAME:    version = 5, n_layer = 2, n_embd = 8, n_head = 2, head_size = 4
func.func @config_v5() attributes {rwkv.config = #rwkv.config<version = 5, n_layer = 2, n_embd = 8, n_head = 2, head_size = 4, dim_ffn = 28, vocab_size = 32, lora_w = 0, lora_a = 0, lora_v = 0, lora_g = 0>} {
  return
}

// -----

// rwkv.model: a whole model, its config and entry points.

// CHECK-LABEL: rwkv.model @tiny config = #rwkv.config<version = 7, n_layer = 1, n_embd = 8, n_head = 2, head_size = 4, dim_ffn = 32, vocab_size = 16, lora_w = 2, lora_a = 2, lora_v = 2, lora_g = 2> {
// CHECK:         func.func @rwkv_step(%{{.+}}: tensor<1x?xi32>, %{{.+}}: tensor<1x8xf32> {rwkv.state = "att_shift:0"}, %{{.+}}: tensor<1x2x4x4xf32> {rwkv.state = "wkv:0"})
rwkv.model @tiny config = #rwkv.config<version = 7, n_layer = 1, n_embd = 8, n_head = 2, head_size = 4, dim_ffn = 32, vocab_size = 16, lora_w = 2, lora_a = 2, lora_v = 2, lora_g = 2> {
  func.func @rwkv_step(%t: tensor<1x?xi32>, %a: tensor<1x8xf32> {rwkv.state = "att_shift:0"}, %s: tensor<1x2x4x4xf32> {rwkv.state = "wkv:0"}) -> tensor<1x2x4x4xf32> {
    return %s : tensor<1x2x4x4xf32>
  }

}

// -----

// rwkv.x86.dpbusd: four byte products per i32 lane (vpdpbusd).

// CHECK-LABEL: func.func @x86_dpbusd
// CHECK:         rwkv.x86.dpbusd %{{.+}}, %{{.+}}, %{{.+}} : vector<64xi8> -> vector<16xi32>
// CHECK:         rwkv.x86.dpbusd %{{.+}}, %{{.+}}, %{{.+}} : vector<32xi8> -> vector<8xi32>
func.func @x86_dpbusd(%acc: vector<16xi32>, %a: vector<64xi8>, %b: vector<64xi8>,
                      %acc8: vector<8xi32>, %a8: vector<32xi8>) -> (vector<16xi32>, vector<8xi32>) {
  %d = rwkv.x86.dpbusd %acc, %a, %b : vector<64xi8> -> vector<16xi32>
  %e = rwkv.x86.dpbusd %acc8, %a8, %a8 : vector<32xi8> -> vector<8xi32>
  return %d, %e : vector<16xi32>, vector<8xi32>
}
