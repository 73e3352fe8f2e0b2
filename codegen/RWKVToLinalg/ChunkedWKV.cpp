//===- ChunkedWKV.cpp - rwkv.wkv {mode = chunked} to tensor/scf/linalg ----===//
//
// The chunk-parallel (WY) form of the WKV7 recurrence, spec §2.6. An scf.for
// over chunks of `chunk_length` tokens carries the f32 state S0 [B,H,N,N]
// (value i, key j) and the output y; the last chunk is shorter when T is not
// a multiple of the chunk length. Inside a chunk of L tokens, per (b, h):
//
//   Γ  = inclusive cumsum of the log decay w,  Γ⁻ = exclusive cumsum
//   A_qk, A_qb, A_ak, A_ab                     masked [L, L] products
//   T_inv = (I - A_ab)^-1                      forward substitution (scf.for)
//   W = T_inv (a ⊙ e^Γ⁻),  U = T_inv (A_ak V),  u = U + W S0ᵀ
//   Y = (r ⊙ e^Γ) S0ᵀ + A_qk V + A_qb u
//   S_end = S0 diag(e^Γ_L) + Σ_j v_j (k_j ⊙ e^{Γ_L - Γ_j})ᵀ
//                          + Σ_j u_j (b_j ⊙ e^{Γ_L - Γ_j})ᵀ
//
// Every decay factor is the exponential of a difference of cumulative sums
// over a token range in the same chunk, so with w <= 0 none exceeds 1 and
// nothing can overflow whatever the chunk length (terms only underflow to
// 0). A_ak / A_ab need e^{Γ⁻_i - Γ_j} = e^{Γ_{i-1} - Γ_j}: they are built
// from the same exponentials as A_qk / A_qb with `a` shifted up one token,
// then shifted back down one row, which halves the exponentials.
//
//===----------------------------------------------------------------------===//

#include "codegen/RWKVToLinalg/Common.h"

#include "mlir/Dialect/Utils/StructuredOpsUtils.h"

#include <limits>

using namespace mlir;
using namespace mlir::rwkv;
using utils::IteratorType;

