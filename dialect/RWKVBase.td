//===- RWKVBase.td - rwkv dialect definition ---------------*- tablegen -*-===//
//
// The `rwkv` dialect describes RWKV language-model blocks at the level of the
// reference implementation: token shift, time-mix with its WKV recurrence,
// channel-mix, norms and the head.
//
//===----------------------------------------------------------------------===//

#ifndef RWKV_DIALECT_RWKVBASE_TD
#define RWKV_DIALECT_RWKVBASE_TD

include "mlir/IR/OpBase.td"
include "mlir/IR/AttrTypeBase.td"
include "mlir/IR/EnumAttr.td"

def RWKV_Dialect : Dialect {
  let name = "rwkv";
  let cppNamespace = "::mlir::rwkv";
  let summary = "Block-level description of RWKV language models";
  let description = [{
    Ops of this dialect follow `docs/rwkv-architecture.md` (RWKV-7 "x070").
    Activations are `f32` tensors of shape `[B, T, C]` (batch, sequence,
    channels); `T = 1` is single-token RNN mode. Weights keep the dtype of the
    checkpoint (`bf16`, `f16` or `f32`) and are read and widened to `f32`
    inside the kernels. The recurrent state of one layer is three tensors: the
    att token-shift `[B, C]`, the WKV state `[B, H, N, N]` (value rows x key
    columns, always `f32`) and the ffn token-shift `[B, C]`.

    The version of the architecture is an attribute (`#rwkv.config`), so that
    RWKV-4/5/6 become variants of the same ops rather than a new dialect.
  }];
  let useDefaultAttributePrinterParser = 1;
  let dependentDialects = [
    "::mlir::tensor::TensorDialect"
  ];
}

class RWKV_Op<string mnemonic, list<Trait> traits = []>
    : Op<RWKV_Dialect, mnemonic, traits>;

class RWKV_Attr<string name, string attrMnemonic, list<Trait> traits = []>
    : AttrDef<RWKV_Dialect, name, traits> {
  let mnemonic = attrMnemonic;
}

//===----------------------------------------------------------------------===//
// Type constraints
//===----------------------------------------------------------------------===//

/// Activations and the recurrent state are always f32.
def RWKV_Activation : RankedTensorOf<[F32]>;
/// Weights stay in the checkpoint's dtype.
def RWKV_Weight : RankedTensorOf<[F32, F16, BF16]>;
def RWKV_TokenIds : RankedTensorOf<[I32, I64]>;
/// Matrices that projections and the embedding read: a checkpoint dtype, or
/// int8 with a `scale` operand (rwkv-quantize): one weight per byte, or two
/// int4 weights per byte with a `group_size` (see rwkv.dequantize).
def RWKV_MatrixWeight : RankedTensorOf<[F32, F16, BF16, I8]>;
/// Scales of a quantized matrix: per row `[rows]` f32 (int8), or per row and
/// group of `group_size` inputs `[rows, cols / group_size]` bf16 or f32
/// (int4). The ops' verifiers check which.
def RWKV_QuantScales : RankedTensorOf<[F32, BF16]>;
/// Inputs per int4 scale group; its presence marks a packed int4 matrix.
def RWKV_GroupSizeAttr : ConfinedAttr<I64Attr, [IntPositive]>;

#endif // RWKV_DIALECT_RWKVBASE_TD
