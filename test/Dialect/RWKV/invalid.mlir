// RUN: rwkv-opt %s -split-input-file -verify-diagnostics

// One case per diagnostic of dialect/RWKVOps.cpp and ModelConfigAttr::verify
// (dialect/RWKVDialect.cpp), plus the ODS-generated constraints that matter
// and a few malformed-syntax cases. Shapes: C = 8, H = 2, N = 4 unless noted.

// expected-error @+1 {{unsupported RWKV version 3 (expected 4..7)}}
func.func @config_version() attributes {rwkv.config = #rwkv.config<version = 3, n_layer = 2, n_embd = 8, n_head = 2, head_size = 4, dim_ffn = 16, vocab_size = 32, lora_w = 2, lora_a = 2, lora_v = 2, lora_g = 2>} {
  return
}

// -----

// expected-error @+1 {{unsupported RWKV version 8 (expected 4..7)}}
func.func @config_version_high() attributes {rwkv.config = #rwkv.config<version = 8, n_layer = 2, n_embd = 8, n_head = 2, head_size = 4, dim_ffn = 16, vocab_size = 32, lora_w = 2, lora_a = 2, lora_v = 2, lora_g = 2>} {
  return
}

// -----

// expected-error @+1 {{n_layer must be positive, got 0}}
func.func @config_n_layer() attributes {rwkv.config = #rwkv.config<version = 7, n_layer = 0, n_embd = 8, n_head = 2, head_size = 4, dim_ffn = 16, vocab_size = 32, lora_w = 2, lora_a = 2, lora_v = 2, lora_g = 2>} {
  return
}

// -----

// expected-error @+1 {{n_embd must be positive, got -8}}
func.func @config_n_embd() attributes {rwkv.config = #rwkv.config<version = 7, n_layer = 2, n_embd = -8, n_head = 2, head_size = 4, dim_ffn = 16, vocab_size = 32, lora_w = 2, lora_a = 2, lora_v = 2, lora_g = 2>} {
  return
}

// -----

// expected-error @+1 {{n_head must be positive, got 0}}
func.func @config_n_head() attributes {rwkv.config = #rwkv.config<version = 7, n_layer = 2, n_embd = 8, n_head = 0, head_size = 4, dim_ffn = 16, vocab_size = 32, lora_w = 2, lora_a = 2, lora_v = 2, lora_g = 2>} {
  return
}

// -----

// expected-error @+1 {{head_size must be positive, got 0}}
func.func @config_head_size() attributes {rwkv.config = #rwkv.config<version = 7, n_layer = 2, n_embd = 8, n_head = 2, head_size = 0, dim_ffn = 16, vocab_size = 32, lora_w = 2, lora_a = 2, lora_v = 2, lora_g = 2>} {
  return
}

// -----

// expected-error @+1 {{dim_ffn must be positive, got 0}}
func.func @config_dim_ffn() attributes {rwkv.config = #rwkv.config<version = 7, n_layer = 2, n_embd = 8, n_head = 2, head_size = 4, dim_ffn = 0, vocab_size = 32, lora_w = 2, lora_a = 2, lora_v = 2, lora_g = 2>} {
  return
}

// -----

// expected-error @+1 {{vocab_size must be positive, got 0}}
func.func @config_vocab() attributes {rwkv.config = #rwkv.config<version = 7, n_layer = 2, n_embd = 8, n_head = 2, head_size = 4, dim_ffn = 16, vocab_size = 0, lora_w = 2, lora_a = 2, lora_v = 2, lora_g = 2>} {
  return
}

// -----

// expected-error @+1 {{lora_w must be positive, got 0}}
func.func @config_lora_w() attributes {rwkv.config = #rwkv.config<version = 7, n_layer = 2, n_embd = 8, n_head = 2, head_size = 4, dim_ffn = 16, vocab_size = 32, lora_w = 0, lora_a = 2, lora_v = 2, lora_g = 2>} {
  return
}

// -----

// expected-error @+1 {{lora_a must be positive, got 0}}
func.func @config_lora_a() attributes {rwkv.config = #rwkv.config<version = 7, n_layer = 2, n_embd = 8, n_head = 2, head_size = 4, dim_ffn = 16, vocab_size = 32, lora_w = 2, lora_a = 0, lora_v = 2, lora_g = 2>} {
  return
}

// -----

// expected-error @+1 {{lora_v must be positive, got -1}}
func.func @config_lora_v() attributes {rwkv.config = #rwkv.config<version = 7, n_layer = 2, n_embd = 8, n_head = 2, head_size = 4, dim_ffn = 16, vocab_size = 32, lora_w = 2, lora_a = 2, lora_v = -1, lora_g = 2>} {
  return
}

// -----

// expected-error @+1 {{lora_g must be positive, got 0}}
func.func @config_lora_g() attributes {rwkv.config = #rwkv.config<version = 7, n_layer = 2, n_embd = 8, n_head = 2, head_size = 4, dim_ffn = 16, vocab_size = 32, lora_w = 2, lora_a = 2, lora_v = 2, lora_g = 0>} {
  return
}

// -----

// expected-error @+1 {{n_head * head_size (3 * 4) must equal n_embd (8)}}
func.func @config_heads() attributes {rwkv.config = #rwkv.config<version = 7, n_layer = 2, n_embd = 8, n_head = 3, head_size = 4, dim_ffn = 16, vocab_size = 32, lora_w = 2, lora_a = 2, lora_v = 2, lora_g = 2>} {
  return
}

// -----

// A missing parameter is a parse error of the struct format.
// expected-error @+1 {{expected ','}}
func.func @config_missing() attributes {rwkv.config = #rwkv.config<version = 7, n_layer = 2, n_embd = 8, n_head = 2, head_size = 4, dim_ffn = 16, vocab_size = 32, lora_w = 2, lora_a = 2, lora_v = 2>} {
  return
}

// -----

