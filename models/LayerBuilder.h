//===- LayerBuilder.h - per-version layer bodies ----------------*- C++ -*-===//
//
// ModelBuilder.cpp builds what every RWKV version shares (embedding, ln0,
// the rwkv.block per layer, ln_out, head, the entry points of docs/ABI.md).
// The body of a layer is version-specific: one file per version
// (rwkv4/RWKV4Layer.cpp, rwkv5/RWKV5Layer.cpp for 5.x and 6) composes the
// shared rwkv ops and its own WKV op. RWKV-7's body is its composite
// rwkv.time_mix / rwkv.channel_mix (ModelBuilder.cpp).
//
//===----------------------------------------------------------------------===//

#ifndef RWKV_MODELS_LAYERBUILDER_H
#define RWKV_MODELS_LAYERBUILDER_H

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinTypes.h"
#include "llvm/ADT/STLFunctionalExtras.h"

#include <optional>

namespace mlir::rwkv {

/// One per-layer state tensor of the ABI: `rwkv.state = "<name>:<layer>"`,
/// and the value a fresh state starts from.
struct StateSlot {
  StringRef name;
  RankedTensorType type;
  float init = 0.0f;
};

/// What a layer body needs from the module builder.
struct LayerContext {
  OpBuilder &b;
  Location loc;
  /// The argument of a checkpoint key (int8 matrices already dequantized).
  llvm::function_ref<Value(const std::string &)> weight;
  RankedTensorType actTy, shiftTy;
  int64_t heads;
  /// `blocks.<l>.`
  std::string prefix;

  Value w(StringRef suffix) const { return weight(prefix + suffix.str()); }
};

/// The state slots of one RWKV-4 layer: att_shift, aa, bb, pp (-1e30),
/// ffn_shift.
SmallVector<StateSlot> rwkv4StateSlots(RankedTensorType shiftTy);

/// Builds the ops of one RWKV-4 layer (ln1, time-mix, residual, ln2,
/// channel-mix, residual) at the builder's insertion point. `states` are the
/// layer's slots in order; returns the new residual stream followed by the
/// new states in the same order.
SmallVector<Value> buildRWKV4Layer(LayerContext &ctx, Value x,
                                   ValueRange states);

/// What differs between the RWKV-5 variants and RWKV-6 in a layer body.
struct RWKV5Variant {
  bool v6 = false;
  /// 5.0/5.1: one decay and one bonus per head ([H]), not per channel.
  bool perHead = false;
  /// 5.0/5.1 `att.time_first` holds log(u) (else `att.time_faaaa`, u).
  bool logBonus = false;
  /// Everything but 5.0 has the SiLU output gate.
  bool gate = true;
};

/// One RWKV-5 (5.0, 5.1, 5.2) or RWKV-6 layer; state slots att_shift, wkv
/// ([B, H, N, N], `S[key][value]`), ffn_shift.
SmallVector<Value> buildRWKV5Layer(LayerContext &ctx,
                                   const RWKV5Variant &variant, Value x,
                                   ValueRange states);

/// LayerNorm (eps 1e-5) with the weights `<key>.weight` / `<key>.bias`.
Value buildLayerNorm(LayerContext &ctx, Value x, const std::string &key);

/// The RWKV-4/5 channel-mix (spec §4.2; RWKV-6 with `mixFromShifted`, whose
/// mixes weight the previous token): `sigmoid(W_r xr) * W_v relu(W_k xk)^2`.
/// Returns the output and the new token-shift state.
std::pair<Value, Value> buildGatedChannelMix(LayerContext &ctx, Value x,
                                             Value shiftState,
                                             bool mixFromShifted);

} // namespace mlir::rwkv

#endif // RWKV_MODELS_LAYERBUILDER_H
