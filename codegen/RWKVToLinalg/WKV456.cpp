//===- WKV456.cpp - rwkv.wkv4 and rwkv.wkv5 to tensor/scf/linalg ----------===//
//
// The recurrences of RWKV-4 and RWKV-5/6 as an scf.for over tokens that
// carries the f32 state, like the sequential RWKV-7 WKV in Sequence.cpp.
// RWKV-4's step is one element-wise linalg.generic over [B, C] with four
// results; RWKV-5/6's is a per-head reduction y = r·(u⊙k vᵀ + S) followed by
// the in-place update S = k vᵀ + d⊙S. Loops over the value index are
// innermost, so both vectorize along contiguous state rows.
//
//===----------------------------------------------------------------------===//

#include "codegen/RWKVToLinalg/Common.h"

#include "mlir/Dialect/Utils/StructuredOpsUtils.h"

using namespace mlir;
using namespace mlir::rwkv;
using utils::IteratorType;

namespace {

/// `src[:, t, :]` as `[B, C]`.
Value tokenRow(OpBuilder &b, Location loc, Value src, Value t) {
  auto type = llvm::cast<RankedTensorType>(src.getType());
  OpFoldResult zero = b.getIndexAttr(0), one = b.getIndexAttr(1);
  SmallVector<OpFoldResult> sizes = tensor::getMixedSizes(b, loc, src);
  sizes[1] = one;
  auto rowType = RankedTensorType::get({type.getDimSize(0), type.getDimSize(2)},
                                       type.getElementType());
  return tensor::ExtractSliceOp::create(
      b, loc, rowType, src, ArrayRef<OpFoldResult>{zero, t, zero}, sizes,
      ArrayRef<OpFoldResult>{one, one, one});
}

/// `dst[:, t, :] = row` for a `[B, C]` row.
Value insertTokenRow(OpBuilder &b, Location loc, Value row, Value dst,
                     Value t) {
  OpFoldResult zero = b.getIndexAttr(0), one = b.getIndexAttr(1);
  SmallVector<OpFoldResult> sizes = tensor::getMixedSizes(b, loc, dst);
  sizes[1] = one;
  return tensor::InsertSliceOp::create(
      b, loc, row, dst, ArrayRef<OpFoldResult>{zero, t, zero}, sizes,
      ArrayRef<OpFoldResult>{one, one, one});
}

struct WKV4Lowering final : OpConversionPattern<WKV4Op> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(WKV4Op op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    MLIRContext *ctx = rewriter.getContext();
    Value k = adaptor.getK(), v = adaptor.getV();
    Value lb = arith::ConstantIndexOp::create(rewriter, loc, 0);
    Value ub = dimValue(rewriter, loc, k, 1);
    Value step = arith::ConstantIndexOp::create(rewriter, loc, 1);
    auto id2 = AffineMap::getMultiDimIdentityMap(2, ctx);
    auto chan = AffineMap::get(2, 0, {getAffineDimExpr(1, ctx)}, ctx);
    SmallVector<IteratorType> par(2, IteratorType::parallel);

    auto loop = scf::ForOp::create(
        rewriter, loc, lb, ub, step,
        ValueRange{adaptor.getAa(), adaptor.getBb(), adaptor.getPp(),
                   emptyLike(rewriter, loc, k)},
        [&](OpBuilder &b, Location l, Value t, ValueRange iter) {
          Value kt = tokenRow(b, l, k, t), vt = tokenRow(b, l, v, t);
          Value yInit = emptyLike(b, l, kt);
          // The state is the generic's init, so it is updated in place.
          auto gen = linalg::GenericOp::create(
              b, l,
              TypeRange{iter[0].getType(), iter[1].getType(), iter[2].getType(),
                        yInit.getType()},
              ValueRange{kt, vt, adaptor.getW(), adaptor.getU()},
              ValueRange{iter[0], iter[1], iter[2], yInit},
              ArrayRef<AffineMap>{id2, id2, chan, chan, id2, id2, id2, id2},
              par, [](OpBuilder &nb, Location nl, ValueRange a) {
                Value kk = a[0], vv = a[1], w = a[2], u = a[3];
                Value aa = a[4], bb = a[5], pp = a[6];
                auto exp = [&](Value x) {
                  return math::ExpOp::create(nb, nl, x).getResult();
                };
                auto sub = [&](Value x, Value y) {
                  return arith::SubFOp::create(nb, nl, x, y).getResult();
                };
                auto mul = [&](Value x, Value y) {
                  return arith::MulFOp::create(nb, nl, x, y).getResult();
                };
                auto add = [&](Value x, Value y) {
                  return arith::AddFOp::create(nb, nl, x, y).getResult();
                };
                // Output with the bonus for the current token.
                Value ww = add(u, kk);
                Value p = arith::MaximumFOp::create(nb, nl, pp, ww);
                Value e1 = exp(sub(pp, p)), e2 = exp(sub(ww, p));
                Value num = add(mul(e1, aa), mul(e2, vv));
                Value den = add(mul(e1, bb), e2);
                Value y = arith::DivFOp::create(nb, nl, num, den);
                // State update: decay the sums by e^w, add this token.
                Value ww2 = add(w, pp);
                Value p2 = arith::MaximumFOp::create(nb, nl, ww2, kk);
                Value f1 = exp(sub(ww2, p2)), f2 = exp(sub(kk, p2));
                Value aa2 = add(mul(f1, aa), mul(f2, vv));
                Value bb2 = add(mul(f1, bb), f2);
                linalg::YieldOp::create(nb, nl, ValueRange{aa2, bb2, p2, y});
              });
          Value y = insertTokenRow(b, l, gen.getResult(3), iter[3], t);
          scf::YieldOp::create(b, l,
                               ValueRange{gen.getResult(0), gen.getResult(1),
                                          gen.getResult(2), y});
        });
    rewriter.replaceOp(
        op,
        {castTo(rewriter, loc, loop.getResult(3), op.getY().getType()),
         castTo(rewriter, loc, loop.getResult(0), op.getNewAa().getType()),
         castTo(rewriter, loc, loop.getResult(1), op.getNewBb().getType()),
         castTo(rewriter, loc, loop.getResult(2), op.getNewPp().getType())});
    return success();
  }
};

