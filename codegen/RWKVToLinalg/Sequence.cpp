//===- Sequence.cpp - token_shift and wkv to tensor/scf/linalg ------------===//
//
// The two ops that carry state along the sequence. token_shift is pure data
// movement (slices). wkv becomes an scf.for over tokens carrying the f32
// state, whose body is three linalg.generics per step: sa = S·a, the
// diagonal-plus-rank-1 update, and y = S·r (spec §1.6, inference order
// (S·d + k·v) + sa·b).
//
//===----------------------------------------------------------------------===//

#include "codegen/RWKVToLinalg/Common.h"

#include "mlir/Dialect/Utils/StructuredOpsUtils.h"

using namespace mlir;
using namespace mlir::rwkv;
using utils::IteratorType;

namespace {

SmallVector<OpFoldResult> unitStrides(OpBuilder &b, unsigned rank) {
  return SmallVector<OpFoldResult>(rank, b.getIndexAttr(1));
}

/// token_shift as two gathers: `shifted[b, t, c]` reads `prev[b, c]` at
/// t = 0 and `x[b, t-1, c]` otherwise, and `last[b, c] = x[b, T-1, c]`. As
/// linalg.generics (not slice copies) they fuse into the lerps that consume
/// them and leave no strided copies after bufferization.
struct TokenShiftLowering final : OpConversionPattern<TokenShiftOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(TokenShiftOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    MLIRContext *ctx = rewriter.getContext();
    Value x = adaptor.getInput();
    Value prev = adaptor.getPrev();
    Value t = dimValue(rewriter, loc, x, 1);
    Value c1 = arith::ConstantIndexOp::create(rewriter, loc, 1);
    Value lastIdx = arith::SubIOp::create(rewriter, loc, t, c1);

    Value shiftedInit = emptyLike(rewriter, loc, x);
    SmallVector<IteratorType> par3(3, IteratorType::parallel);
    Value shifted =
        linalg::GenericOp::create(
            rewriter, loc, TypeRange{shiftedInit.getType()}, ValueRange{},
            ValueRange{shiftedInit},
            ArrayRef<AffineMap>{AffineMap::getMultiDimIdentityMap(3, ctx)},
            par3,
            [&](OpBuilder &b, Location l, ValueRange) {
              Value bi = linalg::IndexOp::create(b, l, 0);
              Value ti = linalg::IndexOp::create(b, l, 1);
              Value ci = linalg::IndexOp::create(b, l, 2);
              Value zero = arith::ConstantIndexOp::create(b, l, 0);
              Value one = arith::ConstantIndexOp::create(b, l, 1);
              Value isFirst = arith::CmpIOp::create(
                  b, l, arith::CmpIPredicate::eq, ti, zero);
              // Clamp so the (discarded) read at t = 0 stays in bounds.
              Value tPrev = arith::SubIOp::create(
                  b, l, arith::MaxUIOp::create(b, l, ti, one), one);
              Value fromX =
                  tensor::ExtractOp::create(b, l, x, ValueRange{bi, tPrev, ci});
              Value fromPrev =
                  tensor::ExtractOp::create(b, l, prev, ValueRange{bi, ci});
              Value v = arith::SelectOp::create(b, l, isFirst, fromPrev, fromX);
              linalg::YieldOp::create(b, l, v);
            })
            .getResult(0);

    Value lastInit = emptyLike(rewriter, loc, prev);
    SmallVector<IteratorType> par2(2, IteratorType::parallel);
    Value last =
        linalg::GenericOp::create(
            rewriter, loc, TypeRange{lastInit.getType()}, ValueRange{},
            ValueRange{lastInit},
            ArrayRef<AffineMap>{AffineMap::getMultiDimIdentityMap(2, ctx)},
            par2,
            [&](OpBuilder &b, Location l, ValueRange) {
              Value bi = linalg::IndexOp::create(b, l, 0);
              Value ci = linalg::IndexOp::create(b, l, 1);
              Value v = tensor::ExtractOp::create(b, l, x,
                                                  ValueRange{bi, lastIdx, ci});
              linalg::YieldOp::create(b, l, v);
            })
            .getResult(0);
    rewriter.replaceOp(
        op, {castTo(rewriter, loc, shifted, op.getShifted().getType()),
             castTo(rewriter, loc, last, op.getLast().getType())});
    return success();
  }
};

