//===- LayerBuilder.cpp - pieces shared by the RWKV-4/5/6 layers ----------===//

#include "models/LayerBuilder.h"

#include "dialect/IRUtils.h"
#include "dialect/RWKVOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"

using namespace mlir;
using namespace mlir::rwkv;

Value mlir::rwkv::buildLayerNorm(LayerContext &ctx, Value x,
                                 const std::string &key) {
  return LayerNormOp::create(ctx.b, ctx.loc, x.getType(), x,
                             ctx.weight(key + ".weight"),
                             ctx.weight(key + ".bias"), llvm::APFloat(1.0e-5f))
      .getResult();
}

std::pair<Value, Value> mlir::rwkv::buildGatedChannelMix(LayerContext &ctx,
                                                         Value x,
                                                         Value shiftState,
                                                         bool mixFromShifted) {
  OpBuilder &b = ctx.b;
  Location loc = ctx.loc;
  Type actTy = x.getType();
  auto shift =
      TokenShiftOp::create(b, loc, actTy, shiftState.getType(), x, shiftState);
  Value sx = shift.getShifted();
  // RWKV-4/5 weight the current token (x mu + sx (1 - mu)): the same lerp
  // with the operands swapped.
  auto mix = [&](StringRef mu) {
    Value from = mixFromShifted ? x : sx, to = mixFromShifted ? sx : x;
    return MixOp::create(b, loc, actTy, from, to, ctx.w(mu)).getResult();
  };
  const char *k = mixFromShifted ? "ffn.time_maa_k" : "ffn.time_mix_k";
  const char *r = mixFromShifted ? "ffn.time_maa_r" : "ffn.time_mix_r";
  Value xk = mix(k), xr = mix(r);
  Value key = ctx.w("ffn.key.weight");
  auto hiddenTy = RankedTensorType::get(
      {ctx.actTy.getDimSize(0), ctx.actTy.getDimSize(1),
       cast<RankedTensorType>(key.getType()).getDimSize(0)},
      b.getF32Type());
  Value h = LinearOp::create(b, loc, hiddenTy, xk, key);
  Value h2 = buildElementwise(
      b, loc, h, {h}, [](OpBuilder &nb, Location l, ValueRange in) {
        Value zero = f32Const(nb, l, 0.0);
        Value relu = arith::MaximumFOp::create(nb, l, in[0], zero);
        return arith::MulFOp::create(nb, l, relu, relu).getResult();
      });
  Value v = LinearOp::create(b, loc, actTy, h2, ctx.w("ffn.value.weight"));
  Value rr =
      LinearOp::create(b, loc, actTy, xr, ctx.w("ffn.receptance.weight"));
  Value out = buildElementwise(
      b, loc, x, {rr, v}, [](OpBuilder &nb, Location l, ValueRange in) {
        return arith::MulFOp::create(nb, l, sigmoid(nb, l, in[0]), in[1])
            .getResult();
      });
  return {out, shift.getLast()};
}
