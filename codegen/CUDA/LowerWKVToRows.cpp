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
// The sequential gradient rwkv.wkv_grad (training) splits by rows too: the
// backward of row i needs row i of the state and of its gradient G, and the
// column sums over i (dk, db, dw, da, dr) feed nothing of the recurrence, so
// they are computed afterwards, per segment of chunk_length tokens, as
// parallel reductions over the rows the threads saved (WKVGradToRowsPattern).
// On the GPU that is N times the threads of the one-thread-per-head form
// that rwkv-parallelize-wkv would give, and no thread carries N x N values.
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
    // [T]: static in training modules, dynamic in inference ones.
    int64_t t = cast<RankedTensorType>(yOut.getType()).getDimSize(1);
    return tensor::ExtractSliceOp::create(
        rewriter, loc, RankedTensorType::get({t}, f32), yOut, yOffsets, ySizes,
        SmallVector<OpFoldResult>(3, one));
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

/// rwkv.wkv_grad (sequential) with the state rows spread over threads. The
/// backward of row i of the state needs only row i too, except for the
/// column sums dk = Gᵀv, db = Gᵀsa, dd = Σ_i G ⊙ S, da = Sᵀdsa and
/// dr = S_tᵀdy, which feed nothing of the recurrence. So per segment of L
/// tokens (WKVGrad.cpp's segments and checkpoints):
///   1. forall (b, h, i): recompute the segment's rows of S from the
///      checkpoint (saving S_{t-1}, sa and the segment's end state), then
///      walk its tokens backwards carrying row i of G: G += dy_i r,
///      dv_i = G·k, dsa_i = G·b, G saved, G = G ⊙ d + dsa_i a;
///   2. the five column sums over i as linalg reductions over (b, t, h, j),
///      every token of the segment in parallel.
/// The checkpoints come from a first forall (b, h, i) over all tokens.
struct WKVGradToRowsPattern final : OpRewritePattern<WKVGradOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(WKVGradOp op,
                                PatternRewriter &rewriter) const override {
    if (op.getMode() != WKVMode::sequential)
      return rewriter.notifyMatchFailure(op, "chunked form");
    auto stateType = dyn_cast<RankedTensorType>(op.getState().getType());
    auto actType = dyn_cast<RankedTensorType>(op.getR().getType());
    if (!stateType || !actType || stateType.getRank() != 4 ||
        actType.getRank() != 3 || !stateType.hasStaticShape() ||
        !actType.hasStaticShape() || !stateType.getElementType().isF32() ||
        actType.getElementType() != stateType.getElementType())
      return rewriter.notifyMatchFailure(op, "needs static f32 shapes");
    for (Value v :
         {op.getW(), op.getK(), op.getV(), op.getA(), op.getB(), op.getYGrad()})
      if (v.getType() != actType)
        return rewriter.notifyMatchFailure(op, "activations differ in type");
    const int64_t batch = stateType.getDimSize(0),
                  heads = stateType.getDimSize(1), n = stateType.getDimSize(2),
                  tokens = actType.getDimSize(1), chans = actType.getDimSize(2);
    if (tokens < 1 || op.getChunkLength() < 1)
      return rewriter.notifyMatchFailure(op, "no tokens");
    const int64_t len = std::min<int64_t>(op.getChunkLength(), tokens);
    const int64_t nseg = llvm::divideCeil(tokens, len);
    Location loc = op.getLoc();
    MLIRContext *ctx = rewriter.getContext();
    Type f32 = stateType.getElementType();
    auto rowType = VectorType::get({n}, f32);
    auto fm = reductionFastMath(rewriter);
    auto idx = [&](OpBuilder &b, int64_t v) -> Value {
      return arith::ConstantIndexOp::create(b, loc, v);
    };
    auto attr = [&](int64_t v) -> OpFoldResult {
      return rewriter.getIndexAttr(v);
    };
    Value zero = arith::ConstantOp::create(rewriter, loc, f32,
                                           rewriter.getZeroAttr(f32));
    auto inBounds = rewriter.getBoolArrayAttr({true});
    // vector<N> at `pos` of the innermost dimension of `src`.
    auto read = [&](OpBuilder &b, Value src, ValueRange pos) -> Value {
      int64_t rank = cast<RankedTensorType>(src.getType()).getRank();
      return vector::TransferReadOp::create(
          b, loc, rowType, src, pos,
          AffineMapAttr::get(AffineMap::getMinorIdentityMap(rank, 1, ctx)),
          zero, /*mask=*/Value(), inBounds);
    };
    auto write = [&](OpBuilder &b, Value v, Value dst,
                     ValueRange pos) -> Value {
      int64_t rank = cast<RankedTensorType>(dst.getType()).getRank();
      return vector::TransferWriteOp::create(
                 b, loc, v, dst, pos,
                 AffineMapAttr::get(
                     AffineMap::getMinorIdentityMap(rank, 1, ctx)),
                 /*mask=*/Value(), inBounds)
          .getResult();
    };
    auto splat = [&](OpBuilder &b, Value s) -> Value {
      return vector::BroadcastOp::create(b, loc, rowType, s);
    };
    auto dot = [&](OpBuilder &b, Value x, Value y) -> Value {
      return vector::ReductionOp::create(
          b, loc, vector::CombiningKind::ADD,
          arith::MulFOp::create(b, loc, x, y, fm), fm.getValue());
    };
    auto empty = [&](OpBuilder &b, ArrayRef<int64_t> shape) -> Value {
      return tensor::EmptyOp::create(b, loc, shape, f32);
    };
    auto unit = [&](unsigned rank) {
      return SmallVector<OpFoldResult>(rank, attr(1));
    };

    // d = exp(w) over [B, T, C].
    auto id3 = AffineMap::getMultiDimIdentityMap(3, ctx);
    Value decay =
        linalg::GenericOp::create(
            rewriter, loc, TypeRange{actType}, ValueRange{op.getW()},
            ValueRange{empty(rewriter, actType.getShape())},
            ArrayRef<AffineMap>{id3, id3},
            SmallVector<utils::IteratorType>(3, utils::IteratorType::parallel),
            [](OpBuilder &b, Location l, ValueRange args) {
              linalg::YieldOp::create(
                  b, l, math::ExpOp::create(b, l, args[0]).getResult());
            })
            .getResult(0);

    // One forward token of row `row` (thread (bi, hi, ki), channel base
    // `base`): {sa = S[i]·a, (S[i]·d + k v_i) + sa b}, as WKVToRowsPattern.
    auto step = [&](OpBuilder &b, Value row, Value bi, Value t, Value base,
                    Value col) -> std::pair<Value, Value> {
      Value dv = read(b, decay, {bi, t, base});
      Value kv = read(b, op.getK(), {bi, t, base});
      Value av = read(b, op.getA(), {bi, t, base});
      Value bv = read(b, op.getB(), {bi, t, base});
      Value vi =
          tensor::ExtractOp::create(b, loc, op.getV(), ValueRange{bi, t, col});
      Value sa = dot(b, row, av);
      Value sd = arith::MulFOp::create(b, loc, row, dv);
      Value kvv = arith::MulFOp::create(b, loc, kv, splat(b, vi));
      Value sb = arith::MulFOp::create(b, loc, splat(b, sa), bv);
      return {sa, arith::AddFOp::create(
                      b, loc, arith::AddFOp::create(b, loc, sd, kvv), sb)};
    };
    // The thread ids of a forall over (B, H, N): {b, h, i, h*N, h*N + i}.
    auto threadIds = [&](OpBuilder &b, scf::ForallOp forall) {
      Block *body = forall.getBody();
      Value bi = body->getArgument(0), hi = body->getArgument(1),
            ki = body->getArgument(2);
      Value base = arith::MulIOp::create(b, loc, hi, idx(b, n));
      Value col = arith::AddIOp::create(b, loc, base, ki);
      return std::array<Value, 5>{bi, hi, ki, base, col};
    };
    auto threads = getAsIndexOpFoldResult(ctx, {batch, heads, n});

    // Checkpoints: row i of the state at the start of every segment,
    // [nseg, B, H, N, N]; the last segment's tokens are not run.
    Value ckpt;
    {
      OpBuilder::InsertionGuard g(rewriter);
      auto forall = scf::ForallOp::create(
          rewriter, loc, threads,
          ValueRange{empty(rewriter, {nseg, batch, heads, n, n})},
          std::nullopt);
      rewriter.setInsertionPointToStart(forall.getBody());
      auto [bi, hi, ki, base, col] = threadIds(rewriter, forall);
      Value out = forall.getRegionIterArgs()[0];
      SmallVector<OpFoldResult> offs = {attr(0), bi, hi, ki, attr(0)},
                                sizes = {attr(nseg), attr(1), attr(1), attr(1),
                                         attr(n)};
      Value mine = tensor::ExtractSliceOp::create(
          rewriter, loc, RankedTensorType::get({nseg, n}, f32), out, offs,
          sizes, unit(5));
      Value row0 =
          read(rewriter, op.getState(), {bi, hi, ki, idx(rewriter, 0)});
      auto segs = scf::ForOp::create(
          rewriter, loc, idx(rewriter, 0), idx(rewriter, nseg),
          idx(rewriter, 1), ValueRange{row0, mine},
          [&](OpBuilder &b, Location l, Value s, ValueRange it) {
            Value saved = write(b, it[0], it[1], {s, idx(b, 0)});
            Value t0 = arith::MulIOp::create(b, l, s, idx(b, len));
            Value tEnd = arith::MinUIOp::create(
                b, l, arith::AddIOp::create(b, l, t0, idx(b, len)),
                idx(b, (nseg - 1) * len));
            auto toks = scf::ForOp::create(
                b, l, t0, tEnd, idx(b, 1), ValueRange{it[0]},
                [&](OpBuilder &ib, Location il, Value t, ValueRange row) {
                  scf::YieldOp::create(
                      ib, il, step(ib, row[0], bi, t, base, col).second);
                });
            scf::YieldOp::create(b, l, ValueRange{toks.getResult(0), saved});
          });
      rewriter.setInsertionPointToStart(forall.getTerminator().getBody());
      tensor::ParallelInsertSliceOp::create(rewriter, loc, segs.getResult(1),
                                            out, offs, sizes, unit(5));
      ckpt = forall.getResult(0);
    }

    // The segments, last first. Carried: G [B, H, N, N], the six gradients
    // [B, T, C] (each token written once), and the segment buffers.
    SmallVector<Value> inits = {op.getNewStateGrad()};
    for (int i = 0; i < 6; ++i)
      inits.push_back(empty(rewriter, actType.getShape()));
    inits.push_back(empty(rewriter, {len + 1, batch, heads, n, n})); // S
    inits.push_back(empty(rewriter, {len, batch, heads, n}));        // sa
    inits.push_back(empty(rewriter, {len, batch, heads, n, n}));     // G
    inits.push_back(empty(rewriter, {len, batch, heads, n}));        // dsa
    enum { kG, kDr, kDw, kDk, kDv, kDa, kDb, kS, kSa, kGb, kDsa };
    auto segLoop = scf::ForOp::create(
        rewriter, loc, idx(rewriter, 0), idx(rewriter, nseg), idx(rewriter, 1),
        inits, [&](OpBuilder &b, Location l, Value sRev, ValueRange it) {
          Value seg = arith::SubIOp::create(b, l, idx(b, nseg - 1), sRev);
          Value t0 = arith::MulIOp::create(b, l, seg, idx(b, len));
          Value cnt = arith::MinUIOp::create(
              b, l, idx(b, len),
              arith::SubIOp::create(b, l, idx(b, tokens), t0));
          OpFoldResult cntF = cnt;

          // 1. The rows: recompute forward, walk backward.
          auto forall = scf::ForallOp::create(
              b, l, threads,
              ValueRange{it[kS], it[kSa], it[kGb], it[kDsa], it[kG], it[kDv]},
              std::nullopt);
          {
            OpBuilder::InsertionGuard g(b);
            b.setInsertionPointToStart(forall.getBody());
            auto [bi, hi, ki, base, col] = threadIds(b, forall);
            ValueRange outs = forall.getRegionIterArgs();
            auto slice = [&](Value src, ArrayRef<OpFoldResult> offs,
                             ArrayRef<OpFoldResult> sizes,
                             ArrayRef<int64_t> shape) -> Value {
              return tensor::ExtractSliceOp::create(
                  b, l, RankedTensorType::get(shape, f32), src, offs, sizes,
                  unit(offs.size()));
            };
            SmallVector<OpFoldResult>
                sOffs = {attr(0), bi, hi, ki, attr(0)},
                sSizes = {attr(len + 1), attr(1), attr(1), attr(1), attr(n)},
                gOffs = sOffs,
                gSizes = {attr(len), attr(1), attr(1), attr(1), attr(n)},
                vOffs = {attr(0), bi, hi, ki},
                vSizes = {attr(len), attr(1), attr(1), attr(1)},
                rOffs = {bi, hi, ki, attr(0)},
                rSizes = {attr(1), attr(1), attr(1), attr(n)},
                cOffs = {bi, t0, col}, cSizes = {attr(1), cntF, attr(1)};
            Value sT = slice(outs[0], sOffs, sSizes, {len + 1, n});
            Value saT = slice(outs[1], vOffs, vSizes, {len});
            Value gT = slice(outs[2], gOffs, gSizes, {len, n});
            Value dsaT = slice(outs[3], vOffs, vSizes, {len});
            Value gRowT = slice(outs[4], rOffs, rSizes, {n});
            Value dvT = slice(outs[5], cOffs, cSizes, {ShapedType::kDynamic});
            Value c0 = idx(b, 0), c1 = idx(b, 1);
            Value row0 = read(b, ckpt, {seg, bi, hi, ki, c0});
            auto fwd = scf::ForOp::create(
                b, l, c0, cnt, c1, ValueRange{row0, sT, saT},
                [&](OpBuilder &ib, Location il, Value j, ValueRange st) {
                  Value t = arith::AddIOp::create(ib, il, t0, j);
                  Value s1 = write(ib, st[0], st[1], {j, idx(ib, 0)});
                  auto [sa, next] = step(ib, st[0], bi, t, base, col);
                  Value sa1 = tensor::InsertOp::create(ib, il, sa, st[2], j);
                  scf::YieldOp::create(ib, il, ValueRange{next, s1, sa1});
                });
            // Slot cnt: the state after the segment's last token (S_t of
            // the last dr).
            Value sDone =
                write(b, fwd.getResult(0), fwd.getResult(1), {cnt, c0});
            Value g0 = read(b, gRowT, {c0});
            auto bwd = scf::ForOp::create(
                b, l, c0, cnt, c1, ValueRange{g0, gT, dsaT, dvT},
                [&](OpBuilder &ib, Location il, Value jr, ValueRange st) {
                  Value j = arith::SubIOp::create(
                      ib, il, arith::SubIOp::create(ib, il, cnt, c1), jr);
                  Value t = arith::AddIOp::create(ib, il, t0, j);
                  Value rv = read(ib, op.getR(), {bi, t, base});
                  Value kv = read(ib, op.getK(), {bi, t, base});
                  Value av = read(ib, op.getA(), {bi, t, base});
                  Value bv = read(ib, op.getB(), {bi, t, base});
                  Value dv = read(ib, decay, {bi, t, base});
                  Value dyi = tensor::ExtractOp::create(ib, il, op.getYGrad(),
                                                        ValueRange{bi, t, col});
                  // G[i] += dy_i r.
                  Value gr = arith::AddFOp::create(
                      ib, il, st[0],
                      arith::MulFOp::create(ib, il, rv, splat(ib, dyi)));
                  Value dvi = dot(ib, gr, kv);
                  Value dsa = dot(ib, gr, bv);
                  Value g1 = write(ib, gr, st[1], {j, idx(ib, 0)});
                  Value dsa1 = tensor::InsertOp::create(ib, il, dsa, st[2], j);
                  Value dv1 = tensor::InsertOp::create(ib, il, dvi, st[3], j);
                  // G[i] = G[i] ⊙ d + dsa_i a.
                  Value next = arith::AddFOp::create(
                      ib, il, arith::MulFOp::create(ib, il, gr, dv),
                      arith::MulFOp::create(ib, il, av, splat(ib, dsa)));
                  scf::YieldOp::create(ib, il, ValueRange{next, g1, dsa1, dv1});
                });
            Value gRow = write(b, bwd.getResult(0), gRowT, {c0});
            b.setInsertionPointToStart(forall.getTerminator().getBody());
            auto put = [&](Value v, Value dst, ArrayRef<OpFoldResult> offs,
                           ArrayRef<OpFoldResult> sizes) {
              tensor::ParallelInsertSliceOp::create(b, l, v, dst, offs, sizes,
                                                    unit(offs.size()));
            };
            put(sDone, outs[0], sOffs, sSizes);
            put(fwd.getResult(2), outs[1], vOffs, vSizes);
            put(bwd.getResult(1), outs[2], gOffs, gSizes);
            put(bwd.getResult(2), outs[3], vOffs, vSizes);
            put(gRow, outs[4], rOffs, rSizes);
            put(bwd.getResult(3), outs[5], cOffs, cSizes);
          }
          Value sBuf = forall.getResult(0), saBuf = forall.getResult(1),
                gBuf = forall.getResult(2), dsaBuf = forall.getResult(3);

          // 2. The column sums over i, for (b, t, h, j) of the segment.
          int64_t dyn = ShapedType::kDynamic;
          auto bufSlice = [&](Value buf, int64_t from) -> Value {
            auto t = cast<RankedTensorType>(buf.getType());
            SmallVector<OpFoldResult> offs(t.getRank(), attr(0)), sizes;
            offs[0] = attr(from);
            sizes.push_back(cntF);
            SmallVector<int64_t> shape = {dyn};
            for (int64_t d : t.getShape().drop_front()) {
              sizes.push_back(attr(d));
              shape.push_back(d);
            }
            return tensor::ExtractSliceOp::create(
                b, l, RankedTensorType::get(shape, f32), buf, offs, sizes,
                unit(t.getRank()));
          };
          // [B, cnt, C] of the segment as [B, cnt, H, N].
          auto actSlice = [&](Value act) -> Value {
            Value s = tensor::ExtractSliceOp::create(
                b, l, RankedTensorType::get({batch, dyn, chans}, f32), act,
                SmallVector<OpFoldResult>{attr(0), t0, attr(0)},
                SmallVector<OpFoldResult>{attr(batch), cntF, attr(chans)},
                unit(3));
            return tensor::ExpandShapeOp::create(
                b, l, RankedTensorType::get({batch, dyn, heads, n}, f32), s,
                SmallVector<ReassociationIndices>{{0}, {1}, {2, 3}},
                SmallVector<OpFoldResult>{attr(batch), cntF, attr(heads),
                                          attr(n)});
          };
          Value gS = bufSlice(gBuf, 0), sPrev = bufSlice(sBuf, 0),
                sCur = bufSlice(sBuf, 1), saS = bufSlice(saBuf, 0),
                dsaS = bufSlice(dsaBuf, 0);
          Value vS = actSlice(op.getV()), dyS = actSlice(op.getYGrad()),
                dS = actSlice(decay);
          // Iteration space (b, t, h, j, i), i reduced.
          AffineExpr eb, et, eh, ej, ei;
          bindDims(ctx, eb, et, eh, ej, ei);
          auto map = [&](ArrayRef<AffineExpr> e) {
            return AffineMap::get(5, 0, e, ctx);
          };
          AffineMap stateIJ = map({et, eb, eh, ei, ej}),
                    perRow = map({et, eb, eh, ei}),
                    actRow = map({eb, et, eh, ei}),
                    outMap = map({eb, et, eh, ej});
          auto iters = SmallVector<utils::IteratorType>(
              4, utils::IteratorType::parallel);
          iters.push_back(utils::IteratorType::reduction);
          Value out0 = linalg::FillOp::create(
                           b, l, zero,
                           tensor::EmptyOp::create(
                               b, l,
                               SmallVector<OpFoldResult>{attr(batch), cntF,
                                                         attr(heads), attr(n)},
                               f32)
                               .getResult())
                           .getResult(0);
          auto columnSum = [&](Value x, AffineMap xm, Value y,
                               AffineMap ym) -> Value {
            return linalg::GenericOp::create(
                       b, l, TypeRange{out0.getType()}, ValueRange{x, y},
                       ValueRange{out0}, ArrayRef<AffineMap>{xm, ym, outMap},
                       iters,
                       [&](OpBuilder &gb, Location gl, ValueRange a) {
                         Value p =
                             arith::MulFOp::create(gb, gl, a[0], a[1], fm);
                         linalg::YieldOp::create(
                             gb, gl,
                             arith::AddFOp::create(gb, gl, a[2], p, fm)
                                 .getResult());
                       })
                .getResult(0);
          };
          Value dk = columnSum(gS, stateIJ, vS, actRow);
          Value db = columnSum(gS, stateIJ, saS, perRow);
          Value dd = columnSum(gS, stateIJ, sPrev, stateIJ);
          Value da = columnSum(dsaS, perRow, sPrev, stateIJ);
          Value dr = columnSum(sCur, stateIJ, dyS, actRow);
          // dw = dd ⊙ d.
          auto id4 = AffineMap::getMultiDimIdentityMap(4, ctx);
          Value dw =
              linalg::GenericOp::create(
                  b, l, TypeRange{out0.getType()}, ValueRange{dd, dS},
                  ValueRange{out0}, ArrayRef<AffineMap>{id4, id4, id4},
                  SmallVector<utils::IteratorType>(
                      4, utils::IteratorType::parallel),
                  [&](OpBuilder &gb, Location gl, ValueRange a) {
                    linalg::YieldOp::create(
                        gb, gl,
                        arith::MulFOp::create(gb, gl, a[0], a[1]).getResult());
                  })
                  .getResult(0);
          auto store = [&](Value v, Value dst) -> Value {
            Value flat = tensor::CollapseShapeOp::create(
                b, l, RankedTensorType::get({batch, dyn, chans}, f32), v,
                SmallVector<ReassociationIndices>{{0}, {1}, {2, 3}});
            return tensor::InsertSliceOp::create(
                b, l, flat, dst,
                SmallVector<OpFoldResult>{attr(0), t0, attr(0)},
                SmallVector<OpFoldResult>{attr(batch), cntF, attr(chans)},
                unit(3));
          };
          SmallVector<Value> next(it.begin(), it.end());
          next[kG] = forall.getResult(4);
          next[kDv] = forall.getResult(5);
          next[kDr] = store(dr, it[kDr]);
          next[kDw] = store(dw, it[kDw]);
          next[kDk] = store(dk, it[kDk]);
          next[kDa] = store(da, it[kDa]);
          next[kDb] = store(db, it[kDb]);
          next[kS] = sBuf;
          next[kSa] = saBuf;
          next[kGb] = gBuf;
          next[kDsa] = dsaBuf;
          scf::YieldOp::create(b, l, next);
        });
    rewriter.replaceOp(
        op, ValueRange{segLoop.getResult(kDr), segLoop.getResult(kDw),
                       segLoop.getResult(kDk), segLoop.getResult(kDv),
                       segLoop.getResult(kDa), segLoop.getResult(kDb),
                       segLoop.getResult(kG)});
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
  patterns.add<WKVToRowsPattern, WKV5ToColumnsPattern, WKVGradToRowsPattern>(
      patterns.getContext());
}

} // namespace mlir::rwkv
