//===- Gradients.cpp - training ops (loss and adjoints) to linalg
//----------===//
//
// cross_entropy(_grad) walk the vocabulary in tiles of at most
// kMaxVocabTile rows so that only [B*T, tile] logits ever exist, with the
// products as projections (tiled, register-blocked, threaded); the norms'
// gradients recompute mean and rstd (two-pass, as the forward) instead of
// saving them; embed_grad is a scatter-add loop over positions.
//
//===----------------------------------------------------------------------===//

#include "codegen/RWKVToLinalg/Common.h"

#include "mlir/Dialect/Utils/StructuredOpsUtils.h"

#include <limits>

using namespace mlir;
using namespace mlir::rwkv;
using utils::IteratorType;

namespace {

/// Vocabulary rows per cross-entropy tile (at most): only [N, tile] logits
/// and logit gradients exist at a time, never [N, V]. Each tile's products
/// (logits, dW rows, dx) are projections, i.e. tiled over tokens and rows,
/// register-blocked and threaded; 512 rows keep the tile's logits of a
/// B=4 T=512 step at 4 MiB.
constexpr int64_t kMaxVocabTile = 512;

Value idx(OpBuilder &b, Location loc, int64_t v) {
  return arith::ConstantIndexOp::create(b, loc, v);
}

SmallVector<OpFoldResult> unitStrides(OpBuilder &b, unsigned rank) {
  return SmallVector<OpFoldResult>(rank, b.getIndexAttr(1));
}

/// [B, T, ...] -> [B*T, ...].
Value flattenTokens(OpBuilder &b, Location loc, Value v) {
  int64_t rank = llvm::cast<RankedTensorType>(v.getType()).getRank();
  SmallVector<ReassociationIndices> reassoc = {{0, 1}};
  for (int64_t i = 2; i < rank; ++i)
    reassoc.push_back({i});
  return tensor::CollapseShapeOp::create(b, loc, v, reassoc);
}

/// [B*T, C] -> the [B, T, C] shape of `like`.
Value unflattenTokens(OpBuilder &b, Location loc, Value v, Value like) {
  auto type = llvm::cast<RankedTensorType>(like.getType());
  auto resultType = RankedTensorType::get(
      type.getShape(),
      llvm::cast<RankedTensorType>(v.getType()).getElementType());
  SmallVector<ReassociationIndices> reassoc = {{0, 1}, {2}};
  return tensor::ExpandShapeOp::create(b, loc, resultType, v, reassoc,
                                       tensor::getMixedSizes(b, loc, like));
}

Value fill(OpBuilder &b, Location loc, ArrayRef<OpFoldResult> sizes,
           Value value) {
  Value init = tensor::EmptyOp::create(b, loc, sizes, value.getType());
  return linalg::FillOp::create(b, loc, value, init).getResult(0);
}

/// The extent of the last dimension as an f32 value.
Value lastDimF32(OpBuilder &b, Location loc, Value x) {
  int64_t rank = llvm::cast<RankedTensorType>(x.getType()).getRank();
  Value n = dimValue(b, loc, x, rank - 1);
  Value i = arith::IndexCastOp::create(b, loc, b.getI64Type(), n);
  return arith::SIToFPOp::create(b, loc, b.getF32Type(), i);
}

/// `target != ignore_index`, compared as i64 so an i32 id never wraps.
Value isCounted(OpBuilder &b, Location loc, Value target, int64_t ignore) {
  if (!target.getType().isInteger(64))
    target = arith::ExtSIOp::create(b, loc, b.getI64Type(), target);
  Value ig = arith::ConstantIntOp::create(b, loc, b.getI64Type(), ignore);
  return arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ne, target, ig);
}

/// `v == target` for the vocabulary index `v` (an index value).
Value isTarget(OpBuilder &b, Location loc, Value v, Value target) {
  Value vi = arith::IndexCastOp::create(b, loc, target.getType(), v);
  return arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, vi, target);
}

/// Rows [r0, r0 + size) of a [R, ...] tensor.
Value sliceRows(OpBuilder &b, Location loc, Value v, Value r0,
                OpFoldResult size) {
  auto type = llvm::cast<RankedTensorType>(v.getType());
  SmallVector<OpFoldResult> offsets(type.getRank(), b.getIndexAttr(0));
  offsets[0] = r0;
  SmallVector<OpFoldResult> sizes = {size};
  for (int64_t d = 1; d < type.getRank(); ++d)
    sizes.push_back(tensor::getMixedSize(b, loc, v, d));
  return tensor::ExtractSliceOp::create(b, loc, v, offsets, sizes,
                                        unitStrides(b, type.getRank()));
}

/// [N, K] -> [1, N, K], the activation form of a projection.
Value asActivation(OpBuilder &b, Location loc, Value v) {
  auto type = llvm::cast<RankedTensorType>(v.getType());
  auto resultType = RankedTensorType::get(
      {1, type.getDimSize(0), type.getDimSize(1)}, type.getElementType());
  return tensor::ExpandShapeOp::create(
      b, loc, resultType, v, SmallVector<ReassociationIndices>{{0, 1}, {2}},
      ArrayRef<OpFoldResult>{b.getIndexAttr(1),
                             tensor::getMixedSize(b, loc, v, 0),
                             tensor::getMixedSize(b, loc, v, 1)});
}

/// [1, N, K] -> [N, K].
Value dropUnit(OpBuilder &b, Location loc, Value v) {
  return tensor::CollapseShapeOp::create(
      b, loc, v, SmallVector<ReassociationIndices>{{0, 1}, {2}});
}

/// Number of counted targets of the flattened `[N]` ids, as tensor<f32>.
Value countTargets(OpBuilder &b, Location loc, Value targets, int64_t ignore) {
  MLIRContext *ctx = b.getContext();
  Value init = zeros(b, loc, {});
  return linalg::GenericOp::create(
             b, loc, TypeRange{init.getType()}, ValueRange{targets},
             ValueRange{init},
             ArrayRef<AffineMap>{AffineMap::getMultiDimIdentityMap(1, ctx),
                                 AffineMap::get(1, 0, {}, ctx)},
             ArrayRef<IteratorType>{IteratorType::reduction},
             [&](OpBuilder &nb, Location nl, ValueRange args) {
               Value one = arith::UIToFPOp::create(
                   nb, nl, nb.getF32Type(), isCounted(nb, nl, args[0], ignore));
               linalg::YieldOp::create(
                   nb, nl,
                   arith::AddFOp::create(nb, nl, args[1], one).getResult());
             })
      .getResult(0);
}

