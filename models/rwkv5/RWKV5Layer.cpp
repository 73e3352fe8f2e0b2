//===- RWKV5Layer.cpp - one RWKV-5 or RWKV-6 layer from rwkv ops ----------===//
//
// Spec §4.3 (5.x: static mixes and decay) and §4.4 (6: token shift and decay
// through LoRAs). All end in rwkv.wkv5, the per-head GroupNorm (eps 64e-5),
// the SiLU gate (not in 5.0) and the output projection. The 5.0/5.1
// previews' per-head decay and bonus are spread over their heads' channels,
// which is exactly the pip package's [H, 1, 1] broadcast.
//
//===----------------------------------------------------------------------===//

#include "models/LayerBuilder.h"

#include "dialect/IRUtils.h"
#include "dialect/RWKVOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

using namespace mlir;
using namespace mlir::rwkv;

namespace {

/// `x + (sx - x) * (mu + delta)`: RWKV-6's data-dependent lerp.
Value dataDependentMix(OpBuilder &b, Location loc, Value x, Value sx, Value mu,
                       Value delta) {
  return buildElementwise(
      b, loc, x, {x, sx, mu, delta},
      [](OpBuilder &nb, Location l, ValueRange in) {
        Value m = arith::AddFOp::create(nb, l, in[2], in[3]);
        Value d = arith::SubFOp::create(nb, l, in[1], in[0]);
        Value t = arith::MulFOp::create(nb, l, d, m);
        return arith::AddFOp::create(nb, l, in[0], t).getResult();
      });
}

/// Slice `i` of RWKV-6's token-shift LoRA: columns [i*D, (i+1)*D) of
/// `time_maa_w1` [C, 5D] and `time_maa_w2[i]` [D, C].
std::pair<Value, Value> mixLoraSlice(OpBuilder &b, Location loc, Value w1,
                                     Value w2, int64_t i) {
  auto w1Ty = cast<RankedTensorType>(w1.getType());
  auto w2Ty = cast<RankedTensorType>(w2.getType());
  int64_t c = w1Ty.getDimSize(0), d = w2Ty.getDimSize(1);
  auto downTy = RankedTensorType::get({c, d}, w1Ty.getElementType());
  auto upTy =
      RankedTensorType::get({d, w2Ty.getDimSize(2)}, w2Ty.getElementType());
  Value down = tensor::ExtractSliceOp::create(
      b, loc, downTy, w1,
      ArrayRef<OpFoldResult>{b.getIndexAttr(0), b.getIndexAttr(i * d)},
      ArrayRef<OpFoldResult>{b.getIndexAttr(c), b.getIndexAttr(d)},
      ArrayRef<OpFoldResult>{b.getIndexAttr(1), b.getIndexAttr(1)});
  Value up = tensor::ExtractSliceOp::create(
      b, loc, upTy, w2,
      ArrayRef<OpFoldResult>{b.getIndexAttr(i), b.getIndexAttr(0),
                             b.getIndexAttr(0)},
      ArrayRef<OpFoldResult>{b.getIndexAttr(1), b.getIndexAttr(d),
                             b.getIndexAttr(w2Ty.getDimSize(2))},
      ArrayRef<OpFoldResult>{b.getIndexAttr(1), b.getIndexAttr(1),
                             b.getIndexAttr(1)});
  return {down, up};
}

/// `fn(p[h])` on each of head h's `n` channels: a per-head [H] parameter as
/// the per-channel f32 [H * n] vector rwkv.wkv5 takes.
Value spreadOverHeads(
    OpBuilder &b, Location loc, Value perHead, int64_t n,
    llvm::function_ref<Value(OpBuilder &, Location, Value)> fn) {
  MLIRContext *mctx = b.getContext();
  int64_t h = cast<RankedTensorType>(perHead.getType()).getDimSize(0);
  Value init =
      tensor::EmptyOp::create(b, loc, ArrayRef<int64_t>{h, n}, b.getF32Type());
  AffineMap byHead = AffineMap::get(2, 0, {getAffineDimExpr(0, mctx)}, mctx);
  auto spread = linalg::GenericOp::create(
      b, loc, TypeRange{init.getType()}, ValueRange{perHead}, ValueRange{init},
      ArrayRef<AffineMap>{byHead, AffineMap::getMultiDimIdentityMap(2, mctx)},
      SmallVector<utils::IteratorType>(2, utils::IteratorType::parallel),
      [&](OpBuilder &nb, Location l, ValueRange args) {
        linalg::YieldOp::create(nb, l, fn(nb, l, toF32(nb, l, args[0])));
      });
  return mergeHeads(b, loc, spread.getResult(0));
}

} // namespace

