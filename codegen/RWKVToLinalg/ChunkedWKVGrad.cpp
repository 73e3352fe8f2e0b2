//===- ChunkedWKVGrad.cpp - rwkv.wkv_grad {mode = chunked} to linalg ------===//
//
// The chunk-parallel backward of the WY form (docs/wkv7-chunked-backward.md
// §2). The start state of every chunk and S_T are recomputed first
// (buildCheckpoints, nchunk + 1 slots). Then an scf.for over the chunks in
// reverse carries H = ∂L/∂S_end; per chunk of L = min(Lc, T - t0) tokens
// and per (b, h), with [L, N] token matrices and [L, L] intra-chunk ones:
//
//   F1-F5  Γ, Γ⁻, γ; r̃, ã, k̂, b̂; A_qk, A_qb, A_ak, A_ab; T_inv = (I-A_ab)^-1;
//          W = T_inv ã, U = T_inv A_ak v, u = U + W S0ᵀ
//   B1 du = b̂ Hᵀ + A_qbᵀ dy          B2 H ← H ⊙ e^γ + dyᵀ r̃ + duᵀ W
//   B3 dc = T_invᵀ du                B4 the masked dA's
//   B5 dv = k̂ Hᵀ + A_qkᵀ dy + A_akᵀ dc
//   B6 dr, da, dk, db: the state terms plus the gated-product adjoints
//   B7/B8 dw = reverse cumsums of r⊙dr - k⊙dk - b⊙db and a⊙da, plus
//          dγ = Σ_v H ⊙ S_end   (w is the log-decay g itself)
//
// Every exponential is of a non-positive difference, or is selected away
// before use (never multiplied by a 0 mask, which would turn inf into NaN).
// The per-chunk work is fused into the reverse loop (no stored H per chunk).
//
//===----------------------------------------------------------------------===//

#include "codegen/RWKVToLinalg/WKVGrad.h"

using namespace mlir;
using namespace mlir::rwkv;
using namespace mlir::rwkv::wkvgrad;
using utils::IteratorType;

namespace {

AffineMap dims(MLIRContext *ctx, unsigned n, ArrayRef<unsigned> ds) {
  SmallVector<AffineExpr> exprs;
  for (unsigned d : ds)
    exprs.push_back(getAffineDimExpr(d, ctx));
  return AffineMap::get(n, 0, exprs, ctx);
}

struct ChunkBuilder {
  OpBuilder &b;
  Location l;
  MLIRContext *ctx;
  arith::FastMathFlagsAttr fm;
  OpFoldResult bDim, hDim, nDim, len;
  IteratorType P = IteratorType::parallel, R = IteratorType::reduction;

  Value f32(OpBuilder &nb, Location nl, double c) const {
    return f32Const(nb, nl, c);
  }
  Value mul(OpBuilder &nb, Location nl, Value x, Value y) const {
    return arith::MulFOp::create(nb, nl, x, y, fm);
  }
  Value add(OpBuilder &nb, Location nl, Value x, Value y) const {
    return arith::AddFOp::create(nb, nl, x, y, fm);
  }
  Value sub(OpBuilder &nb, Location nl, Value x, Value y) const {
    return arith::SubFOp::create(nb, nl, x, y, fm);
  }
  Value expf(OpBuilder &nb, Location nl, Value x) const {
    return math::ExpOp::create(nb, nl, x);
  }
  Value cmp(OpBuilder &nb, Location nl, arith::CmpIPredicate p, Value x,
            Value y) const {
    return arith::CmpIOp::create(nb, nl, p, x, y);
  }
  Value sel(OpBuilder &nb, Location nl, Value c, Value x, Value y) const {
    return arith::SelectOp::create(nb, nl, c, x, y);
  }
  Value idx(OpBuilder &nb, Location nl, int64_t d) const {
    return linalg::IndexOp::create(nb, nl, d);
  }