/// The vocabulary tile loop `for v0 = 0 to V step tile` over the rows of
/// `w`. The tile is the largest multiple of 16 up to kMaxVocabTile that
/// divides a static V, so every tile has the same static shape (the
/// register-blocked kernels need static reduction extents); otherwise
/// min(tile, V - v0) rows.
scf::ForOp vocabTileLoop(
    OpBuilder &b, Location loc, Value w, ValueRange inits,
    llvm::function_ref<SmallVector<Value>(OpBuilder &, Location, Value,
                                          OpFoldResult, ValueRange)>
        body) {
  int64_t vocab = llvm::cast<RankedTensorType>(w.getType()).getDimSize(0);
  int64_t tile = kMaxVocabTile;
  bool exact = false;
  if (!ShapedType::isDynamic(vocab)) {
    for (int64_t t = kMaxVocabTile; t >= 16 && !exact; t -= 16)
      if (vocab % t == 0) {
        tile = t;
        exact = true;
      }
    if (vocab <= kMaxVocabTile) {
      tile = vocab;
      exact = true;
    }
  }
  Value n = dimValue(b, loc, w, 0);
  Value step = idx(b, loc, tile);
  return scf::ForOp::create(
      b, loc, idx(b, loc, 0), n, step, inits,
      [&](OpBuilder &lb, Location l, Value v0, ValueRange iter) {
        OpFoldResult size = lb.getIndexAttr(tile);
        if (!exact)
          size = arith::MinSIOp::create(lb, l, step,
                                        arith::SubIOp::create(lb, l, n, v0))
                     .getResult();
        scf::YieldOp::create(lb, l, body(lb, l, v0, size, iter));
      });
}

/// Row statistics of the logits z[n, v] = Σ_c x[n, c] W[v, c] over the whole
/// vocabulary, accumulated one vocabulary tile at a time (online softmax:
/// the running sum is rescaled by exp(old max - new max) when the maximum
/// grows).
struct VocabStats {
  Value max;    // [N] f32
  Value sum;    // [N] Σ_v exp(z - max)
  Value target; // [N] z[target] (0 when no row matches), with `targets`
  Value argmax; // [N] i64 first argmax, with `withArgmax`
};

VocabStats buildVocabStats(OpBuilder &b, Location loc, Value x3, Value w,
                           Value targets, bool withArgmax) {
  MLIRContext *ctx = b.getContext();
  AffineExpr d0, d1;
  bindDims(ctx, d0, d1);
  auto fm = reductionFastMath(b);
  auto tileMap = AffineMap::get(2, 0, {d0, d1}, ctx);
  auto rowsMap = AffineMap::get(2, 0, {d0}, ctx);
  auto id1 = AffineMap::getMultiDimIdentityMap(1, ctx);
  SmallVector<OpFoldResult> rows = {tensor::getMixedSize(b, loc, x3, 1)};
  Value minusInf = f32Const(b, loc, -std::numeric_limits<double>::infinity());
  Value vocabI64 = arith::IndexCastOp::create(b, loc, b.getI64Type(),
                                              dimValue(b, loc, w, 0));
  SmallVector<Value> inits = {fill(b, loc, rows, minusInf),
                              zeros(b, loc, rows)};
  if (targets)
    inits.push_back(zeros(b, loc, rows));
  if (withArgmax)
    inits.push_back(fill(b, loc, rows, vocabI64));
  auto loop = vocabTileLoop(
      b, loc, w, inits,
      [&](OpBuilder &lb, Location l, Value v0, OpFoldResult size,
          ValueRange iter) -> SmallVector<Value> {
        Value mOld = iter[0], sOld = iter[1];
        Value ws = sliceRows(lb, l, w, v0, size);
        Value z = dropUnit(lb, l, buildProjection(lb, l, x3, ws, true));
        Value mt = linalg::GenericOp::create(
                       lb, l, TypeRange{mOld.getType()}, ValueRange{z},
                       ValueRange{fill(lb, l, rows, minusInf)},
                       ArrayRef<AffineMap>{tileMap, rowsMap},
                       ArrayRef<IteratorType>{IteratorType::parallel,
                                              IteratorType::reduction},
                       [&](OpBuilder &nb, Location nl, ValueRange args) {
                         linalg::YieldOp::create(
                             nb, nl,
                             arith::MaximumFOp::create(nb, nl, args[1], args[0])
                                 .getResult());
                       })
                       .getResult(0);
        // Σ_v exp(z - max(mOld, mt)); z[target] (selected, never gathered:
        // an ignored id may be out of range); the tile's first argmax.
        SmallVector<Value> ins = {z, mOld, mt};
        SmallVector<AffineMap> maps = {tileMap, rowsMap, rowsMap};
        if (targets) {
          ins.push_back(targets);
          maps.push_back(rowsMap);
        }
        SmallVector<Value> outs = {zeros(lb, l, rows)};
        if (targets)
          outs.push_back(iter[2]);
        if (withArgmax)
          outs.push_back(fill(lb, l, rows, vocabI64));
        for (size_t i = 0; i < outs.size(); ++i)
          maps.push_back(rowsMap);
        auto st = linalg::GenericOp::create(
            lb, l, ValueRange(outs).getTypes(), ins, outs, maps,
            ArrayRef<IteratorType>{IteratorType::parallel,
                                   IteratorType::reduction},
            [&](OpBuilder &nb, Location nl, ValueRange args) {
              Value m = arith::MaximumFOp::create(nb, nl, args[1], args[2]);
              Value e = math::ExpOp::create(
                  nb, nl, arith::SubFOp::create(nb, nl, args[0], m));
              unsigned o = ins.size();
              SmallVector<Value> res = {
                  arith::AddFOp::create(nb, nl, args[o], e, fm)};
              Value v = arith::AddIOp::create(
                  nb, nl, linalg::IndexOp::create(nb, nl, 1), v0);
              if (targets)
                res.push_back(arith::SelectOp::create(
                    nb, nl, isTarget(nb, nl, v, args[3]), args[0],
                    args[o + 1]));
              if (withArgmax) {
                // Lowest index on ties: z == max exactly at the maxima.
                Value acc = args[o + res.size()];
                Value vi =
                    arith::IndexCastOp::create(nb, nl, nb.getI64Type(), v);
                Value isMax = arith::CmpFOp::create(
                    nb, nl, arith::CmpFPredicate::OEQ, args[0], args[2]);
                Value lower = arith::MinSIOp::create(nb, nl, acc, vi);
                res.push_back(
                    arith::SelectOp::create(nb, nl, isMax, lower, acc));
              }
              linalg::YieldOp::create(nb, nl, res);
            });
        // Merge into the running statistics (in place: the loop-carried
        // tensors are the outputs); a later tile's argmax wins only with a
        // strictly larger maximum (first argmax overall).
        SmallVector<Value> cIns = {mt, st.getResult(0)};
        SmallVector<Value> cOuts = {mOld, sOld};
        if (withArgmax) {
          cIns.push_back(st->getResults().back());
          cOuts.push_back(iter.back());
        }
        SmallVector<AffineMap> cMaps(cIns.size() + cOuts.size(), id1);
        auto merged = linalg::GenericOp::create(
            lb, l, ValueRange(cOuts).getTypes(), cIns, cOuts, cMaps,
            ArrayRef<IteratorType>{IteratorType::parallel},
            [&](OpBuilder &nb, Location nl, ValueRange args) {
              unsigned o = cIns.size();
              Value mo = args[o], so = args[o + 1];
              Value m = arith::MaximumFOp::create(nb, nl, mo, args[0]);
              Value r = math::ExpOp::create(
                  nb, nl, arith::SubFOp::create(nb, nl, mo, m));
              Value s = arith::AddFOp::create(
                  nb, nl, arith::MulFOp::create(nb, nl, so, r), args[1]);
              SmallVector<Value> res = {m, s};
              if (withArgmax) {
                Value grew = arith::CmpFOp::create(
                    nb, nl, arith::CmpFPredicate::OGT, args[0], mo);
                res.push_back(arith::SelectOp::create(nb, nl, grew, args[2],
                                                      args[o + 2]));
              }
              linalg::YieldOp::create(nb, nl, res);
            });
        SmallVector<Value> next = {merged.getResult(0), merged.getResult(1)};
        if (targets)
          next.push_back(st.getResult(1));
        if (withArgmax)
          next.push_back(merged.getResult(2));
        return next;
      });
  VocabStats stats;
  stats.max = loop.getResult(0);
  stats.sum = loop.getResult(1);
  unsigned i = 2;
  if (targets)
    stats.target = loop.getResult(i++);
  if (withArgmax)
    stats.argmax = loop.getResult(i++);
  return stats;
}

