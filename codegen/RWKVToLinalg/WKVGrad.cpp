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

using namespace mlir;
using namespace mlir::rwkv;
using utils::IteratorType;
using namespace mlir::rwkv::wkvgrad;

namespace {

struct WKVGradLowering final : OpConversionPattern<WKVGradOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(WKVGradOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    // Every mode: `chunked` is taken first by ChunkedWKVGrad.cpp when the
    // chunked lowering is enabled.
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

    SmallVector<OpFoldResult> sSizes = tensor::getMixedSizes(rewriter, loc, s0);
    auto f32 = rewriter.getF32Type();
    // 1. Forward over segments, saving each segment's start state.
    Value ckpt = buildCheckpoints(rewriter, loc, g, {r, w, k, v, a, bv}, s0,
                                  len, nseg, /*withFinal=*/false);

    // 2. Segments in reverse, carrying G and the gradients. Every row of the
    // [B, T, C] gradients is written exactly once, so they start empty.
    SmallVector<Value> init = {adaptor.getNewStateGrad()};
    for (int i = 0; i < 6; ++i)
      init.push_back(emptyLike(rewriter, loc, r));
    SmallVector<OpFoldResult> bufSizes = {rewriter.getIndexAttr(len)};
    bufSizes.append(sSizes);
    init.push_back(tensor::EmptyOp::create(rewriter, loc, bufSizes, f32));
    bufSizes.pop_back();
    init.push_back(tensor::EmptyOp::create(rewriter, loc, bufSizes, f32));

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
          SmallVector<Value> results = {back.getResult(0), re.getResult(3)};
          for (int i = 1; i < 6; ++i)
            results.push_back(back.getResult(i));
          results.push_back(stBuf);
          results.push_back(saBuf);
          scf::YieldOp::create(b, l, results);
        });

    // Results: dr, dw, dk, dv, da, db, dstate0.
    SmallVector<Value> repl;
    for (int i = 1; i <= 6; ++i)
      repl.push_back(castTo(rewriter, loc, bwd.getResult(i),
                            op->getResult(i - 1).getType()));
    repl.push_back(
        castTo(rewriter, loc, bwd.getResult(0), op.getStateGrad().getType()));
    rewriter.replaceOp(op, repl);
    return success();
  }
};

} // namespace

Value wkvgrad::buildCheckpoints(OpBuilder &b, Location loc,
                                const GradBuilder &g, ValueRange rwkvab,
                                Value s0, int64_t len, Value nseg,
                                bool withFinal) {
  Value w = rwkvab[1], k = rwkvab[2], v = rwkvab[3], a = rwkvab[4],
        bv = rwkvab[5];
  Value c0 = arith::ConstantIndexOp::create(b, loc, 0);
  Value c1 = arith::ConstantIndexOp::create(b, loc, 1);
  Value cL = arith::ConstantIndexOp::create(b, loc, len);
  Value tLen = dimValue(b, loc, rwkvab[0], 1);
  // Tokens run: all of them, or all but the last segment's.
  Value tStop =
      withFinal ? tLen
                : arith::MulIOp::create(
                      b, loc,
                      arith::SubIOp::create(
                          b, loc, arith::MaxUIOp::create(b, loc, nseg, c1), c1)
                          .getResult(),
                      cL)
                      .getResult();
  SmallVector<OpFoldResult> sizes = {
      withFinal
          ? OpFoldResult(arith::AddIOp::create(b, loc, nseg, c1).getResult())
          : OpFoldResult(nseg)};
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
              Value at = g.tokenSlice(ib, il, a, t);
              Value sa = g.stateTimes(
                  ib, il, state[0], at,
                  zeros(ib, il, tensor::getMixedSizes(ib, il, at)));
              Value next = g.update(
                  ib, il, state[0], g.exp(ib, il, g.tokenSlice(ib, il, w, t)),
                  g.tokenSlice(ib, il, k, t), g.tokenSlice(ib, il, v, t), sa,
                  g.tokenSlice(ib, il, bv, t));
              scf::YieldOp::create(ib, il, next);
            });
        scf::YieldOp::create(ob, l, ValueRange{steps.getResult(0), ckpt});
      });
  if (!withFinal)
    return fwd.getResult(1);
  return g.storeSlot(b, loc, fwd.getResult(0), fwd.getResult(1), nseg);
}

void rwkv::populateRWKVWKVGradToLinalgPatterns(RewritePatternSet &patterns) {
  patterns.add<WKVGradLowering>(patterns.getContext());
}
