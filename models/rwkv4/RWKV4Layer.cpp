//===- RWKV4Layer.cpp - one RWKV-4 layer from rwkv ops --------------------===//
//
// Spec §4.2, the pip package's att_one / ffn_one: the mixes weight the
// current token, r gates the WKV output, and the WKV is rwkv.wkv4 with the
// load-time w = -exp(time_decay) computed in the graph (a [C] element-wise
// op, hoisted out of the token loop).
//
//===----------------------------------------------------------------------===//

#include "models/LayerBuilder.h"

#include "dialect/IRUtils.h"
#include "dialect/RWKVOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"

using namespace mlir;
using namespace mlir::rwkv;

SmallVector<StateSlot> mlir::rwkv::rwkv4StateSlots(RankedTensorType shiftTy) {
  // pp starts at -1e30 (pip), so the first token's exponent wins outright.
  return {{"att_shift", shiftTy},
          {"aa", shiftTy},
          {"bb", shiftTy},
          {"pp", shiftTy, -1e30f},
          {"ffn_shift", shiftTy}};
}

SmallVector<Value> mlir::rwkv::buildRWKV4Layer(LayerContext &ctx, Value x,
                                               ValueRange states) {
  OpBuilder &b = ctx.b;
  Location loc = ctx.loc;
  Type actTy = ctx.actTy;
  auto ew = [&](Value like, ValueRange ins, ElementwiseBodyFn fn) {
    return buildElementwise(b, loc, like, ins, fn);
  };

  Value xx = buildLayerNorm(ctx, x, ctx.prefix + "ln1");
  auto shift = TokenShiftOp::create(b, loc, actTy, ctx.shiftTy, xx, states[0]);
  auto mix = [&](StringRef mu) {
    return MixOp::create(b, loc, actTy, shift.getShifted(), xx, ctx.w(mu))
        .getResult();
  };
  Value xk = mix("att.time_mix_k"), xv = mix("att.time_mix_v");
  Value xr = mix("att.time_mix_r");
  auto linear = [&](Value in, StringRef key) {
    return LinearOp::create(b, loc, actTy, in, ctx.w(key)).getResult();
  };
  Value r = linear(xr, "att.receptance.weight");
  Value k = linear(xk, "att.key.weight");
  Value v = linear(xv, "att.value.weight");

  Value decay = ctx.w("att.time_decay");
  Value w = ew(decay, {decay}, [](OpBuilder &nb, Location l, ValueRange in) {
    return arith::NegFOp::create(nb, l, math::ExpOp::create(nb, l, in[0]))
        .getResult();
  });
  Value first = ctx.w("att.time_first");
  Value u = ew(first, {first},
               [](OpBuilder &, Location, ValueRange in) { return in[0]; });
  auto wkv = WKV4Op::create(
      b, loc, TypeRange{actTy, ctx.shiftTy, ctx.shiftTy, ctx.shiftTy}, w, u, k,
      v, states[1], states[2], states[3]);
  Value ry =
      ew(r, {r, wkv.getY()}, [](OpBuilder &nb, Location l, ValueRange in) {
        return arith::MulFOp::create(nb, l, sigmoid(nb, l, in[0]), in[1])
            .getResult();
      });
  Value att = linear(ry, "att.output.weight");
  Value x1 = arith::AddFOp::create(b, loc, x, att);

  Value xf = buildLayerNorm(ctx, x1, ctx.prefix + "ln2");
  auto [ffn, ffnShift] =
      buildGatedChannelMix(ctx, xf, states[4], /*mixFromShifted=*/false);
  Value x2 = arith::AddFOp::create(b, loc, x1, ffn);
  return {
      x2,      shift.getLast(), wkv.getNewAa(), wkv.getNewBb(), wkv.getNewPp(),
      ffnShift};
}
