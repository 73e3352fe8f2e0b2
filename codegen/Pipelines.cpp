//===- Pipelines.cpp - registered rwkv pipelines
//---------------------------===//
//
// Each pipeline is a C++ builder so that rwkv-compile and
// `rwkv-opt --rwkv-cpu-pipeline` run exactly the same passes.
//
//   rwkv (blocks, composites)
//     -> rwkv-inline-blocks, rwkv-decompose           primitive rwkv ops
//     -> rwkv-differentiate                           + gradient functions
//     -> rwkv-parallelize-wkv                         one WKV per (b, h)
//     -> convert-rwkv-to-linalg                       linalg/tensor/scf
//     -> convert-elementwise-to-linalg, fusion        fused linalg.generic
//     -> rwkv-tile-and-fuse, rwkv-parallelize-linalg  scf.forall tiles
//     -> one-shot-bufferize, out-params, dealloc      memrefs
//     -> loops, convert-to-llvm                       LLVM dialect
//
//===----------------------------------------------------------------------===//

#include "codegen/Pipelines.h"
#include "codegen/Passes.h"
#include "passes/Passes.h"

#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"
#include "llvm/Support/ErrorHandling.h"

using namespace mlir;
using namespace mlir::rwkv;

/// Appends an upstream textual pipeline; the strings are fixed, so a parse
/// failure is a bug in this file.
static void addUpstream(OpPassManager &pm, StringRef pipeline) {
  if (failed(parsePassPipeline(pipeline, pm, llvm::errs())))
    llvm::report_fatal_error("rwkv: malformed built-in pipeline");
}

/// Front half shared by every target: flatten blocks, expand composites,
/// lower to linalg on tensors and fuse element-wise chains.
static void buildFrontEnd(OpPassManager &pm, const RWKVPipelineOptions &opts) {
  pm.addPass(createRWKVUnwrapModelPass());
  if (opts.outlineLayers) {
    // One function per distinct layer: code size and compile time no longer
    // grow with n_layer.
    pm.addPass(createRWKVOutlineBlocksPass());
    addUpstream(pm, "duplicate-function-elimination");
    // Nested blocks dissolve into their layer's function.
    pm.addPass(createRWKVInlineBlocksPass());
  } else {
    pm.addPass(createRWKVInlineBlocksPass());
  }
  if (opts.decompose)
    pm.addPass(createRWKVDecomposePass());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  // Training modules: gradients are built on the primitive ops, before
  // anything is lowered, so the backward goes through the same stages. It
  // runs after CSE, which would merge the layers that activation
  // checkpointing recomputes back into the stored forward.
  if (opts.decompose)
    pm.addPass(createRWKVDifferentiatePass());
  if (!opts.lowerToLLVM)
    return;
  // One WKV recurrence per (batch row, head), in parallel.
  if (opts.parallelWKV)
    pm.addPass(createRWKVParallelizeWKVPass());
  ConvertRWKVToLinalgPassOptions toLinalgOpts;
  toLinalgOpts.chunkedWKV = opts.chunkedWKV;
  pm.addPass(createConvertRWKVToLinalgPass(toLinalgOpts));
  // No CSE from here to bufferization: it would merge the zero-filled
  // accumulators of independent contractions into one tensor, which
  // bufferization must then copy for every user.
  addUpstream(pm, "func.func(convert-elementwise-to-linalg),canonicalize");
  pm.addPass(createRWKVFuseElementwisePass());
  pm.addPass(createCanonicalizerPass());
  RWKVTileAndFusePassOptions tileOpts;
  tileOpts.tileTokens = opts.tileTokens;
  tileOpts.tileOutputs = opts.tileOutputs;
  pm.addPass(createRWKVTileAndFusePass(tileOpts));
  if (opts.threads && opts.parallelizeLinalg)
    pm.addPass(createRWKVParallelizeLinalgPass());
  pm.addPass(createCanonicalizerPass());
}

void rwkv::buildRWKVCpuPipeline(OpPassManager &pm,
                                const RWKVPipelineOptions &opts) {
  buildFrontEnd(pm, opts);
  if (!opts.lowerToLLVM)
    return;
  // Register-blocked vector dot products, on tensors: after bufferization
  // the accumulators could no longer be kept in registers.
  if (opts.vectorWidth > 0) {
    RWKVVectorizeProjectionsPassOptions vecOpts;
    vecOpts.vectorWidth = opts.vectorWidth;
    vecOpts.tokenBlock = opts.tokenBlock;
    pm.addPass(createRWKVVectorizeProjectionsPass(vecOpts));
    pm.addPass(createCanonicalizerPass());
  }
  if (opts.approximateMath)
    pm.addPass(createRWKVApproximateMathPass());
  // Bufferize the whole module; entry points return results through
  // caller-provided buffers, which gives the runtime a fixed C ABI.
  addUpstream(pm, "eliminate-empty-tensors,"
                  "one-shot-bufferize{bufferize-function-boundaries "
                  "function-boundary-type-conversion=identity-layout-map},"
                  "canonicalize,cse,scf-forall-to-parallel,"
                  "drop-equivalent-buffer-results");
  pm.addPass(createRWKVEntryOutParamsPass());
  if (opts.vectorWidth > 0 && opts.prefetch)
    pm.addPass(createRWKVPrefetchWeightRowsPass());
  addUpstream(pm,
              "buffer-deallocation-pipeline,convert-bufferization-to-memref");
  pm.addPass(createRWKVLowerStridedCopiesPass());
  addUpstream(pm, "func.func(convert-linalg-to-loops),"
                  "expand-strided-metadata,lower-affine,canonicalize,cse");
  // Projection tiles run on all cores through OpenMP (libomp).
  if (opts.threads) {
    addUpstream(pm, "convert-scf-to-openmp,canonicalize");
    pm.addPass(createRWKVGuardParallelRegionsPass());
  }
  addUpstream(pm, "convert-scf-to-cf,canonicalize,cse,"
                  "func.func(llvm-request-c-wrappers),"
                  "convert-vector-to-llvm{reassociate-fp-reductions},"
                  "convert-to-llvm,convert-openmp-to-llvm,"
                  "reconcile-unrealized-casts");
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
      "Lower an rwkv model for NVIDIA GPUs: so far the shared front half "
      "(rwkv to tiled linalg on tensors); the GPU mapping is not built yet",
      buildRWKVCudaPipeline);
}
