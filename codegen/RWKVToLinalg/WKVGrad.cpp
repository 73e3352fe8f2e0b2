//===- WKVGrad.cpp - rwkv.wkv_grad (sequential) to tensor/scf/linalg ------===//
//
// The exact reverse-mode gradient of the WKV7 recurrence (spec §2.3), with
// segments of L = chunk_length tokens:
//
//   1. forward recompute: an scf.for over segments saves the state at the
//      start of every segment into ckpt [nseg, B, H, N, N] (the end state of
//      the last segment is never needed and is not computed);
//   2. segments in reverse: recompute the segment's states S_{t-1} and sa_t
//      from its checkpoint into buffers [L, B, H, N, N] and [L, B, H, N]
//      (dr_t = S_tᵀ dy_t needs no G, so it is written here), then walk the
//      tokens backwards carrying G = ∂L/∂S:
//        G += dy rᵀ;  dv = G k;  dsa = G b;  dk = Gᵀ v;  db = Gᵀ sa;
//        dd = Σ_i G ⊙ S_{t-1};  da = S_{t-1}ᵀ dsa;  dw = dd ⊙ d;
//        G = G D + dsa aᵀ
//   dstate0 is the final G. Memory is O(T/L + L) states, never O(T).
//   T may be dynamic and need not be a multiple of L.
//
//===----------------------------------------------------------------------===//

#include "codegen/RWKVToLinalg/WKVGrad.h"

#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace mlir::rwkv;
using utils::IteratorType;
using namespace mlir::rwkv::wkvgrad;

/// One forward token: the state after token t.
using TokenStepFn =
    llvm::function_ref<Value(OpBuilder &, Location, Value state, Value t)>;

/// The states at the start of every `len`-token segment, [nseg, B, H, N, N],
/// by the recurrence `step`. The last segment's tokens are not run: its end
/// state is never needed.
static Value buildCheckpoints(OpBuilder &b, Location loc, const GradBuilder &g,
                              Value s0, int64_t len, Value nseg,
                              TokenStepFn step) {
  Value c0 = arith::ConstantIndexOp::create(b, loc, 0);
  Value c1 = arith::ConstantIndexOp::create(b, loc, 1);
  Value cL = arith::ConstantIndexOp::create(b, loc, len);
  Value tStop = arith::MulIOp::create(
      b, loc,
      arith::SubIOp::create(b, loc, arith::MaxUIOp::create(b, loc, nseg, c1),
                            c1)
          .getResult(),
      cL);
  SmallVector<OpFoldResult> sizes = {nseg};
  sizes.append(tensor::getMixedSizes(b, loc, s0));
  Value init = tensor::EmptyOp::create(b, loc, sizes, b.getF32Type());
  auto fwd = scf::ForOp::create(
      b, loc, c0, nseg, c1, ValueRange{s0, init},
      [&](OpBuilder &ob, Location l, Value seg, ValueRange iter) {
        Value ckpt = g.storeSlot(ob, l, iter[0], iter[1], seg);
        Value t0 = arith::MulIOp::create(ob, l, seg, cL);
        Value tEnd = arith::MinUIOp::create(
            ob, l, arith::AddIOp::create(ob, l, t0, cL).getResult(), tStop);
        auto steps = scf::ForOp::create(
            ob, l, t0, tEnd, c1, ValueRange{iter[0]},
            [&](OpBuilder &ib, Location il, Value t, ValueRange state) {
              scf::YieldOp::create(ib, il, step(ib, il, state[0], t));
            });
        scf::YieldOp::create(ob, l, ValueRange{steps.getResult(0), ckpt});
      });
  return fwd.getResult(1);
}

/// The iter_args of the reverse segment loop: G (from the gradient of the
/// final state), the six [B, T, C] gradients (every row written once, so
/// empty) and the segment's state and sa buffers [L, B, H, N, N], [L, B, H, N].
static SmallVector<Value> segmentLoopInits(OpBuilder &b, Location loc,
                                           Value newStateGrad, Value r,
                                           Value s0, int64_t len) {
  SmallVector<Value> init = {newStateGrad};
  for (int i = 0; i < 6; ++i)
    init.push_back(emptyLike(b, loc, r));
  SmallVector<OpFoldResult> bufSizes = {b.getIndexAttr(len)};
  bufSizes.append(tensor::getMixedSizes(b, loc, s0));
  init.push_back(tensor::EmptyOp::create(b, loc, bufSizes, b.getF32Type()));
  bufSizes.pop_back();
  init.push_back(tensor::EmptyOp::create(b, loc, bufSizes, b.getF32Type()));
  return init;
}

