//===- Common.h - helpers for the rwkv-to-linalg lowering -------*- C++ -*-===//

#ifndef RWKV_CODEGEN_RWKVTOLINALG_COMMON_H
#define RWKV_CODEGEN_RWKVTOLINALG_COMMON_H

#include "codegen/Passes.h"
#include "dialect/IRUtils.h"

namespace mlir::rwkv {

/// A zero-filled f32 tensor whose sizes are `sizes`.
Value zeros(OpBuilder &b, Location loc, ArrayRef<OpFoldResult> sizes);

/// Normalises `x` over its last dimension: `(x - mean) / sqrt(var + eps)`,
/// then `* weight + bias` where the affine operands are indexed with
/// `affineMap` (over the iteration space of `x`).
Value buildNormalize(OpBuilder &b, Location loc, Value x, float eps,
                     Value weight, Value bias, AffineMap affineMap);

/// `v` as `type` (a tensor.cast when only static-ness differs).
inline Value castTo(OpBuilder &b, Location loc, Value v, Type type) {
  if (v.getType() == type)
    return v;
  return tensor::CastOp::create(b, loc, type, v);
}

} // namespace mlir::rwkv

#endif // RWKV_CODEGEN_RWKVTOLINALG_COMMON_H