func.func @unknown_wkv_mode(%x: tensor<2x3x8xf32>, %s: tensor<2x2x4x4xf32>) {
  // expected-error @+2 {{expected ::mlir::rwkv::WKVMode to be one of: sequential, chunked}}
  // expected-error @+1 {{failed to parse RWKV_WKVModeAttr parameter 'value'}}
  %y, %ns = rwkv.wkv %x, %x, %x, %x, %x, %x, %s {mode = #rwkv<wkv_mode parallel>} : tensor<2x3x8xf32>, tensor<2x2x4x4xf32>
  return
}

// -----

func.func @unknown_activation(%x: tensor<2x3x8xf32>, %d: tensor<8x2xf32>, %u: tensor<2x8xf32>) {
  // expected-error @+2 {{expected ::mlir::rwkv::ActivationKind to be one of: none, tanh, sigmoid}}
  // expected-error @+1 {{failed to parse RWKV_ActivationKindAttr parameter 'value'}}
  %y = rwkv.lora %x, %d, %u {activation = #rwkv<activation relu>} : tensor<2x3x8xf32>, tensor<8x2xf32>, tensor<2x8xf32> -> tensor<2x3x8xf32>
  return
}

// -----

func.func @unknown_positions(%x: tensor<2x3x8xf32>, %w: tensor<32x8xf32>) {
  // expected-error @+2 {{expected ::mlir::rwkv::HeadPositions to be one of: all, last}}
  // expected-error @+1 {{failed to parse RWKV_HeadPositionsAttr parameter 'value'}}
  %y = rwkv.head %x, %w {positions = #rwkv<positions first>} : tensor<2x3x8xf32>, tensor<32x8xf32> -> tensor<2x1x32xf32>
  return
}

// -----

func.func @wrong_attr_kind(%x: tensor<2x3x8xf32>, %s: tensor<2x2x4x4xf32>) {
  // expected-error @+1 {{'rwkv.wkv' op attribute 'mode' failed to satisfy constraint: how the WKV recurrence is evaluated}}
  %y, %ns = rwkv.wkv %x, %x, %x, %x, %x, %x, %s {mode = #rwkv<activation tanh>} : tensor<2x3x8xf32>, tensor<2x2x4x4xf32>
  return
}

// -----

// expected-error @+1 {{unknown attribute `tile` in dialect `rwkv`}}
func.func @unknown_rwkv_attr() attributes {a = #rwkv.tile<1>} {
  return
}

// -----

// expected-error @+1 {{expected '>'}}
func.func @config_extra() attributes {rwkv.config = #rwkv.config<version = 7, n_layer = 2, n_embd = 8, n_head = 2, head_size = 4, dim_ffn = 16, vocab_size = 32, lora_w = 2, lora_a = 2, lora_v = 2, lora_g = 2, bogus = 3>} {
  return
}

// -----

func.func @time_mix_missing_group(%x: tensor<2x3x8xf32>) {
  // expected-error @+1 {{expected 'lerp'}}
  %0:4 = rwkv.time_mix %x, %x, %x decay(%x, %x, %x)
  return
}

// -----

func.func @channel_mix_missing_proj(%x: tensor<2x3x8xf32>, %s: tensor<2x8xf32>, %mu: tensor<8xf32>) {
  // expected-error @+1 {{expected 'proj'}}
  %0:2 = rwkv.channel_mix %x, %s lerp(%mu) : (tensor<2x3x8xf32>, tensor<2x8xf32>, tensor<8xf32>) -> (tensor<2x3x8xf32>, tensor<2x8xf32>)
  return
}

// -----

func.func @block_missing_layer() {
  // expected-error @+1 {{expected 'layer'}}
  rwkv.block {
  }
  return
}

// -----

func.func @wkv_state_bf16(%x: tensor<2x3x8xf32>, %s: tensor<2x2x4x4xbf16>) {
  // expected-error @+1 {{'rwkv.wkv' op operand #6 must be ranked tensor of 32-bit float values, but got 'tensor<2x2x4x4xbf16>'}}
  %y, %ns = rwkv.wkv %x, %x, %x, %x, %x, %x, %s : tensor<2x3x8xf32>, tensor<2x2x4x4xbf16>
  return
}

// -----

func.func @activation_bf16(%x: tensor<2x3x8xbf16>, %w: tensor<8x8xbf16>) {
  // expected-error @+1 {{'rwkv.linear' op operand #0 must be ranked tensor of 32-bit float values, but got 'tensor<2x3x8xbf16>'}}
  %y = rwkv.linear %x, %w : tensor<2x3x8xbf16>, tensor<8x8xbf16> -> tensor<2x3x8xf32>
  return
}

// -----

func.func @activation_unranked(%x: tensor<*xf32>, %w: tensor<8x8xbf16>) {
  // expected-error @+1 {{'rwkv.linear' op operand #0 must be ranked tensor of 32-bit float values, but got 'tensor<*xf32>'}}
  %y = "rwkv.linear"(%x, %w) : (tensor<*xf32>, tensor<8x8xbf16>) -> tensor<2x3x8xf32>
  return
}

// -----

func.func @activation_unranked_custom(%x: tensor<*xf32>, %w: tensor<8x8xbf16>) {
  // expected-error @+1 {{invalid kind of type specified: expected builtin.tensor, but found 'tensor<*xf32>'}}
  %y = rwkv.linear %x, %w : tensor<*xf32>, tensor<8x8xbf16> -> tensor<2x3x8xf32>
  return
}

// -----

func.func @weight_f64(%x: tensor<2x3x8xf32>, %w: tensor<8x8xf64>) {
  // expected-error @+1 {{'rwkv.linear' op operand #1 must be ranked tensor of 32-bit float or 16-bit float or bfloat16 type or 8-bit signless integer values, but got 'tensor<8x8xf64>'}}
  %y = rwkv.linear %x, %w : tensor<2x3x8xf32>, tensor<8x8xf64> -> tensor<2x3x8xf32>
  return
}

// -----

func.func @result_f16(%x: tensor<2x3x8xf32>, %w: tensor<8x8xf16>) {
  // expected-error @+1 {{'rwkv.linear' op result #0 must be ranked tensor of 32-bit float values, but got 'tensor<2x3x8xf16>'}}
  %y = rwkv.linear %x, %w : tensor<2x3x8xf32>, tensor<8x8xf16> -> tensor<2x3x8xf16>
  return
}

// -----

func.func @embed_float_ids(%t: tensor<32x8xbf16>, %ids: tensor<2x3xf32>) {
  // expected-error @+1 {{'rwkv.embed' op operand #1 must be ranked tensor of 32-bit signless integer or 64-bit signless integer values, but got 'tensor<2x3xf32>'}}
  %y = rwkv.embed %t, %ids : tensor<32x8xbf16>, tensor<2x3xf32> -> tensor<2x3x8xf32>
  return
}

// -----

func.func @time_mix_state_f16(%x: tensor<2x3x8xf32>, %s: tensor<2x8xf16>) {
  // expected-error @+1 {{'rwkv.token_shift' op operand #1 must be ranked tensor of 32-bit float values, but got 'tensor<2x8xf16>'}}
  %a, %b = rwkv.token_shift %x, %s : tensor<2x3x8xf32>, tensor<2x8xf16>
  return
}

// -----

func.func @layer_norm_weight_bias_types(%x: tensor<2x3x8xf32>, %w: tensor<8xbf16>, %b: tensor<8xf16>) {
  // expected-error @+1 {{'rwkv.layer_norm' op failed to verify that all of {weight, bias} have same type}}
  %y = "rwkv.layer_norm"(%x, %w, %b) : (tensor<2x3x8xf32>, tensor<8xbf16>, tensor<8xf16>) -> tensor<2x3x8xf32>
  return
}

// -----

func.func @group_norm_weight_bias_types(%x: tensor<2x3x8xf32>, %w: tensor<8xbf16>, %b: tensor<4xbf16>) {
  // expected-error @+1 {{'rwkv.group_norm' op failed to verify that all of {weight, bias} have same type}}
  %y = "rwkv.group_norm"(%x, %w, %b) <{num_groups = 2 : i64}> : (tensor<2x3x8xf32>, tensor<8xbf16>, tensor<4xbf16>) -> tensor<2x3x8xf32>
  return
}

// -----

func.func @token_shift_shifted_type(%x: tensor<2x3x8xf32>, %s: tensor<2x8xf32>) {
  // expected-error @+1 {{'rwkv.token_shift' op failed to verify that all of {input, shifted} have same type}}
  %a, %b = "rwkv.token_shift"(%x, %s) : (tensor<2x3x8xf32>, tensor<2x8xf32>) -> (tensor<2x4x8xf32>, tensor<2x8xf32>)
  return
}

// -----

func.func @token_shift_last_type(%x: tensor<2x3x8xf32>, %s: tensor<2x8xf32>) {
  // expected-error @+1 {{'rwkv.token_shift' op failed to verify that all of {prev, last} have same type}}
  %a, %b = "rwkv.token_shift"(%x, %s) : (tensor<2x3x8xf32>, tensor<2x8xf32>) -> (tensor<2x3x8xf32>, tensor<2x?xf32>)
  return
}

// -----

func.func @mix_shifted_type(%x: tensor<2x3x8xf32>, %s: tensor<2x?x8xf32>, %mu: tensor<8xf32>) {
  // expected-error @+1 {{'rwkv.mix' op failed to verify that all of {input, shifted} have same type}}
  %y = "rwkv.mix"(%x, %s, %mu) : (tensor<2x3x8xf32>, tensor<2x?x8xf32>, tensor<8xf32>) -> tensor<2x3x8xf32>
  return
}

// -----

func.func @wkv_operand_types(%x: tensor<2x3x8xf32>, %k: tensor<2x1x8xf32>, %s: tensor<2x2x4x4xf32>) {
  // expected-error @+1 {{'rwkv.wkv' op failed to verify that all of {r, w, k, v, a, b, y} have same type}}
  %y, %ns = "rwkv.wkv"(%x, %x, %k, %x, %x, %x, %s) : (tensor<2x3x8xf32>, tensor<2x3x8xf32>, tensor<2x1x8xf32>, tensor<2x3x8xf32>, tensor<2x3x8xf32>, tensor<2x3x8xf32>, tensor<2x2x4x4xf32>) -> (tensor<2x3x8xf32>, tensor<2x2x4x4xf32>)
  return
}

// -----

func.func @wkv_new_state_type(%x: tensor<2x3x8xf32>, %s: tensor<2x2x4x4xf32>) {
  // expected-error @+1 {{'rwkv.wkv' op failed to verify that all of {state, new_state} have same type}}
  %y, %ns = "rwkv.wkv"(%x, %x, %x, %x, %x, %x, %s) : (tensor<2x3x8xf32>, tensor<2x3x8xf32>, tensor<2x3x8xf32>, tensor<2x3x8xf32>, tensor<2x3x8xf32>, tensor<2x3x8xf32>, tensor<2x2x4x4xf32>) -> (tensor<2x3x8xf32>, tensor<1x2x4x4xf32>)
  return
}

// -----

func.func @l2_normalize_missing_heads(%x: tensor<2x3x8xf32>) {
  // expected-error @+1 {{'rwkv.l2_normalize' op requires attribute 'num_heads'}}
  %y = rwkv.l2_normalize %x : tensor<2x3x8xf32> -> tensor<2x3x8xf32>
  return
}

// -----

func.func @group_norm_missing_groups(%x: tensor<2x3x8xf32>, %w: tensor<8xf32>) {
  // expected-error @+1 {{'rwkv.group_norm' op requires attribute 'num_groups'}}
  %y = rwkv.group_norm %x, %w, %w : tensor<2x3x8xf32>, tensor<8xf32> -> tensor<2x3x8xf32>
  return
}

// -----

func.func @chunk_length_type(%x: tensor<2x3x8xf32>, %s: tensor<2x2x4x4xf32>) {
  // expected-error @+1 {{'rwkv.wkv' op attribute 'chunk_length' failed to satisfy constraint: 64-bit signless integer attribute}}
  %y, %ns = rwkv.wkv %x, %x, %x, %x, %x, %x, %s {chunk_length = 16 : i32} : tensor<2x3x8xf32>, tensor<2x2x4x4xf32>
  return
}

// -----

func.func @epsilon_type(%x: tensor<2x3x8xf32>, %w: tensor<8xf32>) {
  // expected-error @+1 {{'rwkv.layer_norm' op attribute 'epsilon' failed to satisfy constraint: 32-bit float attribute}}
  %y = rwkv.layer_norm %x, %w, %w {epsilon = 1.0e-5 : f64} : tensor<2x3x8xf32>, tensor<8xf32> -> tensor<2x3x8xf32>
  return
}

// -----

func.func @yield_outside_block(%x: tensor<2x3x8xf32>) {
  // expected-error @+1 {{'rwkv.yield' op expects parent op 'rwkv.block'}}
  rwkv.yield %x : tensor<2x3x8xf32>
}

// -----

func.func @embed_table_rank(%t: tensor<32x8x1xbf16>, %ids: tensor<2x3xi32>) {
  // expected-error @+1 {{'rwkv.embed' op 'table' must have rank 2 [V, C], got [32, 8, 1]}}
  %y = rwkv.embed %t, %ids : tensor<32x8x1xbf16>, tensor<2x3xi32> -> tensor<2x3x8xf32>
  return
}

// -----

func.func @embed_tokens_rank(%t: tensor<32x8xbf16>, %ids: tensor<3xi32>) {
  // expected-error @+1 {{'rwkv.embed' op 'tokens' must have rank 2 [B, T], got [3]}}
  %y = rwkv.embed %t, %ids : tensor<32x8xbf16>, tensor<3xi32> -> tensor<2x3x8xf32>
  return
}

// -----

func.func @embed_result(%t: tensor<32x8xbf16>, %ids: tensor<2x?xi32>) {
  // expected-error @+1 {{'rwkv.embed' op 'result' has shape [2, ?, 16] but expected [2, ?, 8]}}
  %y = rwkv.embed %t, %ids : tensor<32x8xbf16>, tensor<2x?xi32> -> tensor<2x?x16xf32>
  return
}

// -----

func.func @embed_result_batch(%t: tensor<32x8xbf16>, %ids: tensor<2x3xi32>) {
  // expected-error @+1 {{'rwkv.embed' op 'result' has shape [1, 3, 8] but expected [2, 3, 8]}}
  %y = rwkv.embed %t, %ids : tensor<32x8xbf16>, tensor<2x3xi32> -> tensor<1x3x8xf32>
  return
}

// -----

func.func @layer_norm_rank0(%x: tensor<f32>, %w: tensor<8xf32>) {
  // expected-error @+1 {{'rwkv.layer_norm' op 'input' must have rank >= 1}}
  %y = rwkv.layer_norm %x, %w, %w : tensor<f32>, tensor<8xf32> -> tensor<f32>
  return
}

// -----

func.func @layer_norm_weight(%x: tensor<2x3x8xf32>, %w: tensor<4xf32>) {
  // expected-error @+1 {{'rwkv.layer_norm' op 'weight' has shape [4] but expected [8]}}
  %y = rwkv.layer_norm %x, %w, %w : tensor<2x3x8xf32>, tensor<4xf32> -> tensor<2x3x8xf32>
  return
}

// -----

func.func @layer_norm_weight_rank(%x: tensor<2x3x8xf32>, %w: tensor<1x8xf32>) {
  // expected-error @+1 {{'rwkv.layer_norm' op 'weight' has shape [1, 8] but expected [8]}}
  %y = rwkv.layer_norm %x, %w, %w : tensor<2x3x8xf32>, tensor<1x8xf32> -> tensor<2x3x8xf32>
  return
}

// -----

func.func @layer_norm_epsilon_zero(%x: tensor<2x3x8xf32>, %w: tensor<8xf32>) {
  // expected-error @+1 {{'rwkv.layer_norm' op epsilon must be positive}}
  %y = rwkv.layer_norm %x, %w, %w {epsilon = 0.0 : f32} : tensor<2x3x8xf32>, tensor<8xf32> -> tensor<2x3x8xf32>
  return
}

// -----

func.func @layer_norm_epsilon_negative(%x: tensor<2x3x8xf32>, %w: tensor<8xf32>) {
  // expected-error @+1 {{'rwkv.layer_norm' op epsilon must be positive}}
  %y = rwkv.layer_norm %x, %w, %w {epsilon = -1.0e-5 : f32} : tensor<2x3x8xf32>, tensor<8xf32> -> tensor<2x3x8xf32>
  return
}

// -----

func.func @layer_norm_result(%x: tensor<2x3x8xf32>, %w: tensor<8xf32>) {
  // expected-error @+1 {{'rwkv.layer_norm' op 'result' has shape [2, 4, 8] but expected [2, 3, 8]}}
  %y = rwkv.layer_norm %x, %w, %w : tensor<2x3x8xf32>, tensor<8xf32> -> tensor<2x4x8xf32>
  return
}

// -----

func.func @token_shift_rank(%x: tensor<3x8xf32>, %s: tensor<3x8xf32>) {
  // expected-error @+1 {{'rwkv.token_shift' op 'input' must have rank 3 [B, T, C], got [3, 8]}}
  %a, %b = rwkv.token_shift %x, %s : tensor<3x8xf32>, tensor<3x8xf32>
  return
}

// -----

func.func @token_shift_empty_sequence(%x: tensor<2x0x8xf32>, %s: tensor<2x8xf32>) {
  // expected-error @+1 {{'rwkv.token_shift' op sequence length must be at least 1}}
  %a, %b = rwkv.token_shift %x, %s : tensor<2x0x8xf32>, tensor<2x8xf32>
  return
}

// -----

func.func @token_shift_prev_batch(%x: tensor<2x3x8xf32>, %s: tensor<1x8xf32>) {
  // expected-error @+1 {{'rwkv.token_shift' op 'prev' has shape [1, 8] but expected [2, 8]}}
  %a, %b = rwkv.token_shift %x, %s : tensor<2x3x8xf32>, tensor<1x8xf32>
  return
}

// -----

func.func @token_shift_prev_rank(%x: tensor<2x3x8xf32>, %s: tensor<8xf32>) {
  // expected-error @+1 {{'rwkv.token_shift' op 'prev' has shape [8] but expected [2, 8]}}
  %a, %b = rwkv.token_shift %x, %s : tensor<2x3x8xf32>, tensor<8xf32>
  return
}

// -----

func.func @mix_rank(%x: tensor<3x8xf32>, %mu: tensor<8xf32>) {
  // expected-error @+1 {{'rwkv.mix' op 'input' must have rank 3 [B, T, C], got [3, 8]}}
  %y = rwkv.mix %x, %x, %mu : tensor<3x8xf32>, tensor<8xf32> -> tensor<3x8xf32>
  return
}

// -----

func.func @mix_mu(%x: tensor<2x3x8xf32>, %mu: tensor<1x1x8xf32>) {
  // expected-error @+1 {{'rwkv.mix' op 'mu' has shape [1, 1, 8] but expected [8]}}
  %y = rwkv.mix %x, %x, %mu : tensor<2x3x8xf32>, tensor<1x1x8xf32> -> tensor<2x3x8xf32>
  return
}

// -----

func.func @mix_result(%x: tensor<2x3x8xf32>, %mu: tensor<8xf32>) {
  // expected-error @+1 {{'rwkv.mix' op 'result' has shape [2, 3, 4] but expected [2, 3, 8]}}
  %y = rwkv.mix %x, %x, %mu : tensor<2x3x8xf32>, tensor<8xf32> -> tensor<2x3x4xf32>
  return
}

// -----

func.func @linear_input_rank(%x: tensor<3x8xf32>, %w: tensor<8x8xf32>) {
  // expected-error @+1 {{'rwkv.linear' op 'input' must have rank 3 [B, T, C], got [3, 8]}}
  %y = rwkv.linear %x, %w : tensor<3x8xf32>, tensor<8x8xf32> -> tensor<3x8xf32>
  return
}

// -----

func.func @linear_weight_rank(%x: tensor<2x3x8xf32>, %w: tensor<8xf32>) {
  // expected-error @+1 {{'rwkv.linear' op 'weight' must have rank 2 [out, in], got [8]}}
  %y = rwkv.linear %x, %w : tensor<2x3x8xf32>, tensor<8xf32> -> tensor<2x3x8xf32>
  return
}

// -----

func.func @linear_transposed_weight(%x: tensor<2x3x8xf32>, %w: tensor<8x16xbf16>) {
  // expected-error @+1 {{'rwkv.linear' op weight [8, 16] does not take inputs of width 8 (weights are stored [out, in])}}
  %y = rwkv.linear %x, %w : tensor<2x3x8xf32>, tensor<8x16xbf16> -> tensor<2x3x16xf32>
  return
}

// -----

func.func @linear_result(%x: tensor<2x3x8xf32>, %w: tensor<16x8xbf16>) {
  // expected-error @+1 {{'rwkv.linear' op 'result' has shape [2, 3, 8] but expected [2, 3, 16]}}
  %y = rwkv.linear %x, %w : tensor<2x3x8xf32>, tensor<16x8xbf16> -> tensor<2x3x8xf32>
  return
}

// -----

func.func @lora_input_rank(%x: tensor<8xf32>, %d: tensor<8x2xf32>, %u: tensor<2x8xf32>) {
  // expected-error @+1 {{'rwkv.lora' op 'input' must have rank 3 [B, T, C], got [8]}}
  %y = rwkv.lora %x, %d, %u : tensor<8xf32>, tensor<8x2xf32>, tensor<2x8xf32> -> tensor<8xf32>
  return
}

// -----

func.func @lora_down_rank(%x: tensor<2x3x8xf32>, %d: tensor<8x2x1xf32>, %u: tensor<2x8xf32>) {
  // expected-error @+1 {{'rwkv.lora' op 'down' must have rank 2 [in, rank], got [8, 2, 1]}}
  %y = rwkv.lora %x, %d, %u : tensor<2x3x8xf32>, tensor<8x2x1xf32>, tensor<2x8xf32> -> tensor<2x3x8xf32>
  return
}

// -----

func.func @lora_up_rank(%x: tensor<2x3x8xf32>, %d: tensor<8x2xf32>, %u: tensor<16xf32>) {
  // expected-error @+1 {{'rwkv.lora' op 'up' must have rank 2 [rank, out], got [16]}}
  %y = rwkv.lora %x, %d, %u : tensor<2x3x8xf32>, tensor<8x2xf32>, tensor<16xf32> -> tensor<2x3x8xf32>
  return
}

// -----

func.func @lora_down_width(%x: tensor<2x3x8xf32>, %d: tensor<2x8xf32>, %u: tensor<8x8xf32>) {
  // expected-error @+1 {{'rwkv.lora' op 'down' [2, 8] does not take inputs of width 8}}
  %y = rwkv.lora %x, %d, %u : tensor<2x3x8xf32>, tensor<2x8xf32>, tensor<8x8xf32> -> tensor<2x3x8xf32>
  return
}

// -----

func.func @lora_ranks(%x: tensor<2x3x8xf32>, %d: tensor<8x2xbf16>, %u: tensor<3x8xbf16>) {
  // expected-error @+1 {{'rwkv.lora' op LoRA ranks disagree: 'down' is [8, 2] but 'up' is [3, 8]}}
  %y = rwkv.lora %x, %d, %u {activation = #rwkv<activation tanh>} : tensor<2x3x8xf32>, tensor<8x2xbf16>, tensor<3x8xbf16> -> tensor<2x3x8xf32>
  return
}

// -----

func.func @lora_result(%x: tensor<2x?x8xf32>, %d: tensor<8x2xf32>, %u: tensor<2x16xf32>) {
  // expected-error @+1 {{'rwkv.lora' op 'result' has shape [2, ?, 8] but expected [2, ?, 16]}}
  %y = rwkv.lora %x, %d, %u : tensor<2x?x8xf32>, tensor<8x2xf32>, tensor<2x16xf32> -> tensor<2x?x8xf32>
  return
}

// -----

func.func @l2_normalize_rank(%x: tensor<2x8xf32>) {
  // expected-error @+1 {{'rwkv.l2_normalize' op 'input' must have rank 3 [B, T, C], got [2, 8]}}
  %y = rwkv.l2_normalize %x {num_heads = 2 : i64} : tensor<2x8xf32> -> tensor<2x8xf32>
  return
}

// -----

func.func @l2_normalize_zero_heads(%x: tensor<2x3x8xf32>) {
  // expected-error @+1 {{'rwkv.l2_normalize' op num_heads must be positive, got 0}}
  %y = rwkv.l2_normalize %x {num_heads = 0 : i64} : tensor<2x3x8xf32> -> tensor<2x3x8xf32>
  return
}

// -----

func.func @l2_normalize_indivisible(%x: tensor<2x3x8xf32>) {
  // expected-error @+1 {{'rwkv.l2_normalize' op channel count 8 is not divisible by num_heads 3}}
  %y = rwkv.l2_normalize %x {num_heads = 3 : i64} : tensor<2x3x8xf32> -> tensor<2x3x8xf32>
  return
}

// -----

func.func @l2_normalize_epsilon(%x: tensor<2x3x8xf32>) {
  // expected-error @+1 {{'rwkv.l2_normalize' op epsilon must be positive}}
  %y = rwkv.l2_normalize %x {num_heads = 2 : i64, epsilon = 0.0 : f32} : tensor<2x3x8xf32> -> tensor<2x3x8xf32>
  return
}

// -----

func.func @l2_normalize_result(%x: tensor<2x3x8xf32>) {
  // expected-error @+1 {{'rwkv.l2_normalize' op 'result' has shape [2, 3, 4] but expected [2, 3, 8]}}
  %y = rwkv.l2_normalize %x {num_heads = 2 : i64} : tensor<2x3x8xf32> -> tensor<2x3x4xf32>
  return
}

// -----

func.func @wkv_rank(%x: tensor<3x8xf32>, %s: tensor<1x2x4x4xf32>) {
  // expected-error @+1 {{'rwkv.wkv' op 'r' must have rank 3 [B, T, C], got [3, 8]}}
  %y, %ns = rwkv.wkv %x, %x, %x, %x, %x, %x, %s : tensor<3x8xf32>, tensor<1x2x4x4xf32>
  return
}

// -----

func.func @wkv_state_rank(%x: tensor<2x3x8xf32>, %s: tensor<2x8x8xf32>) {
  // expected-error @+1 {{'rwkv.wkv' op 'state' must have rank 4 [B, H, N, N], got [2, 8, 8]}}
  %y, %ns = rwkv.wkv %x, %x, %x, %x, %x, %x, %s : tensor<2x3x8xf32>, tensor<2x8x8xf32>
  return
}

// -----

func.func @wkv_state_dynamic_heads(%x: tensor<2x3x8xf32>, %s: tensor<2x?x4x4xf32>) {
  // expected-error @+1 {{'rwkv.wkv' op 'state' must have static heads and head size, got [2, ?, 4, 4]}}
  %y, %ns = rwkv.wkv %x, %x, %x, %x, %x, %x, %s : tensor<2x3x8xf32>, tensor<2x?x4x4xf32>
  return
}

// -----

func.func @wkv_state_dynamic_head_size(%x: tensor<2x3x8xf32>, %s: tensor<2x2x4x?xf32>) {
  // expected-error @+1 {{'rwkv.wkv' op 'state' must have static heads and head size, got [2, 2, 4, ?]}}
  %y, %ns = rwkv.wkv %x, %x, %x, %x, %x, %x, %s : tensor<2x3x8xf32>, tensor<2x2x4x?xf32>
  return
}

// -----

func.func @wkv_state_not_square(%x: tensor<2x3x8xf32>, %s: tensor<2x2x4x2xf32>) {
  // expected-error @+1 {{'rwkv.wkv' op 'state' [2, 2, 4, 2] must be square per head (N x N)}}
  %y, %ns = rwkv.wkv %x, %x, %x, %x, %x, %x, %s : tensor<2x3x8xf32>, tensor<2x2x4x2xf32>
  return
}

// -----

func.func @wkv_heads_times_size(%x: tensor<2x3x8xf32>, %s: tensor<2x4x4x4xf32>) {
  // expected-error @+1 {{'rwkv.wkv' op heads * head_size (4 * 4) must equal the channel count 8}}
  %y, %ns = rwkv.wkv %x, %x, %x, %x, %x, %x, %s : tensor<2x3x8xf32>, tensor<2x4x4x4xf32>
  return
}

// -----

func.func @wkv_batch(%x: tensor<2x3x8xf32>, %s: tensor<3x2x4x4xf32>) {
  // expected-error @+1 {{'rwkv.wkv' op 'state' batch 3 does not match the activations' batch 2}}
  %y, %ns = rwkv.wkv %x, %x, %x, %x, %x, %x, %s : tensor<2x3x8xf32>, tensor<3x2x4x4xf32>
  return
}

// -----

func.func @wkv_chunk_length_zero(%x: tensor<2x3x8xf32>, %s: tensor<2x2x4x4xf32>) {
  // expected-error @+1 {{'rwkv.wkv' op chunk_length must be positive, got 0}}
  %y, %ns = rwkv.wkv %x, %x, %x, %x, %x, %x, %s {mode = #rwkv<wkv_mode chunked>, chunk_length = 0} : tensor<2x3x8xf32>, tensor<2x2x4x4xf32>
  return
}

// -----

func.func @group_norm_rank(%x: tensor<8xf32>, %w: tensor<8xf32>) {
  // expected-error @+1 {{'rwkv.group_norm' op 'input' must have rank 3 [B, T, C], got [8]}}
  %y = rwkv.group_norm %x, %w, %w {num_groups = 2 : i64} : tensor<8xf32>, tensor<8xf32> -> tensor<8xf32>
  return
}

// -----

func.func @group_norm_zero_groups(%x: tensor<2x3x8xf32>, %w: tensor<8xf32>) {
  // expected-error @+1 {{'rwkv.group_norm' op num_groups must be positive, got -2}}
  %y = rwkv.group_norm %x, %w, %w {num_groups = -2 : i64} : tensor<2x3x8xf32>, tensor<8xf32> -> tensor<2x3x8xf32>
  return
}

// -----

func.func @group_norm_indivisible(%x: tensor<2x3x8xf32>, %w: tensor<8xf32>) {
  // expected-error @+1 {{'rwkv.group_norm' op channel count 8 is not divisible by num_groups 3}}
  %y = rwkv.group_norm %x, %w, %w {num_groups = 3 : i64} : tensor<2x3x8xf32>, tensor<8xf32> -> tensor<2x3x8xf32>
  return
}

// -----

func.func @group_norm_weight(%x: tensor<2x3x8xf32>, %w: tensor<2x4xf32>) {
  // expected-error @+1 {{'rwkv.group_norm' op 'weight' has shape [2, 4] but expected [8]}}
  %y = rwkv.group_norm %x, %w, %w {num_groups = 2 : i64} : tensor<2x3x8xf32>, tensor<2x4xf32> -> tensor<2x3x8xf32>
  return
}

// -----

func.func @group_norm_epsilon(%x: tensor<2x3x8xf32>, %w: tensor<8xf32>) {
  // expected-error @+1 {{'rwkv.group_norm' op epsilon must be positive}}
  %y = rwkv.group_norm %x, %w, %w {num_groups = 2 : i64, epsilon = -6.4e-4 : f32} : tensor<2x3x8xf32>, tensor<8xf32> -> tensor<2x3x8xf32>
  return
}

// -----

func.func @group_norm_result(%x: tensor<2x3x8xf32>, %w: tensor<8xf32>) {
  // expected-error @+1 {{'rwkv.group_norm' op 'result' has shape [2, 1, 8] but expected [2, 3, 8]}}
  %y = rwkv.group_norm %x, %w, %w {num_groups = 2 : i64} : tensor<2x3x8xf32>, tensor<8xf32> -> tensor<2x1x8xf32>
  return
}

// -----

func.func @head_input_rank(%x: tensor<3x8xf32>, %w: tensor<32x8xf32>) {
  // expected-error @+1 {{'rwkv.head' op 'input' must have rank 3 [B, T, C], got [3, 8]}}
  %y = rwkv.head %x, %w : tensor<3x8xf32>, tensor<32x8xf32> -> tensor<3x32xf32>
  return
}

// -----

func.func @head_weight_rank(%x: tensor<2x3x8xf32>, %w: tensor<256xf32>) {
  // expected-error @+1 {{'rwkv.head' op 'weight' must have rank 2 [V, C], got [256]}}
  %y = rwkv.head %x, %w : tensor<2x3x8xf32>, tensor<256xf32> -> tensor<2x3x32xf32>
  return
}

// -----

func.func @head_width(%x: tensor<2x3x8xf32>, %w: tensor<8x32xbf16>) {
  // expected-error @+1 {{'rwkv.head' op head weight [8, 32] does not take inputs of width 8}}
  %y = rwkv.head %x, %w : tensor<2x3x8xf32>, tensor<8x32xbf16> -> tensor<2x3x8xf32>
  return
}

// -----

func.func @head_last_wrong_result(%x: tensor<2x?x8xf32>, %w: tensor<32x8xbf16>) {
  // expected-error @+1 {{'rwkv.head' op 'result' has shape [2, 5, 32] but expected [2, 1, 32]}}
  %y = rwkv.head %x, %w {positions = #rwkv<positions last>} : tensor<2x?x8xf32>, tensor<32x8xbf16> -> tensor<2x5x32xf32>
  return
}

// -----

func.func @head_all_wrong_result(%x: tensor<2x3x8xf32>, %w: tensor<32x8xbf16>) {
  // expected-error @+1 {{'rwkv.head' op 'result' has shape [2, 1, 32] but expected [2, 3, 32]}}
  %y = rwkv.head %x, %w : tensor<2x3x8xf32>, tensor<32x8xbf16> -> tensor<2x1x32xf32>
  return
}

// -----

func.func @head_vocab(%x: tensor<2x3x8xf32>, %w: tensor<32x8xbf16>) {
  // expected-error @+1 {{'rwkv.head' op 'result' has shape [2, 1, 16] but expected [2, 1, 32]}}
  %y = rwkv.head %x, %w {positions = #rwkv<positions last>} : tensor<2x3x8xf32>, tensor<32x8xbf16> -> tensor<2x1x16xf32>
  return
}

// -----

func.func @time_mix_input_rank(%input: tensor<3x8xf32>, %shift_state: tensor<2x8xf32>, %wkv_state: tensor<2x2x4x4xf32>, %x_r: tensor<8xbf16>, %x_w: tensor<8xbf16>, %x_k: tensor<8xbf16>, %x_v: tensor<8xbf16>, %x_a: tensor<8xbf16>, %x_g: tensor<8xbf16>, %w0: tensor<8xbf16>, %w1: tensor<8x2xbf16>, %w2: tensor<2x8xbf16>, %a0: tensor<8xbf16>, %a1: tensor<8x3xbf16>, %a2: tensor<3x8xbf16>, %g1: tensor<8x5xbf16>, %g2: tensor<5x8xbf16>, %k_k: tensor<8xbf16>, %k_a: tensor<8xbf16>, %r_k: tensor<8xbf16>, %receptance: tensor<8x8xbf16>, %key: tensor<8x8xbf16>, %value: tensor<8x8xbf16>, %output: tensor<8x8xbf16>, %ln_x_weight: tensor<8xbf16>, %ln_x_bias: tensor<8xbf16>) {
  // expected-error @+1 {{'rwkv.time_mix' op 'input' must have rank 3 [B, T, C], got [3, 8]}}
  %0:4 = rwkv.time_mix %input, %shift_state, %wkv_state
      lerp(%x_r, %x_w, %x_k, %x_v, %x_a, %x_g) decay(%w0, %w1, %w2) iclr(%a0, %a1, %a2)
      gate(%g1, %g2) key(%k_k, %k_a, %r_k) proj(%receptance, %key, %value, %output)
      ln_x(%ln_x_weight, %ln_x_bias)
      : (tensor<3x8xf32>, tensor<2x8xf32>, tensor<2x2x4x4xf32>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8x2xbf16>, tensor<2x8xbf16>, tensor<8xbf16>, tensor<8x3xbf16>, tensor<3x8xbf16>, tensor<8x5xbf16>, tensor<5x8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8xbf16>, tensor<8xbf16>)
      -> (tensor<3x8xf32>, tensor<2x8xf32>, tensor<2x2x4x4xf32>, tensor<3x8xf32>)
  return
}

// -----

func.func @time_mix_shift_state(%input: tensor<2x3x8xf32>, %shift_state: tensor<1x8xf32>, %wkv_state: tensor<2x2x4x4xf32>, %x_r: tensor<8xbf16>, %x_w: tensor<8xbf16>, %x_k: tensor<8xbf16>, %x_v: tensor<8xbf16>, %x_a: tensor<8xbf16>, %x_g: tensor<8xbf16>, %w0: tensor<8xbf16>, %w1: tensor<8x2xbf16>, %w2: tensor<2x8xbf16>, %a0: tensor<8xbf16>, %a1: tensor<8x3xbf16>, %a2: tensor<3x8xbf16>, %g1: tensor<8x5xbf16>, %g2: tensor<5x8xbf16>, %k_k: tensor<8xbf16>, %k_a: tensor<8xbf16>, %r_k: tensor<8xbf16>, %receptance: tensor<8x8xbf16>, %key: tensor<8x8xbf16>, %value: tensor<8x8xbf16>, %output: tensor<8x8xbf16>, %ln_x_weight: tensor<8xbf16>, %ln_x_bias: tensor<8xbf16>) {
  // expected-error @+1 {{'rwkv.time_mix' op 'shift_state' has shape [1, 8] but expected [2, 8]}}
  %0:4 = rwkv.time_mix %input, %shift_state, %wkv_state
      lerp(%x_r, %x_w, %x_k, %x_v, %x_a, %x_g) decay(%w0, %w1, %w2) iclr(%a0, %a1, %a2)
      gate(%g1, %g2) key(%k_k, %k_a, %r_k) proj(%receptance, %key, %value, %output)
      ln_x(%ln_x_weight, %ln_x_bias)
      : (tensor<2x3x8xf32>, tensor<1x8xf32>, tensor<2x2x4x4xf32>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8x2xbf16>, tensor<2x8xbf16>, tensor<8xbf16>, tensor<8x3xbf16>, tensor<3x8xbf16>, tensor<8x5xbf16>, tensor<5x8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8xbf16>, tensor<8xbf16>)
      -> (tensor<2x3x8xf32>, tensor<1x8xf32>, tensor<2x2x4x4xf32>, tensor<2x3x8xf32>)
  return
}

// -----

func.func @time_mix_wkv_state_rank(%input: tensor<2x3x8xf32>, %shift_state: tensor<2x8xf32>, %wkv_state: tensor<2x8x8xf32>, %x_r: tensor<8xbf16>, %x_w: tensor<8xbf16>, %x_k: tensor<8xbf16>, %x_v: tensor<8xbf16>, %x_a: tensor<8xbf16>, %x_g: tensor<8xbf16>, %w0: tensor<8xbf16>, %w1: tensor<8x2xbf16>, %w2: tensor<2x8xbf16>, %a0: tensor<8xbf16>, %a1: tensor<8x3xbf16>, %a2: tensor<3x8xbf16>, %g1: tensor<8x5xbf16>, %g2: tensor<5x8xbf16>, %k_k: tensor<8xbf16>, %k_a: tensor<8xbf16>, %r_k: tensor<8xbf16>, %receptance: tensor<8x8xbf16>, %key: tensor<8x8xbf16>, %value: tensor<8x8xbf16>, %output: tensor<8x8xbf16>, %ln_x_weight: tensor<8xbf16>, %ln_x_bias: tensor<8xbf16>) {
  // expected-error @+1 {{'rwkv.time_mix' op 'wkv_state' must have rank 4 [B, H, N, N], got [2, 8, 8]}}
  %0:4 = rwkv.time_mix %input, %shift_state, %wkv_state
      lerp(%x_r, %x_w, %x_k, %x_v, %x_a, %x_g) decay(%w0, %w1, %w2) iclr(%a0, %a1, %a2)
      gate(%g1, %g2) key(%k_k, %k_a, %r_k) proj(%receptance, %key, %value, %output)
      ln_x(%ln_x_weight, %ln_x_bias)
      : (tensor<2x3x8xf32>, tensor<2x8xf32>, tensor<2x8x8xf32>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8x2xbf16>, tensor<2x8xbf16>, tensor<8xbf16>, tensor<8x3xbf16>, tensor<3x8xbf16>, tensor<8x5xbf16>, tensor<5x8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8xbf16>, tensor<8xbf16>)
      -> (tensor<2x3x8xf32>, tensor<2x8xf32>, tensor<2x8x8xf32>, tensor<2x3x8xf32>)
  return
}

// -----

func.func @time_mix_wkv_state_dynamic(%input: tensor<2x3x8xf32>, %shift_state: tensor<2x8xf32>, %wkv_state: tensor<2x2x?x?xf32>, %x_r: tensor<8xbf16>, %x_w: tensor<8xbf16>, %x_k: tensor<8xbf16>, %x_v: tensor<8xbf16>, %x_a: tensor<8xbf16>, %x_g: tensor<8xbf16>, %w0: tensor<8xbf16>, %w1: tensor<8x2xbf16>, %w2: tensor<2x8xbf16>, %a0: tensor<8xbf16>, %a1: tensor<8x3xbf16>, %a2: tensor<3x8xbf16>, %g1: tensor<8x5xbf16>, %g2: tensor<5x8xbf16>, %k_k: tensor<8xbf16>, %k_a: tensor<8xbf16>, %r_k: tensor<8xbf16>, %receptance: tensor<8x8xbf16>, %key: tensor<8x8xbf16>, %value: tensor<8x8xbf16>, %output: tensor<8x8xbf16>, %ln_x_weight: tensor<8xbf16>, %ln_x_bias: tensor<8xbf16>) {
  // expected-error @+1 {{'rwkv.time_mix' op 'wkv_state' must have static heads and head size, got [2, 2, ?, ?]}}
  %0:4 = rwkv.time_mix %input, %shift_state, %wkv_state
      lerp(%x_r, %x_w, %x_k, %x_v, %x_a, %x_g) decay(%w0, %w1, %w2) iclr(%a0, %a1, %a2)
      gate(%g1, %g2) key(%k_k, %k_a, %r_k) proj(%receptance, %key, %value, %output)
      ln_x(%ln_x_weight, %ln_x_bias)
      : (tensor<2x3x8xf32>, tensor<2x8xf32>, tensor<2x2x?x?xf32>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8x2xbf16>, tensor<2x8xbf16>, tensor<8xbf16>, tensor<8x3xbf16>, tensor<3x8xbf16>, tensor<8x5xbf16>, tensor<5x8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8xbf16>, tensor<8xbf16>)
      -> (tensor<2x3x8xf32>, tensor<2x8xf32>, tensor<2x2x?x?xf32>, tensor<2x3x8xf32>)
  return
}

// -----

func.func @time_mix_wkv_state_square(%input: tensor<2x3x8xf32>, %shift_state: tensor<2x8xf32>, %wkv_state: tensor<2x2x4x8xf32>, %x_r: tensor<8xbf16>, %x_w: tensor<8xbf16>, %x_k: tensor<8xbf16>, %x_v: tensor<8xbf16>, %x_a: tensor<8xbf16>, %x_g: tensor<8xbf16>, %w0: tensor<8xbf16>, %w1: tensor<8x2xbf16>, %w2: tensor<2x8xbf16>, %a0: tensor<8xbf16>, %a1: tensor<8x3xbf16>, %a2: tensor<3x8xbf16>, %g1: tensor<8x5xbf16>, %g2: tensor<5x8xbf16>, %k_k: tensor<8xbf16>, %k_a: tensor<8xbf16>, %r_k: tensor<8xbf16>, %receptance: tensor<8x8xbf16>, %key: tensor<8x8xbf16>, %value: tensor<8x8xbf16>, %output: tensor<8x8xbf16>, %ln_x_weight: tensor<8xbf16>, %ln_x_bias: tensor<8xbf16>) {
  // expected-error @+1 {{'rwkv.time_mix' op 'wkv_state' [2, 2, 4, 8] must be square per head (N x N)}}
  %0:4 = rwkv.time_mix %input, %shift_state, %wkv_state
      lerp(%x_r, %x_w, %x_k, %x_v, %x_a, %x_g) decay(%w0, %w1, %w2) iclr(%a0, %a1, %a2)
      gate(%g1, %g2) key(%k_k, %k_a, %r_k) proj(%receptance, %key, %value, %output)
      ln_x(%ln_x_weight, %ln_x_bias)
      : (tensor<2x3x8xf32>, tensor<2x8xf32>, tensor<2x2x4x8xf32>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8x2xbf16>, tensor<2x8xbf16>, tensor<8xbf16>, tensor<8x3xbf16>, tensor<3x8xbf16>, tensor<8x5xbf16>, tensor<5x8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8xbf16>, tensor<8xbf16>)
      -> (tensor<2x3x8xf32>, tensor<2x8xf32>, tensor<2x2x4x8xf32>, tensor<2x3x8xf32>)
  return
}

// -----

func.func @time_mix_heads_times_size(%input: tensor<2x3x8xf32>, %shift_state: tensor<2x8xf32>, %wkv_state: tensor<2x2x8x8xf32>, %x_r: tensor<8xbf16>, %x_w: tensor<8xbf16>, %x_k: tensor<8xbf16>, %x_v: tensor<8xbf16>, %x_a: tensor<8xbf16>, %x_g: tensor<8xbf16>, %w0: tensor<8xbf16>, %w1: tensor<8x2xbf16>, %w2: tensor<2x8xbf16>, %a0: tensor<8xbf16>, %a1: tensor<8x3xbf16>, %a2: tensor<3x8xbf16>, %g1: tensor<8x5xbf16>, %g2: tensor<5x8xbf16>, %k_k: tensor<8xbf16>, %k_a: tensor<8xbf16>, %r_k: tensor<8xbf16>, %receptance: tensor<8x8xbf16>, %key: tensor<8x8xbf16>, %value: tensor<8x8xbf16>, %output: tensor<8x8xbf16>, %ln_x_weight: tensor<8xbf16>, %ln_x_bias: tensor<8xbf16>) {
  // expected-error @+1 {{'rwkv.time_mix' op heads * head_size (2 * 8) must equal the channel count 8}}
  %0:4 = rwkv.time_mix %input, %shift_state, %wkv_state
      lerp(%x_r, %x_w, %x_k, %x_v, %x_a, %x_g) decay(%w0, %w1, %w2) iclr(%a0, %a1, %a2)
      gate(%g1, %g2) key(%k_k, %k_a, %r_k) proj(%receptance, %key, %value, %output)
      ln_x(%ln_x_weight, %ln_x_bias)
      : (tensor<2x3x8xf32>, tensor<2x8xf32>, tensor<2x2x8x8xf32>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8x2xbf16>, tensor<2x8xbf16>, tensor<8xbf16>, tensor<8x3xbf16>, tensor<3x8xbf16>, tensor<8x5xbf16>, tensor<5x8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8xbf16>, tensor<8xbf16>)
      -> (tensor<2x3x8xf32>, tensor<2x8xf32>, tensor<2x2x8x8xf32>, tensor<2x3x8xf32>)
  return
}

// -----

func.func @time_mix_wkv_batch(%input: tensor<2x3x8xf32>, %shift_state: tensor<2x8xf32>, %wkv_state: tensor<1x2x4x4xf32>, %x_r: tensor<8xbf16>, %x_w: tensor<8xbf16>, %x_k: tensor<8xbf16>, %x_v: tensor<8xbf16>, %x_a: tensor<8xbf16>, %x_g: tensor<8xbf16>, %w0: tensor<8xbf16>, %w1: tensor<8x2xbf16>, %w2: tensor<2x8xbf16>, %a0: tensor<8xbf16>, %a1: tensor<8x3xbf16>, %a2: tensor<3x8xbf16>, %g1: tensor<8x5xbf16>, %g2: tensor<5x8xbf16>, %k_k: tensor<8xbf16>, %k_a: tensor<8xbf16>, %r_k: tensor<8xbf16>, %receptance: tensor<8x8xbf16>, %key: tensor<8x8xbf16>, %value: tensor<8x8xbf16>, %output: tensor<8x8xbf16>, %ln_x_weight: tensor<8xbf16>, %ln_x_bias: tensor<8xbf16>) {
  // expected-error @+1 {{'rwkv.time_mix' op 'wkv_state' batch 1 does not match the activations' batch 2}}
  %0:4 = rwkv.time_mix %input, %shift_state, %wkv_state
      lerp(%x_r, %x_w, %x_k, %x_v, %x_a, %x_g) decay(%w0, %w1, %w2) iclr(%a0, %a1, %a2)
      gate(%g1, %g2) key(%k_k, %k_a, %r_k) proj(%receptance, %key, %value, %output)
      ln_x(%ln_x_weight, %ln_x_bias)
      : (tensor<2x3x8xf32>, tensor<2x8xf32>, tensor<1x2x4x4xf32>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8x2xbf16>, tensor<2x8xbf16>, tensor<8xbf16>, tensor<8x3xbf16>, tensor<3x8xbf16>, tensor<8x5xbf16>, tensor<5x8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8xbf16>, tensor<8xbf16>)
      -> (tensor<2x3x8xf32>, tensor<2x8xf32>, tensor<1x2x4x4xf32>, tensor<2x3x8xf32>)
  return
}

// -----

func.func @time_mix_wkv_state_bf16(%input: tensor<2x3x8xf32>, %shift_state: tensor<2x8xf32>, %wkv_state: tensor<2x2x4x4xbf16>, %x_r: tensor<8xbf16>, %x_w: tensor<8xbf16>, %x_k: tensor<8xbf16>, %x_v: tensor<8xbf16>, %x_a: tensor<8xbf16>, %x_g: tensor<8xbf16>, %w0: tensor<8xbf16>, %w1: tensor<8x2xbf16>, %w2: tensor<2x8xbf16>, %a0: tensor<8xbf16>, %a1: tensor<8x3xbf16>, %a2: tensor<3x8xbf16>, %g1: tensor<8x5xbf16>, %g2: tensor<5x8xbf16>, %k_k: tensor<8xbf16>, %k_a: tensor<8xbf16>, %r_k: tensor<8xbf16>, %receptance: tensor<8x8xbf16>, %key: tensor<8x8xbf16>, %value: tensor<8x8xbf16>, %output: tensor<8x8xbf16>, %ln_x_weight: tensor<8xbf16>, %ln_x_bias: tensor<8xbf16>) {
  // expected-error @+1 {{'rwkv.time_mix' op operand #2 must be ranked tensor of 32-bit float values, but got 'tensor<2x2x4x4xbf16>'}}
  %0:4 = rwkv.time_mix %input, %shift_state, %wkv_state
      lerp(%x_r, %x_w, %x_k, %x_v, %x_a, %x_g) decay(%w0, %w1, %w2) iclr(%a0, %a1, %a2)
      gate(%g1, %g2) key(%k_k, %k_a, %r_k) proj(%receptance, %key, %value, %output)
      ln_x(%ln_x_weight, %ln_x_bias)
      : (tensor<2x3x8xf32>, tensor<2x8xf32>, tensor<2x2x4x4xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8x2xbf16>, tensor<2x8xbf16>, tensor<8xbf16>, tensor<8x3xbf16>, tensor<3x8xbf16>, tensor<8x5xbf16>, tensor<5x8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8xbf16>, tensor<8xbf16>)
      -> (tensor<2x3x8xf32>, tensor<2x8xf32>, tensor<2x2x4x4xbf16>, tensor<2x3x8xf32>)
  return
}

// -----

func.func @time_mix_v_first_shape(%input: tensor<2x3x8xf32>, %shift_state: tensor<2x8xf32>, %wkv_state: tensor<2x2x4x4xf32>, %v_first: tensor<2x1x8xf32>, %x_r: tensor<8xbf16>, %x_w: tensor<8xbf16>, %x_k: tensor<8xbf16>, %x_v: tensor<8xbf16>, %x_a: tensor<8xbf16>, %x_g: tensor<8xbf16>, %w0: tensor<8xbf16>, %w1: tensor<8x2xbf16>, %w2: tensor<2x8xbf16>, %a0: tensor<8xbf16>, %a1: tensor<8x3xbf16>, %a2: tensor<3x8xbf16>, %v0: tensor<8xbf16>, %v1: tensor<8x4xbf16>, %v2: tensor<4x8xbf16>, %g1: tensor<8x5xbf16>, %g2: tensor<5x8xbf16>, %k_k: tensor<8xbf16>, %k_a: tensor<8xbf16>, %r_k: tensor<8xbf16>, %receptance: tensor<8x8xbf16>, %key: tensor<8x8xbf16>, %value: tensor<8x8xbf16>, %output: tensor<8x8xbf16>, %ln_x_weight: tensor<8xbf16>, %ln_x_bias: tensor<8xbf16>) {
  // expected-error @+1 {{'rwkv.time_mix' op 'v_first' has shape [2, 1, 8] but expected [2, 3, 8]}}
  %0:4 = rwkv.time_mix %input, %shift_state, %wkv_state v_first(%v_first)
      lerp(%x_r, %x_w, %x_k, %x_v, %x_a, %x_g) decay(%w0, %w1, %w2) iclr(%a0, %a1, %a2) value_residual(%v0, %v1, %v2)
      gate(%g1, %g2) key(%k_k, %k_a, %r_k) proj(%receptance, %key, %value, %output)
      ln_x(%ln_x_weight, %ln_x_bias)
      : (tensor<2x3x8xf32>, tensor<2x8xf32>, tensor<2x2x4x4xf32>, tensor<2x1x8xf32>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8x2xbf16>, tensor<2x8xbf16>, tensor<8xbf16>, tensor<8x3xbf16>, tensor<3x8xbf16>, tensor<8xbf16>, tensor<8x4xbf16>, tensor<4x8xbf16>, tensor<8x5xbf16>, tensor<5x8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8xbf16>, tensor<8xbf16>)
      -> (tensor<2x3x8xf32>, tensor<2x8xf32>, tensor<2x2x4x4xf32>, tensor<2x3x8xf32>)
  return
}

// -----

func.func @time_mix_lerp_shape(%input: tensor<2x3x8xf32>, %shift_state: tensor<2x8xf32>, %wkv_state: tensor<2x2x4x4xf32>, %x_r: tensor<8xbf16>, %x_w: tensor<8xbf16>, %x_k: tensor<8xbf16>, %x_v: tensor<8xbf16>, %x_a: tensor<8xbf16>, %x_g: tensor<1x1x8xbf16>, %w0: tensor<8xbf16>, %w1: tensor<8x2xbf16>, %w2: tensor<2x8xbf16>, %a0: tensor<8xbf16>, %a1: tensor<8x3xbf16>, %a2: tensor<3x8xbf16>, %g1: tensor<8x5xbf16>, %g2: tensor<5x8xbf16>, %k_k: tensor<8xbf16>, %k_a: tensor<8xbf16>, %r_k: tensor<8xbf16>, %receptance: tensor<8x8xbf16>, %key: tensor<8x8xbf16>, %value: tensor<8x8xbf16>, %output: tensor<8x8xbf16>, %ln_x_weight: tensor<8xbf16>, %ln_x_bias: tensor<8xbf16>) {
  // expected-error @+1 {{'rwkv.time_mix' op 'x_g' has shape [1, 1, 8] but expected [8]}}
  %0:4 = rwkv.time_mix %input, %shift_state, %wkv_state
      lerp(%x_r, %x_w, %x_k, %x_v, %x_a, %x_g) decay(%w0, %w1, %w2) iclr(%a0, %a1, %a2)
      gate(%g1, %g2) key(%k_k, %k_a, %r_k) proj(%receptance, %key, %value, %output)
      ln_x(%ln_x_weight, %ln_x_bias)
      : (tensor<2x3x8xf32>, tensor<2x8xf32>, tensor<2x2x4x4xf32>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<1x1x8xbf16>, tensor<8xbf16>, tensor<8x2xbf16>, tensor<2x8xbf16>, tensor<8xbf16>, tensor<8x3xbf16>, tensor<3x8xbf16>, tensor<8x5xbf16>, tensor<5x8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8xbf16>, tensor<8xbf16>)
      -> (tensor<2x3x8xf32>, tensor<2x8xf32>, tensor<2x2x4x4xf32>, tensor<2x3x8xf32>)
  return
}

// -----

func.func @time_mix_w0_shape(%input: tensor<2x3x8xf32>, %shift_state: tensor<2x8xf32>, %wkv_state: tensor<2x2x4x4xf32>, %x_r: tensor<8xbf16>, %x_w: tensor<8xbf16>, %x_k: tensor<8xbf16>, %x_v: tensor<8xbf16>, %x_a: tensor<8xbf16>, %x_g: tensor<8xbf16>, %w0: tensor<16xbf16>, %w1: tensor<8x2xbf16>, %w2: tensor<2x8xbf16>, %a0: tensor<8xbf16>, %a1: tensor<8x3xbf16>, %a2: tensor<3x8xbf16>, %g1: tensor<8x5xbf16>, %g2: tensor<5x8xbf16>, %k_k: tensor<8xbf16>, %k_a: tensor<8xbf16>, %r_k: tensor<8xbf16>, %receptance: tensor<8x8xbf16>, %key: tensor<8x8xbf16>, %value: tensor<8x8xbf16>, %output: tensor<8x8xbf16>, %ln_x_weight: tensor<8xbf16>, %ln_x_bias: tensor<8xbf16>) {
  // expected-error @+1 {{'rwkv.time_mix' op 'w0' has shape [16] but expected [8]}}
  %0:4 = rwkv.time_mix %input, %shift_state, %wkv_state
      lerp(%x_r, %x_w, %x_k, %x_v, %x_a, %x_g) decay(%w0, %w1, %w2) iclr(%a0, %a1, %a2)
      gate(%g1, %g2) key(%k_k, %k_a, %r_k) proj(%receptance, %key, %value, %output)
      ln_x(%ln_x_weight, %ln_x_bias)
      : (tensor<2x3x8xf32>, tensor<2x8xf32>, tensor<2x2x4x4xf32>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<16xbf16>, tensor<8x2xbf16>, tensor<2x8xbf16>, tensor<8xbf16>, tensor<8x3xbf16>, tensor<3x8xbf16>, tensor<8x5xbf16>, tensor<5x8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8xbf16>, tensor<8xbf16>)
      -> (tensor<2x3x8xf32>, tensor<2x8xf32>, tensor<2x2x4x4xf32>, tensor<2x3x8xf32>)
  return
}

// -----

func.func @time_mix_r_k_shape(%input: tensor<2x3x8xf32>, %shift_state: tensor<2x8xf32>, %wkv_state: tensor<2x2x4x4xf32>, %x_r: tensor<8xbf16>, %x_w: tensor<8xbf16>, %x_k: tensor<8xbf16>, %x_v: tensor<8xbf16>, %x_a: tensor<8xbf16>, %x_g: tensor<8xbf16>, %w0: tensor<8xbf16>, %w1: tensor<8x2xbf16>, %w2: tensor<2x8xbf16>, %a0: tensor<8xbf16>, %a1: tensor<8x3xbf16>, %a2: tensor<3x8xbf16>, %g1: tensor<8x5xbf16>, %g2: tensor<5x8xbf16>, %k_k: tensor<8xbf16>, %k_a: tensor<8xbf16>, %r_k: tensor<2x4xbf16>, %receptance: tensor<8x8xbf16>, %key: tensor<8x8xbf16>, %value: tensor<8x8xbf16>, %output: tensor<8x8xbf16>, %ln_x_weight: tensor<8xbf16>, %ln_x_bias: tensor<8xbf16>) {
  // expected-error @+1 {{'rwkv.time_mix' op 'r_k' has shape [2, 4] but expected [8]}}
  %0:4 = rwkv.time_mix %input, %shift_state, %wkv_state
      lerp(%x_r, %x_w, %x_k, %x_v, %x_a, %x_g) decay(%w0, %w1, %w2) iclr(%a0, %a1, %a2)
      gate(%g1, %g2) key(%k_k, %k_a, %r_k) proj(%receptance, %key, %value, %output)
      ln_x(%ln_x_weight, %ln_x_bias)
      : (tensor<2x3x8xf32>, tensor<2x8xf32>, tensor<2x2x4x4xf32>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8x2xbf16>, tensor<2x8xbf16>, tensor<8xbf16>, tensor<8x3xbf16>, tensor<3x8xbf16>, tensor<8x5xbf16>, tensor<5x8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<2x4xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8xbf16>, tensor<8xbf16>)
      -> (tensor<2x3x8xf32>, tensor<2x8xf32>, tensor<2x2x4x4xf32>, tensor<2x3x8xf32>)
  return
}

// -----

func.func @time_mix_ln_x_bias_shape(%input: tensor<2x3x8xf32>, %shift_state: tensor<2x8xf32>, %wkv_state: tensor<2x2x4x4xf32>, %x_r: tensor<8xbf16>, %x_w: tensor<8xbf16>, %x_k: tensor<8xbf16>, %x_v: tensor<8xbf16>, %x_a: tensor<8xbf16>, %x_g: tensor<8xbf16>, %w0: tensor<8xbf16>, %w1: tensor<8x2xbf16>, %w2: tensor<2x8xbf16>, %a0: tensor<8xbf16>, %a1: tensor<8x3xbf16>, %a2: tensor<3x8xbf16>, %g1: tensor<8x5xbf16>, %g2: tensor<5x8xbf16>, %k_k: tensor<8xbf16>, %k_a: tensor<8xbf16>, %r_k: tensor<8xbf16>, %receptance: tensor<8x8xbf16>, %key: tensor<8x8xbf16>, %value: tensor<8x8xbf16>, %output: tensor<8x8xbf16>, %ln_x_weight: tensor<8xbf16>, %ln_x_bias: tensor<4xbf16>) {
  // expected-error @+1 {{'rwkv.time_mix' op 'ln_x_bias' has shape [4] but expected [8]}}
  %0:4 = rwkv.time_mix %input, %shift_state, %wkv_state
      lerp(%x_r, %x_w, %x_k, %x_v, %x_a, %x_g) decay(%w0, %w1, %w2) iclr(%a0, %a1, %a2)
      gate(%g1, %g2) key(%k_k, %k_a, %r_k) proj(%receptance, %key, %value, %output)
      ln_x(%ln_x_weight, %ln_x_bias)
      : (tensor<2x3x8xf32>, tensor<2x8xf32>, tensor<2x2x4x4xf32>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8x2xbf16>, tensor<2x8xbf16>, tensor<8xbf16>, tensor<8x3xbf16>, tensor<3x8xbf16>, tensor<8x5xbf16>, tensor<5x8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8xbf16>, tensor<4xbf16>)
      -> (tensor<2x3x8xf32>, tensor<2x8xf32>, tensor<2x2x4x4xf32>, tensor<2x3x8xf32>)
  return
}

// -----

func.func @time_mix_lora_down_rank(%input: tensor<2x3x8xf32>, %shift_state: tensor<2x8xf32>, %wkv_state: tensor<2x2x4x4xf32>, %x_r: tensor<8xbf16>, %x_w: tensor<8xbf16>, %x_k: tensor<8xbf16>, %x_v: tensor<8xbf16>, %x_a: tensor<8xbf16>, %x_g: tensor<8xbf16>, %w0: tensor<8xbf16>, %w1: tensor<8xbf16>, %w2: tensor<2x8xbf16>, %a0: tensor<8xbf16>, %a1: tensor<8x3xbf16>, %a2: tensor<3x8xbf16>, %g1: tensor<8x5xbf16>, %g2: tensor<5x8xbf16>, %k_k: tensor<8xbf16>, %k_a: tensor<8xbf16>, %r_k: tensor<8xbf16>, %receptance: tensor<8x8xbf16>, %key: tensor<8x8xbf16>, %value: tensor<8x8xbf16>, %output: tensor<8x8xbf16>, %ln_x_weight: tensor<8xbf16>, %ln_x_bias: tensor<8xbf16>) {
  // expected-error @+1 {{'rwkv.time_mix' op 'w1' must have rank 2 [C, rank], got [8]}}
  %0:4 = rwkv.time_mix %input, %shift_state, %wkv_state
      lerp(%x_r, %x_w, %x_k, %x_v, %x_a, %x_g) decay(%w0, %w1, %w2) iclr(%a0, %a1, %a2)
      gate(%g1, %g2) key(%k_k, %k_a, %r_k) proj(%receptance, %key, %value, %output)
      ln_x(%ln_x_weight, %ln_x_bias)
      : (tensor<2x3x8xf32>, tensor<2x8xf32>, tensor<2x2x4x4xf32>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<2x8xbf16>, tensor<8xbf16>, tensor<8x3xbf16>, tensor<3x8xbf16>, tensor<8x5xbf16>, tensor<5x8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8xbf16>, tensor<8xbf16>)
      -> (tensor<2x3x8xf32>, tensor<2x8xf32>, tensor<2x2x4x4xf32>, tensor<2x3x8xf32>)
  return
}

// -----

func.func @time_mix_lora_up_rank(%input: tensor<2x3x8xf32>, %shift_state: tensor<2x8xf32>, %wkv_state: tensor<2x2x4x4xf32>, %x_r: tensor<8xbf16>, %x_w: tensor<8xbf16>, %x_k: tensor<8xbf16>, %x_v: tensor<8xbf16>, %x_a: tensor<8xbf16>, %x_g: tensor<8xbf16>, %w0: tensor<8xbf16>, %w1: tensor<8x2xbf16>, %w2: tensor<2x8xbf16>, %a0: tensor<8xbf16>, %a1: tensor<8x3xbf16>, %a2: tensor<3x8x1xbf16>, %g1: tensor<8x5xbf16>, %g2: tensor<5x8xbf16>, %k_k: tensor<8xbf16>, %k_a: tensor<8xbf16>, %r_k: tensor<8xbf16>, %receptance: tensor<8x8xbf16>, %key: tensor<8x8xbf16>, %value: tensor<8x8xbf16>, %output: tensor<8x8xbf16>, %ln_x_weight: tensor<8xbf16>, %ln_x_bias: tensor<8xbf16>) {
  // expected-error @+1 {{'rwkv.time_mix' op 'a2' must have rank 2 [rank, C], got [3, 8, 1]}}
  %0:4 = rwkv.time_mix %input, %shift_state, %wkv_state
      lerp(%x_r, %x_w, %x_k, %x_v, %x_a, %x_g) decay(%w0, %w1, %w2) iclr(%a0, %a1, %a2)
      gate(%g1, %g2) key(%k_k, %k_a, %r_k) proj(%receptance, %key, %value, %output)
      ln_x(%ln_x_weight, %ln_x_bias)
      : (tensor<2x3x8xf32>, tensor<2x8xf32>, tensor<2x2x4x4xf32>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8x2xbf16>, tensor<2x8xbf16>, tensor<8xbf16>, tensor<8x3xbf16>, tensor<3x8x1xbf16>, tensor<8x5xbf16>, tensor<5x8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8xbf16>, tensor<8xbf16>)
      -> (tensor<2x3x8xf32>, tensor<2x8xf32>, tensor<2x2x4x4xf32>, tensor<2x3x8xf32>)
  return
}

// -----

func.func @time_mix_lora_channels(%input: tensor<2x3x8xf32>, %shift_state: tensor<2x8xf32>, %wkv_state: tensor<2x2x4x4xf32>, %x_r: tensor<8xbf16>, %x_w: tensor<8xbf16>, %x_k: tensor<8xbf16>, %x_v: tensor<8xbf16>, %x_a: tensor<8xbf16>, %x_g: tensor<8xbf16>, %w0: tensor<8xbf16>, %w1: tensor<8x2xbf16>, %w2: tensor<2x8xbf16>, %a0: tensor<8xbf16>, %a1: tensor<8x3xbf16>, %a2: tensor<3x8xbf16>, %g1: tensor<5x8xbf16>, %g2: tensor<5x8xbf16>, %k_k: tensor<8xbf16>, %k_a: tensor<8xbf16>, %r_k: tensor<8xbf16>, %receptance: tensor<8x8xbf16>, %key: tensor<8x8xbf16>, %value: tensor<8x8xbf16>, %output: tensor<8x8xbf16>, %ln_x_weight: tensor<8xbf16>, %ln_x_bias: tensor<8xbf16>) {
  // expected-error @+1 {{'rwkv.time_mix' op 'g1' [5, 8] and 'g2' [5, 8] must map 8 channels to 8}}
  %0:4 = rwkv.time_mix %input, %shift_state, %wkv_state
      lerp(%x_r, %x_w, %x_k, %x_v, %x_a, %x_g) decay(%w0, %w1, %w2) iclr(%a0, %a1, %a2)
      gate(%g1, %g2) key(%k_k, %k_a, %r_k) proj(%receptance, %key, %value, %output)
      ln_x(%ln_x_weight, %ln_x_bias)
      : (tensor<2x3x8xf32>, tensor<2x8xf32>, tensor<2x2x4x4xf32>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8x2xbf16>, tensor<2x8xbf16>, tensor<8xbf16>, tensor<8x3xbf16>, tensor<3x8xbf16>, tensor<5x8xbf16>, tensor<5x8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8xbf16>, tensor<8xbf16>)
      -> (tensor<2x3x8xf32>, tensor<2x8xf32>, tensor<2x2x4x4xf32>, tensor<2x3x8xf32>)
  return
}

// -----

func.func @time_mix_lora_out_channels(%input: tensor<2x3x8xf32>, %shift_state: tensor<2x8xf32>, %wkv_state: tensor<2x2x4x4xf32>, %x_r: tensor<8xbf16>, %x_w: tensor<8xbf16>, %x_k: tensor<8xbf16>, %x_v: tensor<8xbf16>, %x_a: tensor<8xbf16>, %x_g: tensor<8xbf16>, %w0: tensor<8xbf16>, %w1: tensor<8x2xbf16>, %w2: tensor<2x16xbf16>, %a0: tensor<8xbf16>, %a1: tensor<8x3xbf16>, %a2: tensor<3x8xbf16>, %g1: tensor<8x5xbf16>, %g2: tensor<5x8xbf16>, %k_k: tensor<8xbf16>, %k_a: tensor<8xbf16>, %r_k: tensor<8xbf16>, %receptance: tensor<8x8xbf16>, %key: tensor<8x8xbf16>, %value: tensor<8x8xbf16>, %output: tensor<8x8xbf16>, %ln_x_weight: tensor<8xbf16>, %ln_x_bias: tensor<8xbf16>) {
  // expected-error @+1 {{'rwkv.time_mix' op 'w1' [8, 2] and 'w2' [2, 16] must map 8 channels to 8}}
  %0:4 = rwkv.time_mix %input, %shift_state, %wkv_state
      lerp(%x_r, %x_w, %x_k, %x_v, %x_a, %x_g) decay(%w0, %w1, %w2) iclr(%a0, %a1, %a2)
      gate(%g1, %g2) key(%k_k, %k_a, %r_k) proj(%receptance, %key, %value, %output)
      ln_x(%ln_x_weight, %ln_x_bias)
      : (tensor<2x3x8xf32>, tensor<2x8xf32>, tensor<2x2x4x4xf32>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8x2xbf16>, tensor<2x16xbf16>, tensor<8xbf16>, tensor<8x3xbf16>, tensor<3x8xbf16>, tensor<8x5xbf16>, tensor<5x8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8xbf16>, tensor<8xbf16>)
      -> (tensor<2x3x8xf32>, tensor<2x8xf32>, tensor<2x2x4x4xf32>, tensor<2x3x8xf32>)
  return
}

// -----

func.func @time_mix_lora_ranks(%input: tensor<2x3x8xf32>, %shift_state: tensor<2x8xf32>, %wkv_state: tensor<2x2x4x4xf32>, %x_r: tensor<8xbf16>, %x_w: tensor<8xbf16>, %x_k: tensor<8xbf16>, %x_v: tensor<8xbf16>, %x_a: tensor<8xbf16>, %x_g: tensor<8xbf16>, %w0: tensor<8xbf16>, %w1: tensor<8x2xbf16>, %w2: tensor<2x8xbf16>, %a0: tensor<8xbf16>, %a1: tensor<8x3xbf16>, %a2: tensor<4x8xbf16>, %g1: tensor<8x5xbf16>, %g2: tensor<5x8xbf16>, %k_k: tensor<8xbf16>, %k_a: tensor<8xbf16>, %r_k: tensor<8xbf16>, %receptance: tensor<8x8xbf16>, %key: tensor<8x8xbf16>, %value: tensor<8x8xbf16>, %output: tensor<8x8xbf16>, %ln_x_weight: tensor<8xbf16>, %ln_x_bias: tensor<8xbf16>) {
  // expected-error @+1 {{'rwkv.time_mix' op LoRA ranks disagree: 'a1' is [8, 3] but 'a2' is [4, 8]}}
  %0:4 = rwkv.time_mix %input, %shift_state, %wkv_state
      lerp(%x_r, %x_w, %x_k, %x_v, %x_a, %x_g) decay(%w0, %w1, %w2) iclr(%a0, %a1, %a2)
      gate(%g1, %g2) key(%k_k, %k_a, %r_k) proj(%receptance, %key, %value, %output)
      ln_x(%ln_x_weight, %ln_x_bias)
      : (tensor<2x3x8xf32>, tensor<2x8xf32>, tensor<2x2x4x4xf32>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8x2xbf16>, tensor<2x8xbf16>, tensor<8xbf16>, tensor<8x3xbf16>, tensor<4x8xbf16>, tensor<8x5xbf16>, tensor<5x8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8xbf16>, tensor<8xbf16>)
      -> (tensor<2x3x8xf32>, tensor<2x8xf32>, tensor<2x2x4x4xf32>, tensor<2x3x8xf32>)
  return
}

// -----

func.func @time_mix_projection(%input: tensor<2x3x8xf32>, %shift_state: tensor<2x8xf32>, %wkv_state: tensor<2x2x4x4xf32>, %x_r: tensor<8xbf16>, %x_w: tensor<8xbf16>, %x_k: tensor<8xbf16>, %x_v: tensor<8xbf16>, %x_a: tensor<8xbf16>, %x_g: tensor<8xbf16>, %w0: tensor<8xbf16>, %w1: tensor<8x2xbf16>, %w2: tensor<2x8xbf16>, %a0: tensor<8xbf16>, %a1: tensor<8x3xbf16>, %a2: tensor<3x8xbf16>, %g1: tensor<8x5xbf16>, %g2: tensor<5x8xbf16>, %k_k: tensor<8xbf16>, %k_a: tensor<8xbf16>, %r_k: tensor<8xbf16>, %receptance: tensor<8x8xbf16>, %key: tensor<8x8xbf16>, %value: tensor<8x8xbf16>, %output: tensor<16x8xbf16>, %ln_x_weight: tensor<8xbf16>, %ln_x_bias: tensor<8xbf16>) {
  // expected-error @+1 {{'rwkv.time_mix' op 'output' has shape [16, 8] but expected [8, 8]}}
  %0:4 = rwkv.time_mix %input, %shift_state, %wkv_state
      lerp(%x_r, %x_w, %x_k, %x_v, %x_a, %x_g) decay(%w0, %w1, %w2) iclr(%a0, %a1, %a2)
      gate(%g1, %g2) key(%k_k, %k_a, %r_k) proj(%receptance, %key, %value, %output)
      ln_x(%ln_x_weight, %ln_x_bias)
      : (tensor<2x3x8xf32>, tensor<2x8xf32>, tensor<2x2x4x4xf32>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8x2xbf16>, tensor<2x8xbf16>, tensor<8xbf16>, tensor<8x3xbf16>, tensor<3x8xbf16>, tensor<8x5xbf16>, tensor<5x8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<16x8xbf16>, tensor<8xbf16>, tensor<8xbf16>)
      -> (tensor<2x3x8xf32>, tensor<2x8xf32>, tensor<2x2x4x4xf32>, tensor<2x3x8xf32>)
  return
}

// -----

func.func @time_mix_projection_rank(%input: tensor<2x3x8xf32>, %shift_state: tensor<2x8xf32>, %wkv_state: tensor<2x2x4x4xf32>, %x_r: tensor<8xbf16>, %x_w: tensor<8xbf16>, %x_k: tensor<8xbf16>, %x_v: tensor<8xbf16>, %x_a: tensor<8xbf16>, %x_g: tensor<8xbf16>, %w0: tensor<8xbf16>, %w1: tensor<8x2xbf16>, %w2: tensor<2x8xbf16>, %a0: tensor<8xbf16>, %a1: tensor<8x3xbf16>, %a2: tensor<3x8xbf16>, %g1: tensor<8x5xbf16>, %g2: tensor<5x8xbf16>, %k_k: tensor<8xbf16>, %k_a: tensor<8xbf16>, %r_k: tensor<8xbf16>, %receptance: tensor<8xbf16>, %key: tensor<8x8xbf16>, %value: tensor<8x8xbf16>, %output: tensor<8x8xbf16>, %ln_x_weight: tensor<8xbf16>, %ln_x_bias: tensor<8xbf16>) {
  // expected-error @+1 {{'rwkv.time_mix' op 'receptance' has shape [8] but expected [8, 8]}}
  %0:4 = rwkv.time_mix %input, %shift_state, %wkv_state
      lerp(%x_r, %x_w, %x_k, %x_v, %x_a, %x_g) decay(%w0, %w1, %w2) iclr(%a0, %a1, %a2)
      gate(%g1, %g2) key(%k_k, %k_a, %r_k) proj(%receptance, %key, %value, %output)
      ln_x(%ln_x_weight, %ln_x_bias)
      : (tensor<2x3x8xf32>, tensor<2x8xf32>, tensor<2x2x4x4xf32>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8x2xbf16>, tensor<2x8xbf16>, tensor<8xbf16>, tensor<8x3xbf16>, tensor<3x8xbf16>, tensor<8x5xbf16>, tensor<5x8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8xbf16>, tensor<8xbf16>)
      -> (tensor<2x3x8xf32>, tensor<2x8xf32>, tensor<2x2x4x4xf32>, tensor<2x3x8xf32>)
  return
}

// -----

func.func @time_mix_v_first_without_residual(%input: tensor<2x3x8xf32>, %shift_state: tensor<2x8xf32>, %wkv_state: tensor<2x2x4x4xf32>, %v_first: tensor<2x3x8xf32>, %x_r: tensor<8xbf16>, %x_w: tensor<8xbf16>, %x_k: tensor<8xbf16>, %x_v: tensor<8xbf16>, %x_a: tensor<8xbf16>, %x_g: tensor<8xbf16>, %w0: tensor<8xbf16>, %w1: tensor<8x2xbf16>, %w2: tensor<2x8xbf16>, %a0: tensor<8xbf16>, %a1: tensor<8x3xbf16>, %a2: tensor<3x8xbf16>, %g1: tensor<8x5xbf16>, %g2: tensor<5x8xbf16>, %k_k: tensor<8xbf16>, %k_a: tensor<8xbf16>, %r_k: tensor<8xbf16>, %receptance: tensor<8x8xbf16>, %key: tensor<8x8xbf16>, %value: tensor<8x8xbf16>, %output: tensor<8x8xbf16>, %ln_x_weight: tensor<8xbf16>, %ln_x_bias: tensor<8xbf16>) {
  // expected-error @+1 {{'rwkv.time_mix' op a layer that takes v_first needs value_residual weights (v0, v1, v2)}}
  %0:4 = rwkv.time_mix %input, %shift_state, %wkv_state v_first(%v_first)
      lerp(%x_r, %x_w, %x_k, %x_v, %x_a, %x_g) decay(%w0, %w1, %w2) iclr(%a0, %a1, %a2)
      gate(%g1, %g2) key(%k_k, %k_a, %r_k) proj(%receptance, %key, %value, %output)
      ln_x(%ln_x_weight, %ln_x_bias)
      : (tensor<2x3x8xf32>, tensor<2x8xf32>, tensor<2x2x4x4xf32>, tensor<2x3x8xf32>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8x2xbf16>, tensor<2x8xbf16>, tensor<8xbf16>, tensor<8x3xbf16>, tensor<3x8xbf16>, tensor<8x5xbf16>, tensor<5x8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8xbf16>, tensor<8xbf16>)
      -> (tensor<2x3x8xf32>, tensor<2x8xf32>, tensor<2x2x4x4xf32>, tensor<2x3x8xf32>)
  return
}

// -----

func.func @time_mix_residual_without_v_first(%input: tensor<2x3x8xf32>, %shift_state: tensor<2x8xf32>, %wkv_state: tensor<2x2x4x4xf32>, %x_r: tensor<8xbf16>, %x_w: tensor<8xbf16>, %x_k: tensor<8xbf16>, %x_v: tensor<8xbf16>, %x_a: tensor<8xbf16>, %x_g: tensor<8xbf16>, %w0: tensor<8xbf16>, %w1: tensor<8x2xbf16>, %w2: tensor<2x8xbf16>, %a0: tensor<8xbf16>, %a1: tensor<8x3xbf16>, %a2: tensor<3x8xbf16>, %v0: tensor<8xbf16>, %v1: tensor<8x4xbf16>, %v2: tensor<4x8xbf16>, %g1: tensor<8x5xbf16>, %g2: tensor<5x8xbf16>, %k_k: tensor<8xbf16>, %k_a: tensor<8xbf16>, %r_k: tensor<8xbf16>, %receptance: tensor<8x8xbf16>, %key: tensor<8x8xbf16>, %value: tensor<8x8xbf16>, %output: tensor<8x8xbf16>, %ln_x_weight: tensor<8xbf16>, %ln_x_bias: tensor<8xbf16>) {
  // expected-error @+1 {{'rwkv.time_mix' op value_residual weights given without v_first: layer 0 defines v_first and takes no residual}}
  %0:4 = rwkv.time_mix %input, %shift_state, %wkv_state
      lerp(%x_r, %x_w, %x_k, %x_v, %x_a, %x_g) decay(%w0, %w1, %w2) iclr(%a0, %a1, %a2) value_residual(%v0, %v1, %v2)
      gate(%g1, %g2) key(%k_k, %k_a, %r_k) proj(%receptance, %key, %value, %output)
      ln_x(%ln_x_weight, %ln_x_bias)
      : (tensor<2x3x8xf32>, tensor<2x8xf32>, tensor<2x2x4x4xf32>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8x2xbf16>, tensor<2x8xbf16>, tensor<8xbf16>, tensor<8x3xbf16>, tensor<3x8xbf16>, tensor<8xbf16>, tensor<8x4xbf16>, tensor<4x8xbf16>, tensor<8x5xbf16>, tensor<5x8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8xbf16>, tensor<8xbf16>)
      -> (tensor<2x3x8xf32>, tensor<2x8xf32>, tensor<2x2x4x4xf32>, tensor<2x3x8xf32>)
  return
}

// -----

func.func @time_mix_partial_residual(%input: tensor<2x3x8xf32>, %shift_state: tensor<2x8xf32>, %wkv_state: tensor<2x2x4x4xf32>, %v_first: tensor<2x3x8xf32>, %x_r: tensor<8xbf16>, %x_w: tensor<8xbf16>, %x_k: tensor<8xbf16>, %x_v: tensor<8xbf16>, %x_a: tensor<8xbf16>, %x_g: tensor<8xbf16>, %w0: tensor<8xbf16>, %w1: tensor<8x2xbf16>, %w2: tensor<2x8xbf16>, %a0: tensor<8xbf16>, %a1: tensor<8x3xbf16>, %a2: tensor<3x8xbf16>, %v0: tensor<8xbf16>, %v1: tensor<8x4xbf16>, %g1: tensor<8x5xbf16>, %g2: tensor<5x8xbf16>, %k_k: tensor<8xbf16>, %k_a: tensor<8xbf16>, %r_k: tensor<8xbf16>, %receptance: tensor<8x8xbf16>, %key: tensor<8x8xbf16>, %value: tensor<8x8xbf16>, %output: tensor<8x8xbf16>, %ln_x_weight: tensor<8xbf16>, %ln_x_bias: tensor<8xbf16>) {
  // expected-error @+1 {{'rwkv.time_mix' op value_residual needs all of v0, v1 and v2}}
  %0:4 = "rwkv.time_mix"(%input, %shift_state, %wkv_state, %v_first, %x_r, %x_w, %x_k, %x_v, %x_a, %x_g, %w0, %w1, %w2, %a0, %a1, %a2, %v0, %v1, %g1, %g2, %k_k, %k_a, %r_k, %receptance, %key, %value, %output, %ln_x_weight, %ln_x_bias) <{operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1>}>
      : (tensor<2x3x8xf32>, tensor<2x8xf32>, tensor<2x2x4x4xf32>, tensor<2x3x8xf32>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8x2xbf16>, tensor<2x8xbf16>, tensor<8xbf16>, tensor<8x3xbf16>, tensor<3x8xbf16>, tensor<8xbf16>, tensor<8x4xbf16>, tensor<8x5xbf16>, tensor<5x8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8xbf16>, tensor<8xbf16>) -> (tensor<2x3x8xf32>, tensor<2x8xf32>, tensor<2x2x4x4xf32>, tensor<2x3x8xf32>)
  return
}

// -----

func.func @time_mix_only_v0(%input: tensor<2x3x8xf32>, %shift_state: tensor<2x8xf32>, %wkv_state: tensor<2x2x4x4xf32>, %x_r: tensor<8xbf16>, %x_w: tensor<8xbf16>, %x_k: tensor<8xbf16>, %x_v: tensor<8xbf16>, %x_a: tensor<8xbf16>, %x_g: tensor<8xbf16>, %w0: tensor<8xbf16>, %w1: tensor<8x2xbf16>, %w2: tensor<2x8xbf16>, %a0: tensor<8xbf16>, %a1: tensor<8x3xbf16>, %a2: tensor<3x8xbf16>, %v0: tensor<8xbf16>, %g1: tensor<8x5xbf16>, %g2: tensor<5x8xbf16>, %k_k: tensor<8xbf16>, %k_a: tensor<8xbf16>, %r_k: tensor<8xbf16>, %receptance: tensor<8x8xbf16>, %key: tensor<8x8xbf16>, %value: tensor<8x8xbf16>, %output: tensor<8x8xbf16>, %ln_x_weight: tensor<8xbf16>, %ln_x_bias: tensor<8xbf16>) {
  // expected-error @+1 {{'rwkv.time_mix' op value_residual needs all of v0, v1 and v2}}
  %0:4 = "rwkv.time_mix"(%input, %shift_state, %wkv_state, %x_r, %x_w, %x_k, %x_v, %x_a, %x_g, %w0, %w1, %w2, %a0, %a1, %a2, %v0, %g1, %g2, %k_k, %k_a, %r_k, %receptance, %key, %value, %output, %ln_x_weight, %ln_x_bias) <{operandSegmentSizes = array<i32: 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1>}>
      : (tensor<2x3x8xf32>, tensor<2x8xf32>, tensor<2x2x4x4xf32>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8x2xbf16>, tensor<2x8xbf16>, tensor<8xbf16>, tensor<8x3xbf16>, tensor<3x8xbf16>, tensor<8xbf16>, tensor<8x5xbf16>, tensor<5x8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8xbf16>, tensor<8xbf16>) -> (tensor<2x3x8xf32>, tensor<2x8xf32>, tensor<2x2x4x4xf32>, tensor<2x3x8xf32>)
  return
}

// -----

func.func @time_mix_v0_shape(%input: tensor<2x3x8xf32>, %shift_state: tensor<2x8xf32>, %wkv_state: tensor<2x2x4x4xf32>, %v_first: tensor<2x3x8xf32>, %x_r: tensor<8xbf16>, %x_w: tensor<8xbf16>, %x_k: tensor<8xbf16>, %x_v: tensor<8xbf16>, %x_a: tensor<8xbf16>, %x_g: tensor<8xbf16>, %w0: tensor<8xbf16>, %w1: tensor<8x2xbf16>, %w2: tensor<2x8xbf16>, %a0: tensor<8xbf16>, %a1: tensor<8x3xbf16>, %a2: tensor<3x8xbf16>, %v0: tensor<4xbf16>, %v1: tensor<8x4xbf16>, %v2: tensor<4x8xbf16>, %g1: tensor<8x5xbf16>, %g2: tensor<5x8xbf16>, %k_k: tensor<8xbf16>, %k_a: tensor<8xbf16>, %r_k: tensor<8xbf16>, %receptance: tensor<8x8xbf16>, %key: tensor<8x8xbf16>, %value: tensor<8x8xbf16>, %output: tensor<8x8xbf16>, %ln_x_weight: tensor<8xbf16>, %ln_x_bias: tensor<8xbf16>) {
  // expected-error @+1 {{'rwkv.time_mix' op 'v0' has shape [4] but expected [8]}}
  %0:4 = rwkv.time_mix %input, %shift_state, %wkv_state v_first(%v_first)
      lerp(%x_r, %x_w, %x_k, %x_v, %x_a, %x_g) decay(%w0, %w1, %w2) iclr(%a0, %a1, %a2) value_residual(%v0, %v1, %v2)
      gate(%g1, %g2) key(%k_k, %k_a, %r_k) proj(%receptance, %key, %value, %output)
      ln_x(%ln_x_weight, %ln_x_bias)
      : (tensor<2x3x8xf32>, tensor<2x8xf32>, tensor<2x2x4x4xf32>, tensor<2x3x8xf32>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8x2xbf16>, tensor<2x8xbf16>, tensor<8xbf16>, tensor<8x3xbf16>, tensor<3x8xbf16>, tensor<4xbf16>, tensor<8x4xbf16>, tensor<4x8xbf16>, tensor<8x5xbf16>, tensor<5x8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8xbf16>, tensor<8xbf16>)
      -> (tensor<2x3x8xf32>, tensor<2x8xf32>, tensor<2x2x4x4xf32>, tensor<2x3x8xf32>)
  return
}

// -----

func.func @time_mix_value_residual_ranks(%input: tensor<2x3x8xf32>, %shift_state: tensor<2x8xf32>, %wkv_state: tensor<2x2x4x4xf32>, %v_first: tensor<2x3x8xf32>, %x_r: tensor<8xbf16>, %x_w: tensor<8xbf16>, %x_k: tensor<8xbf16>, %x_v: tensor<8xbf16>, %x_a: tensor<8xbf16>, %x_g: tensor<8xbf16>, %w0: tensor<8xbf16>, %w1: tensor<8x2xbf16>, %w2: tensor<2x8xbf16>, %a0: tensor<8xbf16>, %a1: tensor<8x3xbf16>, %a2: tensor<3x8xbf16>, %v0: tensor<8xbf16>, %v1: tensor<8x4xbf16>, %v2: tensor<2x8xbf16>, %g1: tensor<8x5xbf16>, %g2: tensor<5x8xbf16>, %k_k: tensor<8xbf16>, %k_a: tensor<8xbf16>, %r_k: tensor<8xbf16>, %receptance: tensor<8x8xbf16>, %key: tensor<8x8xbf16>, %value: tensor<8x8xbf16>, %output: tensor<8x8xbf16>, %ln_x_weight: tensor<8xbf16>, %ln_x_bias: tensor<8xbf16>) {
  // expected-error @+1 {{'rwkv.time_mix' op LoRA ranks disagree: 'v1' is [8, 4] but 'v2' is [2, 8]}}
  %0:4 = rwkv.time_mix %input, %shift_state, %wkv_state v_first(%v_first)
      lerp(%x_r, %x_w, %x_k, %x_v, %x_a, %x_g) decay(%w0, %w1, %w2) iclr(%a0, %a1, %a2) value_residual(%v0, %v1, %v2)
      gate(%g1, %g2) key(%k_k, %k_a, %r_k) proj(%receptance, %key, %value, %output)
      ln_x(%ln_x_weight, %ln_x_bias)
      : (tensor<2x3x8xf32>, tensor<2x8xf32>, tensor<2x2x4x4xf32>, tensor<2x3x8xf32>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8x2xbf16>, tensor<2x8xbf16>, tensor<8xbf16>, tensor<8x3xbf16>, tensor<3x8xbf16>, tensor<8xbf16>, tensor<8x4xbf16>, tensor<2x8xbf16>, tensor<8x5xbf16>, tensor<5x8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8xbf16>, tensor<8xbf16>)
      -> (tensor<2x3x8xf32>, tensor<2x8xf32>, tensor<2x2x4x4xf32>, tensor<2x3x8xf32>)
  return
}

// -----

func.func @time_mix_value_residual_channels(%input: tensor<2x3x8xf32>, %shift_state: tensor<2x8xf32>, %wkv_state: tensor<2x2x4x4xf32>, %v_first: tensor<2x3x8xf32>, %x_r: tensor<8xbf16>, %x_w: tensor<8xbf16>, %x_k: tensor<8xbf16>, %x_v: tensor<8xbf16>, %x_a: tensor<8xbf16>, %x_g: tensor<8xbf16>, %w0: tensor<8xbf16>, %w1: tensor<8x2xbf16>, %w2: tensor<2x8xbf16>, %a0: tensor<8xbf16>, %a1: tensor<8x3xbf16>, %a2: tensor<3x8xbf16>, %v0: tensor<8xbf16>, %v1: tensor<4x8xbf16>, %v2: tensor<4x8xbf16>, %g1: tensor<8x5xbf16>, %g2: tensor<5x8xbf16>, %k_k: tensor<8xbf16>, %k_a: tensor<8xbf16>, %r_k: tensor<8xbf16>, %receptance: tensor<8x8xbf16>, %key: tensor<8x8xbf16>, %value: tensor<8x8xbf16>, %output: tensor<8x8xbf16>, %ln_x_weight: tensor<8xbf16>, %ln_x_bias: tensor<8xbf16>) {
  // expected-error @+1 {{'rwkv.time_mix' op 'v1' [4, 8] and 'v2' [4, 8] must map 8 channels to 8}}
  %0:4 = rwkv.time_mix %input, %shift_state, %wkv_state v_first(%v_first)
      lerp(%x_r, %x_w, %x_k, %x_v, %x_a, %x_g) decay(%w0, %w1, %w2) iclr(%a0, %a1, %a2) value_residual(%v0, %v1, %v2)
      gate(%g1, %g2) key(%k_k, %k_a, %r_k) proj(%receptance, %key, %value, %output)
      ln_x(%ln_x_weight, %ln_x_bias)
      : (tensor<2x3x8xf32>, tensor<2x8xf32>, tensor<2x2x4x4xf32>, tensor<2x3x8xf32>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8x2xbf16>, tensor<2x8xbf16>, tensor<8xbf16>, tensor<8x3xbf16>, tensor<3x8xbf16>, tensor<8xbf16>, tensor<4x8xbf16>, tensor<4x8xbf16>, tensor<8x5xbf16>, tensor<5x8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8xbf16>, tensor<8xbf16>)
      -> (tensor<2x3x8xf32>, tensor<2x8xf32>, tensor<2x2x4x4xf32>, tensor<2x3x8xf32>)
  return
}

// -----

func.func @time_mix_chunk_length(%input: tensor<2x3x8xf32>, %shift_state: tensor<2x8xf32>, %wkv_state: tensor<2x2x4x4xf32>, %v_first: tensor<2x3x8xf32>, %x_r: tensor<8xbf16>, %x_w: tensor<8xbf16>, %x_k: tensor<8xbf16>, %x_v: tensor<8xbf16>, %x_a: tensor<8xbf16>, %x_g: tensor<8xbf16>, %w0: tensor<8xbf16>, %w1: tensor<8x2xbf16>, %w2: tensor<2x8xbf16>, %a0: tensor<8xbf16>, %a1: tensor<8x3xbf16>, %a2: tensor<3x8xbf16>, %v0: tensor<8xbf16>, %v1: tensor<8x4xbf16>, %v2: tensor<4x8xbf16>, %g1: tensor<8x5xbf16>, %g2: tensor<5x8xbf16>, %k_k: tensor<8xbf16>, %k_a: tensor<8xbf16>, %r_k: tensor<8xbf16>, %receptance: tensor<8x8xbf16>, %key: tensor<8x8xbf16>, %value: tensor<8x8xbf16>, %output: tensor<8x8xbf16>, %ln_x_weight: tensor<8xbf16>, %ln_x_bias: tensor<8xbf16>) {
  // expected-error @+1 {{'rwkv.time_mix' op chunk_length must be positive, got 0}}
  %0:4 = rwkv.time_mix %input, %shift_state, %wkv_state v_first(%v_first)
      lerp(%x_r, %x_w, %x_k, %x_v, %x_a, %x_g) decay(%w0, %w1, %w2) iclr(%a0, %a1, %a2) value_residual(%v0, %v1, %v2)
      gate(%g1, %g2) key(%k_k, %k_a, %r_k) proj(%receptance, %key, %value, %output)
      ln_x(%ln_x_weight, %ln_x_bias) {mode = #rwkv<wkv_mode chunked>, chunk_length = 0 : i64}
      : (tensor<2x3x8xf32>, tensor<2x8xf32>, tensor<2x2x4x4xf32>, tensor<2x3x8xf32>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8x2xbf16>, tensor<2x8xbf16>, tensor<8xbf16>, tensor<8x3xbf16>, tensor<3x8xbf16>, tensor<8xbf16>, tensor<8x4xbf16>, tensor<4x8xbf16>, tensor<8x5xbf16>, tensor<5x8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8xbf16>, tensor<8xbf16>)
      -> (tensor<2x3x8xf32>, tensor<2x8xf32>, tensor<2x2x4x4xf32>, tensor<2x3x8xf32>)
  return
}

// -----

func.func @time_mix_result(%input: tensor<2x3x8xf32>, %shift_state: tensor<2x8xf32>, %wkv_state: tensor<2x2x4x4xf32>, %x_r: tensor<8xbf16>, %x_w: tensor<8xbf16>, %x_k: tensor<8xbf16>, %x_v: tensor<8xbf16>, %x_a: tensor<8xbf16>, %x_g: tensor<8xbf16>, %w0: tensor<8xbf16>, %w1: tensor<8x2xbf16>, %w2: tensor<2x8xbf16>, %a0: tensor<8xbf16>, %a1: tensor<8x3xbf16>, %a2: tensor<3x8xbf16>, %g1: tensor<8x5xbf16>, %g2: tensor<5x8xbf16>, %k_k: tensor<8xbf16>, %k_a: tensor<8xbf16>, %r_k: tensor<8xbf16>, %receptance: tensor<8x8xbf16>, %key: tensor<8x8xbf16>, %value: tensor<8x8xbf16>, %output: tensor<8x8xbf16>, %ln_x_weight: tensor<8xbf16>, %ln_x_bias: tensor<8xbf16>) {
  // expected-error @+1 {{'rwkv.time_mix' op 'result' has shape [2, 1, 8] but expected [2, 3, 8]}}
  %0:4 = rwkv.time_mix %input, %shift_state, %wkv_state
      lerp(%x_r, %x_w, %x_k, %x_v, %x_a, %x_g) decay(%w0, %w1, %w2) iclr(%a0, %a1, %a2)
      gate(%g1, %g2) key(%k_k, %k_a, %r_k) proj(%receptance, %key, %value, %output)
      ln_x(%ln_x_weight, %ln_x_bias)
      : (tensor<2x3x8xf32>, tensor<2x8xf32>, tensor<2x2x4x4xf32>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8x2xbf16>, tensor<2x8xbf16>, tensor<8xbf16>, tensor<8x3xbf16>, tensor<3x8xbf16>, tensor<8x5xbf16>, tensor<5x8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8xbf16>, tensor<8xbf16>)
      -> (tensor<2x1x8xf32>, tensor<2x8xf32>, tensor<2x2x4x4xf32>, tensor<2x3x8xf32>)
  return
}

// -----

func.func @time_mix_new_shift_state(%input: tensor<2x3x8xf32>, %shift_state: tensor<2x8xf32>, %wkv_state: tensor<2x2x4x4xf32>, %x_r: tensor<8xbf16>, %x_w: tensor<8xbf16>, %x_k: tensor<8xbf16>, %x_v: tensor<8xbf16>, %x_a: tensor<8xbf16>, %x_g: tensor<8xbf16>, %w0: tensor<8xbf16>, %w1: tensor<8x2xbf16>, %w2: tensor<2x8xbf16>, %a0: tensor<8xbf16>, %a1: tensor<8x3xbf16>, %a2: tensor<3x8xbf16>, %g1: tensor<8x5xbf16>, %g2: tensor<5x8xbf16>, %k_k: tensor<8xbf16>, %k_a: tensor<8xbf16>, %r_k: tensor<8xbf16>, %receptance: tensor<8x8xbf16>, %key: tensor<8x8xbf16>, %value: tensor<8x8xbf16>, %output: tensor<8x8xbf16>, %ln_x_weight: tensor<8xbf16>, %ln_x_bias: tensor<8xbf16>) {
  // expected-error @+1 {{'rwkv.time_mix' op 'new_shift_state' has shape [2, 16] but expected [2, 8]}}
  %0:4 = rwkv.time_mix %input, %shift_state, %wkv_state
      lerp(%x_r, %x_w, %x_k, %x_v, %x_a, %x_g) decay(%w0, %w1, %w2) iclr(%a0, %a1, %a2)
      gate(%g1, %g2) key(%k_k, %k_a, %r_k) proj(%receptance, %key, %value, %output)
      ln_x(%ln_x_weight, %ln_x_bias)
      : (tensor<2x3x8xf32>, tensor<2x8xf32>, tensor<2x2x4x4xf32>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8x2xbf16>, tensor<2x8xbf16>, tensor<8xbf16>, tensor<8x3xbf16>, tensor<3x8xbf16>, tensor<8x5xbf16>, tensor<5x8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8xbf16>, tensor<8xbf16>)
      -> (tensor<2x3x8xf32>, tensor<2x16xf32>, tensor<2x2x4x4xf32>, tensor<2x3x8xf32>)
  return
}

// -----

func.func @time_mix_new_wkv_state(%input: tensor<2x3x8xf32>, %shift_state: tensor<2x8xf32>, %wkv_state: tensor<2x2x4x4xf32>, %x_r: tensor<8xbf16>, %x_w: tensor<8xbf16>, %x_k: tensor<8xbf16>, %x_v: tensor<8xbf16>, %x_a: tensor<8xbf16>, %x_g: tensor<8xbf16>, %w0: tensor<8xbf16>, %w1: tensor<8x2xbf16>, %w2: tensor<2x8xbf16>, %a0: tensor<8xbf16>, %a1: tensor<8x3xbf16>, %a2: tensor<3x8xbf16>, %g1: tensor<8x5xbf16>, %g2: tensor<5x8xbf16>, %k_k: tensor<8xbf16>, %k_a: tensor<8xbf16>, %r_k: tensor<8xbf16>, %receptance: tensor<8x8xbf16>, %key: tensor<8x8xbf16>, %value: tensor<8x8xbf16>, %output: tensor<8x8xbf16>, %ln_x_weight: tensor<8xbf16>, %ln_x_bias: tensor<8xbf16>) {
  // expected-error @+1 {{'rwkv.time_mix' op 'new_wkv_state' has shape [2, 1, 8, 8] but expected [2, 2, 4, 4]}}
  %0:4 = rwkv.time_mix %input, %shift_state, %wkv_state
      lerp(%x_r, %x_w, %x_k, %x_v, %x_a, %x_g) decay(%w0, %w1, %w2) iclr(%a0, %a1, %a2)
      gate(%g1, %g2) key(%k_k, %k_a, %r_k) proj(%receptance, %key, %value, %output)
      ln_x(%ln_x_weight, %ln_x_bias)
      : (tensor<2x3x8xf32>, tensor<2x8xf32>, tensor<2x2x4x4xf32>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8x2xbf16>, tensor<2x8xbf16>, tensor<8xbf16>, tensor<8x3xbf16>, tensor<3x8xbf16>, tensor<8x5xbf16>, tensor<5x8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8xbf16>, tensor<8xbf16>)
      -> (tensor<2x3x8xf32>, tensor<2x8xf32>, tensor<2x1x8x8xf32>, tensor<2x3x8xf32>)
  return
}

// -----

func.func @time_mix_v_first_out(%input: tensor<2x3x8xf32>, %shift_state: tensor<2x8xf32>, %wkv_state: tensor<2x2x4x4xf32>, %v_first: tensor<2x3x8xf32>, %x_r: tensor<8xbf16>, %x_w: tensor<8xbf16>, %x_k: tensor<8xbf16>, %x_v: tensor<8xbf16>, %x_a: tensor<8xbf16>, %x_g: tensor<8xbf16>, %w0: tensor<8xbf16>, %w1: tensor<8x2xbf16>, %w2: tensor<2x8xbf16>, %a0: tensor<8xbf16>, %a1: tensor<8x3xbf16>, %a2: tensor<3x8xbf16>, %v0: tensor<8xbf16>, %v1: tensor<8x4xbf16>, %v2: tensor<4x8xbf16>, %g1: tensor<8x5xbf16>, %g2: tensor<5x8xbf16>, %k_k: tensor<8xbf16>, %k_a: tensor<8xbf16>, %r_k: tensor<8xbf16>, %receptance: tensor<8x8xbf16>, %key: tensor<8x8xbf16>, %value: tensor<8x8xbf16>, %output: tensor<8x8xbf16>, %ln_x_weight: tensor<8xbf16>, %ln_x_bias: tensor<8xbf16>) {
  // expected-error @+1 {{'rwkv.time_mix' op 'v_first_out' has shape [2, 3, 4] but expected [2, 3, 8]}}
  %0:4 = rwkv.time_mix %input, %shift_state, %wkv_state v_first(%v_first)
      lerp(%x_r, %x_w, %x_k, %x_v, %x_a, %x_g) decay(%w0, %w1, %w2) iclr(%a0, %a1, %a2) value_residual(%v0, %v1, %v2)
      gate(%g1, %g2) key(%k_k, %k_a, %r_k) proj(%receptance, %key, %value, %output)
      ln_x(%ln_x_weight, %ln_x_bias)
      : (tensor<2x3x8xf32>, tensor<2x8xf32>, tensor<2x2x4x4xf32>, tensor<2x3x8xf32>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8x2xbf16>, tensor<2x8xbf16>, tensor<8xbf16>, tensor<8x3xbf16>, tensor<3x8xbf16>, tensor<8xbf16>, tensor<8x4xbf16>, tensor<4x8xbf16>, tensor<8x5xbf16>, tensor<5x8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8x8xbf16>, tensor<8xbf16>, tensor<8xbf16>)
      -> (tensor<2x3x8xf32>, tensor<2x8xf32>, tensor<2x2x4x4xf32>, tensor<2x3x4xf32>)
  return
}

// -----

func.func @channel_mix_input_rank(%x: tensor<3x8xf32>, %s: tensor<2x8xf32>, %mu: tensor<8xbf16>, %k: tensor<16x8xbf16>, %v: tensor<8x16xbf16>) {
  // expected-error @+1 {{'rwkv.channel_mix' op 'input' must have rank 3 [B, T, C], got [3, 8]}}
  %o, %ns = rwkv.channel_mix %x, %s lerp(%mu) proj(%k, %v)
      : (tensor<3x8xf32>, tensor<2x8xf32>, tensor<8xbf16>, tensor<16x8xbf16>, tensor<8x16xbf16>) -> (tensor<3x8xf32>, tensor<2x8xf32>)
  return
}

// -----

func.func @channel_mix_shift_state(%x: tensor<2x3x8xf32>, %s: tensor<2x3x8xf32>, %mu: tensor<8xbf16>, %k: tensor<16x8xbf16>, %v: tensor<8x16xbf16>) {
  // expected-error @+1 {{'rwkv.channel_mix' op 'shift_state' has shape [2, 3, 8] but expected [2, 8]}}
  %o, %ns = rwkv.channel_mix %x, %s lerp(%mu) proj(%k, %v)
      : (tensor<2x3x8xf32>, tensor<2x3x8xf32>, tensor<8xbf16>, tensor<16x8xbf16>, tensor<8x16xbf16>) -> (tensor<2x3x8xf32>, tensor<2x3x8xf32>)
  return
}

// -----

func.func @channel_mix_x_k(%x: tensor<2x3x8xf32>, %s: tensor<2x8xf32>, %mu: tensor<16xbf16>, %k: tensor<16x8xbf16>, %v: tensor<8x16xbf16>) {
  // expected-error @+1 {{'rwkv.channel_mix' op 'x_k' has shape [16] but expected [8]}}
  %o, %ns = rwkv.channel_mix %x, %s lerp(%mu) proj(%k, %v)
      : (tensor<2x3x8xf32>, tensor<2x8xf32>, tensor<16xbf16>, tensor<16x8xbf16>, tensor<8x16xbf16>) -> (tensor<2x3x8xf32>, tensor<2x8xf32>)
  return
}

// -----

func.func @channel_mix_key_rank(%x: tensor<2x3x8xf32>, %s: tensor<2x8xf32>, %mu: tensor<8xbf16>, %k: tensor<128xbf16>, %v: tensor<8x16xbf16>) {
  // expected-error @+1 {{'rwkv.channel_mix' op 'key' must have rank 2 [F, C], got [128]}}
  %o, %ns = rwkv.channel_mix %x, %s lerp(%mu) proj(%k, %v)
      : (tensor<2x3x8xf32>, tensor<2x8xf32>, tensor<8xbf16>, tensor<128xbf16>, tensor<8x16xbf16>) -> (tensor<2x3x8xf32>, tensor<2x8xf32>)
  return
}

// -----

func.func @channel_mix_key_transposed(%x: tensor<2x3x8xf32>, %s: tensor<2x8xf32>, %mu: tensor<8xbf16>, %k: tensor<8x16xbf16>, %v: tensor<8x16xbf16>) {
  // expected-error @+1 {{'rwkv.channel_mix' op 'key' has shape [8, 16] but expected [8, 8]}}
  %o, %ns = rwkv.channel_mix %x, %s lerp(%mu) proj(%k, %v)
      : (tensor<2x3x8xf32>, tensor<2x8xf32>, tensor<8xbf16>, tensor<8x16xbf16>, tensor<8x16xbf16>) -> (tensor<2x3x8xf32>, tensor<2x8xf32>)
  return
}

// -----

func.func @channel_mix_value(%x: tensor<2x3x8xf32>, %s: tensor<2x8xf32>, %mu: tensor<8xbf16>, %k: tensor<16x8xbf16>, %v: tensor<16x8xbf16>) {
  // expected-error @+1 {{'rwkv.channel_mix' op 'value' has shape [16, 8] but expected [8, 16]}}
  %o, %ns = rwkv.channel_mix %x, %s lerp(%mu) proj(%k, %v)
      : (tensor<2x3x8xf32>, tensor<2x8xf32>, tensor<8xbf16>, tensor<16x8xbf16>, tensor<16x8xbf16>) -> (tensor<2x3x8xf32>, tensor<2x8xf32>)
  return
}

// -----

func.func @channel_mix_value_ffn(%x: tensor<2x3x8xf32>, %s: tensor<2x8xf32>, %mu: tensor<8xbf16>, %k: tensor<16x8xbf16>, %v: tensor<8x32xbf16>) {
  // expected-error @+1 {{'rwkv.channel_mix' op 'value' has shape [8, 32] but expected [8, 16]}}
  %o, %ns = rwkv.channel_mix %x, %s lerp(%mu) proj(%k, %v)
      : (tensor<2x3x8xf32>, tensor<2x8xf32>, tensor<8xbf16>, tensor<16x8xbf16>, tensor<8x32xbf16>) -> (tensor<2x3x8xf32>, tensor<2x8xf32>)
  return
}

// -----

func.func @channel_mix_result(%x: tensor<2x3x8xf32>, %s: tensor<2x8xf32>, %mu: tensor<8xbf16>, %k: tensor<16x8xbf16>, %v: tensor<8x16xbf16>) {
  // expected-error @+1 {{'rwkv.channel_mix' op 'result' has shape [2, 3, 16] but expected [2, 3, 8]}}
  %o, %ns = rwkv.channel_mix %x, %s lerp(%mu) proj(%k, %v)
      : (tensor<2x3x8xf32>, tensor<2x8xf32>, tensor<8xbf16>, tensor<16x8xbf16>, tensor<8x16xbf16>) -> (tensor<2x3x16xf32>, tensor<2x8xf32>)
  return
}

// -----

func.func @channel_mix_new_shift_state(%x: tensor<2x3x8xf32>, %s: tensor<2x8xf32>, %mu: tensor<8xbf16>, %k: tensor<16x8xbf16>, %v: tensor<8x16xbf16>) {
  // expected-error @+1 {{'rwkv.channel_mix' op 'new_shift_state' has shape [1, 8] but expected [2, 8]}}
  %o, %ns = rwkv.channel_mix %x, %s lerp(%mu) proj(%k, %v)
      : (tensor<2x3x8xf32>, tensor<2x8xf32>, tensor<8xbf16>, tensor<16x8xbf16>, tensor<8x16xbf16>) -> (tensor<2x3x8xf32>, tensor<1x8xf32>)
  return
}

// -----

func.func @block_negative_layer() {
  // expected-error @+1 {{'rwkv.block' op layer index must be non-negative, got -1}}
  rwkv.block layer -1 {
  }
  return
}

// -----

func.func @block_yield_type(%x: tensor<2x3x8xf32>) {
  // expected-error @+1 {{'rwkv.block' op yields 1 values whose types do not match its 1 results}}
  %0 = rwkv.block layer 0 -> (tensor<2x?x8xf32>) {
    rwkv.yield %x : tensor<2x3x8xf32>
  }
  return
}

// -----

func.func @block_yield_count(%x: tensor<2x3x8xf32>) {
  // expected-error @+1 {{'rwkv.block' op yields 1 values whose types do not match its 2 results}}
  %0:2 = rwkv.block layer 0 -> (tensor<2x3x8xf32>, tensor<2x3x8xf32>) {
    rwkv.yield %x : tensor<2x3x8xf32>
  }
  return
}

// -----

func.func @block_yield_nothing() {
  // expected-error @+1 {{'rwkv.block' op yields 0 values whose types do not match its 1 results}}
  %0 = rwkv.block layer 0 -> (tensor<2x3x8xf32>) {
  }
  return
}

// -----

func.func @block_two_blocks(%x: tensor<2x3x8xf32>) {
  // expected-error @+1 {{'rwkv.block' op expects region #0 to have 0 or 1 blocks}}
  "rwkv.block"() <{layer = 0 : i64}> ({
    "rwkv.yield"() : () -> ()
  ^bb1:
    "rwkv.yield"() : () -> ()
  }) : () -> ()
  return
}

// -----

func.func @block_wrong_terminator(%x: tensor<2x3x8xf32>) {
  // expected-error @+2 {{'rwkv.block' op expects regions to end with 'rwkv.yield', found 'llvm.unreachable'}}
  // expected-note @+1 {{in custom textual format, the absence of terminator implies 'rwkv.yield'}}
  "rwkv.block"() <{layer = 0 : i64}> ({
    llvm.unreachable
  }) : () -> ()
  return
}

// -----

// expected-error @+1 {{'rwkv.model' op has no public entry-point function}}
rwkv.model @empty config = #rwkv.config<version = 7, n_layer = 1, n_embd = 8, n_head = 2, head_size = 4, dim_ffn = 32, vocab_size = 16, lora_w = 2, lora_a = 2, lora_v = 2, lora_g = 2> {
  func.func private @only_private() {
    return
  }
}

// -----

// expected-error @+1 {{entry point 'f' must take token ids [B, T] first}}
rwkv.model @m config = #rwkv.config<version = 7, n_layer = 1, n_embd = 8, n_head = 2, head_size = 4, dim_ffn = 32, vocab_size = 16, lora_w = 2, lora_a = 2, lora_v = 2, lora_g = 2> {
  func.func @f(%x: tensor<1x8xf32>) {
    return
  }
}

// -----

// expected-error @+1 {{entry point 'f' state argument #1 (wkv:0) has type 'tensor<1x2x8x8xf32>' but the config implies f32 [1, 2, 4, 4]}}
rwkv.model @m config = #rwkv.config<version = 7, n_layer = 1, n_embd = 8, n_head = 2, head_size = 4, dim_ffn = 32, vocab_size = 16, lora_w = 2, lora_a = 2, lora_v = 2, lora_g = 2> {
  func.func @f(%t: tensor<1x?xi32>, %s: tensor<1x2x8x8xf32> {rwkv.state = "wkv:0"}) {
    return
  }
}

// -----

// expected-error @+1 {{entry point 'f' state argument #1 (att_shift:0) has type 'tensor<1x8xbf16>' but the config implies f32 [1, 8]}}
rwkv.model @m config = #rwkv.config<version = 7, n_layer = 1, n_embd = 8, n_head = 2, head_size = 4, dim_ffn = 32, vocab_size = 16, lora_w = 2, lora_a = 2, lora_v = 2, lora_g = 2> {
  func.func @f(%t: tensor<1x?xi32>, %s: tensor<1x8xbf16> {rwkv.state = "att_shift:0"}) {
    return
  }
}

// -----

func.func @int8_without_scale(%x: tensor<2x3x8xf32>, %q: tensor<8x8xi8>) {
  // expected-error @+1 {{'rwkv.linear' op int8 'weight' needs per-row scales (a 'scale' operand)}}
  %y = rwkv.linear %x, %q : tensor<2x3x8xf32>, tensor<8x8xi8> -> tensor<2x3x8xf32>
  return
}

// -----

func.func @scale_with_float(%x: tensor<2x3x8xf32>, %w: tensor<8x8xbf16>, %s: tensor<8xf32>) {
  // expected-error @+1 {{'rwkv.linear' op 'scale' is only allowed with an int8 'weight', got 'bf16'}}
  %y = rwkv.linear %x, %w scale %s : tensor<2x3x8xf32>, tensor<8x8xbf16>, tensor<8xf32> -> tensor<2x3x8xf32>
  return
}

// -----

func.func @scale_shape(%x: tensor<2x3x8xf32>, %q: tensor<32x8xi8>, %s: tensor<8xf32>) {
  // expected-error @+1 {{'rwkv.head' op 'scale' has shape [8] but expected [32]}}
  %y = rwkv.head %x, %q scale %s : tensor<2x3x8xf32>, tensor<32x8xi8>, tensor<8xf32> -> tensor<2x3x32xf32>
  return
}

// -----

func.func @embed_int8_without_scale(%q: tensor<32x8xi8>, %ids: tensor<2x3xi32>) {
  // expected-error @+1 {{'rwkv.embed' op int8 'table' needs per-row scales (a 'scale' operand)}}
  %y = rwkv.embed %q, %ids : tensor<32x8xi8>, tensor<2x3xi32> -> tensor<2x3x8xf32>
  return
}

// -----

func.func @int4_without_scale(%x: tensor<2x3x8xf32>, %q: tensor<8x4xi8>) {
  // expected-error @+1 {{'rwkv.linear' op int4 'weight' needs per-group scales (a 'scale' operand)}}
  %y = rwkv.linear %x, %q group 4 : tensor<2x3x8xf32>, tensor<8x4xi8> -> tensor<2x3x8xf32>
  return
}

// -----

func.func @group_with_float(%x: tensor<2x3x8xf32>, %w: tensor<8x8xbf16>) {
  // expected-error @+1 {{'rwkv.linear' op 'group' is only allowed with a packed int4 or int8 (i8) 'weight', got 'bf16'}}
  %y = rwkv.linear %x, %w group 4 : tensor<2x3x8xf32>, tensor<8x8xbf16> -> tensor<2x3x8xf32>
  return
}

// -----

func.func @int4_odd_group(%x: tensor<2x3x6xf32>, %q: tensor<8x3xi8>, %s: tensor<8x2xbf16>) {
  // expected-error @+1 {{'rwkv.linear' op group size 3 must be even (two int4 weights per byte)}}
  %y = rwkv.linear %x, %q scale %s group 3 : tensor<2x3x6xf32>, tensor<8x3xi8>, tensor<8x2xbf16> -> tensor<2x3x8xf32>
  return
}

// -----

func.func @int4_group_not_dividing(%x: tensor<2x3x8xf32>, %q: tensor<8x4xi8>, %s: tensor<8x1xbf16>) {
  // expected-error @+1 {{'rwkv.head' op group size 6 does not divide the 8 columns of int4 'head weight'}}
  %y = rwkv.head %x, %q scale %s group 6 : tensor<2x3x8xf32>, tensor<8x4xi8>, tensor<8x1xbf16> -> tensor<2x3x8xf32>
  return
}

// -----

func.func @int4_scale_shape(%x: tensor<2x3x8xf32>, %q: tensor<8x4xi8>, %s: tensor<8x4xbf16>) {
  // expected-error @+1 {{'rwkv.linear' op 'scale' has shape [8, 4] but expected [8, 2]}}
  %y = rwkv.linear %x, %q scale %s group 4 : tensor<2x3x8xf32>, tensor<8x4xi8>, tensor<8x4xbf16> -> tensor<2x3x8xf32>
  return
}

// -----

func.func @int4_input_width(%x: tensor<2x3x4xf32>, %q: tensor<8x4xi8>, %s: tensor<8x2xbf16>) {
  // expected-error @+1 {{'rwkv.linear' op weight [8, 4] (packed int4, two columns per byte) does not take inputs of width 4 (weights are stored [out, in])}}
  %y = rwkv.linear %x, %q scale %s group 4 : tensor<2x3x4xf32>, tensor<8x4xi8>, tensor<8x2xbf16> -> tensor<2x3x8xf32>
  return
}

// -----

func.func @int8_bf16_scale(%x: tensor<2x3x8xf32>, %q: tensor<8x8xi8>, %s: tensor<8xbf16>) {
  // expected-error @+1 {{'rwkv.linear' op int8 scales must be f32, got 'bf16' (bf16 scales are per group: add 'group', and 'int8' for int8 weights)}}
  %y = rwkv.linear %x, %q scale %s : tensor<2x3x8xf32>, tensor<8x8xi8>, tensor<8xbf16> -> tensor<2x3x8xf32>
  return
}

// -----

func.func @int8_flag_without_group(%x: tensor<2x3x8xf32>, %q: tensor<8x8xi8>, %s: tensor<8xf32>) {
  // expected-error @+1 {{'rwkv.linear' op 'int8' needs a 'group' size (it marks int8 weights with per-group scales)}}
  %y = "rwkv.linear"(%x, %q, %s) {int8_groups} : (tensor<2x3x8xf32>, tensor<8x8xi8>, tensor<8xf32>) -> tensor<2x3x8xf32>
  return
}

// -----

func.func @int8_group_scale_shape(%x: tensor<2x3x8xf32>, %q: tensor<8x8xi8>, %s: tensor<8x1xbf16>) {
  // expected-error @+1 {{'rwkv.linear' op 'scale' has shape [8, 1] but expected [8, 2]}}
  %y = rwkv.linear %x, %q scale %s group 4 int8 : tensor<2x3x8xf32>, tensor<8x8xi8>, tensor<8x1xbf16> -> tensor<2x3x8xf32>
  return
}

// -----

func.func @int8_group_not_dividing(%x: tensor<2x3x8xf32>, %q: tensor<8x8xi8>, %s: tensor<8x2xbf16>) {
  // expected-error @+1 {{'rwkv.head' op group size 3 does not divide the 8 columns of int8 'head weight'}}
  %y = rwkv.head %x, %q scale %s group 3 int8 : tensor<2x3x8xf32>, tensor<8x8xi8>, tensor<8x2xbf16> -> tensor<2x3x8xf32>
  return
}

// -----

func.func @int8_group_input_width(%x: tensor<2x3x16xf32>, %q: tensor<8x8xi8>, %s: tensor<8x2xbf16>) {
  // expected-error @+1 {{'rwkv.linear' op weight [8, 8] does not take inputs of width 16 (weights are stored [out, in])}}
  %y = rwkv.linear %x, %q scale %s group 4 int8 : tensor<2x3x16xf32>, tensor<8x8xi8>, tensor<8x2xbf16> -> tensor<2x3x8xf32>
  return
}

// -----

func.func @embed_int4_result(%q: tensor<32x4xi8>, %ids: tensor<2x3xi32>, %s: tensor<32x2xbf16>) {
  // expected-error @+1 {{'rwkv.embed' op 'result' has shape [2, 3, 4] but expected [2, 3, 8]}}
  %y = rwkv.embed %q, %ids scale %s group 4 : tensor<32x4xi8>, tensor<2x3xi32>, tensor<32x2xbf16> -> tensor<2x3x4xf32>
  return
}

// -----

func.func @dequantize_int4_result(%q: tensor<16x4xi8>, %s: tensor<16x2xbf16>) {
  // expected-error @+1 {{'rwkv.dequantize' op 'result' has shape [16, 4] but expected [16, 8]}}
  %w = rwkv.dequantize %q, %s group 4 : tensor<16x4xi8>, tensor<16x2xbf16> -> tensor<16x4xf32>
  return
}

// -----

func.func @group_not_positive(%q: tensor<16x4xi8>, %s: tensor<16x2xbf16>) {
  // expected-error @+1 {{'rwkv.dequantize' op attribute 'group_size' failed to satisfy constraint: 64-bit signless integer attribute whose value is positive}}
  %w = rwkv.dequantize %q, %s group 0 : tensor<16x4xi8>, tensor<16x2xbf16> -> tensor<16x8xf32>
  return
}

// -----

func.func @dequantize_scale_shape(%q: tensor<16x8xi8>, %s: tensor<8xf32>) {
  // expected-error @+1 {{'rwkv.dequantize' op 'scale' has shape [8] but expected [16]}}
  %w = rwkv.dequantize %q, %s : tensor<16x8xi8>, tensor<8xf32> -> tensor<16x8xf32>
  return
}

// -----

func.func @dequantize_result_shape(%q: tensor<16x8xi8>, %s: tensor<16xf32>) {
  // expected-error @+1 {{'rwkv.dequantize' op 'result' has shape [8, 16] but expected [16, 8]}}
  %w = rwkv.dequantize %q, %s : tensor<16x8xi8>, tensor<16xf32> -> tensor<8x16xf32>
  return
}

// -----

func.func @dequantize_bf16(%q: tensor<16x8xbf16>, %s: tensor<16xf32>) {
  // expected-error @+1 {{'rwkv.dequantize' op operand #0 must be ranked tensor of 8-bit signless integer values, but got 'tensor<16x8xbf16>'}}
  %w = rwkv.dequantize %q, %s : tensor<16x8xbf16>, tensor<16xf32> -> tensor<16x8xf32>
  return
}

// -----

func.func @wkv4_w_shape(%w: tensor<4xf32>, %k: tensor<2x3x8xf32>, %s: tensor<2x8xf32>) {
  // expected-error @+1 {{'rwkv.wkv4' op 'w' has shape [4] but expected [8]}}
  %y, %aa, %bb, %pp = rwkv.wkv4 %w, %w, %k, %k, %s, %s, %s : tensor<4xf32>, tensor<2x3x8xf32>, tensor<2x8xf32>
  return
}

// -----

func.func @wkv4_state_batch(%w: tensor<8xf32>, %k: tensor<2x3x8xf32>, %s: tensor<3x8xf32>) {
  // expected-error @+1 {{'rwkv.wkv4' op 'aa' has shape [3, 8] but expected [2, 8]}}
  %y, %aa, %bb, %pp = rwkv.wkv4 %w, %w, %k, %k, %s, %s, %s : tensor<8xf32>, tensor<2x3x8xf32>, tensor<3x8xf32>
  return
}

// -----

func.func @wkv5_decay_shape(%x: tensor<2x3x8xf32>, %d: tensor<2x8xf32>, %u: tensor<8xf32>, %s: tensor<2x2x4x4xf32>) {
  // expected-error @+1 {{'rwkv.wkv5' op 'w' has shape [2, 8] but expected [2, 3, 8]}}
  %y, %ns = rwkv.wkv5 %x, %d, %x, %x, %u, %s : tensor<2x3x8xf32>, tensor<2x8xf32>, tensor<8xf32>, tensor<2x2x4x4xf32>
  return
}

// -----

func.func @wkv5_state_heads(%x: tensor<2x3x8xf32>, %u: tensor<8xf32>, %s: tensor<2x3x4x4xf32>) {
  // expected-error @+1 {{'rwkv.wkv5' op heads * head_size (3 * 4) must equal the channel count 8}}
  %y, %ns = rwkv.wkv5 %x, %u, %x, %x, %u, %s : tensor<2x3x8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<2x3x4x4xf32>
  return
}

// -----

func.func @wkv5_bonus_shape(%x: tensor<2x3x8xf32>, %u: tensor<4xf32>, %s: tensor<2x2x4x4xf32>) {
  // expected-error @+1 {{'rwkv.wkv5' op 'u' has shape [4] but expected [8]}}
  %y, %ns = "rwkv.wkv5"(%x, %x, %x, %x, %u, %s) : (tensor<2x3x8xf32>, tensor<2x3x8xf32>, tensor<2x3x8xf32>, tensor<2x3x8xf32>, tensor<4xf32>, tensor<2x2x4x4xf32>) -> (tensor<2x3x8xf32>, tensor<2x2x4x4xf32>)
  return
}

// -----

// expected-error @+1 {{lora_a must be positive, got 0}}
func.func @config_v7_needs_loras() attributes {rwkv.config = #rwkv.config<version = 7, n_layer = 2, n_embd = 8, n_head = 2, head_size = 4, dim_ffn = 16, vocab_size = 32, lora_w = 2, lora_a = 0, lora_v = 2, lora_g = 2>} {
  return
}

// -----

// expected-error @+1 {{lora_g must be non-negative, got -1}}
func.func @config_v5_lora_negative() attributes {rwkv.config = #rwkv.config<version = 5, n_layer = 2, n_embd = 8, n_head = 2, head_size = 4, dim_ffn = 16, vocab_size = 32, lora_w = 0, lora_a = 0, lora_v = 0, lora_g = -1>} {
  return
}

// -----

// rwkv.x86.dpbusd: the byte operands have four times the accumulator's lanes.
func.func @x86_dpbusd_lanes(%acc: vector<8xi32>, %a: vector<64xi8>) -> vector<8xi32> {
  // expected-error @+1 {{'rwkv.x86.dpbusd' op failed to verify that `a` has four times as many elements as `acc`}}
  %d = "rwkv.x86.dpbusd"(%acc, %a, %a) : (vector<8xi32>, vector<64xi8>, vector<64xi8>) -> vector<8xi32>
  return %d : vector<8xi32>
}
