//===- RWKVAdjoints.cpp - DifferentiableOpInterface of the rwkv ops -------===//
//
// The reverse-mode rule of every primitive op. Ops whose gradient needs its
// own kernel (norms, WKV, loss, embedding scatter) emit the matching
// `rwkv.*_grad` op; projections and lerps are sums of products and emit
// linalg contractions directly, so they reach the same tiling passes as the
// forward projections.
//
//===----------------------------------------------------------------------===//

#include "dialect/IRUtils.h"
#include "dialect/RWKVOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

using namespace mlir;
using namespace mlir::rwkv;

namespace {

/// An f32 tensor type with the shape of `v`.
RankedTensorType f32Like(Value v) {
  auto t = llvm::cast<RankedTensorType>(v.getType());
  return RankedTensorType::get(t.getShape(), Float32Type::get(v.getContext()));
}

/// The gradient of a result, or zeros when it does not reach the loss.
Value gradOrZeros(OpBuilder &b, Location loc, Value grad, Value result) {
  return grad ? grad : zerosLike(b, loc, result);
}

OpFoldResult dim(OpBuilder &b, Location loc, Value v, int64_t d) {
  return tensor::getMixedSize(b, loc, v, d);
}

AffineMap dims(MLIRContext *ctx, unsigned n, ArrayRef<unsigned> which) {
  SmallVector<AffineExpr> exprs;
  for (unsigned w : which)
    exprs.push_back(getAffineDimExpr(w, ctx));
  return AffineMap::get(n, 0, exprs, ctx);
}

/// Gradients of `y[b,t,o] = Σ_i x[b,t,i] W(o,i)` where `W(o,i)` is
/// `w[o, i]` if `outIn` (nn.Linear) and `w[i, o]` otherwise (LoRA factors).
/// Both are built as projections (kProjectionAttr generics) so that they
/// are tiled, register-blocked and threaded like the forward ones.
std::pair<Value, Value> projectionGrads(OpBuilder &b, Location loc, Value x,
                                        Value w, Value dy, bool outIn) {
  // dx[b,t,i] = Σ_o dy[b,t,o] W(o,i): a projection of dy with the weight
  // [i, o], i.e. w itself for LoRA and wᵀ (one O(I O) copy) for nn.Linear,
  // so the reduction runs along contiguous rows.
  Value wIO = outIn ? buildTranspose(b, loc, w) : w;
  Value dx = buildProjection(b, loc, dy, wIO, /*transposed=*/true);
  // dW(o,i) = Σ_{b,t} dy[b,t,o] x[b,t,i], in w's layout.
  Value dw = outIn ? buildTokenReduction(b, loc, dy, x)
                   : buildTokenReduction(b, loc, x, dy);
  return {dx, dw};
}

} // namespace

LogicalResult EmbedOp::buildAdjoint(OpBuilder &b, ValueRange resultGrads,
                                    SmallVectorImpl<Value> &operandGrads) {
  if (getScale())
    return emitOpError("an int8 (quantized) table cannot be trained");
  Location loc = getLoc();
  Value dtable = EmbedGradOp::create(b, loc, f32Like(getTable()), getTokens(),
                                     resultGrads[0]);
  operandGrads.append({dtable, Value()});
  return success();
}

LogicalResult LayerNormOp::buildAdjoint(OpBuilder &b, ValueRange resultGrads,
                                        SmallVectorImpl<Value> &operandGrads) {
  auto g = LayerNormGradOp::create(
      b, getLoc(),
      TypeRange{getInput().getType(), f32Like(getWeight()), f32Like(getBias())},
      ValueRange{getInput(), getWeight(), resultGrads[0]}, (*this)->getAttrs());
  operandGrads.append(g->getResults().begin(), g->getResults().end());
  return success();
}

LogicalResult GroupNormOp::buildAdjoint(OpBuilder &b, ValueRange resultGrads,
                                        SmallVectorImpl<Value> &operandGrads) {
  auto g = GroupNormGradOp::create(
      b, getLoc(),
      TypeRange{getInput().getType(), f32Like(getWeight()), f32Like(getBias())},
      ValueRange{getInput(), getWeight(), resultGrads[0]}, (*this)->getAttrs());
  operandGrads.append(g->getResults().begin(), g->getResults().end());
  return success();
}

LogicalResult
L2NormalizeOp::buildAdjoint(OpBuilder &b, ValueRange resultGrads,
                            SmallVectorImpl<Value> &operandGrads) {
  auto g = L2NormalizeGradOp::create(
      b, getLoc(), TypeRange{getInput().getType()},
      ValueRange{getInput(), resultGrads[0]}, (*this)->getAttrs());
  operandGrads.push_back(g.getInputGrad());
  return success();
}

LogicalResult TokenShiftOp::buildAdjoint(OpBuilder &b, ValueRange resultGrads,
                                         SmallVectorImpl<Value> &operandGrads) {
  Location loc = getLoc();
  auto g = TokenShiftGradOp::create(
      b, loc, TypeRange{getInput().getType(), getPrev().getType()},
      ValueRange{gradOrZeros(b, loc, resultGrads[0], getShifted()),
                 gradOrZeros(b, loc, resultGrads[1], getLast())});
  operandGrads.append({g.getInputGrad(), g.getPrevGrad()});
  return success();
}