SmallVector<Value> mlir::rwkv::buildRWKV5Layer(LayerContext &ctx,
                                               const RWKV5Variant &variant,
                                               Value x, ValueRange states) {
  OpBuilder &b = ctx.b;
  Location loc = ctx.loc;
  Type actTy = ctx.actTy;
  bool v6 = variant.v6;
  const int64_t headSize = ctx.actTy.getShape().back() / ctx.heads;

  Value xx = buildLayerNorm(ctx, x, ctx.prefix + "ln1");
  auto shift = TokenShiftOp::create(b, loc, actTy, ctx.shiftTy, xx, states[0]);
  Value sx = shift.getShifted();

  // The five mixed inputs, in RWKV-6's LoRA order w, k, v, r, g.
  Value xw, xk, xv, xr, xg;
  if (v6) {
    Value xxx = MixOp::create(b, loc, actTy, xx, sx, ctx.w("att.time_maa_x"));
    Value w1 = ctx.w("att.time_maa_w1"), w2 = ctx.w("att.time_maa_w2");
    const char *mus[] = {"att.time_maa_w", "att.time_maa_k", "att.time_maa_v",
                         "att.time_maa_r", "att.time_maa_g"};
    Value *outs[] = {&xw, &xk, &xv, &xr, &xg};
    for (int64_t i = 0; i < 5; ++i) {
      auto [down, up] = mixLoraSlice(b, loc, w1, w2, i);
      Value delta =
          LoraOp::create(b, loc, actTy, xxx, down, up, ActivationKind::tanh);
      *outs[i] = dataDependentMix(b, loc, xx, sx, ctx.w(mus[i]), delta);
    }
  } else {
    // RWKV-5 weights the current token: the lerp with operands swapped.
    auto mix = [&](StringRef mu) {
      return MixOp::create(b, loc, actTy, sx, xx, ctx.w(mu)).getResult();
    };
    xk = mix("att.time_mix_k");
    xv = mix("att.time_mix_v");
    xr = mix("att.time_mix_r");
    if (variant.gate)
      xg = mix("att.time_mix_g");
  }

  auto linear = [&](Value in, StringRef key) {
    return LinearOp::create(b, loc, actTy, in, ctx.w(key)).getResult();
  };
  Value r = linear(xr, "att.receptance.weight");
  Value k = linear(xk, "att.key.weight");
  Value v = linear(xv, "att.value.weight");
  Value g;
  if (variant.gate)
    g = buildElementwise(b, loc, x, {linear(xg, "att.gate.weight")},
                         [](OpBuilder &nb, Location l, ValueRange in) {
                           return arith::MulFOp::create(nb, l, in[0],
                                                        sigmoid(nb, l, in[0]))
                               .getResult();
                         });

  // The log-log decay: static [C] (5.2), [H] (5.0/5.1) or per token
  // through a LoRA (6).
  Value decay = ctx.w("att.time_decay");
  auto identity = [](OpBuilder &, Location, ValueRange in) { return in[0]; };
  Value w;
  if (variant.perHead) {
    w = spreadOverHeads(b, loc, decay, headSize,
                        [](OpBuilder &, Location, Value v) { return v; });
  } else if (v6) {
    Value lora =
        LoraOp::create(b, loc, actTy, xw, ctx.w("att.time_decay_w1"),
                       ctx.w("att.time_decay_w2"), ActivationKind::tanh);
    w = buildElementwise(
        b, loc, x, {decay, lora}, [](OpBuilder &nb, Location l, ValueRange in) {
          return arith::AddFOp::create(nb, l, in[0], in[1]).getResult();
        });
  } else {
    w = buildElementwise(b, loc, decay, {decay}, identity);
  }
  // The bonus u: `time_faaaa` is u itself, the previews' `time_first` log u.
  Value u;
  if (variant.perHead && variant.logBonus)
    u = spreadOverHeads(b, loc, ctx.w("att.time_first"), headSize,
                        [](OpBuilder &nb, Location l, Value v) {
                          return math::ExpOp::create(nb, l, v).getResult();
                        });
  else if (variant.perHead)
    u = spreadOverHeads(b, loc, ctx.w("att.time_faaaa"), headSize,
                        [](OpBuilder &, Location, Value v) { return v; });
  else
    u = buildElementwise(b, loc, ctx.w("att.time_faaaa"),
                         {ctx.w("att.time_faaaa")}, identity);
  auto wkv = WKV5Op::create(b, loc, TypeRange{actTy, states[1].getType()}, r, w,
                            k, v, u, states[1]);
  Value y = GroupNormOp::create(
      b, loc, actTy, wkv.getY(), ctx.w("att.ln_x.weight"),
      ctx.w("att.ln_x.bias"), b.getI64IntegerAttr(ctx.heads),
      b.getF32FloatAttr(64e-5f));
  Value gated = y;
  if (variant.gate)
    gated = buildElementwise(
        b, loc, y, {y, g}, [](OpBuilder &nb, Location l, ValueRange in) {
          return arith::MulFOp::create(nb, l, in[0], in[1]).getResult();
        });
  Value att = linear(gated, "att.output.weight");
  Value x1 = arith::AddFOp::create(b, loc, x, att);

  Value xf = buildLayerNorm(ctx, x1, ctx.prefix + "ln2");
  auto [ffn, ffnShift] =
      buildGatedChannelMix(ctx, xf, states[2], /*mixFromShifted=*/v6);
  Value x2 = arith::AddFOp::create(b, loc, x1, ffn);
  return {x2, shift.getLast(), wkv.getNewState(), ffnShift};
}
