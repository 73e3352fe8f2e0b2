//===- ModelBuilder.h - RWKV model importer ---------------------*- C++ -*-===//
//
// Builds the rwkv-dialect module of a whole RWKV model with the entry
// points, argument order and attributes of docs/ABI.md. Weights are function
// arguments tagged with their checkpoint keys; the importer only needs their
// names, dtypes and shapes, never their bytes.
//
//===----------------------------------------------------------------------===//

#ifndef RWKV_MODELS_MODELBUILDER_H
#define RWKV_MODELS_MODELBUILDER_H

#include "runtime/checkpoint/Checkpoint.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/OwningOpRef.h"
#include "mlir/Support/LLVM.h"
#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/Twine.h"

#include <cstdint>
#include <string>
#include <vector>

namespace mlir::rwkv {

/// One checkpoint tensor as the importer sees it.
struct WeightInfo {
  std::string name;
  ::rwkv::DType dtype = ::rwkv::DType::BF16;
  /// The checkpoint's shape (e.g. `[1, 1, C]`, `r_k` `[H, N]`).
  std::vector<int64_t> shape;
};

struct ModelBuildOptions {
  /// Static batch size B of every entry point.
  int64_t batch = 1;
  /// Chunk length of the chunked WKV form (rwkv_forward, rwkv_forward_all,
  /// and the training entry points when `trainMode` is chunked).
  int64_t chunkLength = 16;
  /// > 0: build the training entry points instead of the inference ones, for
  /// sequences of exactly `trainContext` tokens (docs/ABI.md, "Training").
  int64_t trainContext = 0;
  /// The WKV form of the training forward and backward.
  bool trainChunked = false;
  /// Targets equal to this id do not count in the loss.
  int64_t ignoreIndex = -100;
  /// RWKV-LM's L2Wrap gradient factor (0 = plain cross-entropy; RWKV-LM 1e-4).
  double l2wrap = 0.0;
  /// Activation checkpointing: the backward recomputes each layer's forward
  /// instead of keeping its intermediates (`rwkv.recompute_layers`).
  bool recomputeLayers = false;
};

/// Builds the module of docs/ABI.md for an RWKV-4, 5.2, 6 or 7 model
/// (training: RWKV-7 only). With
/// `opts.trainContext > 0` it holds one function, `rwkv_train_loss` (tokens,
/// targets `[B, T]`, the initial WKV state of each layer, the weights ->
/// mean cross-entropy), tagged for rwkv-differentiate to add
/// `rwkv_train_step`. Otherwise: module attributes
/// `rwkv.config` and `rwkv.batch`, and three public functions `rwkv_step`
/// (sequential WKV, logits of the last position), `rwkv_forward` (chunked,
/// last) and `rwkv_forward_all` (chunked, every position). `weights` may be in
/// any order and may hold extra tensors (layer-0 v0/v1/v2 are never used).
/// Reports the first problem (wrong version or head layout, a missing weight,
/// a wrong shape or dtype, a verifier failure) through `emitError` and returns
/// failure.
FailureOr<OwningOpRef<ModuleOp>>
buildRWKVModule(MLIRContext &ctx, const ::rwkv::ModelConfig &config,
                ArrayRef<WeightInfo> weights, const ModelBuildOptions &opts,
                llvm::function_ref<void(const llvm::Twine &)> emitError);

/// Shape and form of a standalone WKV7 kernel library
/// (`rwkv-compile --kernel wkv7`).
struct WKV7KernelOptions {
  int64_t batch = 1, context = 1, heads = 1, headSize = 64;
  /// The chunk-parallel forward/backward instead of the sequential one.
  bool chunked = false;
  int64_t chunkLength = 16;
};

/// Builds a module exporting the WKV7 recurrence alone (docs/ABI.md, "Kernel
/// libraries"): module attributes `rwkv.kernel = "wkv7"`, `rwkv.config`
/// (n_layer 1, n_embd H*N, n_head H, head_size N, other sizes 1) and
/// `rwkv.batch`, and two public functions on static shapes, C = H*N:
///   rwkv_wkv7_forward(r, w, k, v, a, b : [B,T,C], state0 : [B,H,N,N])
///       -> (y [B,T,C], state [B,H,N,N])
///   rwkv_wkv7_backward(r, w, k, v, a, b, state0, dy, dstate)
///       -> (dr, dw, dk, dv, da, db, dstate0)
/// (`w` is the log-decay, as for rwkv.wkv). Reports a bad option through
/// `emitError` and returns failure.
FailureOr<OwningOpRef<ModuleOp>>
buildWKV7KernelModule(MLIRContext &ctx, const WKV7KernelOptions &opts,
                      llvm::function_ref<void(const llvm::Twine &)> emitError);

/// The weights of `tensorSpecs(config)`, all with `config.dtype`.
/// Empty only if the spec list could not be made.
SmallVector<WeightInfo> defaultWeightInfos(const ::rwkv::ModelConfig &config);

} // namespace mlir::rwkv

#endif // RWKV_MODELS_MODELBUILDER_H
