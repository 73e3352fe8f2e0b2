//===- LowerWKVToRows.cpp - the WKV7 recurrence one state row per thread --===//
//
// The generic lowering of rwkv.wkv (Sequence.cpp) is a token loop around
// three state-sized linalg ops, which the CUDA target's loop mapping gives
// one thread per (batch row, head): that thread walks the whole N x N state
// for every token. Row i of the state only ever needs row i and the head's
// r, decay, k, a, b vectors: sa[i] = S[i]·a, the update of S[i], and
// y[i] = S[i]·r. So each (batch row, head, row) is independent for the whole
// sequence, and the recurrence becomes an scf.forall over (b, h, i) whose
// body carries its row through the token loop as a vector<N> value (in
// registers on the GPU), ../shared/docs/cuda-codegen.md §1.2 (a). The
// decay exp(w) is one element-wise op before the loop, not N exps per
// thread and token.
//
// The arithmetic and its order are those of the generic lowering: the
// update is (S·d + k·v) + sa·b, the two dot products are reassociable
// reductions.
//
// RWKV-5/6 (rwkv.wkv5, state S[key i][value j]) split the same way along
// the value index: y[j] = Σ_i r[i] (u[i] k[i] v[j] + S[i][j]) and
// S[i][j] = k[i] v[j] + d[i] S[i][j] need only column j. That column is
// strided in memory, so it is gathered with N scalar reads once per call
// (and scattered back once), and carried as a vector<N> in between;
// d = exp(-exp(w)) is one element-wise op before the loop (per channel for
// RWKV-5, per token for RWKV-6). The arithmetic is that of WKV456.cpp.
//
//===----------------------------------------------------------------------===//

#include "codegen/Passes.h"
#include "dialect/IRUtils.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Transforms/WalkPatternRewriteDriver.h"

#define DEBUG_TYPE "rwkv-lower-wkv-to-rows"

namespace mlir::rwkv {
#define GEN_PASS_DEF_RWKVLOWERWKVTOROWSPASS
#include "codegen/Passes.h.inc"

namespace {

/// The scf.forall over (batch row, head, k) shared by both patterns, with
/// y and the state as its shared outputs, and the values every thread needs:
/// k's channel h * N + k, the token count, and this thread's y column [T]
/// (a slice of the shared y, so that it bufferizes in place).
struct ThreadFrame {
  scf::ForallOp forall;
  Value bi, hi, ki, yOut, sOut, c0, c1, base, col, tokens, zero;
  OpFoldResult one, zeroIdx;

  ThreadFrame(PatternRewriter &rewriter, Location loc, Value r, Value state,
              int64_t batch, int64_t heads, int64_t n) {
    MLIRContext *ctx = rewriter.getContext();
    Type f32 = cast<RankedTensorType>(state.getType()).getElementType();
    Value yInit = tensor::EmptyOp::create(
        rewriter, loc, tensor::getMixedSizes(rewriter, loc, r), f32);
    forall = scf::ForallOp::create(
        rewriter, loc, getAsIndexOpFoldResult(ctx, {batch, heads, n}),
        ValueRange{yInit, state}, /*mapping=*/std::nullopt);
    Block *body = forall.getBody();
    rewriter.setInsertionPointToStart(body);
    bi = body->getArgument(0);
    hi = body->getArgument(1);
    ki = body->getArgument(2);
    yOut = forall.getRegionIterArgs()[0];
    sOut = forall.getRegionIterArgs()[1];
    c0 = arith::ConstantIndexOp::create(rewriter, loc, 0);
    c1 = arith::ConstantIndexOp::create(rewriter, loc, 1);
    base = arith::MulIOp::create(
        rewriter, loc, hi, arith::ConstantIndexOp::create(rewriter, loc, n));
    col = arith::AddIOp::create(rewriter, loc, base, ki);
    tokens = tensor::DimOp::create(rewriter, loc, r, 1);
    zero = arith::ConstantOp::create(rewriter, loc, f32,
                                     rewriter.getZeroAttr(f32));
    one = rewriter.getIndexAttr(1);
    zeroIdx = rewriter.getIndexAttr(0);
    yOffsets = {bi, zeroIdx, col};
    ySizes = {one, tensor::getMixedSize(rewriter, loc, r, 1), one};
  }

  Value yColumn(PatternRewriter &rewriter, Location loc) const {
    Type f32 = cast<RankedTensorType>(yOut.getType()).getElementType();
    return tensor::ExtractSliceOp::create(
        rewriter, loc, RankedTensorType::get({ShapedType::kDynamic}, f32), yOut,
        yOffsets, ySizes, SmallVector<OpFoldResult>(3, one));
  }