/// `src[:, t, :]` as `[B, H, N]`.
Value tokenSlice(OpBuilder &b, Location loc, Value src, Value t,
                 int64_t heads) {
  auto type = llvm::cast<RankedTensorType>(src.getType());
  OpFoldResult zero = b.getIndexAttr(0);
  SmallVector<OpFoldResult> sizes = tensor::getMixedSizes(b, loc, src);
  sizes[1] = b.getIndexAttr(1);
  auto rowType = RankedTensorType::get({type.getDimSize(0), type.getDimSize(2)},
                                       type.getElementType());
  Value row = tensor::ExtractSliceOp::create(
      b, loc, rowType, src, ArrayRef<OpFoldResult>{zero, t, zero}, sizes,
      unitStrides(b, 3));
  return splitHeads(b, loc, row, heads);
}

struct WKVLowering final : OpConversionPattern<WKVOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(WKVOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    MLIRContext *ctx = rewriter.getContext();
    Value r = adaptor.getR();
    auto stateType = llvm::cast<RankedTensorType>(adaptor.getState().getType());
    int64_t heads = stateType.getDimSize(1);
    // `mode = chunked` is taken first by ChunkedWKV.cpp (higher benefit);
    // this is the exact sequential recurrence.
    Value yInit = emptyLike(rewriter, loc, r);
    Value lb = arith::ConstantIndexOp::create(rewriter, loc, 0);
    Value ub = dimValue(rewriter, loc, r, 1);
    Value step = arith::ConstantIndexOp::create(rewriter, loc, 1);

    AffineExpr d0, d1, d2, d3;
    bindDims(ctx, d0, d1, d2, d3);
    auto id4 = AffineMap::getMultiDimIdentityMap(4, ctx);
    auto row = AffineMap::get(4, 0, {d0, d1, d2}, ctx); // value index i
    auto col = AffineMap::get(4, 0, {d0, d1, d3}, ctx); // key index j
    SmallVector<IteratorType> red = {
        IteratorType::parallel, IteratorType::parallel, IteratorType::parallel,
        IteratorType::reduction};
    SmallVector<IteratorType> par(4, IteratorType::parallel);
    auto fm = reductionFastMath(rewriter);

    // The per-token [B, H, N] temporaries (sa, exp(w), y) are loop-carried
    // buffers allocated once: fresh ones would bufferize to an allocation
    // per token, and for the per-head recurrences of rwkv-parallelize-wkv
    // to one per head and token (0.1B, batch 8: 3456 malloc/free per step).
    SmallVector<OpFoldResult> rowSizes =
        tensor::getMixedSizes(rewriter, loc, adaptor.getState());
    rowSizes.pop_back();
    auto rowBuf = [&] {
      return tensor::EmptyOp::create(rewriter, loc, rowSizes,
                                     stateType.getElementType())
          .getResult();
    };
    Value zero = arith::ConstantOp::create(
        rewriter, loc, rewriter.getZeroAttr(stateType.getElementType()));
    auto loop = scf::ForOp::create(
        rewriter, loc, lb, ub, step,
        ValueRange{adaptor.getState(), yInit, rowBuf(), rowBuf(), rowBuf()},
        [&](OpBuilder &b, Location l, Value t, ValueRange iter) {
          Value state = iter[0];
          auto slice = [&](Value v) { return tokenSlice(b, l, v, t, heads); };
          Value rt = slice(r), wt = slice(adaptor.getW());
          Value kt = slice(adaptor.getK()), vt = slice(adaptor.getV());
          Value at = slice(adaptor.getA()), bt = slice(adaptor.getB());
          // Σ_j mat[i][j] vec[j] into the zeroed loop-carried buffer `buf`
          // (reassociable: the two dot products of the step).
          auto rowDot = [&](Value mat, Value vec, Value buf) {
            Value init = linalg::FillOp::create(b, l, zero, buf).getResult(0);
            return linalg::GenericOp::create(
                       b, l, TypeRange{buf.getType()}, ValueRange{mat, vec},
                       ValueRange{init}, ArrayRef<AffineMap>{id4, col, row},
                       red,
                       [&](OpBuilder &nb, Location nl, ValueRange args) {
                         Value p = arith::MulFOp::create(nb, nl, args[0],
                                                         args[1], fm);
                         linalg::YieldOp::create(
                             nb, nl,
                             arith::AddFOp::create(nb, nl, args[2], p, fm)
                                 .getResult());
                       })
                .getResult(0);
          };

          // sa[i] = Σ_j a[j] S[i][j] (old state).
          Value sa = rowDot(state, at, iter[2]);
          // d = exp(w), once per key channel.
          SmallVector<IteratorType> par3(3, IteratorType::parallel);
          auto id3 = AffineMap::getMultiDimIdentityMap(3, ctx);
          Value decay =
              linalg::GenericOp::create(
                  b, l, TypeRange{iter[3].getType()}, ValueRange{wt},
                  ValueRange{iter[3]}, ArrayRef<AffineMap>{id3, id3}, par3,
                  [](OpBuilder &nb, Location nl, ValueRange args) {
                    linalg::YieldOp::create(
                        nb, nl,
                        math::ExpOp::create(nb, nl, args[0]).getResult());
                  })
                  .getResult(0);
          // S[i][j] = S[i][j] d[j] + k[j] v[i] + sa[i] b[j], updated in
          // place: the state is the generic's init, so it bufferizes onto
          // the loop-carried buffer.
          Value newState =
              linalg::GenericOp::create(
                  b, l, TypeRange{state.getType()},
                  ValueRange{decay, kt, vt, sa, bt}, ValueRange{state},
                  ArrayRef<AffineMap>{col, col, row, row, col, id4}, par,
                  [](OpBuilder &nb, Location nl, ValueRange args) {
                    Value sd = arith::MulFOp::create(nb, nl, args[5], args[0]);
                    Value kv = arith::MulFOp::create(nb, nl, args[1], args[2]);
                    Value sb = arith::MulFOp::create(nb, nl, args[3], args[4]);
                    Value s = arith::AddFOp::create(nb, nl, sd, kv);
                    linalg::YieldOp::create(
                        nb, nl,
                        arith::AddFOp::create(nb, nl, s, sb).getResult());
                  })
                  .getResult(0);
          // y[i] = Σ_j S[i][j] r[j] (new state).
          Value yt = rowDot(newState, rt, iter[4]);
          Value yRow = mergeHeads(b, l, yt);
          SmallVector<OpFoldResult> ySizes = tensor::getMixedSizes(b, l, r);
          ySizes[1] = b.getIndexAttr(1);
          OpFoldResult zero = b.getIndexAttr(0);
          Value y = tensor::InsertSliceOp::create(
              b, l, yRow, iter[1], ArrayRef<OpFoldResult>{zero, t, zero},
              ySizes, unitStrides(b, 3));
          scf::YieldOp::create(b, l, ValueRange{newState, y, sa, decay, yt});
        });
    rewriter.replaceOp(
        op,
        {castTo(rewriter, loc, loop.getResult(1), op.getY().getType()),
         castTo(rewriter, loc, loop.getResult(0), op.getNewState().getType())});
    return success();
  }
};

} // namespace

void rwkv::populateRWKVSequenceToLinalgPatterns(RewritePatternSet &patterns) {
  patterns.add<TokenShiftLowering, WKVLowering>(patterns.getContext());
}
