//===- Decompose.cpp - expand composite rwkv ops
//---------------------------===//
//
// rwkv.time_mix and rwkv.channel_mix mirror the reference blocks one to one.
// This pass expands them into primitive rwkv ops and element-wise / per-head
// linalg.generic ops, in the exact order of spec §1.5 and §1.7, so the fusion
// passes downstream can regroup them by their own rules.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"
#include "dialect/IRUtils.h"

#include "mlir/Dialect/Utils/StructuredOpsUtils.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

#include <cmath>

#define DEBUG_TYPE "rwkv-decompose"

namespace mlir::rwkv {
#define GEN_PASS_DEF_RWKVDECOMPOSEPASS
#include "passes/Passes.h.inc"

namespace {

/// Per-head bonus, GroupNorm output included: out = (y + (Σ_h r·k·r_k)·v)·g
/// (spec §1.5 steps 15-16, before the output projection).
Value buildBonusAndGate(OpBuilder &b, Location loc, Value y, Value r, Value k,
                        Value rk, Value v, Value g, int64_t heads) {
  MLIRContext *ctx = b.getContext();
  Value r4 = splitHeads(b, loc, r, heads);
  Value k4 = splitHeads(b, loc, k, heads);
  Value rk2 = splitHeads(b, loc, rk, heads);

  // s[b, t, h] = Σ_n r·k·r_k.
  SmallVector<OpFoldResult> sizes = tensor::getMixedSizes(b, loc, r);
  sizes.back() = b.getIndexAttr(heads);
  Value init = tensor::EmptyOp::create(b, loc, sizes, b.getF32Type());
  Value zero = f32Const(b, loc, 0.0);
  Value acc = linalg::FillOp::create(b, loc, zero, init).getResult(0);
  AffineExpr d0, d1, d2, d3;
  bindDims(ctx, d0, d1, d2, d3);
  auto id4 = AffineMap::getMultiDimIdentityMap(4, ctx);
  auto hn = AffineMap::get(4, 0, {d2, d3}, ctx);
  auto bth = AffineMap::get(4, 0, {d0, d1, d2}, ctx);
  using utils::IteratorType;
  SmallVector<IteratorType> redIters = {
      IteratorType::parallel, IteratorType::parallel, IteratorType::parallel,
      IteratorType::reduction};
  Value s =
      linalg::GenericOp::create(
          b, loc, TypeRange{acc.getType()}, ValueRange{r4, k4, rk2},
          ValueRange{acc}, ArrayRef<AffineMap>{id4, id4, hn, bth}, redIters,
          [&](OpBuilder &nb, Location nl, ValueRange args) {
            Value rkv = arith::MulFOp::create(nb, nl, args[0], args[1]);
            Value w = toF32(nb, nl, args[2]);
            Value prod = arith::MulFOp::create(nb, nl, rkv, w);
            Value sum = arith::AddFOp::create(nb, nl, args[3], prod);
            linalg::YieldOp::create(nb, nl, sum);
          })
          .getResult(0);

  Value y4 = splitHeads(b, loc, y, heads);
  Value v4 = splitHeads(b, loc, v, heads);
  Value g4 = splitHeads(b, loc, g, heads);
  Value outInit = emptyLike(b, loc, y4);
  SmallVector<IteratorType> parIters(4, IteratorType::parallel);
  Value out = linalg::GenericOp::create(
                  b, loc, TypeRange{outInit.getType()},
                  ValueRange{y4, s, v4, g4}, ValueRange{outInit},
                  ArrayRef<AffineMap>{id4, bth, id4, id4, id4}, parIters,
                  [&](OpBuilder &nb, Location nl, ValueRange args) {
                    Value sv = arith::MulFOp::create(nb, nl, args[1], args[2]);
                    Value sum = arith::AddFOp::create(nb, nl, args[0], sv);
                    Value gated = arith::MulFOp::create(nb, nl, sum, args[3]);
                    linalg::YieldOp::create(nb, nl, gated);
                  })
                  .getResult(0);
  return mergeHeads(b, loc, out);
}

struct DecomposeTimeMix final : OpRewritePattern<TimeMixOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(TimeMixOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value x = op.getInput();
    Type actType = x.getType();
    int64_t heads = op.getNumHeads();
    auto ew = [&](ValueRange ins, ElementwiseBodyFn fn) {
      return buildElementwise(rewriter, loc, x, ins, fn);
    };

    // 1-2: token shift and the six lerps.
    auto shift = TokenShiftOp::create(rewriter, loc, actType,
                                      op.getShiftState().getType(), x,
                                      op.getShiftState());
    Value shifted = shift.getShifted();
    auto mix = [&](Value mu) {
      return MixOp::create(rewriter, loc, actType, x, shifted, mu).getResult();
    };
    Value xr = mix(op.getXR()), xw = mix(op.getXW()), xk = mix(op.getXK());
    Value xv = mix(op.getXV()), xa = mix(op.getXA()), xg = mix(op.getXG());

    // 3-8: projections and the low-rank branches.
    auto linear = [&](Value in, Value w) {
      return LinearOp::create(rewriter, loc, actType, in, w).getResult();
    };
    auto lora = [&](Value in, Value down, Value up, ActivationKind act) {
      return LoraOp::create(rewriter, loc, actType, in, down, up, act)
          .getResult();
    };
    Value r = linear(xr, op.getReceptance());
    Value wl = lora(xw, op.getW1(), op.getW2(), ActivationKind::tanh);
    Value k = linear(xk, op.getKey());
    Value v = linear(xv, op.getValue());
    Value aLora = lora(xa, op.getA1(), op.getA2(), ActivationKind::none);
    Value a =
        ew({op.getA0(), aLora}, [](OpBuilder &b, Location l, ValueRange in) {
          return sigmoid(b, l, arith::AddFOp::create(b, l, in[0], in[1]));
        });
    Value g = lora(xg, op.getG1(), op.getG2(), ActivationKind::sigmoid);

    // 9: kk = normalize(k * k_k) per head.
    Value kScaled = ew({k, op.getKK()},
                       [](OpBuilder &b, Location l, ValueRange in) -> Value {
                         return arith::MulFOp::create(b, l, in[0], in[1]);
                       });
    Value kk = L2NormalizeOp::create(rewriter, loc, actType, kScaled,
                                     rewriter.getI64IntegerAttr(heads),
                                     rewriter.getF32FloatAttr(1e-12f))
                   .getResult();

    // 10: k = k * (1 + (a - 1) * k_a).
    Value kNew = ew({k, a, op.getKA()},
                    [](OpBuilder &b, Location l, ValueRange in) -> Value {
                      Value one = f32Const(b, l, 1.0);
                      Value am1 = arith::SubFOp::create(b, l, in[1], one);
                      Value t = arith::MulFOp::create(b, l, am1, in[2]);
                      Value s = arith::AddFOp::create(b, l, one, t);
                      return arith::MulFOp::create(b, l, in[0], s);
                    });

    // 11: value residual toward layer 0's v.
    Value vFirst = v;
    if (!op.isFirstLayer()) {
      vFirst = op.getVFirst();
      Value vLora = lora(xv, op.getV1(), op.getV2(), ActivationKind::none);
      v = ew({v, vFirst, op.getV0(), vLora},
             [](OpBuilder &b, Location l, ValueRange in) -> Value {
               Value gate =
                   sigmoid(b, l, arith::AddFOp::create(b, l, in[2], in[3]));
               Value d = arith::SubFOp::create(b, l, in[1], in[0]);
               Value t = arith::MulFOp::create(b, l, d, gate);
               return arith::AddFOp::create(b, l, in[0], t);
             });
    }

    // 12: log-decay ln d = -e^{-1/2} * sigmoid(w0 + wl).
    Value logDecay = ew(
        {op.getW0(), wl}, [](OpBuilder &b, Location l, ValueRange in) -> Value {
          Value z = arith::AddFOp::create(b, l, in[0], in[1]);
          Value c = f32Const(b, l, -std::exp(-0.5));
          return arith::MulFOp::create(b, l, c, sigmoid(b, l, z));
        });

    // 13: WKV with a = -kk and b = kk * a.
    Value aKernel =
        ew({kk}, [](OpBuilder &b, Location l, ValueRange in) -> Value {
          return arith::NegFOp::create(b, l, in[0]);
        });
    Value bKernel =
        ew({kk, a}, [](OpBuilder &b, Location l, ValueRange in) -> Value {
          return arith::MulFOp::create(b, l, in[0], in[1]);
        });
    auto wkv =
        WKVOp::create(rewriter, loc, actType, op.getWkvState().getType(), r,
                      logDecay, kNew, v, aKernel, bKernel, op.getWkvState(),
                      op.getModeAttr(), op.getChunkLengthAttr());

    // 14-16: GroupNorm, bonus, gate and output projection.
    Value y = GroupNormOp::create(rewriter, loc, actType, wkv.getY(),
                                  op.getLnXWeight(), op.getLnXBias(),
                                  rewriter.getI64IntegerAttr(heads),
                                  rewriter.getF32FloatAttr(64e-5f))
                  .getResult();
    Value gated =
        buildBonusAndGate(rewriter, loc, y, r, kNew, op.getRK(), v, g, heads);
    Value out = linear(gated, op.getOutput());

    rewriter.replaceOp(
        op, ValueRange{out, shift.getLast(), wkv.getNewState(), vFirst});
    return success();
  }
};

struct DecomposeChannelMix final : OpRewritePattern<ChannelMixOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(ChannelMixOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value x = op.getInput();
    Type actType = x.getType();
    auto shift = TokenShiftOp::create(rewriter, loc, actType,
                                      op.getShiftState().getType(), x,
                                      op.getShiftState());
    Value xk =
        MixOp::create(rewriter, loc, actType, x, shift.getShifted(), op.getXK())
            .getResult();
    auto keyType = RankedTensorType::get(
        {llvm::cast<RankedTensorType>(actType).getDimSize(0),
         llvm::cast<RankedTensorType>(actType).getDimSize(1),
         llvm::cast<RankedTensorType>(op.getKey().getType()).getDimSize(0)},
        rewriter.getF32Type());
    Value h = LinearOp::create(rewriter, loc, keyType, xk, op.getKey());
    Value h2 = buildElementwise(
        rewriter, loc, h, {h}, [](OpBuilder &b, Location l, ValueRange in) {
          Value zero = f32Const(b, l, 0.0);
          Value relu = arith::MaximumFOp::create(b, l, in[0], zero);
          return arith::MulFOp::create(b, l, relu, relu).getResult();
        });
    Value out = LinearOp::create(rewriter, loc, actType, h2, op.getValue());
    rewriter.replaceOp(op, ValueRange{out, shift.getLast()});
    return success();
  }
};

struct RWKVDecomposePass final
    : impl::RWKVDecomposePassBase<RWKVDecomposePass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    populateDecompositionPatterns(patterns);
    // Only the composite ops are rewritten and nothing is folded; the driver
    // still uniques the new constants at the top of the function.
    GreedyRewriteConfig config;
    config.enableFolding(false);
    if (failed(
            applyPatternsGreedily(getOperation(), std::move(patterns), config)))
      signalPassFailure();
  }
};

} // namespace

void populateDecompositionPatterns(RewritePatternSet &patterns) {
  patterns.add<DecomposeTimeMix, DecomposeChannelMix>(patterns.getContext());
}

} // namespace mlir::rwkv
