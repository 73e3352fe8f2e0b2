//===- Gradients.cpp - training ops (loss and adjoints) to linalg
//----------===//
//
// cross_entropy(_grad) walk the flattened B*T tokens in tiles of
// kTokenTile rows so that only [tile, V] logits ever exist; the norms'
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

/// Token rows per cross-entropy tile: [16, V] f32 logits stay small for
/// V = 65536 (4 MiB) while the head weight is streamed once per tile.
constexpr int64_t kTokenTile = 16;

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

/// Per-tile values shared by the loss and its gradient.
struct LogitTile {
  Value z;      // [tile, V] logits
  Value rowMax; // [tile]
};

/// z[i, v] = Σ_c x[i, c] W[v, c] and its row maximum.
LogitTile buildLogitTile(OpBuilder &b, Location loc, Value xs, Value w) {
  MLIRContext *ctx = b.getContext();
  AffineExpr d0, d1, d2;
  bindDims(ctx, d0, d1, d2);
  auto fm = reductionFastMath(b);
  SmallVector<OpFoldResult> zSizes = {tensor::getMixedSize(b, loc, xs, 0),
                                      tensor::getMixedSize(b, loc, w, 0)};
  Value acc = zeros(b, loc, zSizes);
  // (i, v, c), c innermost so the weight row is read contiguously.
  Value z =
      linalg::GenericOp::create(
          b, loc, TypeRange{acc.getType()}, ValueRange{xs, w}, ValueRange{acc},
          ArrayRef<AffineMap>{AffineMap::get(3, 0, {d0, d2}, ctx),
                              AffineMap::get(3, 0, {d1, d2}, ctx),
                              AffineMap::get(3, 0, {d0, d1}, ctx)},
          ArrayRef<IteratorType>{IteratorType::parallel, IteratorType::parallel,
                                 IteratorType::reduction},
          [&](OpBuilder &nb, Location nl, ValueRange args) {
            Value wv = toF32(nb, nl, args[1]);
            Value p = arith::MulFOp::create(nb, nl, args[0], wv, fm);
            Value s = arith::AddFOp::create(nb, nl, args[2], p, fm);
            linalg::YieldOp::create(nb, nl, s);
          })
          .getResult(0);
  Value minusInf = f32Const(b, loc, -std::numeric_limits<double>::infinity());
  Value maxInit = fill(b, loc, zSizes[0], minusInf);
  Value rowMax = linalg::GenericOp::create(
                     b, loc, TypeRange{maxInit.getType()}, ValueRange{z},
                     ValueRange{maxInit},
                     ArrayRef<AffineMap>{AffineMap::get(2, 0, {d0, d1}, ctx),
                                         AffineMap::get(2, 0, {d0}, ctx)},
                     ArrayRef<IteratorType>{IteratorType::parallel,
                                            IteratorType::reduction},
                     [&](OpBuilder &nb, Location nl, ValueRange args) {
                       linalg::YieldOp::create(
                           nb, nl,
                           arith::MaximumFOp::create(nb, nl, args[1], args[0])
                               .getResult());
                     })
                     .getResult(0);
  return {z, rowMax};
}