LogicalResult MixOp::buildAdjoint(OpBuilder &b, ValueRange resultGrads,
                                  SmallVectorImpl<Value> &operandGrads) {
  // out = x + (s - x) * mu.
  Location loc = getLoc();
  Value dy = resultGrads[0];
  Value x = getInput(), s = getShifted(), mu = getMu();
  Value dx = buildElementwise(
      b, loc, dy, {dy, mu}, [](OpBuilder &nb, Location l, ValueRange in) {
        Value one = f32Const(nb, l, 1.0);
        Value c = arith::SubFOp::create(nb, l, one, in[1]);
        return arith::MulFOp::create(nb, l, in[0], c).getResult();
      });
  Value ds = buildElementwise(
      b, loc, dy, {dy, mu}, [](OpBuilder &nb, Location l, ValueRange in) {
        return arith::MulFOp::create(nb, l, in[0], in[1]).getResult();
      });
  Value full = buildElementwise(
      b, loc, dy, {dy, s, x}, [](OpBuilder &nb, Location l, ValueRange in) {
        Value d = arith::SubFOp::create(nb, l, in[1], in[2]);
        return arith::MulFOp::create(nb, l, in[0], d).getResult();
      });
  Value dmu = buildReduceTo(b, loc, full, dims(b.getContext(), 3, {2}),
                            {dim(b, loc, mu, 0)});
  operandGrads.append({dx, ds, dmu});
  return success();
}

LogicalResult LinearOp::buildAdjoint(OpBuilder &b, ValueRange resultGrads,
                                     SmallVectorImpl<Value> &operandGrads) {
  if (getScale())
    return emitOpError("an int8 (quantized) weight cannot be trained");
  auto [dx, dw] = projectionGrads(b, getLoc(), getInput(), getWeight(),
                                  resultGrads[0], /*outIn=*/true);
  operandGrads.append({dx, dw});
  return success();
}

LogicalResult LoraOp::buildAdjoint(OpBuilder &b, ValueRange resultGrads,
                                   SmallVectorImpl<Value> &operandGrads) {
  // y = act(x @ down) @ up: recompute the hidden activation z, then the
  // chain rule through each factor.
  Location loc = getLoc();
  Value x = getInput(), down = getDown(), up = getUp(), dy = resultGrads[0];
  Value h = buildProjection(b, loc, x, down, /*transposed=*/false);
  ActivationKind act = getActivation();
  Value z = h;
  if (act == ActivationKind::tanh)
    z = buildElementwise(
        b, loc, h, {h}, [](OpBuilder &nb, Location l, ValueRange in) {
          return math::TanhOp::create(nb, l, in[0]).getResult();
        });
  else if (act == ActivationKind::sigmoid)
    z = buildElementwise(b, loc, h, {h},
                         [](OpBuilder &nb, Location l, ValueRange in) {
                           return sigmoid(nb, l, in[0]);
                         });
  // up is [rank, out]: the [in, out] layout of projectionGrads.
  auto [dz, dup] = projectionGrads(b, loc, z, up, dy, /*outIn=*/false);
  Value dh = dz;
  if (act == ActivationKind::tanh)
    dh = buildElementwise(
        b, loc, dz, {dz, z}, [](OpBuilder &nb, Location l, ValueRange in) {
          Value one = f32Const(nb, l, 1.0);
          Value zz = arith::MulFOp::create(nb, l, in[1], in[1]);
          Value d = arith::SubFOp::create(nb, l, one, zz);
          return arith::MulFOp::create(nb, l, in[0], d).getResult();
        });
  else if (act == ActivationKind::sigmoid)
    dh = buildElementwise(
        b, loc, dz, {dz, z}, [](OpBuilder &nb, Location l, ValueRange in) {
          Value one = f32Const(nb, l, 1.0);
          Value c = arith::SubFOp::create(nb, l, one, in[1]);
          Value d = arith::MulFOp::create(nb, l, in[1], c);
          return arith::MulFOp::create(nb, l, in[0], d).getResult();
        });
  auto [dx, ddown] = projectionGrads(b, loc, x, down, dh, /*outIn=*/false);
  operandGrads.append({dx, ddown, dup});
  return success();
}

LogicalResult WKVOp::buildAdjoint(OpBuilder &b, ValueRange resultGrads,
                                  SmallVectorImpl<Value> &operandGrads) {
  Location loc = getLoc();
  SmallVector<Value> operands(getOperands());
  operands.push_back(gradOrZeros(b, loc, resultGrads[0], getY()));
  operands.push_back(gradOrZeros(b, loc, resultGrads[1], getNewState()));
  SmallVector<Type> types(6, getR().getType());
  types.push_back(getState().getType());
  auto g = WKVGradOp::create(b, loc, types, operands, (*this)->getAttrs());
  operandGrads.append(g->getResults().begin(), g->getResults().end());
  return success();
}

LogicalResult
CrossEntropyOp::buildAdjoint(OpBuilder &b, ValueRange resultGrads,
                             SmallVectorImpl<Value> &operandGrads) {
  auto g = CrossEntropyGradOp::create(
      b, getLoc(), TypeRange{getInput().getType(), f32Like(getWeight())},
      ValueRange{getInput(), getWeight(), getTargets(), resultGrads[0]},
      (*this)->getAttrs());
  operandGrads.append({g.getInputGrad(), g.getWeightGrad(), Value()});
  return success();
}
