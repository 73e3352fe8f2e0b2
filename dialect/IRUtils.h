//===- IRUtils.h - IR-building helpers shared by rwkv passes ----*- C++ -*-===//

#ifndef RWKV_DIALECT_IRUTILS_H
#define RWKV_DIALECT_IRUTILS_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/IR/AffineMap.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/Value.h"
#include "llvm/ADT/STLFunctionalExtras.h"

namespace mlir::rwkv {

/// Body of an element-wise op: receives the operands already widened to f32.
using ElementwiseBodyFn =
    llvm::function_ref<Value(OpBuilder &, Location, ValueRange)>;

/// Builds one element-wise `linalg.generic` over the iteration space of
/// `like` (an f32 tensor). Operands of the same rank map by identity; rank-1
/// operands broadcast along the last dimension (per-channel parameters).
/// Non-f32 operands are widened with `arith.extf` inside the body, so weights
/// stay in their checkpoint dtype.
Value buildElementwise(OpBuilder &b, Location loc, Value like,
                       ValueRange inputs, ElementwiseBodyFn body);

/// An empty f32 tensor with the (possibly dynamic) shape of `like`.
Value emptyLike(OpBuilder &b, Location loc, Value like, Type elementType = {});

/// [B, T, C] -> [B, T, H, C/H] (or [C] -> [H, C/H]) without moving data.
Value splitHeads(OpBuilder &b, Location loc, Value v, int64_t heads);

/// [B, T, H, N] -> [B, T, H*N].
Value mergeHeads(OpBuilder &b, Location loc, Value v);

/// The extent of dimension `dim` of a tensor as an index value.
Value dimValue(OpBuilder &b, Location loc, Value v, int64_t dim);

/// Widens a scalar to f32 (no-op for f32; signed integers convert exactly).
Value toF32(OpBuilder &b, Location loc, Value v);

/// Element-wise helpers on scalars used by several lowerings.
Value sigmoid(OpBuilder &b, Location loc, Value x);
Value f32Const(OpBuilder &b, Location loc, double v);

/// A zero-filled f32 tensor of the given sizes.
Value zerosF32(OpBuilder &b, Location loc, ArrayRef<OpFoldResult> sizes);

/// A zero-filled f32 tensor shaped like `like`.
Value zerosLike(OpBuilder &b, Location loc, Value like);

/// A sum of products as one `linalg.generic`:
/// `out[outMap(d)] += f32(lhs[lhsMap(d)]) * f32(rhs[rhsMap(d)])` over the
/// iteration space `d` (parallel dims are those in `outMap`), starting from
/// zeros of `outSizes`. Operands are widened inside the body, so bf16 weights
/// are read in place.
Value buildContraction(OpBuilder &b, Location loc, Value lhs, AffineMap lhsMap,
                       Value rhs, AffineMap rhsMap, AffineMap outMap,
                       ArrayRef<OpFoldResult> outSizes);

/// Attribute that marks the contraction generics of projections: the ones
/// rwkv-tile-and-fuse tiles and rwkv-vectorize-projections register-blocks.
constexpr llvm::StringLiteral kProjectionAttr = "rwkv.projection";

/// reassoc + contract: lets LLVM vectorise a reduction (another summation
/// order, far inside the 1e-4 logit tolerance) and form FMAs.
inline arith::FastMathFlagsAttr reductionFastMath(OpBuilder &b) {
  return arith::FastMathFlagsAttr::get(b.getContext(),
                                       arith::FastMathFlags::reassoc |
                                           arith::FastMathFlags::contract);
}

/// `out[..., o] = Σ_i x[..., i] * w(o, i)` for a rank-3 activation `x`, as
/// a `kProjectionAttr` generic over (b, t, o, i) accumulating into zeros.
/// `transposed` selects the `[out, in]` (nn.Linear) weight layout; otherwise
/// the weight is `[in, out]` (the LoRA factors). The weight is widened to f32
/// in the body, never materialised. With `init` (an f32 tensor of the
/// result's shape) the products are added to it instead of to zeros. With
/// `rowScale` (`[out]` f32, an int8 `[out, in]` weight) each widened weight
/// is multiplied by its row's scale in the body: the dequantisation happens
/// in registers, and rwkv-vectorize-projections applies it once per output.
/// With `group` > 0, `w` is a packed int4 `[out, in / 2]` i8 matrix (see
/// `buildInt4Weight`) and `rowScale` its `[out, in / group]` scales: the body
/// takes the byte of column i, unpacks the nibble of i and multiplies it by
/// the scale of i's group. With `int8Groups` as well, `w` is an int8
/// `[out, in]` matrix with those group scales (grouped int8, e.g. Q8_0).
Value buildProjection(OpBuilder &b, Location loc, Value x, Value w,
                      bool transposed, Value init = {}, Value rowScale = {},
                      int64_t group = 0, bool int8Groups = false);

/// The signed 4-bit weight of column `column` (an index) of a packed int4
/// row, given the byte that holds it (i8): two's complement nibbles, the
/// even column in the low nibble, the odd one in the high nibble. Returns
/// it as an i8 in [-8, 7]:
///   shrsi(shli(byte, 4 - 4 * (column % 2)), 4)
/// rwkv-vectorize-projections matches exactly this sequence.
Value buildInt4Nibble(OpBuilder &b, Location loc, Value byte, Value column);

/// `Σ_{b,t} a[b, t, p] * c[b, t, q]` as a `[P, Q]` f32 tensor (a weight
/// gradient), built as the projection `[1, P, N] x [Q, N]` of the transposed
/// token-major operands (N = B*T) so that it reaches the same tiled,
/// register-blocked kernels as the forward projections; the two transposes
/// cost O(N (P + Q)) copies against the O(N P Q) contraction.
Value buildTokenReduction(OpBuilder &b, Location loc, Value a, Value c);

/// The transpose `[R, C] -> [C, R]` of a rank-2 tensor (element type kept).
Value buildTranspose(OpBuilder &b, Location loc, Value v);

/// Sums `full` (an f32 tensor over an iteration space) down to the tensor
/// indexed by `map`, a projected permutation of that space: the dims `map`
/// drops are reduced. `sizes` are the result's sizes.
Value buildReduceTo(OpBuilder &b, Location loc, Value full, AffineMap map,
                    ArrayRef<OpFoldResult> sizes);

/// `x + y` element-wise (same shapes, f32).
Value buildAdd(OpBuilder &b, Location loc, Value x, Value y);

} // namespace mlir::rwkv

#endif // RWKV_DIALECT_IRUTILS_H