namespace {

using BodyFn = function_ref<void(OpBuilder &, Location, ValueRange)>;

/// A linalg.generic whose results have the types of `outs`.
ValueRange generic(OpBuilder &b, Location loc, ValueRange ins, ValueRange outs,
                   ArrayRef<AffineMap> maps, ArrayRef<IteratorType> iters,
                   BodyFn body) {
  return linalg::GenericOp::create(b, loc, TypeRange(outs), ins, outs, maps,
                                   iters, body)
      .getResults();
}

constexpr int kUnit = -1;

/// The affine map (d0..d{n-1}) -> (d{dims[0]}, d{dims[1]}, ...), with the
/// constant 0 for `kUnit` (a unit dimension of a one-token slice).
AffineMap dimsMap(MLIRContext *ctx, unsigned n, ArrayRef<int> dims) {
  SmallVector<AffineExpr> exprs;
  for (int d : dims)
    exprs.push_back(d == kUnit ? getAffineConstantExpr(0, ctx)
                               : getAffineDimExpr(d, ctx));
  return AffineMap::get(n, 0, exprs, ctx);
}

struct ChunkedWKVLowering final : OpConversionPattern<WKVOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(WKVOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    if (op.getMode() != WKVMode::chunked)
      return failure();
    Location loc = op.getLoc();
    Value r = adaptor.getR();
    auto stateType = llvm::cast<RankedTensorType>(adaptor.getState().getType());
    int64_t heads = stateType.getDimSize(1);
    Value yInit = emptyLike(rewriter, loc, r);
    Value lb = arith::ConstantIndexOp::create(rewriter, loc, 0);
    Value ub = dimValue(rewriter, loc, r, 1);
    Value step =
        arith::ConstantIndexOp::create(rewriter, loc, op.getChunkLength());
    auto loop = scf::ForOp::create(
        rewriter, loc, lb, ub, step, ValueRange{adaptor.getState(), yInit},
        [&](OpBuilder &b, Location l, Value t0, ValueRange iter) {
          auto [state, y] =
              buildChunk(b, l, adaptor, heads, t0, step, ub, iter[0], iter[1]);
          scf::YieldOp::create(b, l, ValueRange{state, y});
        });
    rewriter.replaceOp(
        op,
        {castTo(rewriter, loc, loop.getResult(1), op.getY().getType()),
         castTo(rewriter, loc, loop.getResult(0), op.getNewState().getType())});
    return success();
  }

private:
  /// One chunk [t0, t0 + L), L = min(Lc, T - t0): returns the state at its
  /// end and `y` with the chunk's outputs inserted.
  static std::pair<Value, Value> buildChunk(OpBuilder &b, Location l,
                                            OpAdaptor adaptor, int64_t heads,
                                            Value t0, Value lc, Value tEnd,
                                            Value s0, Value yAcc) {
    MLIRContext *ctx = b.getContext();
    auto fm = reductionFastMath(b);
    Value len = arith::MinSIOp::create(
        b, l, lc, arith::SubIOp::create(b, l, tEnd, t0).getResult());
    OpFoldResult zero = b.getIndexAttr(0), one = b.getIndexAttr(1);
    SmallVector<OpFoldResult> inSizes =
        tensor::getMixedSizes(b, l, adaptor.getR());
    inSizes[1] = len;
    SmallVector<OpFoldResult> strides3(3, one);
    // [B, L, C] slices of the chunk, viewed as [B, L, H, N].
    auto chunkOf = [&](Value src) {
      Value s = tensor::ExtractSliceOp::create(
          b, l, src, ArrayRef<OpFoldResult>{zero, t0, zero}, inSizes, strides3);
      return splitHeads(b, l, s, heads);
    };
    Value r = chunkOf(adaptor.getR()), w = chunkOf(adaptor.getW());
    Value k = chunkOf(adaptor.getK()), v = chunkOf(adaptor.getV());
    Value a = chunkOf(adaptor.getA()), bb = chunkOf(adaptor.getB());

    // Sizes of the per-chunk tensors: [B, H, L, N] and [B, H, L, L].
    SmallVector<OpFoldResult> sSizes = tensor::getMixedSizes(b, l, s0);
    OpFoldResult bDim = sSizes[0], hDim = sSizes[1], nDim = sSizes[3];
    SmallVector<OpFoldResult> lnSizes = {bDim, hDim, len, nDim};
    SmallVector<OpFoldResult> llSizes = {bDim, hDim, len, len};
    auto empty = [&](ArrayRef<OpFoldResult> sizes) -> Value {
      return tensor::EmptyOp::create(b, l, sizes, b.getF32Type());
    };
    auto f32 = [&](OpBuilder &nb, Location nl, double c) {
      return f32Const(nb, nl, c);
    };
    auto add = [&](OpBuilder &nb, Location nl, Value x, Value y2) -> Value {
      return arith::AddFOp::create(nb, nl, x, y2, fm);
    };
    auto mul = [&](OpBuilder &nb, Location nl, Value x, Value y2) -> Value {
      return arith::MulFOp::create(nb, nl, x, y2, fm);
    };
    auto P = IteratorType::parallel, R = IteratorType::reduction;

    // Γ (inclusive) and Γ⁻ (exclusive) cumulative log decays, [B, H, L, N]:
    // (b, h, t, i, c) reducing t <= i (t < i), c innermost.
    ValueRange gammas = generic(
        b, l, ValueRange{w},
        ValueRange{zeros(b, l, lnSizes), zeros(b, l, lnSizes)},
        {dimsMap(ctx, 5, {0, 2, 1, 4}), dimsMap(ctx, 5, {0, 1, 3, 4}),
         dimsMap(ctx, 5, {0, 1, 3, 4})},
        {P, P, R, P, P}, [&](OpBuilder &nb, Location nl, ValueRange args) {
          Value t = linalg::IndexOp::create(nb, nl, 2);
          Value i = linalg::IndexOp::create(nb, nl, 3);
          Value z = f32(nb, nl, 0.0);
          Value le =
              arith::CmpIOp::create(nb, nl, arith::CmpIPredicate::ule, t, i);
          Value lt =
              arith::CmpIOp::create(nb, nl, arith::CmpIPredicate::ult, t, i);
          Value incl = arith::SelectOp::create(nb, nl, le, args[0], z);
          Value excl = arith::SelectOp::create(nb, nl, lt, args[0], z);
          linalg::YieldOp::create(nb, nl,
                                  ValueRange{add(nb, nl, args[1], incl),
                                             add(nb, nl, args[2], excl)});
        });
    Value gamma = gammas[0], gammaEx = gammas[1];

    // Γ at the last token of the chunk, [B, H, 1, N]. One-token slices keep
    // their unit dimension (read through a constant-0 map): dropping it
    // would be ambiguous with B = 1.
    Value lastIdx = arith::SubIOp::create(
        b, l, len, arith::ConstantIndexOp::create(b, l, 1).getResult());
    Value gammaLast = tensor::ExtractSliceOp::create(
        b, l, gamma, ArrayRef<OpFoldResult>{zero, zero, lastIdx, zero},
        ArrayRef<OpFoldResult>{bDim, hDim, one, nDim},
        SmallVector<OpFoldResult>(4, one));

    // Gated per-token vectors, [B, H, L, N] over (b, h, i, c):
    //   rG = r e^Γ, aG = a e^Γ⁻, kG = k e^{Γ_L - Γ}, bG = b e^{Γ_L - Γ},
    //   aUp[i] = a[i + 1] (0 for the last token) for A_ak / A_ab,
    // and k, b, Γ transposed to [B, H, N, L] for the A matrices.
    AffineMap tok4 = dimsMap(ctx, 4, {0, 2, 1, 3});
    AffineMap id4 = dimsMap(ctx, 4, {0, 1, 2, 3});
    AffineMap key4 = dimsMap(ctx, 4, {0, 1, kUnit, 3});
    AffineMap tr4 = dimsMap(ctx, 4, {0, 1, 3, 2});
    SmallVector<OpFoldResult> nlSizes = {bDim, hDim, nDim, len};
    ValueRange gated = generic(
        b, l, ValueRange{r, a, k, bb, gamma, gammaEx, gammaLast},
        ValueRange{empty(lnSizes), empty(lnSizes), empty(lnSizes),
                   empty(lnSizes), empty(lnSizes), empty(nlSizes),
                   empty(nlSizes), empty(nlSizes)},
        {tok4, tok4, tok4, tok4, id4, id4, key4, id4, id4, id4, id4, id4, tr4,
         tr4, tr4},
        {P, P, P, P}, [&](OpBuilder &nb, Location nl, ValueRange args) {
          Value rG = arith::MulFOp::create(
              nb, nl, args[0], math::ExpOp::create(nb, nl, args[4]));
          Value aG = arith::MulFOp::create(
              nb, nl, args[1], math::ExpOp::create(nb, nl, args[5]));
          Value toEnd = math::ExpOp::create(
              nb, nl, arith::SubFOp::create(nb, nl, args[6], args[4]));
          Value kG = arith::MulFOp::create(nb, nl, args[2], toEnd);
          Value bG = arith::MulFOp::create(nb, nl, args[3], toEnd);
          Value bi = linalg::IndexOp::create(nb, nl, 0);
          Value hi = linalg::IndexOp::create(nb, nl, 1);
          Value i = linalg::IndexOp::create(nb, nl, 2);
          Value ci = linalg::IndexOp::create(nb, nl, 3);
          Value c1 = arith::ConstantIndexOp::create(nb, nl, 1);
          Value next = arith::AddIOp::create(nb, nl, i, c1);
          Value inChunk = arith::CmpIOp::create(
              nb, nl, arith::CmpIPredicate::ult, next, len);
          // Clamp so the (discarded) read past the chunk stays in bounds.
          Value at = arith::MinUIOp::create(nb, nl, next, lastIdx);
          Value aNext =
              tensor::ExtractOp::create(nb, nl, a, ValueRange{bi, at, hi, ci});
          Value aUp =
              arith::SelectOp::create(nb, nl, inChunk, aNext, f32(nb, nl, 0.0));
          linalg::YieldOp::create(
              nb, nl,
              ValueRange{rG, aG, kG, bG, aUp, args[2], args[3], args[4]});
        });
    Value rG = gated[0], aG = gated[1], kG = gated[2], bG = gated[3],
          aUp = gated[4], kT = gated[5], bT = gated[6], gammaT = gated[7];

    // Intra-chunk matrices over (b, h, i, c, j), one exponential per element:
    //   E = e^{Γ_i - Γ_j} (j <= i, else 0)
    //   A_qk = Σ r_i k_j E, A_qb = Σ r_i b_j E,
    //   A_ak' = Σ aUp_i k_j E, A_ab' = Σ aUp_i b_j E  (A_ak[i] = A_ak'[i-1])
    // j innermost: the rows of A and of the transposed k, b, Γ are contiguous
    // and the accumulators carry no dependence from one iteration to the next.
    AffineMap ic4 = dimsMap(ctx, 5, {0, 1, 2, 3});
    AffineMap cj = dimsMap(ctx, 5, {0, 1, 3, 4});
    AffineMap ij = dimsMap(ctx, 5, {0, 1, 2, 4});
    ValueRange amats = generic(
        b, l, ValueRange{r, aUp, kT, bT, gamma, gammaT},
        ValueRange{zeros(b, l, llSizes), zeros(b, l, llSizes),
                   zeros(b, l, llSizes), zeros(b, l, llSizes)},
        {dimsMap(ctx, 5, {0, 2, 1, 3}), ic4, cj, cj, ic4, cj, ij, ij, ij, ij},
        {P, P, P, R, P}, [&](OpBuilder &nb, Location nl, ValueRange args) {
          Value i = linalg::IndexOp::create(nb, nl, 2);
          Value j = linalg::IndexOp::create(nb, nl, 4);
          Value lower =
              arith::CmpIOp::create(nb, nl, arith::CmpIPredicate::ule, j, i);
          // Above the diagonal the difference is positive and may overflow:
          // the select drops it.
          Value e = arith::SelectOp::create(
              nb, nl, lower,
              math::ExpOp::create(
                  nb, nl, arith::SubFOp::create(nb, nl, args[4], args[5])),
              f32(nb, nl, 0.0));
          Value rE = arith::MulFOp::create(nb, nl, args[0], e);
          Value aE = arith::MulFOp::create(nb, nl, args[1], e);
          linalg::YieldOp::create(
              nb, nl,
              ValueRange{add(nb, nl, args[6], mul(nb, nl, rE, args[2])),
                         add(nb, nl, args[7], mul(nb, nl, rE, args[3])),
                         add(nb, nl, args[8], mul(nb, nl, aE, args[2])),
                         add(nb, nl, args[9], mul(nb, nl, aE, args[3]))});
        });
    Value aqk = amats[0], aqb = amats[1];

    // A_ak, A_ab: A'[i - 1] for i >= 1, zero in row 0 (strictly lower).
    ValueRange shifted = generic(
        b, l, ValueRange{}, ValueRange{empty(llSizes), empty(llSizes)},
        {id4, id4}, {P, P, P, P}, [&](OpBuilder &nb, Location nl, ValueRange) {
          Value bi = linalg::IndexOp::create(nb, nl, 0);
          Value hi = linalg::IndexOp::create(nb, nl, 1);
          Value i = linalg::IndexOp::create(nb, nl, 2);
          Value j = linalg::IndexOp::create(nb, nl, 3);
          Value c0 = arith::ConstantIndexOp::create(nb, nl, 0);
          Value c1 = arith::ConstantIndexOp::create(nb, nl, 1);
          Value first =
              arith::CmpIOp::create(nb, nl, arith::CmpIPredicate::eq, i, c0);
          Value prev = arith::SubIOp::create(
              nb, nl, arith::MaxUIOp::create(nb, nl, i, c1), c1);
          Value z = f32(nb, nl, 0.0);
          Value ak = tensor::ExtractOp::create(nb, nl, amats[2],
                                               ValueRange{bi, hi, prev, j});
          Value ab = tensor::ExtractOp::create(nb, nl, amats[3],
                                               ValueRange{bi, hi, prev, j});
          linalg::YieldOp::create(
              nb, nl,
              ValueRange{arith::SelectOp::create(nb, nl, first, z, ak),
                         arith::SelectOp::create(nb, nl, first, z, ab)});
        });
    Value aak = shifted[0], aab = shifted[1];

    // T_inv = (I - A_ab)^-1 by forward substitution over rows:
    //   T[i] = e_i + Σ_{m<i} A_ab[i, m] T[m]
    // T starts as the identity and A_ab[i, m] = 0 for m >= i, so the rows
    // not yet solved contribute nothing. Row i accumulates into a fresh e_i
    // (not a slice of T, which the same generic reads) and is then copied
    // into T by a linalg.copy, which bufferizes in place; an insert_slice of
    // the row would become a memref.copy, i.e. a runtime library call.
    Value ident = generic(
        b, l, ValueRange{}, ValueRange{empty(llSizes)}, {id4}, {P, P, P, P},
        [&](OpBuilder &nb, Location nl, ValueRange) {
          Value eq = arith::CmpIOp::create(nb, nl, arith::CmpIPredicate::eq,
                                           linalg::IndexOp::create(nb, nl, 2),
                                           linalg::IndexOp::create(nb, nl, 3));
          linalg::YieldOp::create(nb, nl,
                                  arith::SelectOp::create(nb, nl, eq,
                                                          f32(nb, nl, 1.0),
                                                          f32(nb, nl, 0.0))
                                      .getResult());
        })[0];
    Value c1 = arith::ConstantIndexOp::create(b, l, 1);
    auto solve = scf::ForOp::create(
        b, l, c1, len, c1, ValueRange{ident},
        [&](OpBuilder &lb, Location ll, Value i, ValueRange iter) {
          Value tinv = iter[0];
          SmallVector<OpFoldResult> offs = {zero, zero, i, zero};
          SmallVector<OpFoldResult> sizes = {bDim, hDim, one, len};
          SmallVector<OpFoldResult> strides(4, one);
          auto rowOf = [&](Value m) -> Value {
            return tensor::ExtractSliceOp::create(lb, ll, m, offs, sizes,
                                                  strides);
          };
          Value unit = generic(
              lb, ll, ValueRange{},
              ValueRange{tensor::EmptyOp::create(lb, ll, sizes, lb.getF32Type())
                             .getResult()},
              {id4}, {P, P, P, P}, [&](OpBuilder &nb, Location nl, ValueRange) {
                Value eq = arith::CmpIOp::create(
                    nb, nl, arith::CmpIPredicate::eq,
                    linalg::IndexOp::create(nb, nl, 3), i);
                linalg::YieldOp::create(
                    nb, nl,
                    arith::SelectOp::create(nb, nl, eq, f32(nb, nl, 1.0),
                                            f32(nb, nl, 0.0))
                        .getResult());
              })[0];
          Value row = generic(
              lb, ll, ValueRange{rowOf(aab), tinv}, ValueRange{unit},
              {dimsMap(ctx, 4, {0, 1, kUnit, 2}), id4,
               dimsMap(ctx, 4, {0, 1, kUnit, 3})},
              {P, P, R, P}, [&](OpBuilder &nb, Location nl, ValueRange args) {
                linalg::YieldOp::create(
                    nb, nl,
                    add(nb, nl, args[2], mul(nb, nl, args[0], args[1])));
              })[0];
          Value copied =
              linalg::CopyOp::create(lb, ll, row, rowOf(tinv)).getResult(0);
          Value next = tensor::InsertSliceOp::create(lb, ll, copied, tinv, offs,
                                                     sizes, strides);
          scf::YieldOp::create(lb, ll, next);
        });
    Value tinv = solve.getResult(0);

    // X[i, n] = Σ_m M[i, m] Y[m, n] over (b, h, i, m, n): n innermost, so
    // both Y and X are read and written contiguously.
    AffineMap im = dimsMap(ctx, 5, {0, 1, 2, 3});
    AffineMap mnHead = dimsMap(ctx, 5, {0, 1, 3, 4});
    AffineMap mnTok = dimsMap(ctx, 5, {0, 3, 1, 4});
    AffineMap in = dimsMap(ctx, 5, {0, 1, 2, 4});
    SmallVector<IteratorType> mm = {P, P, P, R, P};
    auto fma = [&](OpBuilder &nb, Location nl, ValueRange args) {
      linalg::YieldOp::create(
          nb, nl, add(nb, nl, args[2], mul(nb, nl, args[0], args[1])));
    };
    // A_ak V, then W = T_inv aG and U = T_inv (A_ak V) in one pass over T_inv.
    Value akv =
        generic(b, l, ValueRange{aak, v}, ValueRange{zeros(b, l, lnSizes)},
                {im, mnTok, in}, mm, fma)[0];
    ValueRange wu = generic(
        b, l, ValueRange{tinv, aG, akv},
        ValueRange{zeros(b, l, lnSizes), zeros(b, l, lnSizes)},
        {im, mnHead, mnHead, in, in}, mm,
        [&](OpBuilder &nb, Location nl, ValueRange args) {
          linalg::YieldOp::create(
              nb, nl,
              ValueRange{add(nb, nl, args[3], mul(nb, nl, args[0], args[1])),
                         add(nb, nl, args[4], mul(nb, nl, args[0], args[2]))});
        });

    // Products with the start state, through S0ᵀ [B, H, key, value] so that
    // they take the same (b, h, i, c, v) form as above, v innermost:
    //   u = U + W S0ᵀ  (row i is sa_i, the S_{i-1} a_i of the recurrence)
    //   Y = (r e^Γ) S0ᵀ, written as [B, L, H, N]
    Value s0t = generic(b, l, ValueRange{s0}, ValueRange{emptyLike(b, l, s0)},
                        {dimsMap(ctx, 4, {0, 1, 3, 2}), id4}, {P, P, P, P},
                        [](OpBuilder &nb, Location nl, ValueRange args) {
                          linalg::YieldOp::create(nb, nl, args[0]);
                        })[0];
    Value u = generic(b, l, ValueRange{wu[0], s0t}, ValueRange{wu[1]},
                      {im, mnHead, in}, mm, fma)[0];
    // Y is computed in its slice of y, so the insert below is in place.
    Value ySlice = tensor::ExtractSliceOp::create(
        b, l, yAcc, ArrayRef<OpFoldResult>{zero, t0, zero}, inSizes, strides3);
    Value yZero = linalg::FillOp::create(b, l, f32(b, l, 0.0),
                                         splitHeads(b, l, ySlice, heads))
                      .getResult(0);
    Value yInter =
        generic(b, l, ValueRange{rG, s0t}, ValueRange{yZero},
                {im, mnHead, dimsMap(ctx, 5, {0, 2, 1, 4})}, mm, fma)[0];
    // Y += A_qk V + A_qb u over (b, h, i, j, v), v innermost.
    Value yChunk =
        generic(b, l, ValueRange{aqk, v, aqb, u}, ValueRange{yInter},
                {im, mnTok, im, mnHead, dimsMap(ctx, 5, {0, 2, 1, 4})}, mm,
                [&](OpBuilder &nb, Location nl, ValueRange args) {
                  Value qk = mul(nb, nl, args[0], args[1]);
                  Value qb = mul(nb, nl, args[2], args[3]);
                  linalg::YieldOp::create(
                      nb, nl, add(nb, nl, add(nb, nl, args[4], qk), qb));
                })[0];

    // S_end = S0 e^Γ_L + Σ_j (v_j kG_jᵀ + u_j bG_jᵀ) over (b, h, v, j, c), c
    // innermost; both generics update the loop-carried state in place.
    Value decay = buildElementwise(
        b, l, gammaLast, {gammaLast},
        [](OpBuilder &nb, Location nl, ValueRange in) {
          return math::ExpOp::create(nb, nl, in[0]).getResult();
        });
    Value decayed = generic(
        b, l, ValueRange{decay}, ValueRange{s0}, {key4, id4}, {P, P, P, P},
        [](OpBuilder &nb, Location nl, ValueRange args) {
          linalg::YieldOp::create(
              nb, nl,
              arith::MulFOp::create(nb, nl, args[1], args[0]).getResult());
        })[0];
    Value sEnd = generic(
        b, l, ValueRange{v, kG, u, bG}, ValueRange{decayed},
        {dimsMap(ctx, 5, {0, 3, 1, 2}), mnHead, dimsMap(ctx, 5, {0, 1, 3, 2}),
         mnHead, dimsMap(ctx, 5, {0, 1, 2, 4})},
        mm, [&](OpBuilder &nb, Location nl, ValueRange args) {
          Value vk = mul(nb, nl, args[0], args[1]);
          Value ub2 = mul(nb, nl, args[2], args[3]);
          linalg::YieldOp::create(nb, nl,
                                  add(nb, nl, add(nb, nl, args[4], vk), ub2));
        })[0];

    Value yRows = mergeHeads(b, l, yChunk);
    Value yNext = tensor::InsertSliceOp::create(
        b, l, yRows, yAcc, ArrayRef<OpFoldResult>{zero, t0, zero}, inSizes,
        strides3);
    return {sEnd, yNext};
  }
};

} // namespace

void rwkv::populateRWKVChunkedWKVToLinalgPatterns(RewritePatternSet &patterns) {
  // Preferred over the sequential lowering, which matches every mode.
  patterns.add<ChunkedWKVLowering>(patterns.getContext(), /*benefit=*/2);
}
