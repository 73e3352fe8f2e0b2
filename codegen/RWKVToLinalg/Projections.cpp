//===- Projections.cpp - embed, mix, linear, lora, head to linalg ---------===//
//
// The matrix-vector/matrix-matrix work of RWKV. Every projection is one
// contraction `linalg.generic` that reads the weight in its checkpoint dtype.
//
//===----------------------------------------------------------------------===//

#include "codegen/RWKVToLinalg/Common.h"

#include "mlir/Dialect/Utils/StructuredOpsUtils.h"

using namespace mlir;
using namespace mlir::rwkv;
using utils::IteratorType;

Value rwkv::zeros(OpBuilder &b, Location loc, ArrayRef<OpFoldResult> sizes) {
  Value init = tensor::EmptyOp::create(b, loc, sizes, b.getF32Type());
  return linalg::FillOp::create(b, loc, f32Const(b, loc, 0.0), init)
      .getResult(0);
}

/// Element (row, col) of a group-quantized matrix as f32, times the scale
/// of col's group: packed int4, the nibble of `col` in byte col / 2; grouped
/// int8 (`int8`), the byte at col.
static Value buildGroupedWeight(OpBuilder &b, Location loc, Value matrix,
                                Value scale, int64_t group, bool int8,
                                Value row, Value col) {
  Value g = arith::ConstantIndexOp::create(b, loc, group);
  Value w;
  if (int8) {
    w = toF32(b, loc,
              tensor::ExtractOp::create(b, loc, matrix, ValueRange{row, col}));
  } else {
    Value two = arith::ConstantIndexOp::create(b, loc, 2);
    Value byte = tensor::ExtractOp::create(
        b, loc, matrix,
        ValueRange{row, arith::DivUIOp::create(b, loc, col, two)});
    w = toF32(b, loc, buildInt4Nibble(b, loc, byte, col));
  }
  Value s = tensor::ExtractOp::create(
      b, loc, scale, ValueRange{row, arith::DivUIOp::create(b, loc, col, g)});
  return arith::MulFOp::create(b, loc, w, toF32(b, loc, s));
}

namespace {

struct EmbedLowering final : OpConversionPattern<EmbedOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(EmbedOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    MLIRContext *ctx = rewriter.getContext();
    Value table = adaptor.getTable();
    Value tokens = adaptor.getTokens();
    SmallVector<OpFoldResult> sizes =
        tensor::getMixedSizes(rewriter, loc, tokens);
    auto resultType = cast<RankedTensorType>(op.getType());
    int64_t group = static_cast<int64_t>(op.getGroupSize().value_or(0));
    bool int8 = op.getInt8Groups();
    // A packed int4 table has half as many bytes as channels per row.
    sizes.push_back(
        group && !int8
            ? OpFoldResult(rewriter.getIndexAttr(resultType.getDimSize(2)))
            : tensor::getMixedSize(rewriter, loc, table, 1));
    Value init =
        tensor::EmptyOp::create(rewriter, loc, sizes, rewriter.getF32Type());
    AffineExpr d0, d1, d2;
    bindDims(ctx, d0, d1, d2);
    auto tokMap = AffineMap::get(3, 0, {d0, d1}, ctx);
    auto outMap = AffineMap::getMultiDimIdentityMap(3, ctx);
    SmallVector<IteratorType> iters(3, IteratorType::parallel);
    // The runtime validates token ids before the call; the gather itself is
    // a tensor.extract at (token, channel).
    Value result =
        linalg::GenericOp::create(
            rewriter, loc, TypeRange{init.getType()}, ValueRange{tokens},
            ValueRange{init}, ArrayRef<AffineMap>{tokMap, outMap}, iters,
            [&](OpBuilder &nb, Location nl, ValueRange args) {
              Value row = arith::IndexCastOp::create(nb, nl, nb.getIndexType(),
                                                     args[0]);
              Value col = linalg::IndexOp::create(nb, nl, 2);
              Value v;
              Value scale = adaptor.getScale();
              if (group) {
                v = buildGroupedWeight(nb, nl, table, scale, group, int8, row,
                                       col);
              } else {
                v = toF32(nb, nl,
                          tensor::ExtractOp::create(nb, nl, table,
                                                    ValueRange{row, col}));
                if (scale)
                  v = arith::MulFOp::create(
                      nb, nl, v,
                      tensor::ExtractOp::create(nb, nl, scale,
                                                ValueRange{row}));
              }
              linalg::YieldOp::create(nb, nl, v);
            })
            .getResult(0);
    rewriter.replaceOp(op, castTo(rewriter, loc, result, op.getType()));
    return success();
  }
};