  Value empty(ArrayRef<OpFoldResult> sizes) const {
    return tensor::EmptyOp::create(b, l, sizes, b.getF32Type());
  }
  SmallVector<OpFoldResult> ln() const { return {bDim, hDim, len, nDim}; }
  SmallVector<OpFoldResult> ll() const { return {bDim, hDim, len, len}; }
  SmallVector<OpFoldResult> nn() const { return {bDim, hDim, nDim, nDim}; }

  /// out[p, q] (+)= Σ_s X[p, s] Y[s, q] over (b, h, p, q, s); `xT` / `yT`
  /// read X / Y transposed. Accumulates into `init`.
  Value mm(Value x, bool xT, Value y, bool yT, Value init) const {
    return generic(
        b, l, ValueRange{x, y}, ValueRange{init},
        {xT ? dims(ctx, 5, {0, 1, 4, 2}) : dims(ctx, 5, {0, 1, 2, 4}),
         yT ? dims(ctx, 5, {0, 1, 3, 4}) : dims(ctx, 5, {0, 1, 4, 3}),
         dims(ctx, 5, {0, 1, 2, 3})},
        {P, P, P, P, R}, [&](OpBuilder &nb, Location nl, ValueRange args) {
          linalg::YieldOp::create(
              nb, nl, add(nb, nl, args[2], mul(nb, nl, args[0], args[1])));
        })[0];
  }
  Value mm0(Value x, bool xT, Value y, bool yT,
            ArrayRef<OpFoldResult> sizes) const {
    return mm(x, xT, y, yT, zeros(b, l, sizes));
  }
};

struct ChunkedWKVGradLowering final : OpConversionPattern<WKVGradOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(WKVGradOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    if (op.getMode() != WKVMode::chunked)
      return failure();
    Location loc = op.getLoc();
    Value r = adaptor.getR(), w = adaptor.getW(), k = adaptor.getK();
    Value v = adaptor.getV(), a = adaptor.getA(), bv = adaptor.getB();
    Value dy = adaptor.getYGrad();
    Value s0 = adaptor.getState();
    int64_t heads = llvm::cast<RankedTensorType>(s0.getType()).getDimSize(1);
    GradBuilder g(rewriter, loc, heads);
    int64_t lc = op.getChunkLength();

    auto cst = [&](int64_t c) -> Value {
      return arith::ConstantIndexOp::create(rewriter, loc, c);
    };
    Value c0 = cst(0), c1 = cst(1), cL = cst(lc);
    Value tLen = dimValue(rewriter, loc, r, 1);
    Value nchunk = arith::DivUIOp::create(
        rewriter, loc,
        arith::AddIOp::create(rewriter, loc, tLen, cst(lc - 1)).getResult(),
        cL);
    Value ckpt = buildCheckpoints(rewriter, loc, g, {r, w, k, v, a, bv}, s0, lc,
                                  nchunk, /*withFinal=*/true);

    SmallVector<Value> init = {adaptor.getNewStateGrad()};
    for (int i = 0; i < 6; ++i)
      init.push_back(emptyLike(rewriter, loc, r));
    auto loop = scf::ForOp::create(
        rewriter, loc, c0, nchunk, c1, init,
        [&](OpBuilder &b, Location l, Value iv, ValueRange iter) {
          Value c = arith::SubIOp::create(
              b, l, arith::SubIOp::create(b, l, nchunk, iv).getResult(), c1);
          Value t0 = arith::MulIOp::create(b, l, c, cL);
          Value n = arith::MinUIOp::create(
              b, l, cL, arith::SubIOp::create(b, l, tLen, t0).getResult());
          Value sStart = g.slot(b, l, ckpt, c);
          Value sEnd = g.slot(b, l, ckpt,
                              arith::AddIOp::create(b, l, c, c1).getResult());
          SmallVector<Value> results = buildChunk(
              b, l, heads, {r, w, k, v, a, bv, dy}, t0, n, sStart, sEnd, iter);
          scf::YieldOp::create(b, l, results);
        });
    SmallVector<Value> repl;
    for (int i = 1; i <= 6; ++i)
      repl.push_back(castTo(rewriter, loc, loop.getResult(i),
                            op->getResult(i - 1).getType()));
    repl.push_back(
        castTo(rewriter, loc, loop.getResult(0), op.getStateGrad().getType()));
    rewriter.replaceOp(op, repl);
    return success();
  }

private:
  /// One chunk [t0, t0 + n): returns H at the chunk start and the six
  /// gradient accumulators with the chunk's rows written.
  static SmallVector<Value> buildChunk(OpBuilder &b, Location l, int64_t heads,
                                       ArrayRef<Value> src, Value t0, Value n,
                                       Value s0, Value sEnd, ValueRange iter) {
    MLIRContext *ctx = b.getContext();
    SmallVector<OpFoldResult> sSizes = tensor::getMixedSizes(b, l, s0);
    ChunkBuilder cb{b,         l,         ctx,       reductionFastMath(b),
                    sSizes[0], sSizes[1], sSizes[3], OpFoldResult(n)};
    auto P = IteratorType::parallel, R = IteratorType::reduction;
    OpFoldResult zero = b.getIndexAttr(0), one = b.getIndexAttr(1);
    SmallVector<OpFoldResult> inSizes = tensor::getMixedSizes(b, l, src[0]);
    inSizes[1] = n;
    // [B, L, C] slices of the chunk, viewed as [B, L, H, N].
    auto chunkOf = [&](Value x) {
      Value s = tensor::ExtractSliceOp::create(
          b, l, x, ArrayRef<OpFoldResult>{zero, t0, zero}, inSizes, ones(b, 3));
      return splitHeads(b, l, s, heads);
    };
    AffineMap id4 = dims(ctx, 4, {0, 1, 2, 3});
    AffineMap tok4 = dims(ctx, 4, {0, 2, 1, 3});
    AffineMap key4 = AffineMap::get(
        4, 0,
        {getAffineDimExpr(0, ctx), getAffineDimExpr(1, ctx),
         getAffineConstantExpr(0, ctx), getAffineDimExpr(3, ctx)},
        ctx);
    SmallVector<IteratorType> par4(4, P);
    auto ln = cb.ln(), ll = cb.ll(), nn = cb.nn();

    // Head-major copies [B, H, L, N] of r, w, k, v, a, b, dy.
    SmallVector<Value> hm;
    {
      SmallVector<Value> ins, outs;
      SmallVector<AffineMap> maps;
      for (Value x : src) {
        ins.push_back(chunkOf(x));
        outs.push_back(cb.empty(ln));
        maps.push_back(tok4);
      }
      maps.append(src.size(), id4);
      for (Value x : generic(b, l, ins, outs, maps, par4,
                             [](OpBuilder &nb, Location nl, ValueRange args) {
                               linalg::YieldOp::create(
                                   nb, nl, args.take_front(args.size() / 2));
                             }))
        hm.push_back(x);
    }
    Value r = hm[0], w = hm[1], k = hm[2], v = hm[3], a = hm[4], bb = hm[5],
          dy = hm[6];

    // F1: Γ (inclusive) and Γ⁻ (exclusive) cumsums over (b, h, i, t, c).
    ValueRange gammas = generic(
        b, l, ValueRange{w}, ValueRange{zeros(b, l, ln), zeros(b, l, ln)},
        {dims(ctx, 5, {0, 1, 3, 4}), dims(ctx, 5, {0, 1, 2, 4}),
         dims(ctx, 5, {0, 1, 2, 4})},
        {P, P, P, R, P}, [&](OpBuilder &nb, Location nl, ValueRange args) {
          Value i = cb.idx(nb, nl, 2), t = cb.idx(nb, nl, 3);
          Value z = cb.f32(nb, nl, 0.0);
          Value incl =
              cb.sel(nb, nl, cb.cmp(nb, nl, arith::CmpIPredicate::ule, t, i),
                     args[0], z);
          Value excl =
              cb.sel(nb, nl, cb.cmp(nb, nl, arith::CmpIPredicate::ult, t, i),
                     args[0], z);
          linalg::YieldOp::create(nb, nl,
                                  ValueRange{cb.add(nb, nl, args[1], incl),
                                             cb.add(nb, nl, args[2], excl)});
        });
    Value gam = gammas[0], gamEx = gammas[1];
    Value lastIdx = arith::SubIOp::create(
        b, l, n, arith::ConstantIndexOp::create(b, l, 1).getResult());
    // γ = Γ at the last token, [B, H, 1, N] (read through key4).
    Value gamLast = tensor::ExtractSliceOp::create(
        b, l, gam, ArrayRef<OpFoldResult>{zero, zero, lastIdx, zero},
        ArrayRef<OpFoldResult>{cb.bDim, cb.hDim, one, cb.nDim},
        SmallVector<OpFoldResult>(4, one));

    // F2: r̃ = r e^Γ, ã = a e^Γ⁻, k̂ = k e^{γ-Γ}, b̂ = b e^{γ-Γ}.
    ValueRange gated = generic(
        b, l, ValueRange{r, a, k, bb, gam, gamEx, gamLast},
        ValueRange{cb.empty(ln), cb.empty(ln), cb.empty(ln), cb.empty(ln)},
        {id4, id4, id4, id4, id4, id4, key4, id4, id4, id4, id4}, par4,
        [&](OpBuilder &nb, Location nl, ValueRange args) {
          Value toEnd = cb.expf(nb, nl, cb.sub(nb, nl, args[6], args[4]));
          linalg::YieldOp::create(
              nb, nl,
              ValueRange{cb.mul(nb, nl, args[0], cb.expf(nb, nl, args[4])),
                         cb.mul(nb, nl, args[1], cb.expf(nb, nl, args[5])),
                         cb.mul(nb, nl, args[2], toEnd),
                         cb.mul(nb, nl, args[3], toEnd)});
        });
    Value rT = gated[0], aT = gated[1], kH = gated[2], bH = gated[3];

    // F3: the masked gated products over (b, h, i, j, c).
    AffineMap ic = dims(ctx, 5, {0, 1, 2, 4}), jc = dims(ctx, 5, {0, 1, 3, 4});
    AffineMap ij = dims(ctx, 5, {0, 1, 2, 3});
    ValueRange amats = generic(
        b, l, ValueRange{r, a, k, bb, gam, gamEx, gam},
        ValueRange{zeros(b, l, ll), zeros(b, l, ll), zeros(b, l, ll),
                   zeros(b, l, ll)},
        {ic, ic, jc, jc, ic, ic, jc, ij, ij, ij, ij}, {P, P, P, P, R},
        [&](OpBuilder &nb, Location nl, ValueRange args) {
          Value i = cb.idx(nb, nl, 2), j = cb.idx(nb, nl, 3);
          Value z = cb.f32(nb, nl, 0.0);
          Value le = cb.cmp(nb, nl, arith::CmpIPredicate::ule, j, i);
          Value lt = cb.cmp(nb, nl, arith::CmpIPredicate::ult, j, i);
          Value e1 = cb.sel(
              nb, nl, le, cb.expf(nb, nl, cb.sub(nb, nl, args[4], args[6])), z);
          Value e2 = cb.sel(
              nb, nl, lt, cb.expf(nb, nl, cb.sub(nb, nl, args[5], args[6])), z);
          Value re = cb.mul(nb, nl, args[0], e1);
          Value ae = cb.mul(nb, nl, args[1], e2);
          linalg::YieldOp::create(
              nb, nl,
              ValueRange{
                  cb.add(nb, nl, args[7], cb.mul(nb, nl, re, args[2])),
                  cb.add(nb, nl, args[8], cb.mul(nb, nl, re, args[3])),
                  cb.add(nb, nl, args[9], cb.mul(nb, nl, ae, args[2])),
                  cb.add(nb, nl, args[10], cb.mul(nb, nl, ae, args[3]))});
        });
    Value aqk = amats[0], aqb = amats[1], aak = amats[2], aab = amats[3];

    // F4: T_inv = (I - A_ab)^-1 by forward substitution over rows (as in
    // ChunkedWKV.cpp): T[i] = e_i + Σ_{m<i} A_ab[i, m] T[m].
    Value ident = generic(
        b, l, ValueRange{}, ValueRange{cb.empty(ll)}, {id4}, par4,
        [&](OpBuilder &nb, Location nl, ValueRange) {
          Value eq = cb.cmp(nb, nl, arith::CmpIPredicate::eq, cb.idx(nb, nl, 2),
                            cb.idx(nb, nl, 3));
          linalg::YieldOp::create(
              nb, nl,
              cb.sel(nb, nl, eq, cb.f32(nb, nl, 1.0), cb.f32(nb, nl, 0.0)));
        })[0];
    Value c1 = arith::ConstantIndexOp::create(b, l, 1);
    AffineMap rowRed = AffineMap::get(
        4, 0,
        {getAffineDimExpr(0, ctx), getAffineDimExpr(1, ctx),
         getAffineConstantExpr(0, ctx), getAffineDimExpr(2, ctx)},
        ctx);
    auto solve = scf::ForOp::create(
        b, l, c1, n, c1, ValueRange{ident},
        [&](OpBuilder &lb, Location ll2, Value i, ValueRange it) {
          Value tinv = it[0];
          SmallVector<OpFoldResult> offs = {zero, zero, i, zero};
          SmallVector<OpFoldResult> sizes = {cb.bDim, cb.hDim, one, cb.len};
          auto rowOf = [&](Value m) -> Value {
            return tensor::ExtractSliceOp::create(lb, ll2, m, offs, sizes,
                                                  ones(lb, 4));
          };
          Value unit = generic(
              lb, ll2, ValueRange{},
              ValueRange{
                  tensor::EmptyOp::create(lb, ll2, sizes, lb.getF32Type())
                      .getResult()},
              {id4}, par4, [&](OpBuilder &nb, Location nl, ValueRange) {
                Value eq = cb.cmp(nb, nl, arith::CmpIPredicate::eq,
                                  cb.idx(nb, nl, 3), i);
                linalg::YieldOp::create(nb, nl,
                                        cb.sel(nb, nl, eq, cb.f32(nb, nl, 1.0),
                                               cb.f32(nb, nl, 0.0)));
              })[0];
          Value row = generic(
              lb, ll2, ValueRange{rowOf(aab), tinv}, ValueRange{unit},
              {rowRed, id4, key4}, {P, P, R, P},
              [&](OpBuilder &nb, Location nl, ValueRange args) {
                linalg::YieldOp::create(
                    nb, nl,
                    cb.add(nb, nl, args[2], cb.mul(nb, nl, args[0], args[1])));
              })[0];
          Value copied =
              linalg::CopyOp::create(lb, ll2, row, rowOf(tinv)).getResult(0);
          scf::YieldOp::create(lb, ll2,
                               tensor::InsertSliceOp::create(lb, ll2, copied,
                                                             tinv, offs, sizes,
                                                             ones(lb, 4))
                                   .getResult());
        });
    Value tinv = solve.getResult(0);

    // F4/F5: W = T_inv ã, u = T_inv (A_ak v) + W S0ᵀ.
    Value wMat = cb.mm0(tinv, false, aT, false, ln);
    Value u = cb.mm(tinv, false, cb.mm0(aak, false, v, false, ln), false,
                    zeros(b, l, ln));
    u = cb.mm(wMat, false, s0, true, u);

    Value hEnd = iter[0];
    // B1: du = b̂ Hᵀ + A_qbᵀ dy.
    Value du = cb.mm(aqb, true, dy, false, cb.mm0(bH, false, hEnd, true, ln));
    // B3: dc = T_invᵀ du.
    Value dc = cb.mm0(tinv, true, du, false, ln);
    // B4: dA_qk = M≤ (dy vᵀ), dA_qb = M≤ (dy uᵀ), dA_ak = M< (dc vᵀ),
    // dA_ab = M< (dc uᵀ).
    ValueRange dA = generic(
        b, l,
        ValueRange{
            cb.mm0(dy, false, v, true, ll), cb.mm0(dy, false, u, true, ll),
            cb.mm0(dc, false, v, true, ll), cb.mm0(dc, false, u, true, ll)},
        ValueRange{cb.empty(ll), cb.empty(ll), cb.empty(ll), cb.empty(ll)},
        SmallVector<AffineMap>(8, id4), par4,
        [&](OpBuilder &nb, Location nl, ValueRange args) {
          Value i = cb.idx(nb, nl, 2), j = cb.idx(nb, nl, 3);
          Value z = cb.f32(nb, nl, 0.0);
          Value le = cb.cmp(nb, nl, arith::CmpIPredicate::ule, j, i);
          Value lt = cb.cmp(nb, nl, arith::CmpIPredicate::ult, j, i);
          linalg::YieldOp::create(nb, nl,
                                  ValueRange{cb.sel(nb, nl, le, args[0], z),
                                             cb.sel(nb, nl, le, args[1], z),
                                             cb.sel(nb, nl, lt, args[2], z),
                                             cb.sel(nb, nl, lt, args[3], z)});
        });
    // B5: dv = k̂ Hᵀ + A_qkᵀ dy + A_akᵀ dc.
    Value dv =
        cb.mm(aak, true, dc, false,
              cb.mm(aqk, true, dy, false, cb.mm0(kH, false, hEnd, true, ln)));
    // B6, state terms: (dy S0) e^Γ, (dc S0) e^Γ⁻, (v H) e^{γ-Γ}, (u H) e^{γ-Γ}.
    ValueRange st = generic(
        b, l, ValueRange{gam, gamEx, gamLast},
        ValueRange{cb.mm0(dy, false, s0, false, ln),
                   cb.mm0(dc, false, s0, false, ln),
                   cb.mm0(v, false, hEnd, false, ln),
                   cb.mm0(u, false, hEnd, false, ln)},
        {id4, id4, key4, id4, id4, id4, id4}, par4,
        [&](OpBuilder &nb, Location nl, ValueRange args) {
          Value toEnd = cb.expf(nb, nl, cb.sub(nb, nl, args[2], args[0]));
          linalg::YieldOp::create(
              nb, nl,
              ValueRange{cb.mul(nb, nl, args[3], cb.expf(nb, nl, args[0])),
                         cb.mul(nb, nl, args[4], cb.expf(nb, nl, args[1])),
                         cb.mul(nb, nl, args[5], toEnd),
                         cb.mul(nb, nl, args[6], toEnd)});
        });
    // B6, ∂X over (b, h, i, c, j): dr += Σ_j (dA_qk k_j + dA_qb b_j)
    // e^{Γ_i - Γ_j} (j <= i), da += Σ_j (dA_ak k_j + dA_ab b_j) e^{Γ⁻_i - Γ_j}
    // (j < i).
    AffineMap xI = dims(ctx, 5, {0, 1, 2, 3}), xJ = dims(ctx, 5, {0, 1, 4, 3});
    AffineMap xA = dims(ctx, 5, {0, 1, 2, 4});
    ValueRange dX = generic(
        b, l, ValueRange{dA[0], dA[1], dA[2], dA[3], k, bb, gam, gamEx, gam},
        ValueRange{st[0], st[1]}, {xA, xA, xA, xA, xJ, xJ, xI, xI, xJ, xI, xI},
        {P, P, P, P, R}, [&](OpBuilder &nb, Location nl, ValueRange args) {
          Value i = cb.idx(nb, nl, 2), j = cb.idx(nb, nl, 4);
          Value z = cb.f32(nb, nl, 0.0);
          Value le = cb.cmp(nb, nl, arith::CmpIPredicate::ule, j, i);
          Value lt = cb.cmp(nb, nl, arith::CmpIPredicate::ult, j, i);
          Value e1 = cb.sel(
              nb, nl, le, cb.expf(nb, nl, cb.sub(nb, nl, args[6], args[8])), z);
          Value e2 = cb.sel(
              nb, nl, lt, cb.expf(nb, nl, cb.sub(nb, nl, args[7], args[8])), z);
          Value q = cb.add(nb, nl, cb.mul(nb, nl, args[0], args[4]),
                           cb.mul(nb, nl, args[1], args[5]));
          Value s = cb.add(nb, nl, cb.mul(nb, nl, args[2], args[4]),
                           cb.mul(nb, nl, args[3], args[5]));
          linalg::YieldOp::create(
              nb, nl,
              ValueRange{cb.add(nb, nl, args[9], cb.mul(nb, nl, q, e1)),
                         cb.add(nb, nl, args[10], cb.mul(nb, nl, s, e2))});
        });
    // B6, ∂Z over (b, h, j, c, i): dk += Σ_i (dA_qk r_i e^{Γ_i - Γ_j} (i >= j)
    // + dA_ak a_i e^{Γ⁻_i - Γ_j} (i > j)), db likewise with dA_qb, dA_ab.
    AffineMap zA = dims(ctx, 5, {0, 1, 4, 2}); // dA[i, j] with i = d4, j = d2
    ValueRange dZ = generic(
        b, l, ValueRange{dA[0], dA[2], dA[1], dA[3], r, a, gam, gamEx, gam},
        ValueRange{st[2], st[3]}, {zA, zA, zA, zA, xJ, xJ, xJ, xJ, xI, xI, xI},
        {P, P, P, P, R}, [&](OpBuilder &nb, Location nl, ValueRange args) {
          Value j = cb.idx(nb, nl, 2), i = cb.idx(nb, nl, 4);
          Value z = cb.f32(nb, nl, 0.0);
          Value le = cb.cmp(nb, nl, arith::CmpIPredicate::ule, j, i);
          Value lt = cb.cmp(nb, nl, arith::CmpIPredicate::ult, j, i);
          Value e1 = cb.sel(
              nb, nl, le, cb.expf(nb, nl, cb.sub(nb, nl, args[6], args[8])), z);
          Value e2 = cb.sel(
              nb, nl, lt, cb.expf(nb, nl, cb.sub(nb, nl, args[7], args[8])), z);
          Value re = cb.mul(nb, nl, args[4], e1);
          Value ae = cb.mul(nb, nl, args[5], e2);
          Value dk = cb.add(nb, nl, cb.mul(nb, nl, args[0], re),
                            cb.mul(nb, nl, args[1], ae));
          Value db = cb.add(nb, nl, cb.mul(nb, nl, args[2], re),
                            cb.mul(nb, nl, args[3], ae));
          linalg::YieldOp::create(nb, nl,
                                  ValueRange{cb.add(nb, nl, args[9], dk),
                                             cb.add(nb, nl, args[10], db)});
        });
    Value dr = dX[0], da = dX[1], dk = dZ[0], db = dZ[1];

    // B7: dγ[c] = Σ_v H[v, c] S_end[v, c], as [B, H, 1, N].
    SmallVector<OpFoldResult> oneN = {cb.bDim, cb.hDim, one, cb.nDim};
    Value dgam = generic(
        b, l, ValueRange{hEnd, sEnd}, ValueRange{zeros(b, l, oneN)},
        {dims(ctx, 4, {0, 1, 2, 3}), dims(ctx, 4, {0, 1, 2, 3}), key4},
        {P, P, R, P}, [&](OpBuilder &nb, Location nl, ValueRange args) {
          linalg::YieldOp::create(
              nb, nl,
              cb.add(nb, nl, args[2], cb.mul(nb, nl, args[0], args[1])));
        })[0];
    // B8: dw_i = dγ + Σ_{t>=i} (r dr - k dk - b db)_t + Σ_{t>i} (a da)_t over
    // (b, h, i, t, c).
    Value dgInit =
        generic(b, l, ValueRange{dgam}, ValueRange{cb.empty(ln)}, {key4, id4},
                par4, [](OpBuilder &nb, Location nl, ValueRange args) {
                  linalg::YieldOp::create(nb, nl, args[0]);
                })[0];
    AffineMap tc = dims(ctx, 5, {0, 1, 3, 4});
    Value dw = generic(
        b, l, ValueRange{r, dr, k, dk, bb, db, a, da}, ValueRange{dgInit},
        {tc, tc, tc, tc, tc, tc, tc, tc, dims(ctx, 5, {0, 1, 2, 4})},
        {P, P, P, R, P}, [&](OpBuilder &nb, Location nl, ValueRange args) {
          Value i = cb.idx(nb, nl, 2), t = cb.idx(nb, nl, 3);
          Value z = cb.f32(nb, nl, 0.0);
          Value dg = cb.sub(nb, nl,
                            cb.sub(nb, nl, cb.mul(nb, nl, args[0], args[1]),
                                   cb.mul(nb, nl, args[2], args[3])),
                            cb.mul(nb, nl, args[4], args[5]));
          Value dge = cb.mul(nb, nl, args[6], args[7]);
          Value s = cb.add(
              nb, nl,
              cb.sel(nb, nl, cb.cmp(nb, nl, arith::CmpIPredicate::uge, t, i),
                     dg, z),
              cb.sel(nb, nl, cb.cmp(nb, nl, arith::CmpIPredicate::ugt, t, i),
                     dge, z));
          linalg::YieldOp::create(nb, nl, cb.add(nb, nl, args[8], s));
        })[0];

    // B2, last (H's other readers come first): H_start = H ⊙ e^γ + dyᵀ r̃ +
    // duᵀ W, computed in place on H so that the loop yields its own
    // iter_arg's buffer.
    Value hDecay = generic(
        b, l, ValueRange{gamLast}, ValueRange{hEnd}, {key4, id4}, par4,
        [&](OpBuilder &nb, Location nl, ValueRange args) {
          linalg::YieldOp::create(
              nb, nl, cb.mul(nb, nl, args[1], cb.expf(nb, nl, args[0])));
        })[0];
    Value hStart =
        cb.mm(du, true, wMat, false, cb.mm(dy, true, rT, false, hDecay));

    // Write the chunk's rows: [B, H, L, N] -> slice [t0, t0 + L) of [B, T, C].
    auto store = [&](Value x, Value acc) -> Value {
      Value slice = tensor::ExtractSliceOp::create(
          b, l, acc, ArrayRef<OpFoldResult>{zero, t0, zero}, inSizes,
          ones(b, 3));
      Value moved = generic(b, l, ValueRange{x},
                            ValueRange{splitHeads(b, l, slice, heads)},
                            {dims(ctx, 4, {0, 2, 1, 3}), id4}, par4,
                            [](OpBuilder &nb, Location nl, ValueRange args) {
                              linalg::YieldOp::create(nb, nl, args[0]);
                            })[0];
      return tensor::InsertSliceOp::create(
          b, l, mergeHeads(b, l, moved), acc,
          ArrayRef<OpFoldResult>{zero, t0, zero}, inSizes, ones(b, 3));
    };
    return {hStart,
            store(dr, iter[1]),
            store(dw, iter[2]),
            store(dk, iter[3]),
            store(dv, iter[4]),
            store(da, iter[5]),
            store(db, iter[6])};
  }
};

} // namespace

void rwkv::populateRWKVChunkedWKVGradToLinalgPatterns(
    RewritePatternSet &patterns) {
  // Preferred over the sequential lowering, which matches every mode.
  patterns.add<ChunkedWKVGradLowering>(patterns.getContext(), /*benefit=*/2);
}
