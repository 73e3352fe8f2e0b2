//===- Norms.cpp - layer_norm, group_norm, l2_normalize to linalg ---------===//
//
// All three normalise over the last dimension (group_norm and l2_normalize
// after splitting channels into heads). Mean and variance are two separate
// reductions (centred second pass), which matches the reference numerics far
// better than E[x²] - E[x]².
//
//===----------------------------------------------------------------------===//

#include "codegen/RWKVToLinalg/Common.h"

#include "mlir/Dialect/Utils/StructuredOpsUtils.h"

using namespace mlir;
using namespace mlir::rwkv;
using utils::IteratorType;

namespace {

/// Maps of a reduction over the last dimension of a rank-`rank` space.
struct LastDimReduction {
  AffineMap full, reduced;
  SmallVector<IteratorType> iters;
  LastDimReduction(MLIRContext *ctx, unsigned rank)
      : full(AffineMap::getMultiDimIdentityMap(rank, ctx)),
        reduced(full.dropResult(rank - 1)),
        iters(rank, IteratorType::parallel) {
    iters.back() = IteratorType::reduction;
  }
};

/// Σ_last f(x, extra...) into a tensor of the leading dims of `x`.
Value reduceLast(
    OpBuilder &b, Location loc, Value x, ValueRange extra,
    llvm::function_ref<Value(OpBuilder &, Location, Value, ValueRange)> term) {
  unsigned rank = llvm::cast<RankedTensorType>(x.getType()).getRank();
  LastDimReduction r(b.getContext(), rank);
  SmallVector<OpFoldResult> sizes = tensor::getMixedSizes(b, loc, x);
  sizes.pop_back();
  Value acc = zeros(b, loc, sizes);
  SmallVector<Value> ins = {x};
  ins.append(extra.begin(), extra.end());
  SmallVector<AffineMap> maps = {r.full};
  maps.append(extra.size(), r.reduced);
  maps.push_back(r.reduced);
  return linalg::GenericOp::create(
             b, loc, TypeRange{acc.getType()}, ins, ValueRange{acc}, maps,
             r.iters,
             [&](OpBuilder &nb, Location nl, ValueRange args) {
               Value t = term(nb, nl, args[0], args.slice(1, extra.size()));
               Value s = arith::AddFOp::create(nb, nl, args.back(), t,
                                               reductionFastMath(nb));
               linalg::YieldOp::create(nb, nl, s);
             })
      .getResult(0);
}

/// The extent of the last dimension as an f32 value.
Value lastDimF32(OpBuilder &b, Location loc, Value x) {
  int64_t rank = llvm::cast<RankedTensorType>(x.getType()).getRank();
  Value n = dimValue(b, loc, x, rank - 1);
  Value i = arith::IndexCastOp::create(b, loc, b.getI64Type(), n);
  return arith::SIToFPOp::create(b, loc, b.getF32Type(), i);
}

} // namespace

Value rwkv::buildNormalize(OpBuilder &b, Location loc, Value x, float eps,
                           Value weight, Value bias, AffineMap affineMap) {
  unsigned rank = llvm::cast<RankedTensorType>(x.getType()).getRank();
  LastDimReduction r(b.getContext(), rank);
  Value n = lastDimF32(b, loc, x);
  Value sum =
      reduceLast(b, loc, x, {},
                 [](OpBuilder &, Location, Value v, ValueRange) { return v; });
  Value centred = reduceLast(
      b, loc, x, {sum},
      [&](OpBuilder &nb, Location nl, Value v, ValueRange extra) -> Value {
        Value mean = arith::DivFOp::create(nb, nl, extra[0], n);
        Value d = arith::SubFOp::create(nb, nl, v, mean);
        return arith::MulFOp::create(nb, nl, d, d);
      });
  Value init = emptyLike(b, loc, x, b.getF32Type());
  SmallVector<IteratorType> par(rank, IteratorType::parallel);
  return linalg::GenericOp::create(
             b, loc, TypeRange{init.getType()},
             ValueRange{x, sum, centred, weight, bias}, ValueRange{init},
             ArrayRef<AffineMap>{r.full, r.reduced, r.reduced, affineMap,
                                 affineMap, r.full},
             par,
             [&](OpBuilder &nb, Location nl, ValueRange args) {
               Value mean = arith::DivFOp::create(nb, nl, args[1], n);
               Value var = arith::DivFOp::create(nb, nl, args[2], n);
               Value ve =
                   arith::AddFOp::create(nb, nl, var, f32Const(nb, nl, eps));
               Value sd = math::SqrtOp::create(nb, nl, ve);
               Value d = arith::SubFOp::create(nb, nl, args[0], mean);
               Value xn = arith::DivFOp::create(nb, nl, d, sd);
               Value w = toF32(nb, nl, args[3]);
               Value bb = toF32(nb, nl, args[4]);
               Value y = arith::MulFOp::create(nb, nl, xn, w);
               linalg::YieldOp::create(
                   nb, nl, arith::AddFOp::create(nb, nl, y, bb).getResult());
             })
      .getResult(0);
}