/// Ends a segment: yields G and the gradients of the backward walk `back`,
/// dr of the recompute `re`, and the reused buffers.
static void yieldSegment(OpBuilder &b, Location l, scf::ForOp back,
                         scf::ForOp re, Value stBuf, Value saBuf) {
  SmallVector<Value> results = {back.getResult(0), re.getResult(3)};
  for (int i = 1; i < 6; ++i)
    results.push_back(back.getResult(i));
  results.push_back(stBuf);
  results.push_back(saBuf);
  scf::YieldOp::create(b, l, results);
}

/// Replaces `op` by dr, dw, dk, dv, da, db and dstate0 from the segment loop.
static void replaceByGradients(ConversionPatternRewriter &rewriter,
                               WKVGradOp op, scf::ForOp bwd) {
  Location loc = op.getLoc();
  SmallVector<Value> repl;
  for (int i = 1; i <= 6; ++i)
    repl.push_back(castTo(rewriter, loc, bwd.getResult(i),
                          op->getResult(i - 1).getType()));
  repl.push_back(
      castTo(rewriter, loc, bwd.getResult(0), op.getStateGrad().getType()));
  rewriter.replaceOp(op, repl);
}

namespace {

/// The single-head form (state [1, 1, N, N], activations [1, T, N] with N
/// static: what rwkv-parallelize-wkv leaves): every token step is one pass
/// over the N state rows with vector<N> rows, in place, instead of several
/// linalg.generics whose column reductions walk the state with stride N
/// and whose row reductions keep their accumulator in memory (neither is
/// vectorised by LLVM: the output may alias the inputs).
struct RowForm {
  OpBuilder &b;
  Location loc;
  int64_t n;
  arith::FastMathFlagsAttr fm;
  VectorType vec;

  RowForm(OpBuilder &b, Location loc, int64_t n)
      : b(b), loc(loc), n(n), fm(reductionFastMath(b)),
        vec(VectorType::get({n}, b.getF32Type())) {}

  static bool applies(WKVGradOp op) {
    auto s = llvm::cast<RankedTensorType>(op.getState().getType());
    auto r = llvm::cast<RankedTensorType>(op.getR().getType());
    return s.hasStaticShape() && s.getDimSize(0) == 1 && s.getDimSize(1) == 1 &&
           r.getDimSize(0) == 1 && r.getDimSize(2) == s.getDimSize(2) &&
           r.getElementType().isF32();
  }

  Value cst(OpBuilder &nb, Location l, int64_t v) const {
    return arith::ConstantIndexOp::create(nb, l, v);
  }
  /// `src[idx..., 0 : N]` (the innermost dimension).
  Value read(OpBuilder &nb, Location l, Value src, ValueRange idx) const {
    Value pad = f32Const(nb, l, 0.0);
    return vector::TransferReadOp::create(nb, l, vec, src, idx, pad,
                                          ArrayRef<bool>{true});
  }
  Value write(OpBuilder &nb, Location l, Value v, Value dst,
              ValueRange idx) const {
    return vector::TransferWriteOp::create(nb, l, v, dst, idx,
                                           ArrayRef<bool>{true})
        .getResult();
  }
  Value splat(OpBuilder &nb, Location l, Value s) const {
    return vector::BroadcastOp::create(nb, l, vec, s);
  }
  Value dot(OpBuilder &nb, Location l, Value x, Value y) const {
    Value p = arith::MulFOp::create(nb, l, x, y, fm);
    return vector::ReductionOp::create(nb, l, vector::CombiningKind::ADD, p,
                                       Value(), fm.getValue());
  }
  /// acc + x * y with reassociation and contraction allowed.
  Value fma(OpBuilder &nb, Location l, Value x, Value y, Value acc) const {
    return arith::AddFOp::create(nb, l, acc,
                                 arith::MulFOp::create(nb, l, x, y, fm), fm);
  }
  Value zeroVec(OpBuilder &nb, Location l) const {
    return arith::ConstantOp::create(
        nb, l, DenseElementsAttr::get(vec, nb.getF32FloatAttr(0.0f)));
  }