/// x / count as a 0-d tensor, 0 when count is 0 (no counted target).
Value divideByCount(OpBuilder &b, Location loc, Value x, Value count) {
  Value out =
      tensor::EmptyOp::create(b, loc, ArrayRef<int64_t>{}, b.getF32Type());
  auto scalar = AffineMap::get(0, 0, {}, b.getContext());
  return linalg::GenericOp::create(
             b, loc, TypeRange{out.getType()}, ValueRange{x, count},
             ValueRange{out}, ArrayRef<AffineMap>{scalar, scalar, scalar},
             ArrayRef<IteratorType>{},
             [&](OpBuilder &nb, Location nl, ValueRange args) {
               Value zero = f32Const(nb, nl, 0.0);
               Value any = arith::CmpFOp::create(
                   nb, nl, arith::CmpFPredicate::OGT, args[1], zero);
               Value q = arith::DivFOp::create(nb, nl, args[0], args[1]);
               linalg::YieldOp::create(
                   nb, nl,
                   arith::SelectOp::create(nb, nl, any, q, zero).getResult());
             })
      .getResult(0);
}

/// The mean over the counted rows of max + log Σ - z[target] (0 when no row
/// is counted), from the statistics of `targets` [N].
Value buildMeanLoss(OpBuilder &rewriter, Location loc, const VocabStats &stats,
                    Value t1, int64_t ignore) {
  MLIRContext *ctx = rewriter.getContext();

  // Σ over the counted rows of max + log Σ - z[target], and the count.
  auto id1 = AffineMap::getMultiDimIdentityMap(1, ctx);
  auto toScalar = AffineMap::get(1, 0, {}, ctx);
  Value sumInit = zeros(rewriter, loc, {});
  Value countInit = zeros(rewriter, loc, {});
  auto acc = linalg::GenericOp::create(
      rewriter, loc, TypeRange{sumInit.getType(), countInit.getType()},
      ValueRange{stats.max, stats.sum, stats.target, t1},
      ValueRange{sumInit, countInit},
      ArrayRef<AffineMap>{id1, id1, id1, id1, toScalar, toScalar},
      ArrayRef<IteratorType>{IteratorType::reduction},
      [&](OpBuilder &nb, Location nl, ValueRange args) {
        Value lse = arith::AddFOp::create(nb, nl, args[0],
                                          math::LogOp::create(nb, nl, args[1]));
        Value loss = arith::SubFOp::create(nb, nl, lse, args[2]);
        Value counted = isCounted(nb, nl, args[3], ignore);
        Value zero = f32Const(nb, nl, 0.0);
        Value one = f32Const(nb, nl, 1.0);
        Value sl = arith::AddFOp::create(
            nb, nl, args[4],
            arith::SelectOp::create(nb, nl, counted, loss, zero));
        Value sc = arith::AddFOp::create(
            nb, nl, args[5],
            arith::SelectOp::create(nb, nl, counted, one, zero));
        linalg::YieldOp::create(nb, nl, ValueRange{sl, sc});
      });

  // mean = Σ / count, 0 when nothing was counted.
  Value loss = divideByCount(rewriter, loc, acc.getResult(0), acc.getResult(1));
  return loss;
}

