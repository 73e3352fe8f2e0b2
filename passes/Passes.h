//===- Passes.h - rwkv passes and pipelines ---------------------*- C++ -*-===//

#ifndef RWKV_PASSES_PASSES_H
#define RWKV_PASSES_PASSES_H

#include "dialect/RWKVOps.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Pass/Pass.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassOptions.h"

namespace mlir::rwkv {

#define GEN_PASS_DECL
#include "passes/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "passes/Passes.h.inc"

/// Patterns that expand time_mix / channel_mix into primitive ops.
void populateDecompositionPatterns(RewritePatternSet &patterns);

//===----------------------------------------------------------------------===//
// Pipelines
//===----------------------------------------------------------------------===//

/// Options shared by `rwkv-compile` and the registered pipelines, so that
/// `rwkv-opt --rwkv-cpu-pipeline='...'` reproduces any compile.
struct RWKVPipelineOptions : public PassPipelineOptions<RWKVPipelineOptions> {
  PassOptions::Option<bool> decompose{
      *this, "decompose",
      llvm::cl::desc("Expand composite ops into primitive ops"),
      llvm::cl::init(true)};
};

/// The CPU pipeline: rwkv -> primitive ops -> (linalg, LLVM as it lands).
void buildRWKVCpuPipeline(OpPassManager &pm, const RWKVPipelineOptions &opts);
/// The CUDA pipeline: same front half as the CPU pipeline.
void buildRWKVCudaPipeline(OpPassManager &pm, const RWKVPipelineOptions &opts);
/// Registers `rwkv-cpu-pipeline` and `rwkv-cuda-pipeline`.
void registerRWKVPipelines();

} // namespace mlir::rwkv

#endif // RWKV_PASSES_PASSES_H