/// d = exp(-exp(w)) element-wise, for a `[C]` or `[B, C]` tensor.
Value decayFromLogLog(OpBuilder &b, Location loc, Value w) {
  return buildElementwise(b, loc, w, {w},
                          [](OpBuilder &nb, Location nl, ValueRange in) {
                            Value e = math::ExpOp::create(nb, nl, in[0]);
                            Value n = arith::NegFOp::create(nb, nl, e);
                            return math::ExpOp::create(nb, nl, n).getResult();
                          });
}

struct WKV5Lowering final : OpConversionPattern<WKV5Op> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(WKV5Op op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    MLIRContext *ctx = rewriter.getContext();
    Value r = adaptor.getR(), w = adaptor.getW();
    auto stateType = llvm::cast<RankedTensorType>(adaptor.getState().getType());
    int64_t heads = stateType.getDimSize(1);
    bool staticDecay = llvm::cast<RankedTensorType>(w.getType()).getRank() == 1;
    // RWKV-5's decay is the same for every token: computed once, outside
    // the loop, as [H, N].
    Value staticD = staticDecay
                        ? splitHeads(rewriter, loc,
                                     decayFromLogLog(rewriter, loc, w), heads)
                        : Value();
    Value u = splitHeads(rewriter, loc, adaptor.getU(), heads);
    Value lb = arith::ConstantIndexOp::create(rewriter, loc, 0);
    Value ub = dimValue(rewriter, loc, r, 1);
    Value step = arith::ConstantIndexOp::create(rewriter, loc, 1);

    // Iteration space (b, h, i = key, j = value); the state is S[b][h][i][j].
    AffineExpr d0, d1, d2, d3;
    bindDims(ctx, d0, d1, d2, d3);
    auto id4 = AffineMap::getMultiDimIdentityMap(4, ctx);
    auto key = AffineMap::get(4, 0, {d0, d1, d2}, ctx);
    auto value = AffineMap::get(4, 0, {d0, d1, d3}, ctx);
    auto keyHead = AffineMap::get(4, 0, {d1, d2}, ctx);
    AffineMap decayMap = staticDecay ? keyHead : key;
    SmallVector<IteratorType> red = {
        IteratorType::parallel, IteratorType::parallel, IteratorType::reduction,
        IteratorType::parallel};
    SmallVector<IteratorType> par(4, IteratorType::parallel);
    auto fm = reductionFastMath(rewriter);

    auto loop = scf::ForOp::create(
        rewriter, loc, lb, ub, step,
        ValueRange{adaptor.getState(), emptyLike(rewriter, loc, r)},
        [&](OpBuilder &b, Location l, Value t, ValueRange iter) {
          Value state = iter[0];
          auto slice = [&](Value x) {
            return splitHeads(b, l, tokenRow(b, l, x, t), heads);
          };
          Value rt = slice(r), kt = slice(adaptor.getK());
          Value vt = slice(adaptor.getV());
          Value dt =
              staticDecay
                  ? staticD
                  : splitHeads(b, l,
                               decayFromLogLog(b, l, tokenRow(b, l, w, t)),
                               heads);
          SmallVector<OpFoldResult> rowSizes = tensor::getMixedSizes(b, l, rt);

          // y[j] = Σ_i r[i] (u[i] k[i] v[j] + S[i][j]) (old state).
          Value yt =
              linalg::GenericOp::create(
                  b, l, TypeRange{rt.getType()},
                  ValueRange{state, rt, u, kt, vt},
                  ValueRange{zeros(b, l, rowSizes)},
                  ArrayRef<AffineMap>{id4, key, keyHead, key, value, value},
                  red,
                  [&](OpBuilder &nb, Location nl, ValueRange a) {
                    Value uk = arith::MulFOp::create(nb, nl, a[2], a[3]);
                    Value ukv = arith::MulFOp::create(nb, nl, uk, a[4]);
                    Value s = arith::AddFOp::create(nb, nl, ukv, a[0]);
                    Value p = arith::MulFOp::create(nb, nl, a[1], s, fm);
                    linalg::YieldOp::create(
                        nb, nl,
                        arith::AddFOp::create(nb, nl, a[5], p, fm).getResult());
                  })
                  .getResult(0);
          // S[i][j] = k[i] v[j] + d[i] S[i][j], in place.
          Value newState =
              linalg::GenericOp::create(
                  b, l, TypeRange{state.getType()}, ValueRange{kt, vt, dt},
                  ValueRange{state},
                  ArrayRef<AffineMap>{key, value, decayMap, id4}, par,
                  [](OpBuilder &nb, Location nl, ValueRange a) {
                    Value kv = arith::MulFOp::create(nb, nl, a[0], a[1]);
                    Value ds = arith::MulFOp::create(nb, nl, a[2], a[3]);
                    linalg::YieldOp::create(
                        nb, nl,
                        arith::AddFOp::create(nb, nl, kv, ds).getResult());
                  })
                  .getResult(0);
          Value y = insertTokenRow(b, l, mergeHeads(b, l, yt), iter[1], t);
          scf::YieldOp::create(b, l, ValueRange{newState, y});
        });
    rewriter.replaceOp(
        op,
        {castTo(rewriter, loc, loop.getResult(1), op.getY().getType()),
         castTo(rewriter, loc, loop.getResult(0), op.getNewState().getType())});
    return success();
  }
};

} // namespace

void rwkv::populateRWKVWKV456ToLinalgPatterns(RewritePatternSet &patterns) {
  patterns.add<WKV4Lowering, WKV5Lowering>(patterns.getContext());
}