struct CrossEntropyLowering final : OpConversionPattern<CrossEntropyOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(CrossEntropyOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    int64_t ignore = op.getIgnoreIndex();
    Value x2 = flattenTokens(rewriter, loc, adaptor.getInput());
    Value t1 = flattenTokens(rewriter, loc, adaptor.getTargets());
    Value w = adaptor.getWeight();
    VocabStats stats = buildVocabStats(
        rewriter, loc, asActivation(rewriter, loc, x2), w, t1, false);
    Value loss = buildMeanLoss(rewriter, loc, stats, t1, ignore);
    rewriter.replaceOp(op, loss);
    return success();
  }
};

/// Two passes over the vocabulary tiles: the softmax statistics, then per
/// tile the logit gradient g = (softmax - onehot) * scale, its dW rows
/// gᵀ x (a complete reduction over the N tokens) and its share g W of dx
/// (added to the running dx). Three projections per tile and one for the
/// statistics: the logits are computed twice, never stored whole.
/// {dx, dW} of `op`, plus the mean loss when `withLoss` (the statistics
/// pass then also collects z[target]: the forward cross_entropy of the same
/// operands needs no logits of its own).
SmallVector<Value> buildCrossEntropyGrad(OpBuilder &rewriter,
                                         CrossEntropyGradOp op, Value x,
                                         Value w, Value targets, Value dloss,
                                         bool withLoss) {
  Location loc = op.getLoc();
  MLIRContext *ctx = rewriter.getContext();
  int64_t ignore = op.getIgnoreIndex();
  float l2wrap = op.getL2wrap().convertToFloat();
  Value x2 = flattenTokens(rewriter, loc, x);
  Value t1 = flattenTokens(rewriter, loc, targets);
  AffineExpr d0, d1;
  bindDims(ctx, d0, d1);

  // scale = dloss / count (0 when nothing is counted): the whole batch's
  // count is needed before the first tile's gradient.
  Value count = countTargets(rewriter, loc, t1, ignore);
  Value scale = divideByCount(rewriter, loc, dloss, count);

  Value x3 = asActivation(rewriter, loc, x2);
  VocabStats stats = buildVocabStats(rewriter, loc, x3, w,
                                     withLoss ? t1 : Value(), l2wrap > 0.0f);
  // xᵀ [C, N]: the dW rows reduce over the tokens along contiguous rows.
  Value xT = buildTranspose(rewriter, loc, x2);
  Value dxInit = zeros(rewriter, loc, tensor::getMixedSizes(rewriter, loc, x3));
  Value dwInit = tensor::EmptyOp::create(
      rewriter, loc, tensor::getMixedSizes(rewriter, loc, w),
      rewriter.getF32Type());
  auto loop = vocabTileLoop(
      rewriter, loc, w, ValueRange{dxInit, dwInit},
      [&](OpBuilder &b, Location l, Value v0, OpFoldResult size,
          ValueRange iter) -> SmallVector<Value> {
        Value ws = sliceRows(b, l, w, v0, size);
        Value z = dropUnit(b, l, buildProjection(b, l, x3, ws, true));
        auto rowsMap = AffineMap::get(2, 0, {d0}, ctx);
        auto tileMap = AffineMap::get(2, 0, {d0, d1}, ctx);
        // g = (softmax - onehot) * scale (+ L2Wrap), 0 on ignored rows,
        // written both [N, tile] (for dx) and [tile, N] (for dW).
        SmallVector<Value> gIns = {z, stats.max, stats.sum, t1, scale};
        SmallVector<AffineMap> gMaps = {tileMap, rowsMap, rowsMap, rowsMap,
                                        AffineMap::get(2, 0, {}, ctx)};
        if (l2wrap > 0.0f) {
          gIns.push_back(stats.argmax);
          gMaps.push_back(rowsMap);
        }
        gMaps.push_back(tileMap);
        gMaps.push_back(AffineMap::get(2, 0, {d1, d0}, ctx));
        OpFoldResult nTok = tensor::getMixedSize(b, l, z, 0);
        Value gInit = tensor::EmptyOp::create(
            b, l, ArrayRef<OpFoldResult>{nTok, size}, b.getF32Type());
        Value gTInit = tensor::EmptyOp::create(
            b, l, ArrayRef<OpFoldResult>{size, nTok}, b.getF32Type());
        SmallVector<IteratorType> par2(2, IteratorType::parallel);
        auto gOp = linalg::GenericOp::create(
            b, l, TypeRange{gInit.getType(), gTInit.getType()}, gIns,
            ValueRange{gInit, gTInit}, gMaps, par2,
            [&](OpBuilder &nb, Location nl, ValueRange args) {
              Value zero = f32Const(nb, nl, 0.0);
              Value one = f32Const(nb, nl, 1.0);
              Value d = arith::SubFOp::create(nb, nl, args[0], args[1]);
              Value e = math::ExpOp::create(nb, nl, d);
              Value p = arith::DivFOp::create(nb, nl, e, args[2]);
              Value v = arith::AddIOp::create(
                  nb, nl, linalg::IndexOp::create(nb, nl, 1), v0);
              Value hot = arith::SelectOp::create(
                  nb, nl, isTarget(nb, nl, v, args[3]), one, zero);
              Value gv = arith::MulFOp::create(
                  nb, nl, arith::SubFOp::create(nb, nl, p, hot), args[4]);
              if (l2wrap > 0.0f) {
                Value vi =
                    arith::IndexCastOp::create(nb, nl, nb.getI64Type(), v);
                Value atMax = arith::CmpIOp::create(
                    nb, nl, arith::CmpIPredicate::eq, vi, args[5]);
                Value extra = arith::MulFOp::create(
                    nb, nl,
                    arith::MulFOp::create(nb, nl, f32Const(nb, nl, l2wrap),
                                          args[4]),
                    args[1]);
                gv = arith::AddFOp::create(
                    nb, nl, gv,
                    arith::SelectOp::create(nb, nl, atMax, extra, zero));
              }
              Value counted = isCounted(nb, nl, args[3], ignore);
              Value gc = arith::SelectOp::create(nb, nl, counted, gv, zero);
              linalg::YieldOp::create(nb, nl, ValueRange{gc, gc});
            });
        // dx += g W[tile]: a projection of g with the tile's rows
        // transposed to [C, tile].
        Value dx = buildProjection(b, l, asActivation(b, l, gOp.getResult(0)),
                                   buildTranspose(b, l, ws), true, iter[0]);
        // dW[tile] = gᵀ x.
        Value dwRows =
            dropUnit(b, l,
                     buildProjection(b, l, asActivation(b, l, gOp.getResult(1)),
                                     xT, true));
        Value dw = tensor::InsertSliceOp::create(
            b, l, dwRows, iter[1],
            ArrayRef<OpFoldResult>{v0, b.getIndexAttr(0)},
            ArrayRef<OpFoldResult>{size, tensor::getMixedSize(b, l, w, 1)},
            unitStrides(b, 2));
        return {dx, dw};
      });

  Value dx = unflattenTokens(rewriter, loc,
                             dropUnit(rewriter, loc, loop.getResult(0)), x);
  SmallVector<Value> results = {
      castTo(rewriter, loc, dx, op.getInputGrad().getType()),
      castTo(rewriter, loc, loop.getResult(1), op.getWeightGrad().getType())};
  if (withLoss)
    results.push_back(buildMeanLoss(rewriter, loc, stats, t1, ignore));
  return results;
}