  /// One forward token t on `state`: per row i, sa_i = S[i]·a and
  /// S[i] = (S[i]·d + k v_i) + b sa_i, rounded as Sequence.cpp does. With
  /// `bufs` (stBuf [L,1,1,N,N], saBuf [L,1,1,N], slot j) the rows of
  /// S_{t-1} and sa are saved; with `dy` the vector dr = Σ_i S_t[i] dy_i
  /// is returned as well. Returns {state, stBuf, saBuf, dr}.
  SmallVector<Value> forwardToken(OpBuilder &nb, Location l, Value state,
                                  ValueRange rows, Value vAct, Value t,
                                  Value stBuf = {}, Value saBuf = {},
                                  Value j = {}, Value dyAct = {}) const {
    // rows: decay, k, a, b as vector<N>.
    Value d = rows[0], k = rows[1], a = rows[2], bv = rows[3];
    Value c0 = cst(nb, l, 0);
    SmallVector<Value> init = {state};
    if (stBuf)
      init.append({stBuf, saBuf});
    if (dyAct)
      init.push_back(zeroVec(nb, l));
    auto loop = scf::ForOp::create(
        nb, l, c0, cst(nb, l, n), cst(nb, l, 1), init,
        [&](OpBuilder &ib, Location il, Value i, ValueRange it) {
          SmallVector<Value> next;
          Value s = read(ib, il, it[0], {c0, c0, i, c0});
          Value sa = dot(ib, il, s, a);
          Value vi = tensor::ExtractOp::create(ib, il, vAct, {c0, t, i});
          Value sd = arith::MulFOp::create(ib, il, s, d);
          Value kv = arith::MulFOp::create(ib, il, k, splat(ib, il, vi));
          Value sb = arith::MulFOp::create(ib, il, splat(ib, il, sa), bv);
          Value s2 = arith::AddFOp::create(
              ib, il, arith::AddFOp::create(ib, il, sd, kv), sb);
          next.push_back(write(ib, il, s2, it[0], {c0, c0, i, c0}));
          unsigned pos = 1;
          if (stBuf) {
            next.push_back(write(ib, il, s, it[1], {j, c0, c0, i, c0}));
            next.push_back(
                tensor::InsertOp::create(ib, il, sa, it[2], {j, c0, c0, i}));
            pos = 3;
          }
          if (dyAct) {
            Value dyi = tensor::ExtractOp::create(ib, il, dyAct, {c0, t, i});
            next.push_back(fma(ib, il, s2, splat(ib, il, dyi), it[pos]));
          }
          scf::YieldOp::create(ib, il, next);
        });
    return SmallVector<Value>(loop.getResults());
  }