/// What is left of a dequantize after the projections folded it: a
/// materialised f32 matrix (correct for any user, but 4x or 8x the bytes).
struct DequantizeLowering final : OpConversionPattern<DequantizeOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(DequantizeOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    MLIRContext *ctx = rewriter.getContext();
    Value q = adaptor.getInput();
    if (std::optional<uint64_t> group = op.getGroupSize()) {
      auto type = cast<RankedTensorType>(op.getType());
      if (!type.hasStaticShape())
        return rewriter.notifyMatchFailure(op, "grouped matrices are static");
      Value init = tensor::EmptyOp::create(rewriter, loc, type.getShape(),
                                           rewriter.getF32Type());
      Value result =
          linalg::GenericOp::create(
              rewriter, loc, TypeRange{init.getType()}, ValueRange{},
              ValueRange{init},
              ArrayRef<AffineMap>{AffineMap::getMultiDimIdentityMap(2, ctx)},
              SmallVector<IteratorType>(2, IteratorType::parallel),
              [&](OpBuilder &nb, Location nl, ValueRange) {
                Value r = linalg::IndexOp::create(nb, nl, 0);
                Value c = linalg::IndexOp::create(nb, nl, 1);
                linalg::YieldOp::create(
                    nb, nl,
                    buildGroupedWeight(nb, nl, q, adaptor.getScale(),
                                       static_cast<int64_t>(*group),
                                       op.getInt8Groups(), r, c));
              })
              .getResult(0);
      rewriter.replaceOp(op, result);
      return success();
    }
    Value init = tensor::EmptyOp::create(
        rewriter, loc, tensor::getMixedSizes(rewriter, loc, q),
        rewriter.getF32Type());
    AffineExpr d0, d1;
    bindDims(ctx, d0, d1);
    auto id = AffineMap::getMultiDimIdentityMap(2, ctx);
    Value result =
        linalg::GenericOp::create(
            rewriter, loc, TypeRange{init.getType()},
            ValueRange{q, adaptor.getScale()}, ValueRange{init},
            ArrayRef<AffineMap>{id, AffineMap::get(2, 0, {d0}, ctx), id},
            SmallVector<IteratorType>(2, IteratorType::parallel),
            [&](OpBuilder &nb, Location nl, ValueRange args) {
              Value v = toF32(nb, nl, args[0]);
              linalg::YieldOp::create(
                  nb, nl,
                  arith::MulFOp::create(nb, nl, v, args[1]).getResult());
            })
            .getResult(0);
    rewriter.replaceOp(op, castTo(rewriter, loc, result, op.getType()));
    return success();
  }
};

struct MixLowering final : OpConversionPattern<MixOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(MixOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Value x = adaptor.getInput();
    Value result = buildElementwise(
        rewriter, op.getLoc(), x, {x, adaptor.getShifted(), adaptor.getMu()},
        [](OpBuilder &b, Location l, ValueRange in) -> Value {
          Value d = arith::SubFOp::create(b, l, in[1], in[0]);
          Value t = arith::MulFOp::create(b, l, d, in[2]);
          return arith::AddFOp::create(b, l, in[0], t);
        });
    rewriter.replaceOp(op, result);
    return success();
  }
};

struct LinearLowering final : OpConversionPattern<LinearOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(LinearOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Value y =
        buildProjection(rewriter, op.getLoc(), adaptor.getInput(),
                        adaptor.getWeight(), true, {}, adaptor.getScale(),
                        static_cast<int64_t>(op.getGroupSize().value_or(0)),
                        op.getInt8Groups());
    rewriter.replaceOp(op, castTo(rewriter, op.getLoc(), y, op.getType()));
    return success();
  }
};

struct LoraLowering final : OpConversionPattern<LoraOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(LoraOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value h = buildProjection(rewriter, loc, adaptor.getInput(),
                              adaptor.getDown(), false);
    ActivationKind act = op.getActivation();
    if (act != ActivationKind::none)
      h = buildElementwise(
          rewriter, loc, h, {h},
          [act](OpBuilder &b, Location l, ValueRange in) {
            if (act == ActivationKind::tanh)
              return math::TanhOp::create(b, l, in[0]).getResult();
            return sigmoid(b, l, in[0]);
          });
    Value y = buildProjection(rewriter, loc, h, adaptor.getUp(), false);
    rewriter.replaceOp(op, castTo(rewriter, loc, y, op.getType()));
    return success();
  }
};

struct HeadLowering final : OpConversionPattern<HeadOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(HeadOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value x = adaptor.getInput();
    if (op.getPositions() == HeadPositions::last) {
      // Only the last token reaches the (vocabulary-sized) projection.
      SmallVector<OpFoldResult> sizes = tensor::getMixedSizes(rewriter, loc, x);
      Value t = dimValue(rewriter, loc, x, 1);
      Value one = arith::ConstantIndexOp::create(rewriter, loc, 1);
      Value last = arith::SubIOp::create(rewriter, loc, t, one);
      SmallVector<OpFoldResult> offsets = {rewriter.getIndexAttr(0), last,
                                           rewriter.getIndexAttr(0)};
      sizes[1] = rewriter.getIndexAttr(1);
      SmallVector<OpFoldResult> strides(3, rewriter.getIndexAttr(1));
      x = tensor::ExtractSliceOp::create(rewriter, loc, x, offsets, sizes,
                                         strides);
    }
    Value logits = buildProjection(
        rewriter, loc, x, adaptor.getWeight(), true, {}, adaptor.getScale(),
        static_cast<int64_t>(op.getGroupSize().value_or(0)),
        op.getInt8Groups());
    rewriter.replaceOp(op, castTo(rewriter, loc, logits, op.getType()));
    return success();
  }
};

} // namespace

void rwkv::populateRWKVProjectionToLinalgPatterns(RewritePatternSet &patterns) {
  patterns.add<EmbedLowering, DequantizeLowering, MixLowering, LinearLowering,
               LoraLowering, HeadLowering>(patterns.getContext());
}
