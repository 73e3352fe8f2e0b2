//===- RWKVOps.td - rwkv dialect operations ----------------*- tablegen -*-===//
//
// Primitive ops (embed, layer_norm, token_shift, mix, linear, lora,
// l2_normalize, wkv, group_norm, head) lower one by one to linalg. Composite
// ops (time_mix, channel_mix) mirror the reference's blocks and are expanded by
// `rwkv-decompose`; `rwkv.block` groups one layer.
//
//===----------------------------------------------------------------------===//

#ifndef RWKV_DIALECT_RWKVOPS_TD
#define RWKV_DIALECT_RWKVOPS_TD

include "dialect/RWKVBase.td"
include "dialect/RWKVAttrs.td"
include "dialect/RWKVInterfaces.td"
include "mlir/IR/OpAsmInterface.td"
include "mlir/IR/RegionKindInterface.td"
include "mlir/IR/SymbolInterfaces.td"
include "mlir/Interfaces/ControlFlowInterfaces.td"
include "mlir/Interfaces/SideEffectInterfaces.td"
include "mlir/Dialect/X86Vector/X86VectorInterfaces.td"

//===----------------------------------------------------------------------===//
// Primitive ops
//===----------------------------------------------------------------------===//

def RWKV_DequantizeOp : RWKV_Op<"dequantize", [Pure]> {
  let summary = "Widen an int8 or packed int4 matrix with its scales to f32";
  let description = [{
    How an `rwkv-quantize`d checkpoint binds a matrix. Projections and the
    embedding fold it into their `scale` operand (and `group`)
    (canonicalization), so the kernels read the quantized matrix and widen
    it in registers; only other users materialise it.

    int8 (no `group`): `input` is `[R, C]`, `scale` `[R]` f32, and
    `result[r, c] = f32(input[r, c]) * scale[r]`.

    int4 (`group G`): `input` is `[R, C / 2]` bytes holding two signed
    (two's complement) 4-bit weights each, column `2j` in the low nibble and
    `2j + 1` in the high one; `scale` is `[R, C / G]` (bf16 or f32), one per
    row and group of `G` consecutive columns:
    `result[r, c] = nibble(input[r, c / 2], c % 2) * scale[r, c / G]`.

    Grouped int8 (`group G int8`, e.g. llama.cpp's Q8_0): `input` is
    `[R, C]`, `scale` `[R, C / G]` (bf16 or f32):
    `result[r, c] = f32(input[r, c]) * scale[r, c / G]`.

    ```mlir
    %w = rwkv.dequantize %q, %s : tensor<64x128xi8>, tensor<64xf32> -> tensor<64x128xf32>
    %v = rwkv.dequantize %p, %g group 32
        : tensor<64x64xi8>, tensor<64x4xbf16> -> tensor<64x128xf32>
    %u = rwkv.dequantize %q, %g group 32 int8
        : tensor<64x128xi8>, tensor<64x4xbf16> -> tensor<64x128xf32>
    ```
  }];
  let arguments = (ins RankedTensorOf<[I8]>:$input, RWKV_QuantScales:$scale,
                       OptionalAttr<RWKV_GroupSizeAttr>:$group_size,
                       UnitAttr:$int8_groups);
  let results = (outs RankedTensorOf<[F32]>:$result);
  let assemblyFormat = [{
    $input `,` $scale (`group` $group_size^)? (`int8` $int8_groups^)?
    attr-dict `:` type($input) `,` type($scale) `->` type($result)
  }];
  let hasVerifier = 1;
}

def RWKV_EmbedOp : RWKV_Op<"embed", [Pure, DeclareOpInterfaceMethods<RWKV_DifferentiableOpInterface>]> {
  let summary = "Look up token embeddings";
  let description = [{
    Gathers rows of the embedding table `[V, C]` for token ids `[B, T]` and
    widens them to `f32`. Ids are checked by the runtime before the call.
    ln0 is a separate `rwkv.layer_norm` (or folded into the table at load time).
    An int8 table comes with per-row (per-token) `scale`s `[V]`; a packed
    int4 one (`group G`, layout as in `rwkv.dequantize`) is `[V, C / 2]` with
    `scale`s `[V, C / G]`; a grouped int8 one (`group G int8`) is `[V, C]`
    with `scale`s `[V, C / G]`.

    ```mlir
    %x = rwkv.embed %table, %ids : tensor<512x128xbf16>, tensor<1x?xi32> -> tensor<1x?x128xf32>
    %y = rwkv.embed %q, %ids scale %s
        : tensor<512x128xi8>, tensor<1x?xi32>, tensor<512xf32> -> tensor<1x?x128xf32>
    ```
  }];
  let arguments = (ins RWKV_MatrixWeight:$table, RWKV_TokenIds:$tokens,
                       Optional<RWKV_QuantScales>:$scale,
                       OptionalAttr<RWKV_GroupSizeAttr>:$group_size,
                       UnitAttr:$int8_groups);
  let results = (outs RWKV_Activation:$result);
  let assemblyFormat = [{
    $table `,` $tokens (`scale` $scale^)? (`group` $group_size^)?
    (`int8` $int8_groups^)? attr-dict `:` type($table) `,` type($tokens) (`,` type($scale)^)? `->` type($result)
  }];
  let builders = [
    OpBuilder<(ins "::mlir::Type":$result, "::mlir::Value":$table,
                   "::mlir::Value":$tokens), [{
      build($_builder, $_state, result, table, tokens, ::mlir::Value(),
            ::mlir::IntegerAttr(), ::mlir::UnitAttr());
    }]>
  ];
  let hasVerifier = 1;
  let hasCanonicalizer = 1;
}

def RWKV_LayerNormOp : RWKV_Op<"layer_norm", [Pure, DeclareOpInterfaceMethods<RWKV_DifferentiableOpInterface>,
    AllTypesMatch<["weight", "bias"]>]> {
  let summary = "LayerNorm over the last (channel) dimension";
  let description = [{
    `(x - mean) / sqrt(var + epsilon) * weight + bias`, with the biased
    variance over the last dimension. `epsilon` defaults to 1e-5.

    ```mlir
    %y = rwkv.layer_norm %x, %w, %b {epsilon = 1.0e-05 : f32}
        : tensor<1x?x128xf32>, tensor<128xbf16> -> tensor<1x?x128xf32>
    ```
  }];
  let arguments = (ins RWKV_Activation:$input, RWKV_Weight:$weight,
                       RWKV_Weight:$bias,
                       DefaultValuedAttr<F32Attr, "1.0e-5">:$epsilon);
  let results = (outs RWKV_Activation:$result);
  let assemblyFormat = [{
    $input `,` $weight `,` $bias attr-dict `:` type($input) `,` type($weight)
    `->` type($result)
  }];
  let hasVerifier = 1;
}

def RWKV_TokenShiftOp : RWKV_Op<"token_shift", [Pure, DeclareOpInterfaceMethods<RWKV_DifferentiableOpInterface>,
    AllTypesMatch<["input", "shifted"]>, AllTypesMatch<["prev", "last"]>]> {
  let summary = "Shift a sequence by one token, taking the carried state first";
  let description = [{
    Returns `shifted[b, t] = input[b, t - 1]` for `t > 0` and
    `shifted[b, 0] = prev[b]`, the token-shift state carried from the previous
    call. The second result is the new carried state, `input[b, T - 1]`.

    ```mlir
    %shifted, %last = rwkv.token_shift %x, %prev
        : tensor<1x?x128xf32>, tensor<1x128xf32>
    ```
  }];
  let arguments = (ins RWKV_Activation:$input, RWKV_Activation:$prev);
  let results = (outs RWKV_Activation:$shifted, RWKV_Activation:$last);
  let assemblyFormat = [{
    $input `,` $prev attr-dict `:` type($input) `,` type($prev)
  }];
  let hasVerifier = 1;
}

def RWKV_MixOp : RWKV_Op<"mix", [Pure, DeclareOpInterfaceMethods<RWKV_DifferentiableOpInterface>, AllTypesMatch<["input", "shifted"]>]> {
  let summary = "Token-shift interpolation x + (shifted - x) * mu";
  let description = [{
    The RWKV-6/7 lerp between the current token and the previous one, with a
    learned per-channel coefficient `mu` (`[C]`) weighting the previous token.

    ```mlir
    %xr = rwkv.mix %x, %shifted, %x_r
        : tensor<1x?x128xf32>, tensor<128xbf16> -> tensor<1x?x128xf32>
    ```
  }];
  let arguments = (ins RWKV_Activation:$input, RWKV_Activation:$shifted,
                       RWKV_Weight:$mu);
  let results = (outs RWKV_Activation:$result);
  let assemblyFormat = [{
    $input `,` $shifted `,` $mu attr-dict `:` type($input) `,` type($mu)
    `->` type($result)
  }];
  let hasVerifier = 1;
}

def RWKV_LinearOp : RWKV_Op<"linear", [Pure, DeclareOpInterfaceMethods<RWKV_DifferentiableOpInterface>]> {
  let summary = "Projection y = W x with W stored [out, in] (nn.Linear)";
  let description = [{
    Applies a bias-free linear layer to the last dimension. The weight keeps
    the checkpoint layout `[out, in]` and dtype; accumulation is in `f32`.
    An int8 weight comes with per-output-row `scale`s `[out]`:
    `y[o] = scale[o] * sum_i x[i] * W[o, i]`. A packed int4 weight
    (`group G`, layout as in `rwkv.dequantize`) is `[out, in / 2]` with
    `scale`s `[out, in / G]`:
    `y[o] = sum_g scale[o, g] * sum_{i in group g} x[i] * W[o, i]`. A
    grouped int8 weight (`group G int8`) is `[out, in]` with the same
    `scale`s and sum.

    ```mlir
    %r = rwkv.linear %xr, %wr
        : tensor<1x?x128xf32>, tensor<128x128xbf16> -> tensor<1x?x128xf32>
    %k = rwkv.linear %xk, %qk scale %sk
        : tensor<1x?x128xf32>, tensor<128x128xi8>, tensor<128xf32> -> tensor<1x?x128xf32>
    %v = rwkv.linear %xv, %pv scale %gv group 32
        : tensor<1x?x128xf32>, tensor<128x64xi8>, tensor<128x4xbf16> -> tensor<1x?x128xf32>
    %o = rwkv.linear %xo, %qo scale %go group 32 int8
        : tensor<1x?x128xf32>, tensor<128x128xi8>, tensor<128x4xbf16> -> tensor<1x?x128xf32>
    ```
  }];
  let arguments = (ins RWKV_Activation:$input, RWKV_MatrixWeight:$weight,
                       Optional<RWKV_QuantScales>:$scale,
                       OptionalAttr<RWKV_GroupSizeAttr>:$group_size,
                       UnitAttr:$int8_groups);
  let results = (outs RWKV_Activation:$result);
  let assemblyFormat = [{
    $input `,` $weight (`scale` $scale^)? (`group` $group_size^)?
    (`int8` $int8_groups^)? attr-dict `:` type($input) `,` type($weight) (`,` type($scale)^)? `->` type($result)
  }];
  let builders = [
    OpBuilder<(ins "::mlir::Type":$result, "::mlir::Value":$input,
                   "::mlir::Value":$weight), [{
      build($_builder, $_state, result, input, weight, ::mlir::Value(),
            ::mlir::IntegerAttr(), ::mlir::UnitAttr());
    }]>
  ];
  let hasVerifier = 1;
  let hasCanonicalizer = 1;
}

def RWKV_LoraOp : RWKV_Op<"lora", [Pure, DeclareOpInterfaceMethods<RWKV_DifferentiableOpInterface>]> {
  let summary = "Low-rank projection act(x @ A) @ B";
  let description = [{
    The RWKV-7 low-rank ("LoRA") projections. `A` is `[in, rank]` and `B` is
    `[rank, out]` (stored `[in, out]` in the checkpoint, unlike `linear`). The
    activation between the two factors is `none` (a, v), `tanh` (decay) or
    `sigmoid` (gate).

    ```mlir
    %wl = rwkv.lora %xw, %w1, %w2 {activation = #rwkv<activation tanh>}
        : tensor<1x?x128xf32>, tensor<128x32xbf16>, tensor<32x128xbf16>
        -> tensor<1x?x128xf32>
    ```
  }];
  let arguments = (ins RWKV_Activation:$input, RWKV_Weight:$down,
                       RWKV_Weight:$up,
                       DefaultValuedAttr<RWKV_ActivationKindAttr,
                           "::mlir::rwkv::ActivationKind::none">:$activation);
  let results = (outs RWKV_Activation:$result);
  let assemblyFormat = [{
    $input `,` $down `,` $up attr-dict `:` type($input) `,` type($down) `,`
    type($up) `->` type($result)
  }];
  let hasVerifier = 1;
}

def RWKV_L2NormalizeOp : RWKV_Op<"l2_normalize", [Pure, DeclareOpInterfaceMethods<RWKV_DifferentiableOpInterface>]> {
  let summary = "Per-head L2 normalisation x / max(||x||, eps)";
  let description = [{
    Splits the channel dimension into `num_heads` groups and divides each by
    its Euclidean norm clamped below by `epsilon` (`F.normalize`, eps 1e-12).

    ```mlir
    %kk = rwkv.l2_normalize %k {num_heads = 2 : i64}
        : tensor<1x?x128xf32> -> tensor<1x?x128xf32>
    ```
  }];
  let arguments = (ins RWKV_Activation:$input, I64Attr:$num_heads,
                       DefaultValuedAttr<F32Attr, "1.0e-12">:$epsilon);
  let results = (outs RWKV_Activation:$result);
  let assemblyFormat = [{
    $input attr-dict `:` type($input) `->` type($result)
  }];
  let hasVerifier = 1;
}

def RWKV_WKVOp : RWKV_Op<"wkv", [Pure, DeclareOpInterfaceMethods<RWKV_DifferentiableOpInterface>,
    AllTypesMatch<["r", "w", "k", "v", "a", "b", "y"]>,
    AllTypesMatch<["state", "new_state"]>]> {
  let summary = "The RWKV-7 WKV state recurrence";
  let description = [{
    For each batch row and head, over t = 0..T-1 (spec §1.6), with
    `d = exp(w)` (`w` is the log-decay, `w <= 0`):

    ```
    sa[i]   = sum_j a[j] * S[i][j]
    S[i][j] = S[i][j] * d[j] + k[j] * v[i] + sa[i] * b[j]
    y[i]    = sum_j S[i][j] * r[j]
    ```

    `r, w, k, v, a, b` are `[B, T, C]`, the state is `[B, H, N, N]` with
    `H * N = C`. `mode` chooses the sequential recurrence or the
    chunk-parallel form with chunks of `chunk_length` tokens.

    ```mlir
    %y, %s = rwkv.wkv %r, %w, %k, %v, %a, %b, %state
        {mode = #rwkv<wkv_mode sequential>}
        : tensor<1x?x128xf32>, tensor<1x2x64x64xf32>
    ```
  }];
  let arguments = (ins RWKV_Activation:$r, RWKV_Activation:$w,
                       RWKV_Activation:$k, RWKV_Activation:$v,
                       RWKV_Activation:$a, RWKV_Activation:$b,
                       RWKV_Activation:$state,
                       DefaultValuedAttr<RWKV_WKVModeAttr,
                           "::mlir::rwkv::WKVMode::sequential">:$mode,
                       DefaultValuedAttr<I64Attr, "16">:$chunk_length);
  let results = (outs RWKV_Activation:$y, RWKV_Activation:$new_state);
  let assemblyFormat = [{
    $r `,` $w `,` $k `,` $v `,` $a `,` $b `,` $state attr-dict `:` type($r)
    `,` type($state)
  }];
  let hasVerifier = 1;
}

def RWKV_GroupNormOp : RWKV_Op<"group_norm", [Pure, DeclareOpInterfaceMethods<RWKV_DifferentiableOpInterface>,
    AllTypesMatch<["weight", "bias"]>]> {
  let summary = "GroupNorm with one group per head";
  let description = [{
    Normalises each of `num_groups` channel groups of every token to zero mean
    and unit (biased) variance with `epsilon` (64e-5 for RWKV-7 `ln_x`), then
    applies the per-channel affine `weight`, `bias`.

    ```mlir
    %y = rwkv.group_norm %x, %w, %b {num_groups = 2 : i64}
        : tensor<1x?x128xf32>, tensor<128xbf16> -> tensor<1x?x128xf32>
    ```
  }];
  let arguments = (ins RWKV_Activation:$input, RWKV_Weight:$weight,
                       RWKV_Weight:$bias, I64Attr:$num_groups,
                       DefaultValuedAttr<F32Attr, "6.4e-4">:$epsilon);
  let results = (outs RWKV_Activation:$result);
  let assemblyFormat = [{
    $input `,` $weight `,` $bias attr-dict `:` type($input) `,` type($weight)
    `->` type($result)
  }];
  let hasVerifier = 1;
}

def RWKV_HeadOp : RWKV_Op<"head", [Pure]> {
  let summary = "Project (normalised) hidden states to vocabulary logits";
  let description = [{
    `logits = W x` with `W` the `[V, C]` head weight. With
    `positions = last` only the last token of each row is projected and the
    result is `[B, 1, V]`; with `all` it is `[B, T, V]`. An int8 weight
    comes with per-row `scale`s `[V]`, a packed int4 or grouped int8 one
    with `group` (and `int8`) and per-group `scale`s, as for `rwkv.linear`.

    ```mlir
    %logits = rwkv.head %x, %w {positions = #rwkv<positions last>}
        : tensor<1x?x128xf32>, tensor<512x128xbf16> -> tensor<1x1x512xf32>
    ```
  }];
  let arguments = (ins RWKV_Activation:$input, RWKV_MatrixWeight:$weight,
                       Optional<RWKV_QuantScales>:$scale,
                       OptionalAttr<RWKV_GroupSizeAttr>:$group_size,
                       UnitAttr:$int8_groups,
                       DefaultValuedAttr<RWKV_HeadPositionsAttr,
                           "::mlir::rwkv::HeadPositions::all">:$positions);
  let results = (outs RWKV_Activation:$result);
  let assemblyFormat = [{
    $input `,` $weight (`scale` $scale^)? (`group` $group_size^)?
    (`int8` $int8_groups^)? attr-dict `:` type($input) `,` type($weight) (`,` type($scale)^)? `->` type($result)
  }];
  let builders = [
    OpBuilder<(ins "::mlir::Type":$result, "::mlir::Value":$input,
                   "::mlir::Value":$weight,
                   "::mlir::rwkv::HeadPositions":$positions), [{
      build($_builder, $_state, result, input, weight, ::mlir::Value(),
            ::mlir::IntegerAttr(), /*int8_groups=*/false, positions);
    }]>
  ];
  let hasVerifier = 1;
  let hasCanonicalizer = 1;
}

//===----------------------------------------------------------------------===//
// Training ops: the loss and the adjoints of the primitive ops
//===----------------------------------------------------------------------===//

/// The scalar loss and its gradient, `tensor<f32>`.
def RWKV_Loss : 0DTensorOf<[F32]> {
  let builderCall = "::mlir::RankedTensorType::get({}, $_builder.getF32Type())";
}

def RWKV_CrossEntropyOp : RWKV_Op<"cross_entropy", [Pure,
    DeclareOpInterfaceMethods<RWKV_DifferentiableOpInterface>]> {
  let summary = "Head projection fused with the mean cross-entropy loss";
  let description = [{
    `loss = mean over positions (b, t) with targets[b, t] != ignore_index of
    logsumexp_v(z[b, t]) - z[b, t, targets[b, t]]`, where `z = W x` are the
    logits of `rwkv.head` (`W` is `[V, C]`). The `[B, T, V]` logits are never
    materialised: the lowering tiles over tokens. Natural log, as RWKV-LM
    (spec §2.7). A batch in which every target is ignored has loss 0.

    ```mlir
    %loss = rwkv.cross_entropy %x, %head, %targets {ignore_index = -100 : i64}
        : tensor<2x64x128xf32>, tensor<512x128xbf16>, tensor<2x64xi32>
        -> tensor<f32>
    ```
  }];
  let arguments = (ins RWKV_Activation:$input, RWKV_Weight:$weight,
                       RWKV_TokenIds:$targets,
                       DefaultValuedAttr<I64Attr, "-100">:$ignore_index,
                       DefaultValuedAttr<F32Attr, "0.0">:$l2wrap);
  let results = (outs RWKV_Loss:$loss);
  let assemblyFormat = [{
    $input `,` $weight `,` $targets attr-dict `:` type($input) `,`
    type($weight) `,` type($targets) `->` type($loss)
  }];
  let hasVerifier = 1;
}

def RWKV_CrossEntropyGradOp : RWKV_Op<"cross_entropy_grad", [Pure]> {
  let summary = "Gradient of rwkv.cross_entropy for its input and head weight";
  let description = [{
    With `g[b, t] = (softmax(z[b, t]) - onehot(targets[b, t])) * dloss / n`
    (`n` the number of counted positions, ignored positions have g = 0), the
    results are `dx = g W` `[B, T, C]` and `dW = sum_{b,t} g x^T` `[V, C]`
    (f32). `l2wrap` > 0 adds RWKV-LM's L2Wrap term
    `l2wrap * dloss / n * max_v z[b, t]` at the argmax (lowest index on
    ties); it changes the gradient, not the loss. Tiled over tokens like the
    forward, so the logits exist one tile at a time.

    ```mlir
    %dx, %dw = rwkv.cross_entropy_grad %x, %head, %targets, %dloss
        : tensor<2x64x128xf32>, tensor<512x128xbf16>, tensor<2x64xi32>
        -> tensor<2x64x128xf32>, tensor<512x128xf32>
    ```
  }];
  let arguments = (ins RWKV_Activation:$input, RWKV_Weight:$weight,
                       RWKV_TokenIds:$targets, RWKV_Loss:$dloss,
                       DefaultValuedAttr<I64Attr, "-100">:$ignore_index,
                       DefaultValuedAttr<F32Attr, "0.0">:$l2wrap);
  let results = (outs RWKV_Activation:$input_grad,
                      RWKV_Activation:$weight_grad);
  let assemblyFormat = [{
    $input `,` $weight `,` $targets `,` $dloss attr-dict `:` type($input) `,`
    type($weight) `,` type($targets) `->` type($input_grad) `,`
    type($weight_grad)
  }];
  let hasVerifier = 1;
}

def RWKV_EmbedGradOp : RWKV_Op<"embed_grad", [Pure]> {
  let summary = "Scatter-add of embedding gradients into the table's rows";
  let description = [{
    `dtable[v, c] = sum over (b, t) with tokens[b, t] == v of dy[b, t, c]`,
    an f32 `[V, C]` tensor (rows of tokens that do not occur are zero).

    ```mlir
    %dtable = rwkv.embed_grad %tokens, %dy
        : tensor<2x64xi32>, tensor<2x64x128xf32> -> tensor<512x128xf32>
    ```
  }];
  let arguments = (ins RWKV_TokenIds:$tokens, RWKV_Activation:$result_grad);
  let results = (outs RWKV_Activation:$table_grad);
  let assemblyFormat = [{
    $tokens `,` $result_grad attr-dict `:` type($tokens) `,`
    type($result_grad) `->` type($table_grad)
  }];
  let hasVerifier = 1;
}

def RWKV_LayerNormGradOp : RWKV_Op<"layer_norm_grad", [Pure,
    AllTypesMatch<["input", "result_grad", "input_grad"]>]> {
  let summary = "Gradient of rwkv.layer_norm";
  let description = [{
    With `xhat = (x - mean) * rstd` and `gw = dy * weight`:
    `dx = rstd * (gw - mean(gw) - xhat * mean(gw * xhat))`,
    `dweight = sum_{b,t} dy * xhat`, `dbias = sum_{b,t} dy` (f32 `[C]`).

    ```mlir
    %dx, %dw, %db = rwkv.layer_norm_grad %x, %w, %dy {epsilon = 1.0e-05 : f32}
        : tensor<2x64x128xf32>, tensor<128xbf16>
        -> tensor<2x64x128xf32>, tensor<128xf32>, tensor<128xf32>
    ```
  }];
  let arguments = (ins RWKV_Activation:$input, RWKV_Weight:$weight,
                       RWKV_Activation:$result_grad,
                       DefaultValuedAttr<F32Attr, "1.0e-5">:$epsilon);
  let results = (outs RWKV_Activation:$input_grad,
                      RWKV_Activation:$weight_grad,
                      RWKV_Activation:$bias_grad);
  let assemblyFormat = [{
    $input `,` $weight `,` $result_grad attr-dict `:` type($input) `,`
    type($weight) `->` type($input_grad) `,` type($weight_grad) `,`
    type($bias_grad)
  }];
  let hasVerifier = 1;
}

def RWKV_GroupNormGradOp : RWKV_Op<"group_norm_grad", [Pure,
    AllTypesMatch<["input", "result_grad", "input_grad"]>]> {
  let summary = "Gradient of rwkv.group_norm";
  let description = [{
    The LayerNorm gradient applied to each of `num_groups` channel groups of
    every token (the statistics are per group); `dweight`, `dbias` are summed
    over tokens.

    ```mlir
    %dx, %dw, %db = rwkv.group_norm_grad %x, %w, %dy {num_groups = 2 : i64}
        : tensor<2x64x128xf32>, tensor<128xbf16>
        -> tensor<2x64x128xf32>, tensor<128xf32>, tensor<128xf32>
    ```
  }];
  let arguments = (ins RWKV_Activation:$input, RWKV_Weight:$weight,
                       RWKV_Activation:$result_grad, I64Attr:$num_groups,
                       DefaultValuedAttr<F32Attr, "6.4e-4">:$epsilon);
  let results = (outs RWKV_Activation:$input_grad,
                      RWKV_Activation:$weight_grad,
                      RWKV_Activation:$bias_grad);
  let assemblyFormat = [{
    $input `,` $weight `,` $result_grad attr-dict `:` type($input) `,`
    type($weight) `->` type($input_grad) `,` type($weight_grad) `,`
    type($bias_grad)
  }];
  let hasVerifier = 1;
}

def RWKV_L2NormalizeGradOp : RWKV_Op<"l2_normalize_grad", [Pure,
    AllTypesMatch<["input", "result_grad", "input_grad"]>]> {
  let summary = "Gradient of rwkv.l2_normalize";
  let description = [{
    Per head, with `n = ||x||` and `y = x / max(n, eps)`:
    `dx = (dy - y * (y . dy)) / n` where `n > eps`, and `dx = dy / eps`
    where the clamp is active.

    ```mlir
    %dx = rwkv.l2_normalize_grad %x, %dy {num_heads = 2 : i64}
        : tensor<2x64x128xf32> -> tensor<2x64x128xf32>
    ```
  }];
  let arguments = (ins RWKV_Activation:$input, RWKV_Activation:$result_grad,
                       I64Attr:$num_heads,
                       DefaultValuedAttr<F32Attr, "1.0e-12">:$epsilon);
  let results = (outs RWKV_Activation:$input_grad);
  let assemblyFormat = [{
    $input `,` $result_grad attr-dict `:` type($input) `->` type($input_grad)
  }];
  let hasVerifier = 1;
}

def RWKV_TokenShiftGradOp : RWKV_Op<"token_shift_grad", [Pure,
    AllTypesMatch<["shifted_grad", "input_grad"]>,
    AllTypesMatch<["last_grad", "prev_grad"]>]> {
  let summary = "Gradient of rwkv.token_shift";
  let description = [{
    `dinput[b, t] = dshifted[b, t + 1]` for `t < T - 1`, plus `dlast[b]` at
    `t = T - 1`; `dprev[b] = dshifted[b, 0]`.

    ```mlir
    %dx, %dprev = rwkv.token_shift_grad %dshifted, %dlast
        : tensor<2x64x128xf32>, tensor<2x128xf32>
    ```
  }];
  let arguments = (ins RWKV_Activation:$shifted_grad,
                       RWKV_Activation:$last_grad);
  let results = (outs RWKV_Activation:$input_grad,
                      RWKV_Activation:$prev_grad);
  let assemblyFormat = [{
    $shifted_grad `,` $last_grad attr-dict `:` type($shifted_grad) `,`
    type($last_grad)
  }];
}

def RWKV_WKVGradOp : RWKV_Op<"wkv_grad", [Pure,
    AllTypesMatch<["r", "w", "k", "v", "a", "b", "y_grad", "r_grad", "w_grad",
                   "k_grad", "v_grad", "a_grad", "b_grad"]>,
    AllTypesMatch<["state", "new_state_grad", "state_grad"]>]> {
  let summary = "Reverse-mode gradient of the WKV7 recurrence";
  let description = [{
    Given the forward inputs of `rwkv.wkv` (`w` is the log-decay) and the
    gradients of its outputs `y` and `new_state`, returns the gradients of
    `r, w, k, v, a, b` and of the initial state (spec §2.3, with
    `dw = dd * exp(w)`). `sequential` walks the tokens backwards, recomputing
    the states of each `chunk_length` segment from a checkpoint saved at its
    start; `chunked` uses the chunk-parallel backward of the WY form.

    ```mlir
    %dr, %dw, %dk, %dv, %da, %db, %ds = rwkv.wkv_grad %r, %w, %k, %v, %a, %b,
        %state, %dy, %dstate {mode = #rwkv<wkv_mode sequential>}
        : tensor<2x64x128xf32>, tensor<2x2x64x64xf32>
    ```
  }];
  let arguments = (ins RWKV_Activation:$r, RWKV_Activation:$w,
                       RWKV_Activation:$k, RWKV_Activation:$v,
                       RWKV_Activation:$a, RWKV_Activation:$b,
                       RWKV_Activation:$state, RWKV_Activation:$y_grad,
                       RWKV_Activation:$new_state_grad,
                       DefaultValuedAttr<RWKV_WKVModeAttr,
                           "::mlir::rwkv::WKVMode::sequential">:$mode,
                       DefaultValuedAttr<I64Attr, "16">:$chunk_length);
  let results = (outs RWKV_Activation:$r_grad, RWKV_Activation:$w_grad,
                      RWKV_Activation:$k_grad, RWKV_Activation:$v_grad,
                      RWKV_Activation:$a_grad, RWKV_Activation:$b_grad,
                      RWKV_Activation:$state_grad);
  let assemblyFormat = [{
    $r `,` $w `,` $k `,` $v `,` $a `,` $b `,` $state `,` $y_grad `,`
    $new_state_grad attr-dict `:` type($r) `,` type($state)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Composite ops
//===----------------------------------------------------------------------===//

def RWKV_TimeMixOp : RWKV_Op<"time_mix", [Pure, AttrSizedOperandSegments]> {
  let summary = "The complete RWKV-7 (x070) time-mix of one layer";
  let description = [{
    Spec §1.5: token shift and the six lerps, the r/k/v projections, the
    decay, ICL-rate, value-residual and gate LoRAs, the key normalisation, the
    WKV recurrence, GroupNorm, the r·k bonus and the gated output projection.

    `input` is the ln1 output `[B, T, C]`, `shift_state` the att token-shift
    `[B, C]` and `wkv_state` `[B, H, N, N]`. Layer 0 has no `v_first` operand
    and no `value_residual` weights: its value projection becomes the
    `v_first` result. Later layers take `v_first` and forward it unchanged.
    Weights keep their checkpoint dtypes; `[1, 1, C]` vectors are passed as
    `[C]` and `r_k` as `[C]`.

    ```mlir
    %out, %shift, %wkv, %vf = rwkv.time_mix %x, %s0, %s1 v_first(%vf0)
        lerp(%xr, %xw, %xk, %xv, %xa, %xg) decay(%w0, %w1, %w2)
        iclr(%a0, %a1, %a2) value_residual(%v0, %v1, %v2) gate(%g1, %g2)
        key(%kk, %ka, %rk) proj(%wr, %wk, %wv, %wo) ln_x(%lw, %lb)
        : (...) -> (...)
    ```
  }];
  let arguments = (ins
      RWKV_Activation:$input, RWKV_Activation:$shift_state,
      RWKV_Activation:$wkv_state, Optional<RWKV_Activation>:$v_first,
      RWKV_Weight:$x_r, RWKV_Weight:$x_w, RWKV_Weight:$x_k, RWKV_Weight:$x_v,
      RWKV_Weight:$x_a, RWKV_Weight:$x_g,
      RWKV_Weight:$w0, RWKV_Weight:$w1, RWKV_Weight:$w2,
      RWKV_Weight:$a0, RWKV_Weight:$a1, RWKV_Weight:$a2,
      Optional<RWKV_Weight>:$v0, Optional<RWKV_Weight>:$v1,
      Optional<RWKV_Weight>:$v2,
      RWKV_Weight:$g1, RWKV_Weight:$g2,
      RWKV_Weight:$k_k, RWKV_Weight:$k_a, RWKV_Weight:$r_k,
      RWKV_Weight:$receptance, RWKV_Weight:$key, RWKV_Weight:$value,
      RWKV_Weight:$output,
      RWKV_Weight:$ln_x_weight, RWKV_Weight:$ln_x_bias,
      DefaultValuedAttr<RWKV_WKVModeAttr,
          "::mlir::rwkv::WKVMode::sequential">:$mode,
      DefaultValuedAttr<I64Attr, "16">:$chunk_length);
  let results = (outs RWKV_Activation:$result, RWKV_Activation:$new_shift_state,
                      RWKV_Activation:$new_wkv_state,
                      RWKV_Activation:$v_first_out);
  let assemblyFormat = [{
    $input `,` $shift_state `,` $wkv_state (`v_first` `(` $v_first^ `)`)?
    `lerp` `(` $x_r `,` $x_w `,` $x_k `,` $x_v `,` $x_a `,` $x_g `)`
    `decay` `(` $w0 `,` $w1 `,` $w2 `)`
    `iclr` `(` $a0 `,` $a1 `,` $a2 `)`
    (`value_residual` `(` $v0^ `,` $v1 `,` $v2 `)`)?
    `gate` `(` $g1 `,` $g2 `)`
    `key` `(` $k_k `,` $k_a `,` $r_k `)`
    `proj` `(` $receptance `,` $key `,` $value `,` $output `)`
    `ln_x` `(` $ln_x_weight `,` $ln_x_bias `)`
    attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    /// Layer 0 produces v_first instead of consuming it.
    bool isFirstLayer() { return !getVFirst(); }
    int64_t getNumHeads() {
      return ::llvm::cast<::mlir::RankedTensorType>(getWkvState().getType())
          .getDimSize(1);
    }
  }];
}

def RWKV_ChannelMixOp : RWKV_Op<"channel_mix", [Pure]> {
  let summary = "The RWKV-7 channel-mix: token shift and a ReLU² FFN";
  let description = [{
    Spec §1.7: `xk = lerp(x, shifted, x_k)`, `out = W_value relu(W_key xk)^2`.
    `input` is the ln2 output and `shift_state` the ffn token-shift `[B, C]`.

    ```mlir
    %out, %shift = rwkv.channel_mix %x, %s2 lerp(%xk) proj(%wkey, %wvalue)
        : (tensor<1x?x128xf32>, tensor<1x128xf32>, tensor<128xbf16>,
           tensor<512x128xbf16>, tensor<128x512xbf16>)
        -> (tensor<1x?x128xf32>, tensor<1x128xf32>)
    ```
  }];
  let arguments = (ins RWKV_Activation:$input, RWKV_Activation:$shift_state,
                       RWKV_Weight:$x_k, RWKV_Weight:$key,
                       RWKV_Weight:$value);
  let results = (outs RWKV_Activation:$result,
                      RWKV_Activation:$new_shift_state);
  let assemblyFormat = [{
    $input `,` $shift_state `lerp` `(` $x_k `)` `proj` `(` $key `,` $value `)`
    attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Structure ops
//===----------------------------------------------------------------------===//

def RWKV_BlockOp : RWKV_Op<"block", [
    SingleBlockImplicitTerminator<"YieldOp">, RecursiveMemoryEffects]> {
  let summary = "One RWKV layer, grouped for scheduling and readability";
  let description = [{
    Executes its single-block region once and returns the values yielded by
    the terminator: the residual stream `[B, T, C]`, the layer's three state
    tensors and `v_first`. The region may use values defined above (the
    weights). `layer` is the layer index. `rwkv-inline-blocks` removes the
    grouping before lowering.

    ```mlir
    %x1, %s0, %s1, %s2, %vf = rwkv.block layer 0 -> (...) {
      ...
      rwkv.yield %x, %a, %b, %c, %v : ...
    }
    ```
  }];
  let arguments = (ins I64Attr:$layer);
  let results = (outs Variadic<AnyRankedTensor>:$results);
  let regions = (region SizedRegion<1>:$body);
  let assemblyFormat = [{
    `layer` $layer (`->` `(` type($results)^ `)`)? $body attr-dict
  }];
  let hasVerifier = 1;
}

def RWKV_ModelOp : RWKV_Op<"model", [
    IsolatedFromAbove, SymbolTable, Symbol, NoTerminator, SingleBlock,
    NoRegionArguments]> {
  let summary = "A whole RWKV model: its configuration and entry points";
  let description = [{
    Groups the entry-point functions of one model (`rwkv_step`,
    `rwkv_forward`, ...) under its configuration. The verifier checks the
    entry points against `config`: token ids `[B, T]`, and for every
    argument tagged `rwkv.state` the state shape the configuration implies
    (`[B, C]` token shifts, `[B, H, N, N]` f32 WKV states).
    `rwkv-unwrap-model` turns it into the module form the code generator
    uses (functions at module level, `rwkv.config` on the module).

    ```mlir
    rwkv.model @tiny config = #rwkv.config<version = 7, n_layer = 2, ...> {
      func.func @rwkv_step(%tokens: tensor<1x?xi32>, ...) -> (...) { ... }
    }
    ```
  }];
  let arguments = (ins SymbolNameAttr:$sym_name,
                       RWKV_ModelConfigAttr:$config);
  let regions = (region SizedRegion<1>:$body);
  let assemblyFormat = [{
    $sym_name `config` `=` qualified($config) attr-dict-with-keyword $body
  }];
  let hasVerifier = 1;
  let hasRegionVerifier = 1;
}

def RWKV_YieldOp : RWKV_Op<"yield", [Pure, Terminator, HasParent<"BlockOp">,
                                     ReturnLike]> {
  let summary = "Terminates an rwkv.block and returns its values";
  let description = [{
    ```mlir
    rwkv.yield %x, %s0, %s1, %s2, %vf : tensor<1x?x128xf32>, ...
    ```
  }];
  let arguments = (ins Variadic<AnyRankedTensor>:$values);
  let assemblyFormat = "($values^ `:` type($values))? attr-dict";
  let builders = [OpBuilder<(ins), [{ build($_builder, $_state, {}); }]>];
}

//===----------------------------------------------------------------------===//
// Target ops of the generated kernels
//===----------------------------------------------------------------------===//

def RWKV_X86DotBytesOp : RWKV_Op<"x86.dpbusd", [Pure,
    X86IntrinsicOpInterface,
    AllTypesMatch<["a", "b"]>,
    AllTypesMatch<["acc", "dst"]>,
    TypesMatchWith<"`a` has four times as many elements as `acc`",
                   "acc", "a",
                   "VectorType::get({::llvm::cast<VectorType>($_self).getShape()[0] * 4}, "
                   "IntegerType::get($_self.getContext(), 8))">]> {
  let summary = "Dot products of unsigned and signed bytes (vpdpbusd)";
  let description = [{
    For every i32 lane `l`:
    `dst[l] = acc[l] + sum_{k < 4} zext(a[4l + k]) * sext(b[4l + k])`,
    wrapping (no saturation; four products of at most 255 * 128 never
    overflow a lane on their own). This is the AVX512-VNNI / AVX-VNNI
    instruction `vpdpbusd`; it lowers to its LLVM intrinsic with the
    x86vector ops (`convert-vector-to-llvm{enable-x86vector}`, through
    `X86IntrinsicOpInterface`). upstream's `x86vector.avx.dot.i8` is the
    signed x signed form of AVX-VNNI-INT8, which few CPUs have.
    `rwkv-vectorize-projections` emits it for int8 and int4 weights with
    `int-dot=vnni`. It is pure, unlike an `llvm.call_intrinsic`, so that
    bufferization and deallocation run over the kernels that use it.

    Example:
    ```mlir
    %d = rwkv.x86.dpbusd %acc, %w, %x : vector<64xi8> -> vector<16xi32>
    ```
  }];
  let arguments = (ins VectorOfLengthAndType<[4, 8, 16], [I32]>:$acc,
                   VectorOfLengthAndType<[16, 32, 64], [I8]>:$a,
                   VectorOfLengthAndType<[16, 32, 64], [I8]>:$b);
  let results = (outs VectorOfLengthAndType<[4, 8, 16], [I32]>:$dst);
  let assemblyFormat =
    "$acc `,` $a `,` $b attr-dict `:` type($a) `->` type($acc)";
  let extraClassDeclaration = [{
    std::string getIntrinsicName() {
      return "llvm.x86.avx512.vpdpbusd." +
             std::to_string(getAcc().getType().getNumElements() * 32);
    }
  }];
}

//===----------------------------------------------------------------------===//
// Version-specific ops: one file per RWKV version
//===----------------------------------------------------------------------===//

include "dialect/RWKV4Ops.td"
include "dialect/RWKV5Ops.td"

#endif // RWKV_DIALECT_RWKVOPS_TD