  /// Writes this thread's y column and state slice back to the outputs and
  /// replaces `op` with the forall's results.
  void finish(PatternRewriter &rewriter, Location loc, Operation *op,
              Value yCol, Value sSlice, ArrayRef<OpFoldResult> sOffsets,
              ArrayRef<OpFoldResult> sSizes) {
    rewriter.setInsertionPointToStart(forall.getTerminator().getBody());
    tensor::ParallelInsertSliceOp::create(rewriter, loc, yCol, yOut, yOffsets,
                                          ySizes,
                                          SmallVector<OpFoldResult>(3, one));
    tensor::ParallelInsertSliceOp::create(rewriter, loc, sSlice, sOut, sOffsets,
                                          sSizes,
                                          SmallVector<OpFoldResult>(4, one));
    rewriter.replaceOp(op, forall.getResults());
  }

private:
  SmallVector<OpFoldResult> yOffsets, ySizes;
};

struct WKVToRowsPattern final : OpRewritePattern<WKVOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(WKVOp op,
                                PatternRewriter &rewriter) const override {
    if (op.getMode() != WKVMode::sequential)
      return rewriter.notifyMatchFailure(op, "chunked form");
    auto stateType = dyn_cast<RankedTensorType>(op.getState().getType());
    auto actType = dyn_cast<RankedTensorType>(op.getR().getType());
    if (!stateType || !actType || stateType.getRank() != 4 ||
        actType.getRank() != 3 || !stateType.hasStaticShape() ||
        !stateType.getElementType().isF32() ||
        actType.getElementType() != stateType.getElementType())
      return rewriter.notifyMatchFailure(op, "needs a static f32 state");
    for (Value v : op->getOperands())
      if (v.getType() != actType && v != op.getState())
        return rewriter.notifyMatchFailure(op, "activations differ in type");
    int64_t batch = stateType.getDimSize(0), heads = stateType.getDimSize(1),
            n = stateType.getDimSize(2);
    Location loc = op.getLoc();
    MLIRContext *ctx = rewriter.getContext();
    Type f32 = stateType.getElementType();
    auto rowType = VectorType::get({n}, f32);
    auto fm = reductionFastMath(rewriter);

    // d = exp(w) over the whole [B, T, C] tensor.
    SmallVector<OpFoldResult> actSizes =
        tensor::getMixedSizes(rewriter, loc, op.getR());
    auto id3 = AffineMap::getMultiDimIdentityMap(3, ctx);
    Value decay =
        linalg::GenericOp::create(
            rewriter, loc, TypeRange{actType}, ValueRange{op.getW()},
            ValueRange{tensor::EmptyOp::create(rewriter, loc, actSizes, f32)},
            ArrayRef<AffineMap>{id3, id3},
            SmallVector<utils::IteratorType>(3, utils::IteratorType::parallel),
            [](OpBuilder &b, Location l, ValueRange args) {
              linalg::YieldOp::create(
                  b, l, math::ExpOp::create(b, l, args[0]).getResult());
            })
            .getResult(0);

    OpBuilder::InsertionGuard guard(rewriter);
    ThreadFrame f(rewriter, loc, op.getR(), op.getState(), batch, heads, n);
    Value bi = f.bi, c0 = f.c0, base = f.base, zero = f.zero;
    OpFoldResult one = f.one;

    // This thread's state row [N] and y column [T], read and written in the
    // shared outputs (so both bufferize in place).
    SmallVector<OpFoldResult> rowOffsets = {bi, f.hi, f.ki, f.zeroIdx},
                              rowSizes = {one, one, one,
                                          rewriter.getIndexAttr(n)};
    Value sRow = tensor::ExtractSliceOp::create(
        rewriter, loc, RankedTensorType::get({n}, f32), f.sOut, rowOffsets,
        rowSizes, SmallVector<OpFoldResult>(4, one));
    Value yCol = f.yColumn(rewriter, loc);
    auto inBounds = rewriter.getBoolArrayAttr({true});
    auto map1 = AffineMap::getMinorIdentityMap(1, 1, ctx);
    auto map3 = AffineMap::getMinorIdentityMap(3, 1, ctx);
    Value row0 = vector::TransferReadOp::create(
        rewriter, loc, rowType, sRow, ValueRange{c0}, AffineMapAttr::get(map1),
        zero, /*mask=*/Value(), inBounds);

    auto loop = scf::ForOp::create(
        rewriter, loc, c0, f.tokens, f.c1, ValueRange{row0, yCol},
        [&](OpBuilder &b, Location l, Value t, ValueRange iter) {
          auto headVec = [&](Value src) {
            return vector::TransferReadOp::create(
                       b, l, rowType, src, ValueRange{bi, t, base},
                       AffineMapAttr::get(map3), zero, /*mask=*/Value(),
                       inBounds)
                .getResult();
          };
          Value rv = headVec(op.getR()), dv = headVec(decay);
          Value kv = headVec(op.getK()), av = headVec(op.getA());
          Value bv = headVec(op.getB());
          Value vi = tensor::ExtractOp::create(b, l, op.getV(),
                                               ValueRange{bi, t, f.col});
          Value row = iter[0];
          // sa = S[i]·a (old state).
          Value sa = vector::ReductionOp::create(
              b, l, vector::CombiningKind::ADD,
              arith::MulFOp::create(b, l, row, av, fm), fm.getValue());
          // S[i][j] = (S[i][j] d[j] + k[j] v[i]) + sa b[j].
          Value sd = arith::MulFOp::create(b, l, row, dv);
          Value kvv = arith::MulFOp::create(
              b, l, kv, vector::BroadcastOp::create(b, l, rowType, vi));
          Value sb = arith::MulFOp::create(
              b, l, vector::BroadcastOp::create(b, l, rowType, sa), bv);
          Value next = arith::AddFOp::create(
              b, l, arith::AddFOp::create(b, l, sd, kvv), sb);
          // y[i] = S[i]·r (new state).
          Value yi = vector::ReductionOp::create(
              b, l, vector::CombiningKind::ADD,
              arith::MulFOp::create(b, l, next, rv, fm), fm.getValue());
          Value yNext = tensor::InsertOp::create(b, l, yi, iter[1], t);
          scf::YieldOp::create(b, l, ValueRange{next, yNext});
        });
    Value sNew = vector::TransferWriteOp::create(
                     rewriter, loc, loop.getResult(0), sRow, ValueRange{c0},
                     AffineMapAttr::get(map1), /*mask=*/Value(), inBounds)
                     .getResult();
    f.finish(rewriter, loc, op, loop.getResult(1), sNew, rowOffsets, rowSizes);
    return success();
  }
};

struct WKV5ToColumnsPattern final : OpRewritePattern<WKV5Op> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(WKV5Op op,
                                PatternRewriter &rewriter) const override {
    auto stateType = dyn_cast<RankedTensorType>(op.getState().getType());
    auto actType = dyn_cast<RankedTensorType>(op.getR().getType());
    auto wType = dyn_cast<RankedTensorType>(op.getW().getType());
    auto uType = dyn_cast<RankedTensorType>(op.getU().getType());
    if (!stateType || !actType || !wType || !uType ||
        stateType.getRank() != 4 || actType.getRank() != 3 ||
        !stateType.hasStaticShape() || !stateType.getElementType().isF32() ||
        actType.getElementType() != stateType.getElementType() ||
        uType.getRank() != 1 ||
        uType.getElementType() != actType.getElementType() ||
        wType.getElementType() != actType.getElementType() ||
        (wType.getRank() != 1 && wType != actType))
      return rewriter.notifyMatchFailure(op, "needs a static f32 state");
    int64_t batch = stateType.getDimSize(0), heads = stateType.getDimSize(1),
            n = stateType.getDimSize(2);
    bool perToken = wType.getRank() == 3;
    Location loc = op.getLoc();
    MLIRContext *ctx = rewriter.getContext();
    Type f32 = stateType.getElementType();
    auto colType = VectorType::get({n}, f32);
    auto fm = reductionFastMath(rewriter);

    // d = exp(-exp(w)), over [C] (RWKV-5) or [B, T, C] (RWKV-6).
    int64_t wRank = wType.getRank();
    auto idW = AffineMap::getMultiDimIdentityMap(wRank, ctx);
    Value decay =
        linalg::GenericOp::create(
            rewriter, loc, TypeRange{wType}, ValueRange{op.getW()},
            ValueRange{tensor::EmptyOp::create(
                rewriter, loc, tensor::getMixedSizes(rewriter, loc, op.getW()),
                f32)},
            ArrayRef<AffineMap>{idW, idW},
            SmallVector<utils::IteratorType>(wRank,
                                             utils::IteratorType::parallel),
            [](OpBuilder &b, Location l, ValueRange args) {
              Value e = math::ExpOp::create(b, l, args[0]);
              Value ne = arith::NegFOp::create(b, l, e);
              linalg::YieldOp::create(
                  b, l, math::ExpOp::create(b, l, ne).getResult());
            })
            .getResult(0);

    OpBuilder::InsertionGuard guard(rewriter);
    ThreadFrame f(rewriter, loc, op.getR(), op.getState(), batch, heads, n);
    Value bi = f.bi, ji = f.ki, base = f.base, zero = f.zero;
    OpFoldResult one = f.one;
    auto inBounds = rewriter.getBoolArrayAttr({true});
    auto readAt = [&](OpBuilder &b, Location l, Value src,
                      ValueRange idx) -> Value {
      auto map = AffineMap::getMinorIdentityMap(idx.size(), 1, ctx);
      return vector::TransferReadOp::create(b, l, colType, src, idx,
                                            AffineMapAttr::get(map), zero,
                                            /*mask=*/Value(), inBounds)
          .getResult();
    };

    // This thread's state column S[:, j] (strided: N scalar reads) and its
    // y column [T], read and written in the shared outputs.
    SmallVector<OpFoldResult> colOffsets = {bi, f.hi, f.zeroIdx, ji},
                              colSizes = {one, one, rewriter.getIndexAttr(n),
                                          one};
    Value sCol = tensor::ExtractSliceOp::create(
        rewriter, loc, RankedTensorType::get({n}, f32), f.sOut, colOffsets,
        colSizes, SmallVector<OpFoldResult>(4, one));
    SmallVector<Value> elems;
    for (int64_t i = 0; i < n; ++i)
      elems.push_back(tensor::ExtractOp::create(
          rewriter, loc, sCol,
          ValueRange{arith::ConstantIndexOp::create(rewriter, loc, i)}));
    Value col0 = vector::FromElementsOp::create(rewriter, loc, colType, elems);
    Value yCol = f.yColumn(rewriter, loc);
    auto loop = scf::ForOp::create(
        rewriter, loc, f.c0, f.tokens, f.c1, ValueRange{col0, yCol},
        [&](OpBuilder &b, Location l, Value t, ValueRange iter) {
          // u and RWKV-5's decay are the same every token, but re-read
          // (from L1) rather than hoisted: with the column and r, k they
          // would hold 5 N values live across the loop, and spill at N = 64.
          Value rv = readAt(b, l, op.getR(), ValueRange{bi, t, base});
          Value kv = readAt(b, l, op.getK(), ValueRange{bi, t, base});
          Value uv = readAt(b, l, op.getU(), ValueRange{base});
          Value dv =
              readAt(b, l, decay,
                     perToken ? ValueRange{bi, t, base} : ValueRange{base});
          Value vj = tensor::ExtractOp::create(b, l, op.getV(),
                                               ValueRange{bi, t, f.col});
          Value vb = vector::BroadcastOp::create(b, l, colType, vj);
          Value s = iter[0];
          // y[j] = Σ_i r[i] ((u[i] k[i]) v[j] + S[i][j]) (old state).
          Value uk = arith::MulFOp::create(b, l, uv, kv);
          Value ukv = arith::MulFOp::create(b, l, uk, vb);
          Value sum = arith::AddFOp::create(b, l, ukv, s);
          Value yj = vector::ReductionOp::create(
              b, l, vector::CombiningKind::ADD,
              arith::MulFOp::create(b, l, rv, sum, fm), fm.getValue());
          // S[i][j] = k[i] v[j] + d[i] S[i][j] (operands built in order, so
          // that the IR is deterministic).
          Value kvb = arith::MulFOp::create(b, l, kv, vb);
          Value ds = arith::MulFOp::create(b, l, dv, s);
          Value next = arith::AddFOp::create(b, l, kvb, ds);
          Value yNext = tensor::InsertOp::create(b, l, yj, iter[1], t);
          scf::YieldOp::create(b, l, ValueRange{next, yNext});
        });
    Value sNew = sCol;
    for (int64_t i = 0; i < n; ++i)
      sNew = tensor::InsertOp::create(
          rewriter, loc,
          vector::ExtractOp::create(rewriter, loc, loop.getResult(0),
                                    ArrayRef<int64_t>{i}),
          sNew, ValueRange{arith::ConstantIndexOp::create(rewriter, loc, i)});
    f.finish(rewriter, loc, op, loop.getResult(1), sNew, colOffsets, colSizes);
    return success();
  }
};

struct RWKVLowerWKVToRowsPass final
    : impl::RWKVLowerWKVToRowsPassBase<RWKVLowerWKVToRowsPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    populateLowerWKVToRowsPatterns(patterns);
    walkAndApplyPatterns(getOperation(), std::move(patterns));
  }
};

} // namespace

void populateLowerWKVToRowsPatterns(RewritePatternSet &patterns) {
  patterns.add<WKVToRowsPattern, WKV5ToColumnsPattern>(patterns.getContext());
}

} // namespace mlir::rwkv