namespace {

struct LayerNormLowering final : OpConversionPattern<LayerNormOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(LayerNormOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Value x = adaptor.getInput();
    unsigned rank = llvm::cast<RankedTensorType>(x.getType()).getRank();
    MLIRContext *ctx = rewriter.getContext();
    auto perChannel =
        AffineMap::get(rank, 0, {getAffineDimExpr(rank - 1, ctx)}, ctx);
    Value y = buildNormalize(
        rewriter, op.getLoc(), x, op.getEpsilon().convertToFloat(),
        adaptor.getWeight(), adaptor.getBias(), perChannel);
    rewriter.replaceOp(op, castTo(rewriter, op.getLoc(), y, op.getType()));
    return success();
  }
};

struct GroupNormLowering final : OpConversionPattern<GroupNormOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(GroupNormOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    int64_t groups = op.getNumGroups();
    MLIRContext *ctx = rewriter.getContext();
    Value x4 = splitHeads(rewriter, loc, adaptor.getInput(), groups);
    Value w2 = splitHeads(rewriter, loc, adaptor.getWeight(), groups);
    Value b2 = splitHeads(rewriter, loc, adaptor.getBias(), groups);
    AffineExpr d0, d1, d2, d3;
    bindDims(ctx, d0, d1, d2, d3);
    Value y4 =
        buildNormalize(rewriter, loc, x4, op.getEpsilon().convertToFloat(), w2,
                       b2, AffineMap::get(4, 0, {d2, d3}, ctx));
    Value y = mergeHeads(rewriter, loc, y4);
    rewriter.replaceOp(op, castTo(rewriter, loc, y, op.getType()));
    return success();
  }
};

struct L2NormalizeLowering final : OpConversionPattern<L2NormalizeOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(L2NormalizeOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value x4 = splitHeads(rewriter, loc, adaptor.getInput(), op.getNumHeads());
    Value ss =
        reduceLast(rewriter, loc, x4, {},
                   [](OpBuilder &nb, Location nl, Value v, ValueRange) {
                     return arith::MulFOp::create(nb, nl, v, v).getResult();
                   });
    float eps = op.getEpsilon().convertToFloat();
    LastDimReduction r(rewriter.getContext(), 4);
    Value init = emptyLike(rewriter, loc, x4);
    SmallVector<IteratorType> par(4, IteratorType::parallel);
    Value y4 =
        linalg::GenericOp::create(
            rewriter, loc, TypeRange{init.getType()}, ValueRange{x4, ss},
            ValueRange{init}, ArrayRef<AffineMap>{r.full, r.reduced, r.full},
            par,
            [&](OpBuilder &nb, Location nl, ValueRange args) {
              // F.normalize: x / max(||x||, eps).
              Value norm = math::SqrtOp::create(nb, nl, args[1]);
              Value den = arith::MaximumFOp::create(nb, nl, norm,
                                                    f32Const(nb, nl, eps));
              linalg::YieldOp::create(
                  nb, nl,
                  arith::DivFOp::create(nb, nl, args[0], den).getResult());
            })
            .getResult(0);
    Value y = mergeHeads(rewriter, loc, y4);
    rewriter.replaceOp(op, castTo(rewriter, loc, y, op.getType()));
    return success();
  }
};

} // namespace

void rwkv::populateRWKVNormToLinalgPatterns(RewritePatternSet &patterns) {
  patterns.add<LayerNormLowering, GroupNormLowering, L2NormalizeLowering>(
      patterns.getContext());
}