struct CrossEntropyGradLowering final
    : OpConversionPattern<CrossEntropyGradOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(CrossEntropyGradOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    rewriter.replaceOp(
        op, buildCrossEntropyGrad(rewriter, op, adaptor.getInput(),
                                  adaptor.getWeight(), adaptor.getTargets(),
                                  adaptor.getDloss(), /*withLoss=*/false));
    return success();
  }
};

/// A training step computes the loss (cross_entropy) and, later, its
/// gradient (cross_entropy_grad) of the same logits: lowered separately that
/// is three passes of [N, V] logits products (loss statistics, gradient
/// statistics, gradient). Lowered together at the gradient, the one
/// statistics pass also yields the loss: two. Applies when every use of the
/// loss comes after the gradient op in its block (the step's return).
struct CrossEntropyPairLowering final : OpRewritePattern<CrossEntropyGradOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(CrossEntropyGradOp op,
                                PatternRewriter &rewriter) const override {
    CrossEntropyOp fwd;
    for (Operation *user : op.getInput().getUsers()) {
      auto ce = dyn_cast<CrossEntropyOp>(user);
      if (ce && ce->getBlock() == op->getBlock() && ce->isBeforeInBlock(op) &&
          ce.getWeight() == op.getWeight() &&
          ce.getTargets() == op.getTargets() &&
          ce.getIgnoreIndex() == op.getIgnoreIndex())
        fwd = ce;
    }
    if (!fwd)
      return rewriter.notifyMatchFailure(op, "no loss of the same logits");
    for (Operation *user : fwd.getLoss().getUsers())
      if (user->getBlock() != op->getBlock() || !op->isBeforeInBlock(user))
        return rewriter.notifyMatchFailure(op, "the loss is used earlier");
    rewriter.setInsertionPoint(op);
    SmallVector<Value> res =
        buildCrossEntropyGrad(rewriter, op, op.getInput(), op.getWeight(),
                              op.getTargets(), op.getDloss(), true);
    rewriter.replaceOp(fwd, res[2]);
    rewriter.replaceOp(op, ValueRange{res[0], res[1]});
    return success();
  }
};

/// Scatter-add: a loop over the B*T positions, each adding its dy row into
/// row tokens[p] of the loop-carried table (extract/insert of one row, which
/// bufferizes in place). Cost O(B*T*C), independent of V.
struct EmbedGradLowering final : OpConversionPattern<EmbedGradOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(EmbedGradOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    MLIRContext *ctx = rewriter.getContext();
    auto tableType = llvm::cast<RankedTensorType>(op.getTableGrad().getType());
    int64_t vocab = tableType.getDimSize(0);
    if (ShapedType::isDynamic(vocab))
      return rewriter.notifyMatchFailure(op, "vocabulary size must be static");
    Value dy2 = flattenTokens(rewriter, loc, adaptor.getResultGrad());
    Value ids = flattenTokens(rewriter, loc, adaptor.getTokens());
    OpFoldResult c = tensor::getMixedSize(rewriter, loc, dy2, 1);
    Value table = zeros(
        rewriter, loc, ArrayRef<OpFoldResult>{rewriter.getIndexAttr(vocab), c});
    Value n = dimValue(rewriter, loc, dy2, 0);
    auto rowType = RankedTensorType::get(
        {llvm::cast<RankedTensorType>(dy2.getType()).getDimSize(1)},
        rewriter.getF32Type());
    auto id1 = AffineMap::getMultiDimIdentityMap(1, ctx);
    auto loop = scf::ForOp::create(
        rewriter, loc, idx(rewriter, loc, 0), n, idx(rewriter, loc, 1),
        ValueRange{table},
        [&](OpBuilder &b, Location l, Value p, ValueRange iter) {
          Value id = tensor::ExtractOp::create(b, l, ids, ValueRange{p});
          Value row = arith::IndexCastOp::create(b, l, b.getIndexType(), id);
          // An out-of-range id adds nothing (to row 0) instead of writing
          // out of bounds.
          Value inRange = arith::AndIOp::create(
              b, l,
              arith::CmpIOp::create(b, l, arith::CmpIPredicate::sge, row,
                                    idx(b, l, 0)),
              arith::CmpIOp::create(b, l, arith::CmpIPredicate::slt, row,
                                    idx(b, l, vocab)));
          row = arith::SelectOp::create(b, l, inRange, row, idx(b, l, 0));
          SmallVector<OpFoldResult> sizes = {b.getIndexAttr(1), c};
          Value dst = tensor::ExtractSliceOp::create(
              b, l, rowType, iter[0],
              ArrayRef<OpFoldResult>{row, b.getIndexAttr(0)}, sizes,
              unitStrides(b, 2));
          Value src = tensor::ExtractSliceOp::create(
              b, l, rowType, dy2, ArrayRef<OpFoldResult>{p, b.getIndexAttr(0)},
              sizes, unitStrides(b, 2));
          Value sum =
              linalg::GenericOp::create(
                  b, l, TypeRange{rowType}, ValueRange{src}, ValueRange{dst},
                  ArrayRef<AffineMap>{id1, id1},
                  ArrayRef<IteratorType>{IteratorType::parallel},
                  [&](OpBuilder &nb, Location nl, ValueRange args) {
                    Value add = arith::SelectOp::create(
                        nb, nl, inRange, args[0], f32Const(nb, nl, 0.0));
                    linalg::YieldOp::create(
                        nb, nl,
                        arith::AddFOp::create(nb, nl, args[1], add)
                            .getResult());
                  })
                  .getResult(0);
          Value next = tensor::InsertSliceOp::create(
              b, l, sum, iter[0],
              ArrayRef<OpFoldResult>{row, b.getIndexAttr(0)}, sizes,
              unitStrides(b, 2));
          scf::YieldOp::create(b, l, next);
        });
    rewriter.replaceOp(op, castTo(rewriter, loc, loop.getResult(0),
                                  op.getTableGrad().getType()));
    return success();
  }
};