/// Rows [t0, t0 + size) of a [N, ...] tensor.
Value tokenRows(OpBuilder &b, Location loc, Value v, Value t0, Value size) {
  auto type = llvm::cast<RankedTensorType>(v.getType());
  SmallVector<OpFoldResult> offsets(type.getRank(), b.getIndexAttr(0));
  offsets[0] = t0;
  SmallVector<OpFoldResult> sizes = {size};
  for (int64_t d = 1; d < type.getRank(); ++d)
    sizes.push_back(tensor::getMixedSize(b, loc, v, d));
  return tensor::ExtractSliceOp::create(b, loc, v, offsets, sizes,
                                        unitStrides(b, type.getRank()));
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

/// The tile loop `for t0 = 0 to N step kTokenTile`, with the tile size
/// min(kTokenTile, N - t0) passed to `body`.
scf::ForOp
tokenTileLoop(OpBuilder &b, Location loc, Value n, ValueRange inits,
              llvm::function_ref<SmallVector<Value>(OpBuilder &, Location,
                                                    Value, Value, ValueRange)>
                  body) {
  Value tile = idx(b, loc, kTokenTile);
  return scf::ForOp::create(
      b, loc, idx(b, loc, 0), n, tile, inits,
      [&](OpBuilder &lb, Location l, Value t0, ValueRange iter) {
        Value rest = arith::SubIOp::create(lb, l, n, t0);
        Value size = arith::MinSIOp::create(lb, l, tile, rest);
        scf::YieldOp::create(lb, l, body(lb, l, t0, size, iter));
      });
}

struct CrossEntropyLowering final : OpConversionPattern<CrossEntropyOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(CrossEntropyOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    MLIRContext *ctx = rewriter.getContext();
    int64_t ignore = op.getIgnoreIndex();
    Value x2 = flattenTokens(rewriter, loc, adaptor.getInput());
    Value t1 = flattenTokens(rewriter, loc, adaptor.getTargets());
    Value w = adaptor.getWeight();
    Value n = dimValue(rewriter, loc, x2, 0);
    AffineExpr d0, d1;
    bindDims(ctx, d0, d1);
    auto fm = reductionFastMath(rewriter);

    // Carries (Σ loss, count) as two tensor<f32>.
    auto loop = tokenTileLoop(
        rewriter, loc, n,
        ValueRange{zeros(rewriter, loc, {}), zeros(rewriter, loc, {})},
        [&](OpBuilder &b, Location l, Value t0, Value size,
            ValueRange iter) -> SmallVector<Value> {
          Value xs = tokenRows(b, l, x2, t0, size);
          Value ts = tokenRows(b, l, t1, t0, size);
          LogitTile tile = buildLogitTile(b, l, xs, w);
          // Σ_v exp(z - max) and z[target] (selected, never gathered: an
          // ignored id may be out of range).
          SmallVector<OpFoldResult> rows = {
              tensor::getMixedSize(b, l, tile.z, 0)};
          Value sInit = zeros(b, l, rows);
          auto stats = linalg::GenericOp::create(
              b, l, TypeRange{sInit.getType(), sInit.getType()},
              ValueRange{tile.z, tile.rowMax, ts},
              ValueRange{sInit, zeros(b, l, rows)},
              ArrayRef<AffineMap>{AffineMap::get(2, 0, {d0, d1}, ctx),
                                  AffineMap::get(2, 0, {d0}, ctx),
                                  AffineMap::get(2, 0, {d0}, ctx),
                                  AffineMap::get(2, 0, {d0}, ctx),
                                  AffineMap::get(2, 0, {d0}, ctx)},
              ArrayRef<IteratorType>{IteratorType::parallel,
                                     IteratorType::reduction},
              [&](OpBuilder &nb, Location nl, ValueRange args) {
                Value d = arith::SubFOp::create(nb, nl, args[0], args[1]);
                Value e = math::ExpOp::create(nb, nl, d);
                Value s = arith::AddFOp::create(nb, nl, args[3], e, fm);
                Value v = linalg::IndexOp::create(nb, nl, 1);
                Value hit = isTarget(nb, nl, v, args[2]);
                Value zt =
                    arith::SelectOp::create(nb, nl, hit, args[0], args[4]);
                linalg::YieldOp::create(nb, nl, ValueRange{s, zt});
              });
          // Accumulate max + log Σ - z[target] over the counted rows
          // directly into the loop-carried scalars.
          auto acc = linalg::GenericOp::create(
              b, l, TypeRange{iter[0].getType(), iter[1].getType()},
              ValueRange{tile.rowMax, stats.getResult(0), stats.getResult(1),
                         ts},
              ValueRange{iter[0], iter[1]},
              ArrayRef<AffineMap>{AffineMap::get(1, 0, {d0}, ctx),
                                  AffineMap::get(1, 0, {d0}, ctx),
                                  AffineMap::get(1, 0, {d0}, ctx),
                                  AffineMap::get(1, 0, {d0}, ctx),
                                  AffineMap::get(1, 0, {}, ctx),
                                  AffineMap::get(1, 0, {}, ctx)},
              ArrayRef<IteratorType>{IteratorType::reduction},
              [&](OpBuilder &nb, Location nl, ValueRange args) {
                Value lse = arith::AddFOp::create(
                    nb, nl, args[0], math::LogOp::create(nb, nl, args[1]));
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
          return {acc.getResult(0), acc.getResult(1)};
        });

    // mean = Σ / count, 0 when nothing was counted.
    Value out = tensor::EmptyOp::create(rewriter, loc, ArrayRef<int64_t>{},
                                        rewriter.getF32Type());
    auto scalar = AffineMap::get(0, 0, {}, ctx);
    Value loss =
        linalg::GenericOp::create(
            rewriter, loc, TypeRange{out.getType()},
            ValueRange{loop.getResult(0), loop.getResult(1)}, ValueRange{out},
            ArrayRef<AffineMap>{scalar, scalar, scalar},
            ArrayRef<IteratorType>{},
            [&](OpBuilder &nb, Location nl, ValueRange args) {
              Value zero = f32Const(nb, nl, 0.0);
              Value any = arith::CmpFOp::create(
                  nb, nl, arith::CmpFPredicate::OGT, args[1], zero);
              Value mean = arith::DivFOp::create(nb, nl, args[0], args[1]);
              linalg::YieldOp::create(
                  nb, nl,
                  arith::SelectOp::create(nb, nl, any, mean, zero).getResult());
            })
            .getResult(0);
    rewriter.replaceOp(op, loss);
    return success();
  }
};

struct CrossEntropyGradLowering final
    : OpConversionPattern<CrossEntropyGradOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(CrossEntropyGradOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    MLIRContext *ctx = rewriter.getContext();
    int64_t ignore = op.getIgnoreIndex();
    float l2wrap = op.getL2wrap().convertToFloat();
    Value x = adaptor.getInput();
    Value x2 = flattenTokens(rewriter, loc, x);
    Value t1 = flattenTokens(rewriter, loc, adaptor.getTargets());
    Value w = adaptor.getWeight();
    Value n = dimValue(rewriter, loc, x2, 0);
    AffineExpr d0, d1, d2;
    bindDims(ctx, d0, d1, d2);
    auto fm = reductionFastMath(rewriter);

    // scale = dloss / count (0 when nothing is counted): the whole batch's
    // count is needed before the first tile's gradient.
    Value count = countTargets(rewriter, loc, t1, ignore);
    Value scaleInit = tensor::EmptyOp::create(
        rewriter, loc, ArrayRef<int64_t>{}, rewriter.getF32Type());
    auto scalar = AffineMap::get(0, 0, {}, ctx);
    Value scale =
        linalg::GenericOp::create(
            rewriter, loc, TypeRange{scaleInit.getType()},
            ValueRange{adaptor.getDloss(), count}, ValueRange{scaleInit},
            ArrayRef<AffineMap>{scalar, scalar, scalar},
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

    SmallVector<OpFoldResult> dxSizes =
        tensor::getMixedSizes(rewriter, loc, x2);
    Value dxInit =
        tensor::EmptyOp::create(rewriter, loc, dxSizes, rewriter.getF32Type());
    Value dwInit =
        zeros(rewriter, loc, tensor::getMixedSizes(rewriter, loc, w));
    auto loop = tokenTileLoop(
        rewriter, loc, n, ValueRange{dxInit, dwInit},
        [&](OpBuilder &b, Location l, Value t0, Value size,
            ValueRange iter) -> SmallVector<Value> {
          Value xs = tokenRows(b, l, x2, t0, size);
          Value ts = tokenRows(b, l, t1, t0, size);
          LogitTile tile = buildLogitTile(b, l, xs, w);
          auto rowsMap = AffineMap::get(2, 0, {d0}, ctx);
          auto tileMap = AffineMap::get(2, 0, {d0, d1}, ctx);
          SmallVector<OpFoldResult> rows = {
              tensor::getMixedSize(b, l, tile.z, 0)};
          // Σ_v exp(z - max) and, for L2Wrap, the first argmax.
          Value sInit = zeros(b, l, rows);
          SmallVector<Value> statInits = {sInit};
          SmallVector<Type> statTypes = {sInit.getType()};
          SmallVector<AffineMap> statMaps = {tileMap, rowsMap, rowsMap};
          if (l2wrap > 0.0f) {
            Value vocab = arith::IndexCastOp::create(b, l, b.getI64Type(),
                                                     dimValue(b, l, w, 0));
            Value amInit = fill(b, l, rows, vocab);
            statInits.push_back(amInit);
            statTypes.push_back(amInit.getType());
            statMaps.push_back(rowsMap);
          }
          auto stats = linalg::GenericOp::create(
              b, l, statTypes, ValueRange{tile.z, tile.rowMax}, statInits,
              statMaps,
              ArrayRef<IteratorType>{IteratorType::parallel,
                                     IteratorType::reduction},
              [&](OpBuilder &nb, Location nl, ValueRange args) {
                Value d = arith::SubFOp::create(nb, nl, args[0], args[1]);
                Value e = math::ExpOp::create(nb, nl, d);
                SmallVector<Value> res = {
                    arith::AddFOp::create(nb, nl, args[2], e, fm)};
                if (l2wrap > 0.0f) {
                  // Lowest index on ties: z == max exactly at the maxima.
                  Value v = arith::IndexCastOp::create(
                      nb, nl, nb.getI64Type(),
                      linalg::IndexOp::create(nb, nl, 1));
                  Value isMax = arith::CmpFOp::create(
                      nb, nl, arith::CmpFPredicate::OEQ, args[0], args[1]);
                  Value lower = arith::MinSIOp::create(nb, nl, args[3], v);
                  res.push_back(
                      arith::SelectOp::create(nb, nl, isMax, lower, args[3]));
                }
                linalg::YieldOp::create(nb, nl, res);
              });

          // g = (softmax - onehot) * scale (+ L2Wrap), 0 on ignored rows.
          SmallVector<Value> gIns = {tile.z, tile.rowMax, stats.getResult(0),
                                     ts, scale};
          SmallVector<AffineMap> gMaps = {tileMap, rowsMap, rowsMap, rowsMap,
                                          AffineMap::get(2, 0, {}, ctx)};
          if (l2wrap > 0.0f) {
            gIns.push_back(stats.getResult(1));
            gMaps.push_back(rowsMap);
          }
          gMaps.push_back(tileMap);
          Value gInit = tensor::EmptyOp::create(
              b, l, tensor::getMixedSizes(b, l, tile.z), b.getF32Type());
          SmallVector<IteratorType> par2(2, IteratorType::parallel);
          Value g =
              linalg::GenericOp::create(
                  b, l, TypeRange{gInit.getType()}, gIns, ValueRange{gInit},
                  gMaps, par2,
                  [&](OpBuilder &nb, Location nl, ValueRange args) {
                    Value zero = f32Const(nb, nl, 0.0);
                    Value one = f32Const(nb, nl, 1.0);
                    Value d = arith::SubFOp::create(nb, nl, args[0], args[1]);
                    Value e = math::ExpOp::create(nb, nl, d);
                    Value p = arith::DivFOp::create(nb, nl, e, args[2]);
                    Value v = linalg::IndexOp::create(nb, nl, 1);
                    Value hot = arith::SelectOp::create(
                        nb, nl, isTarget(nb, nl, v, args[3]), one, zero);
                    Value gv = arith::MulFOp::create(
                        nb, nl, arith::SubFOp::create(nb, nl, p, hot), args[4]);
                    if (l2wrap > 0.0f) {
                      Value vi = arith::IndexCastOp::create(nb, nl,
                                                            nb.getI64Type(), v);
                      Value atMax = arith::CmpIOp::create(
                          nb, nl, arith::CmpIPredicate::eq, vi, args[5]);
                      Value extra = arith::MulFOp::create(
                          nb, nl,
                          arith::MulFOp::create(
                              nb, nl, f32Const(nb, nl, l2wrap), args[4]),
                          args[1]);
                      gv = arith::AddFOp::create(
                          nb, nl, gv,
                          arith::SelectOp::create(nb, nl, atMax, extra, zero));
                    }
                    Value counted = isCounted(nb, nl, args[3], ignore);
                    linalg::YieldOp::create(
                        nb, nl,
                        arith::SelectOp::create(nb, nl, counted, gv, zero)
                            .getResult());
                  })
                  .getResult(0);

          // dx rows = g W: (i, c, v), accumulated in the destination's rows
          // so the insert_slice below bufferizes without a copy.
          SmallVector<OpFoldResult> dxTileSizes = {
              size, tensor::getMixedSize(b, l, xs, 1)};
          Value dxRows = tensor::ExtractSliceOp::create(
              b, l, iter[0], ArrayRef<OpFoldResult>{t0, b.getIndexAttr(0)},
              dxTileSizes, unitStrides(b, 2));
          Value dxAcc =
              linalg::FillOp::create(b, l, f32Const(b, l, 0.0), dxRows)
                  .getResult(0);
          SmallVector<IteratorType> contract = {IteratorType::parallel,
                                                IteratorType::parallel,
                                                IteratorType::reduction};
          Value dxTile =
              linalg::GenericOp::create(
                  b, l, TypeRange{dxAcc.getType()}, ValueRange{g, w},
                  ValueRange{dxAcc},
                  ArrayRef<AffineMap>{AffineMap::get(3, 0, {d0, d2}, ctx),
                                      AffineMap::get(3, 0, {d2, d1}, ctx),
                                      AffineMap::get(3, 0, {d0, d1}, ctx)},
                  contract,
                  [&](OpBuilder &nb, Location nl, ValueRange args) {
                    Value wv = toF32(nb, nl, args[1]);
                    Value p = arith::MulFOp::create(nb, nl, args[0], wv, fm);
                    linalg::YieldOp::create(
                        nb, nl,
                        arith::AddFOp::create(nb, nl, args[2], p, fm)
                            .getResult());
                  })
                  .getResult(0);
          Value dx = tensor::InsertSliceOp::create(
              b, l, dxTile, iter[0],
              ArrayRef<OpFoldResult>{t0, b.getIndexAttr(0)}, dxTileSizes,
              unitStrides(b, 2));
          // dW += gᵀ x: (v, c, i), accumulated in place in the loop-carried
          // tensor.
          Value dw =
              linalg::GenericOp::create(
                  b, l, TypeRange{iter[1].getType()}, ValueRange{g, xs},
                  ValueRange{iter[1]},
                  ArrayRef<AffineMap>{AffineMap::get(3, 0, {d2, d0}, ctx),
                                      AffineMap::get(3, 0, {d2, d1}, ctx),
                                      AffineMap::get(3, 0, {d0, d1}, ctx)},
                  contract,
                  [&](OpBuilder &nb, Location nl, ValueRange args) {
                    Value p =
                        arith::MulFOp::create(nb, nl, args[0], args[1], fm);
                    linalg::YieldOp::create(
                        nb, nl,
                        arith::AddFOp::create(nb, nl, args[2], p, fm)
                            .getResult());
                  })
                  .getResult(0);
          return {dx, dw};
        });

    Value dx = unflattenTokens(rewriter, loc, loop.getResult(0), x);
    rewriter.replaceOp(op,
                       {castTo(rewriter, loc, dx, op.getInputGrad().getType()),
                        castTo(rewriter, loc, loop.getResult(1),
                               op.getWeightGrad().getType())});
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

void rwkv::populateRWKVGradientToLinalgPatterns(RewritePatternSet &patterns) {
  patterns.add<CrossEntropyLowering, CrossEntropyGradLowering,
               EmbedGradLowering, LayerNormGradLowering, GroupNormGradLowering,
               L2NormalizeGradLowering, TokenShiftGradLowering>(
      patterns.getContext());
}