  /// The four token rows a forward step reads: d, k, a, b.
  SmallVector<Value> tokenRows(OpBuilder &nb, Location l, Value decayAll,
                               ValueRange kab, Value t) const {
    Value c0 = cst(nb, l, 0);
    return {read(nb, l, decayAll, {c0, t, c0}),
            read(nb, l, kab[0], {c0, t, c0}), read(nb, l, kab[1], {c0, t, c0}),
            read(nb, l, kab[2], {c0, t, c0})};
  }
};

/// wkv_grad in the row form (RowForm): the same segments, checkpoints and
/// reverse walk as WKVGradLowering, each token step one pass over the rows.
/// Per row i of the backward step (G += dy rᵀ first):
///   dv_i = G[i]·k, dsa_i = G[i]·b, dk += v_i G[i], db += sa_i G[i],
///   dd += G[i] ⊙ S_{t-1}[i], da += dsa_i S_{t-1}[i],
///   G[i] = G[i] ⊙ d + dsa_i a.
LogicalResult lowerRowForm(WKVGradOp op, WKVGradOp::Adaptor adaptor,
                           ConversionPatternRewriter &rewriter) {
  Location loc = op.getLoc();
  Value r = adaptor.getR(), w = adaptor.getW(), k = adaptor.getK();
  Value v = adaptor.getV(), a = adaptor.getA(), bv = adaptor.getB();
  Value dy = adaptor.getYGrad();
  Value s0 = adaptor.getState();
  auto stateType = llvm::cast<RankedTensorType>(s0.getType());
  int64_t nDim = stateType.getDimSize(2);
  GradBuilder g(rewriter, loc, 1);
  RowForm rf(rewriter, loc, nDim);
  int64_t len = op.getChunkLength();
  auto cst = [&](int64_t c) -> Value { return rf.cst(rewriter, loc, c); };
  Value c0 = cst(0), c1 = cst(1), cL = cst(len);
  Value tLen = dimValue(rewriter, loc, r, 1);
  Value nseg = arith::DivUIOp::create(
      rewriter, loc,
      arith::AddIOp::create(rewriter, loc, tLen, cst(len - 1)).getResult(), cL);
  // d = exp(w) once for every token (it is needed three times).
  Value decayAll = g.exp(rewriter, loc, w);
  SmallVector<Value> kab = {k, a, bv};
  Value ckpt = buildCheckpoints(
      rewriter, loc, g, s0, len, nseg,
      [&](OpBuilder &ib, Location il, Value state, Value t) {
        return rf.forwardToken(ib, il, state,
                               rf.tokenRows(ib, il, decayAll, kab, t), v, t)[0];
      });

  SmallVector<Value> init =
      segmentLoopInits(rewriter, loc, adaptor.getNewStateGrad(), r, s0, len);

  auto bwd = scf::ForOp::create(
      rewriter, loc, c0, nseg, c1, init,
      [&](OpBuilder &b, Location l, Value iv, ValueRange iter) {
        Value seg = arith::SubIOp::create(
            b, l, arith::SubIOp::create(b, l, nseg, iv).getResult(), c1);
        Value t0 = arith::MulIOp::create(b, l, seg, cL);
        Value n = arith::MinUIOp::create(
            b, l, cL, arith::SubIOp::create(b, l, tLen, t0).getResult());
        auto tokRows = [&](OpBuilder &ib, Location il, Value t) {
          return rf.tokenRows(ib, il, decayAll, kab, t);
        };
        // Recompute S_{t-1} and sa of the segment; dr_t = S_tᵀ dy_t.
        auto re = scf::ForOp::create(
            b, l, c0, n, c1,
            ValueRange{g.slot(b, l, ckpt, seg), iter[7], iter[8], iter[1]},
            [&](OpBuilder &ib, Location il, Value j, ValueRange it) {
              Value t = arith::AddIOp::create(ib, il, t0, j);
              SmallVector<Value> res = rf.forwardToken(
                  ib, il, it[0], tokRows(ib, il, t), v, t, it[1], it[2], j, dy);
              Value drNext = rf.write(ib, il, res[3], it[3], {c0, t, c0});
              scf::YieldOp::create(ib, il,
                                   ValueRange{res[0], res[1], res[2], drNext});
            });
        Value stBuf = re.getResult(1), saBuf = re.getResult(2);

        // Walk the segment's tokens backwards, row by row.
        auto back = scf::ForOp::create(
            b, l, c0, n, c1,
            ValueRange{iter[0], iter[2], iter[3], iter[4], iter[5], iter[6]},
            [&](OpBuilder &ib, Location il, Value jj, ValueRange it) {
              Value j = arith::SubIOp::create(
                  ib, il, arith::SubIOp::create(ib, il, n, jj).getResult(), c1);
              Value t = arith::AddIOp::create(ib, il, t0, j);
              SmallVector<Value> rows = tokRows(ib, il, t);
              Value d = rows[0], kt = rows[1], at = rows[2], bt = rows[3];
              Value rt = rf.read(ib, il, r, {c0, t, c0});
              Value z = rf.zeroVec(ib, il);
              // iter: G, dv, then the vectors dk, db, dd, da.
              auto rowsLoop = scf::ForOp::create(
                  ib, il, c0, rf.cst(ib, il, nDim), c1,
                  ValueRange{it[0], it[3], z, z, z, z},
                  [&](OpBuilder &rb, Location rl, Value i, ValueRange ri) {
                    Value dyi =
                        tensor::ExtractOp::create(rb, rl, dy, {c0, t, i});
                    Value gRow = arith::AddFOp::create(
                        rb, rl, rf.read(rb, rl, ri[0], {c0, c0, i, c0}),
                        arith::MulFOp::create(rb, rl, rf.splat(rb, rl, dyi),
                                              rt));
                    Value dvi = rf.dot(rb, rl, gRow, kt);
                    Value dsa = rf.dot(rb, rl, gRow, bt);
                    Value dvAcc = tensor::InsertOp::create(rb, rl, dvi, ri[1],
                                                           {c0, t, i});
                    Value vi = tensor::ExtractOp::create(rb, rl, v, {c0, t, i});
                    Value sai = tensor::ExtractOp::create(rb, rl, saBuf,
                                                          {j, c0, c0, i});
                    Value sPrev = rf.read(rb, rl, stBuf, {j, c0, c0, i, c0});
                    Value dsaV = rf.splat(rb, rl, dsa);
                    Value dk =
                        rf.fma(rb, rl, gRow, rf.splat(rb, rl, vi), ri[2]);
                    Value db =
                        rf.fma(rb, rl, gRow, rf.splat(rb, rl, sai), ri[3]);
                    Value dd = rf.fma(rb, rl, gRow, sPrev, ri[4]);
                    Value da = rf.fma(rb, rl, sPrev, dsaV, ri[5]);
                    Value gNext = arith::AddFOp::create(
                        rb, rl, arith::MulFOp::create(rb, rl, gRow, d),
                        arith::MulFOp::create(rb, rl, dsaV, at));
                    Value gOut =
                        rf.write(rb, rl, gNext, ri[0], {c0, c0, i, c0});
                    scf::YieldOp::create(
                        rb, rl, ValueRange{gOut, dvAcc, dk, db, dd, da});
                  });
              ValueRange res = rowsLoop.getResults();
              Value dw = arith::MulFOp::create(ib, il, res[4], d);
              // it: G, dw, dk, dv, da, db.
              scf::YieldOp::create(
                  ib, il,
                  ValueRange{res[0], rf.write(ib, il, dw, it[1], {c0, t, c0}),
                             rf.write(ib, il, res[2], it[2], {c0, t, c0}),
                             res[1],
                             rf.write(ib, il, res[5], it[4], {c0, t, c0}),
                             rf.write(ib, il, res[3], it[5], {c0, t, c0})});
            });
        yieldSegment(b, l, back, re, stBuf, saBuf);
      });

  replaceByGradients(rewriter, op, bwd);
  return success();
}

struct WKVGradLowering final : OpConversionPattern<WKVGradOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(WKVGradOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    // Every mode: `chunked` is taken first by ChunkedWKVGrad.cpp when the
    // chunked lowering is enabled.
    if (RowForm::applies(op))
      return lowerRowForm(op, adaptor, rewriter);
    Location loc = op.getLoc();
    Value r = adaptor.getR(), w = adaptor.getW(), k = adaptor.getK();
    Value v = adaptor.getV(), a = adaptor.getA(), bv = adaptor.getB();
    Value dy = adaptor.getYGrad();
    Value s0 = adaptor.getState();
    auto stateType = llvm::cast<RankedTensorType>(s0.getType());
    GradBuilder g(rewriter, loc, stateType.getDimSize(1));
    int64_t len = op.getChunkLength();

    auto cst = [&](int64_t c) -> Value {
      return arith::ConstantIndexOp::create(rewriter, loc, c);
    };
    Value c0 = cst(0), c1 = cst(1), cL = cst(len);
    Value tLen = dimValue(rewriter, loc, r, 1);
    // nseg = ceil(T / L); the last segment starts at (nseg - 1) L.
    Value nseg = arith::DivUIOp::create(
        rewriter, loc,
        arith::AddIOp::create(rewriter, loc, tLen, cst(len - 1)).getResult(),
        cL);

    // 1. Forward over segments, saving each segment's start state.
    Value ckpt = buildCheckpoints(
        rewriter, loc, g, s0, len, nseg,
        [&](OpBuilder &ib, Location il, Value state, Value t) {
          Value at = g.tokenSlice(ib, il, a, t);
          Value sa =
              g.stateTimes(ib, il, state, at,
                           zeros(ib, il, tensor::getMixedSizes(ib, il, at)));
          return g.update(
              ib, il, state, g.exp(ib, il, g.tokenSlice(ib, il, w, t)),
              g.tokenSlice(ib, il, k, t), g.tokenSlice(ib, il, v, t), sa,
              g.tokenSlice(ib, il, bv, t));
        });

    // 2. Segments in reverse, carrying G and the gradients. Every row of the
    // [B, T, C] gradients is written exactly once, so they start empty.
    SmallVector<Value> init =
        segmentLoopInits(rewriter, loc, adaptor.getNewStateGrad(), r, s0, len);

    auto bwd = scf::ForOp::create(
        rewriter, loc, c0, nseg, c1, init,
        [&](OpBuilder &b, Location l, Value iv, ValueRange iter) {
          Value seg = arith::SubIOp::create(
              b, l, arith::SubIOp::create(b, l, nseg, iv).getResult(), c1);
          Value t0 = arith::MulIOp::create(b, l, seg, cL);
          Value n = arith::MinUIOp::create(
              b, l, cL, arith::SubIOp::create(b, l, tLen, t0).getResult());
          Value dr = iter[1];

          // Recompute S_{t-1}, sa_t of the segment; dr_t = S_tᵀ dy_t.
          auto re = scf::ForOp::create(
              b, l, c0, n, c1,
              ValueRange{g.slot(b, l, ckpt, seg), iter[7], iter[8], dr},
              [&](OpBuilder &ib, Location il, Value j, ValueRange it) {
                Value t = arith::AddIOp::create(ib, il, t0, j);
                Value s = it[0];
                Value buf = g.storeSlot(ib, il, s, it[1], j);
                Value saSlot =
                    linalg::FillOp::create(ib, il, f32Const(ib, il, 0.0),
                                           g.slot(ib, il, it[2], j))
                        .getResult(0);
                Value sa =
                    g.stateTimes(ib, il, s, g.tokenSlice(ib, il, a, t), saSlot);
                Value saBuf = g.insertSlot(ib, il, sa, it[2], j);
                Value next = g.update(
                    ib, il, s, g.exp(ib, il, g.tokenSlice(ib, il, w, t)),
                    g.tokenSlice(ib, il, k, t), g.tokenSlice(ib, il, v, t), sa,
                    g.tokenSlice(ib, il, bv, t));
                // dr[j] = Σ_i S_t[i][j] dy[i] over (b, h, j, i).
                Value drRow = generic(
                    ib, il, ValueRange{next, g.tokenSlice(ib, il, dy, t)},
                    ValueRange{g.rowSlot(ib, il, it[3], t)},
                    {g.tr4, g.col, g.row}, g.red,
                    [&](OpBuilder &gb, Location gl, ValueRange args) {
                      linalg::YieldOp::create(
                          gb, gl,
                          g.add(gb, gl, args[2],
                                g.mul(gb, gl, args[0], args[1])));
                    })[0];
                Value drNext = g.insertRow(ib, il, drRow, it[3], t);
                scf::YieldOp::create(ib, il,
                                     ValueRange{next, buf, saBuf, drNext});
              });
          Value stBuf = re.getResult(1), saBuf = re.getResult(2);

          // Walk the segment's tokens backwards.
          auto back = scf::ForOp::create(
              b, l, c0, n, c1,
              ValueRange{iter[0], iter[2], iter[3], iter[4], iter[5], iter[6]},
              [&](OpBuilder &ib, Location il, Value jj, ValueRange it) {
                Value j = arith::SubIOp::create(
                    ib, il, arith::SubIOp::create(ib, il, n, jj).getResult(),
                    c1);
                Value t = arith::AddIOp::create(ib, il, t0, j);
                Value sPrev = g.slot(ib, il, stBuf, j);
                Value sa = g.slot(ib, il, saBuf, j);
                auto tok = [&](Value src) {
                  return g.tokenSlice(ib, il, src, t);
                };
                Value rt = tok(r), kt = tok(k), vt = tok(v), at = tok(a),
                      bt = tok(bv), dyt = tok(dy);
                Value decay = g.exp(ib, il, tok(w));
                AffineMap id3 = AffineMap::getMultiDimIdentityMap(3, g.ctx);
                Value dwAcc = it[1], dkAcc = it[2], dvAcc = it[3],
                      daAcc = it[4], dbAcc = it[5];

                // G += dy rᵀ (in place).
                Value gr = generic(
                    ib, il, ValueRange{dyt, rt}, ValueRange{it[0]},
                    {g.row, g.col, g.id4}, g.par,
                    [&](OpBuilder &gb, Location gl, ValueRange args) {
                      linalg::YieldOp::create(
                          gb, gl,
                          arith::AddFOp::create(
                              gb, gl, args[2],
                              arith::MulFOp::create(gb, gl, args[0], args[1]))
                              .getResult());
                    })[0];
                // dv = G k, dsa = G b (reduce over the key index j).
                SmallVector<OpFoldResult> rowSizes =
                    tensor::getMixedSizes(ib, il, rt);
                ValueRange vs = generic(
                    ib, il, ValueRange{gr, kt, bt},
                    ValueRange{g.rowSlot(ib, il, dvAcc, t),
                               zeros(ib, il, rowSizes)},
                    {g.id4, g.col, g.col, g.row, g.row}, g.red,
                    [&](OpBuilder &gb, Location gl, ValueRange args) {
                      linalg::YieldOp::create(
                          gb, gl,
                          ValueRange{g.add(gb, gl, args[3],
                                           g.mul(gb, gl, args[0], args[1])),
                                     g.add(gb, gl, args[4],
                                           g.mul(gb, gl, args[0], args[2]))});
                    });
                Value dvRow = vs[0], dsa = vs[1];
                // Over (b, h, j, i), reducing the value index i:
                //   dk = Gᵀ v, db = Gᵀ sa, dd = Σ_i G ⊙ S_{t-1},
                //   da = S_{t-1}ᵀ dsa.
                ValueRange ks = generic(
                    ib, il, ValueRange{gr, vt, sa, sPrev, dsa},
                    ValueRange{g.rowSlot(ib, il, dkAcc, t),
                               g.rowSlot(ib, il, dbAcc, t),
                               zeros(ib, il, rowSizes),
                               g.rowSlot(ib, il, daAcc, t)},
                    {g.tr4, g.col, g.col, g.tr4, g.col, g.row, g.row, g.row,
                     g.row},
                    g.red, [&](OpBuilder &gb, Location gl, ValueRange args) {
                      linalg::YieldOp::create(
                          gb, gl,
                          ValueRange{g.add(gb, gl, args[5],
                                           g.mul(gb, gl, args[0], args[1])),
                                     g.add(gb, gl, args[6],
                                           g.mul(gb, gl, args[0], args[2])),
                                     g.add(gb, gl, args[7],
                                           g.mul(gb, gl, args[0], args[3])),
                                     g.add(gb, gl, args[8],
                                           g.mul(gb, gl, args[3], args[4]))});
                    });
                // dw = dd ⊙ d (w is the log-decay).
                Value dwRow = generic(
                    ib, il, ValueRange{ks[2], decay},
                    ValueRange{g.tokenSlice(ib, il, dwAcc, t)}, {id3, id3, id3},
                    SmallVector<IteratorType>(3, IteratorType::parallel),
                    [&](OpBuilder &gb, Location gl, ValueRange args) {
                      linalg::YieldOp::create(
                          gb, gl,
                          arith::MulFOp::create(gb, gl, args[0], args[1])
                              .getResult());
                    })[0];
                // G = G D + dsa aᵀ (in place).
                Value gNext = generic(
                    ib, il, ValueRange{decay, dsa, at}, ValueRange{gr},
                    {g.col, g.row, g.col, g.id4}, g.par,
                    [&](OpBuilder &gb, Location gl, ValueRange args) {
                      Value gd =
                          arith::MulFOp::create(gb, gl, args[3], args[0]);
                      Value sa2 =
                          arith::MulFOp::create(gb, gl, args[1], args[2]);
                      linalg::YieldOp::create(
                          gb, gl,
                          arith::AddFOp::create(gb, gl, gd, sa2).getResult());
                    })[0];
                scf::YieldOp::create(
                    ib, il,
                    ValueRange{gNext, g.insertRow(ib, il, dwRow, dwAcc, t),
                               g.insertRow(ib, il, ks[0], dkAcc, t),
                               g.insertRow(ib, il, dvRow, dvAcc, t),
                               g.insertRow(ib, il, ks[3], daAcc, t),
                               g.insertRow(ib, il, ks[1], dbAcc, t)});
              });
          yieldSegment(b, l, back, re, stBuf, saBuf);
        });

    replaceByGradients(rewriter, op, bwd);
    return success();
  }
};

} // namespace

void rwkv::populateRWKVWKVGradToLinalgPatterns(RewritePatternSet &patterns) {
  patterns.add<WKVGradLowering>(patterns.getContext());
}