/// Backward of a normalisation over the last dimension of `x`, whose affine
/// weight is indexed by the trailing `paramDims` dimensions. Returns dx and
/// dweight, dbias with the shape of those trailing dimensions.
std::array<Value, 3> buildNormGrad(OpBuilder &b, Location loc, Value x, Value w,
                                   Value dy, float eps, unsigned paramDims) {
  MLIRContext *ctx = b.getContext();
  unsigned rank = llvm::cast<RankedTensorType>(x.getType()).getRank();
  auto full = AffineMap::getMultiDimIdentityMap(rank, ctx);
  auto rowMap = full.dropResult(rank - 1);
  SmallVector<AffineExpr> paramExprs;
  for (unsigned d = rank - paramDims; d < rank; ++d)
    paramExprs.push_back(getAffineDimExpr(d, ctx));
  auto paramMap = AffineMap::get(rank, 0, paramExprs, ctx);
  SmallVector<IteratorType> lastRed(rank, IteratorType::parallel);
  lastRed.back() = IteratorType::reduction;
  SmallVector<IteratorType> par(rank, IteratorType::parallel);
  auto fm = reductionFastMath(b);
  Value n = lastDimF32(b, loc, x);

  SmallVector<OpFoldResult> rowSizes = tensor::getMixedSizes(b, loc, x);
  rowSizes.pop_back();
  Value sumInit = zeros(b, loc, rowSizes);
  Value sum =
      linalg::GenericOp::create(
          b, loc, TypeRange{sumInit.getType()}, ValueRange{x},
          ValueRange{sumInit}, ArrayRef<AffineMap>{full, rowMap}, lastRed,
          [&](OpBuilder &nb, Location nl, ValueRange args) {
            linalg::YieldOp::create(
                nb, nl,
                arith::AddFOp::create(nb, nl, args[1], args[0], fm)
                    .getResult());
          })
          .getResult(0);
  Value sq =
      linalg::GenericOp::create(
          b, loc, TypeRange{sum.getType()}, ValueRange{x, sum},
          ValueRange{zeros(b, loc, rowSizes)},
          ArrayRef<AffineMap>{full, rowMap, rowMap}, lastRed,
          [&](OpBuilder &nb, Location nl, ValueRange args) {
            Value mean = arith::DivFOp::create(nb, nl, args[1], n);
            Value d = arith::SubFOp::create(nb, nl, args[0], mean);
            Value d2 = arith::MulFOp::create(nb, nl, d, d);
            linalg::YieldOp::create(
                nb, nl,
                arith::AddFOp::create(nb, nl, args[2], d2, fm).getResult());
          })
          .getResult(0);
  // mean and rstd = 1 / sqrt(var + eps) per row.
  auto rowId = AffineMap::getMultiDimIdentityMap(rank - 1, ctx);
  Value rowInit = tensor::EmptyOp::create(b, loc, rowSizes, b.getF32Type());
  auto stats = linalg::GenericOp::create(
      b, loc, TypeRange{sum.getType(), sum.getType()}, ValueRange{sum, sq},
      ValueRange{rowInit,
                 tensor::EmptyOp::create(b, loc, rowSizes, b.getF32Type())},
      ArrayRef<AffineMap>{rowId, rowId, rowId, rowId},
      SmallVector<IteratorType>(rank - 1, IteratorType::parallel),
      [&](OpBuilder &nb, Location nl, ValueRange args) {
        Value mean = arith::DivFOp::create(nb, nl, args[0], n);
        Value var = arith::DivFOp::create(nb, nl, args[1], n);
        Value ve = arith::AddFOp::create(nb, nl, var, f32Const(nb, nl, eps));
        Value rstd = math::RsqrtOp::create(nb, nl, ve);
        linalg::YieldOp::create(nb, nl, ValueRange{mean, rstd});
      });
  Value mean = stats.getResult(0), rstd = stats.getResult(1);
  auto xhatOf = [&](OpBuilder &nb, Location nl, Value xv, Value m, Value r) {
    return arith::MulFOp::create(nb, nl, arith::SubFOp::create(nb, nl, xv, m),
                                 r)
        .getResult();
  };

  // Σ gw and Σ gw * xhat per row (gw = dy * weight).
  auto sums = linalg::GenericOp::create(
      b, loc, TypeRange{sum.getType(), sum.getType()},
      ValueRange{x, dy, w, mean, rstd},
      ValueRange{zeros(b, loc, rowSizes), zeros(b, loc, rowSizes)},
      ArrayRef<AffineMap>{full, full, paramMap, rowMap, rowMap, rowMap, rowMap},
      lastRed, [&](OpBuilder &nb, Location nl, ValueRange args) {
        Value xhat = xhatOf(nb, nl, args[0], args[3], args[4]);
        Value gw =
            arith::MulFOp::create(nb, nl, args[1], toF32(nb, nl, args[2]));
        Value a = arith::AddFOp::create(nb, nl, args[5], gw, fm);
        Value gx = arith::MulFOp::create(nb, nl, gw, xhat);
        Value c = arith::AddFOp::create(nb, nl, args[6], gx, fm);
        linalg::YieldOp::create(nb, nl, ValueRange{a, c});
      });

  // dx = rstd * (gw - mean(gw) - xhat * mean(gw * xhat)).
  Value dxInit = emptyLike(b, loc, x, b.getF32Type());
  Value dx =
      linalg::GenericOp::create(
          b, loc, TypeRange{dxInit.getType()},
          ValueRange{x, dy, w, mean, rstd, sums.getResult(0),
                     sums.getResult(1)},
          ValueRange{dxInit},
          ArrayRef<AffineMap>{full, full, paramMap, rowMap, rowMap, rowMap,
                              rowMap, full},
          par,
          [&](OpBuilder &nb, Location nl, ValueRange args) {
            Value xhat = xhatOf(nb, nl, args[0], args[3], args[4]);
            Value gw =
                arith::MulFOp::create(nb, nl, args[1], toF32(nb, nl, args[2]));
            Value ma = arith::DivFOp::create(nb, nl, args[5], n);
            Value mc = arith::DivFOp::create(nb, nl, args[6], n);
            Value t = arith::SubFOp::create(nb, nl, gw, ma);
            t = arith::SubFOp::create(nb, nl, t,
                                      arith::MulFOp::create(nb, nl, xhat, mc));
            linalg::YieldOp::create(
                nb, nl, arith::MulFOp::create(nb, nl, args[4], t).getResult());
          })
          .getResult(0);

  // dweight = Σ dy * xhat, dbias = Σ dy over the leading dims.
  SmallVector<IteratorType> paramIters(rank, IteratorType::reduction);
  for (unsigned d = rank - paramDims; d < rank; ++d)
    paramIters[d] = IteratorType::parallel;
  SmallVector<OpFoldResult> paramSizes = tensor::getMixedSizes(b, loc, x);
  paramSizes.erase(paramSizes.begin(), paramSizes.end() - paramDims);
  Value pz = zeros(b, loc, paramSizes);
  auto pgrads = linalg::GenericOp::create(
      b, loc, TypeRange{pz.getType(), pz.getType()},
      ValueRange{x, dy, mean, rstd}, ValueRange{pz, zeros(b, loc, paramSizes)},
      ArrayRef<AffineMap>{full, full, rowMap, rowMap, paramMap, paramMap},
      paramIters, [&](OpBuilder &nb, Location nl, ValueRange args) {
        Value xhat = xhatOf(nb, nl, args[0], args[2], args[3]);
        Value gx = arith::MulFOp::create(nb, nl, args[1], xhat);
        Value dwv = arith::AddFOp::create(nb, nl, args[4], gx, fm);
        Value dbv = arith::AddFOp::create(nb, nl, args[5], args[1], fm);
        linalg::YieldOp::create(nb, nl, ValueRange{dwv, dbv});
      });
  return {dx, pgrads.getResult(0), pgrads.getResult(1)};
}

