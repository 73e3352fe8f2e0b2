//===- Pipelines.cpp - registered rwkv pipelines ---------------------------===//
//
// Each pipeline is a C++ builder so that rwkv-compile and
// `rwkv-opt --rwkv-cpu-pipeline` run exactly the same passes.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"

using namespace mlir;
using namespace mlir::rwkv;

/// Front half shared by every target: flatten blocks, expand composites.
static void buildFrontEnd(OpPassManager &pm, const RWKVPipelineOptions &opts) {
  pm.addPass(createRWKVInlineBlocksPass());
  if (opts.decompose)
    pm.addPass(createRWKVDecomposePass());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
}

void rwkv::buildRWKVCpuPipeline(OpPassManager &pm,
                                const RWKVPipelineOptions &opts) {
  buildFrontEnd(pm, opts);
}

void rwkv::buildRWKVCudaPipeline(OpPassManager &pm,
                                 const RWKVPipelineOptions &opts) {
  buildFrontEnd(pm, opts);
}

void rwkv::registerRWKVPipelines() {
  PassPipelineRegistration<RWKVPipelineOptions>(
      "rwkv-cpu-pipeline",
      "Lower an rwkv model for the CPU (what rwkv-compile runs)",
      buildRWKVCpuPipeline);
  PassPipelineRegistration<RWKVPipelineOptions>(
      "rwkv-cuda-pipeline",
      "Lower an rwkv model for NVIDIA GPUs (what rwkv-compile runs)",
      buildRWKVCudaPipeline);
}