struct LayerNormGradLowering final : OpConversionPattern<LayerNormGradOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(LayerNormGradOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    auto [dx, dw, db] = buildNormGrad(
        rewriter, loc, adaptor.getInput(), adaptor.getWeight(),
        adaptor.getResultGrad(), op.getEpsilon().convertToFloat(), 1);
    rewriter.replaceOp(op,
                       {castTo(rewriter, loc, dx, op.getInputGrad().getType()),
                        castTo(rewriter, loc, dw, op.getWeightGrad().getType()),
                        castTo(rewriter, loc, db, op.getBiasGrad().getType())});
    return success();
  }
};

struct GroupNormGradLowering final : OpConversionPattern<GroupNormGradOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(GroupNormGradOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    int64_t groups = op.getNumGroups();
    Value x4 = splitHeads(rewriter, loc, adaptor.getInput(), groups);
    Value dy4 = splitHeads(rewriter, loc, adaptor.getResultGrad(), groups);
    Value w2 = splitHeads(rewriter, loc, adaptor.getWeight(), groups);
    auto [dx4, dw2, db2] = buildNormGrad(rewriter, loc, x4, w2, dy4,
                                         op.getEpsilon().convertToFloat(), 2);
    Value dx = mergeHeads(rewriter, loc, dx4);
    Value dw = mergeHeads(rewriter, loc, dw2);
    Value db = mergeHeads(rewriter, loc, db2);
    rewriter.replaceOp(op,
                       {castTo(rewriter, loc, dx, op.getInputGrad().getType()),
                        castTo(rewriter, loc, dw, op.getWeightGrad().getType()),
                        castTo(rewriter, loc, db, op.getBiasGrad().getType())});
    return success();
  }
};

struct L2NormalizeGradLowering final : OpConversionPattern<L2NormalizeGradOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(L2NormalizeGradOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    MLIRContext *ctx = rewriter.getContext();
    int64_t heads = op.getNumHeads();
    float eps = op.getEpsilon().convertToFloat();
    Value x4 = splitHeads(rewriter, loc, adaptor.getInput(), heads);
    Value dy4 = splitHeads(rewriter, loc, adaptor.getResultGrad(), heads);
    auto full = AffineMap::getMultiDimIdentityMap(4, ctx);
    auto rowMap = full.dropResult(3);
    auto fm = reductionFastMath(rewriter);
    SmallVector<OpFoldResult> rowSizes =
        tensor::getMixedSizes(rewriter, loc, x4);
    rowSizes.pop_back();
    Value z = zeros(rewriter, loc, rowSizes);
    // ||x||² and x · dy per head.
    auto sums = linalg::GenericOp::create(
        rewriter, loc, TypeRange{z.getType(), z.getType()}, ValueRange{x4, dy4},
        ValueRange{z, zeros(rewriter, loc, rowSizes)},
        ArrayRef<AffineMap>{full, full, rowMap, rowMap},
        ArrayRef<IteratorType>{IteratorType::parallel, IteratorType::parallel,
                               IteratorType::parallel, IteratorType::reduction},
        [&](OpBuilder &nb, Location nl, ValueRange args) {
          Value xx = arith::MulFOp::create(nb, nl, args[0], args[0]);
          Value xd = arith::MulFOp::create(nb, nl, args[0], args[1]);
          linalg::YieldOp::create(
              nb, nl,
              ValueRange{arith::AddFOp::create(nb, nl, args[2], xx, fm),
                         arith::AddFOp::create(nb, nl, args[3], xd, fm)});
        });
    Value init = emptyLike(rewriter, loc, x4);
    Value dx4 =
        linalg::GenericOp::create(
            rewriter, loc, TypeRange{init.getType()},
            ValueRange{x4, dy4, sums.getResult(0), sums.getResult(1)},
            ValueRange{init},
            ArrayRef<AffineMap>{full, full, rowMap, rowMap, full},
            SmallVector<IteratorType>(4, IteratorType::parallel),
            [&](OpBuilder &nb, Location nl, ValueRange args) {
              // (dy - y (y·dy)) / n = (dy - x (x·dy) / n²) / n; where the
              // clamp is active y = x / eps is linear: dx = dy / eps.
              Value epsV = f32Const(nb, nl, eps);
              Value norm = math::SqrtOp::create(nb, nl, args[2]);
              Value q = arith::DivFOp::create(nb, nl, args[3], args[2]);
              Value t = arith::SubFOp::create(
                  nb, nl, args[1], arith::MulFOp::create(nb, nl, args[0], q));
              Value unclamped = arith::DivFOp::create(nb, nl, t, norm);
              Value clamped = arith::DivFOp::create(nb, nl, args[1], epsV);
              Value big = arith::CmpFOp::create(
                  nb, nl, arith::CmpFPredicate::OGT, norm, epsV);
              linalg::YieldOp::create(
                  nb, nl,
                  arith::SelectOp::create(nb, nl, big, unclamped, clamped)
                      .getResult());
            })
            .getResult(0);
    Value dx = mergeHeads(rewriter, loc, dx4);
    rewriter.replaceOp(op, castTo(rewriter, loc, dx, op.getType()));
    return success();
  }
};

/// The adjoint of token_shift's two gathers, again as gathers so it fuses
/// with its consumers: dinput[b, t] reads dshifted[b, t + 1] (clamped) or
/// dlast[b] at t = T - 1; dprev[b] = dshifted[b, 0].
struct TokenShiftGradLowering final : OpConversionPattern<TokenShiftGradOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(TokenShiftGradOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    MLIRContext *ctx = rewriter.getContext();
    Value ds = adaptor.getShiftedGrad();
    Value dlast = adaptor.getLastGrad();
    Value t = dimValue(rewriter, loc, ds, 1);
    Value lastIdx =
        arith::SubIOp::create(rewriter, loc, t, idx(rewriter, loc, 1));
    AffineExpr d0, d1, d2;
    bindDims(ctx, d0, d1, d2);

    Value inInit = emptyLike(rewriter, loc, ds);
    Value dinput =
        linalg::GenericOp::create(
            rewriter, loc, TypeRange{inInit.getType()}, ValueRange{dlast},
            ValueRange{inInit},
            ArrayRef<AffineMap>{AffineMap::get(3, 0, {d0, d2}, ctx),
                                AffineMap::getMultiDimIdentityMap(3, ctx)},
            SmallVector<IteratorType>(3, IteratorType::parallel),
            [&](OpBuilder &b, Location l, ValueRange args) {
              Value bi = linalg::IndexOp::create(b, l, 0);
              Value ti = linalg::IndexOp::create(b, l, 1);
              Value ci = linalg::IndexOp::create(b, l, 2);
              Value isLast = arith::CmpIOp::create(
                  b, l, arith::CmpIPredicate::eq, ti, lastIdx);
              // Clamp so the (discarded) read at t = T - 1 stays in bounds.
              Value next = arith::MinUIOp::create(
                  b, l, arith::AddIOp::create(b, l, ti, idx(b, l, 1)), lastIdx);
              Value fromS =
                  tensor::ExtractOp::create(b, l, ds, ValueRange{bi, next, ci});
              linalg::YieldOp::create(
                  b, l,
                  arith::SelectOp::create(b, l, isLast, args[0], fromS)
                      .getResult());
            })
            .getResult(0);

    Value prevInit = emptyLike(rewriter, loc, dlast);
    Value dprev =
        linalg::GenericOp::create(
            rewriter, loc, TypeRange{prevInit.getType()}, ValueRange{},
            ValueRange{prevInit},
            ArrayRef<AffineMap>{AffineMap::getMultiDimIdentityMap(2, ctx)},
            SmallVector<IteratorType>(2, IteratorType::parallel),
            [&](OpBuilder &b, Location l, ValueRange) {
              Value bi = linalg::IndexOp::create(b, l, 0);
              Value ci = linalg::IndexOp::create(b, l, 1);
              Value v = tensor::ExtractOp::create(
                  b, l, ds, ValueRange{bi, idx(b, l, 0), ci});
              linalg::YieldOp::create(b, l, v);
            })
            .getResult(0);
    rewriter.replaceOp(
        op, {castTo(rewriter, loc, dinput, op.getInputGrad().getType()),
             castTo(rewriter, loc, dprev, op.getPrevGrad().getType())});
    return success();
  }
};

} // namespace

void rwkv::populateRWKVCrossEntropyPairPatterns(RewritePatternSet &patterns) {
  patterns.add<CrossEntropyPairLowering>(patterns.getContext());
}

void rwkv::populateRWKVGradientToLinalgPatterns(RewritePatternSet &patterns) {
  patterns.add<CrossEntropyLowering, CrossEntropyGradLowering,
               EmbedGradLowering, LayerNormGradLowering, GroupNormGradLowering,
               L2NormalizeGradLowering, TokenShiftGradLowering>(
      patterns.getContext());
}
