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
#include "llvm/Support/Regex.h"

using namespace mlir;
using namespace mlir::rwkv;

/// Appends an upstream textual pipeline; the strings are fixed, so a parse
/// failure is a bug in this file.
static void addUpstream(OpPassManager &pm, const Twine &pipeline) {
  if (failed(parsePassPipeline(pipeline.str(), pm, llvm::errs())))
    llvm::report_fatal_error("rwkv: malformed built-in pipeline");
}

namespace {
/// Fails the pipeline with `message`: a builder cannot return an error, and
/// a bad option must not reach a pass pipeline string.
struct ErrorPass final : PassWrapper<ErrorPass, OperationPass<ModuleOp>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(ErrorPass)
  explicit ErrorPass(std::string message) : message(std::move(message)) {}
  StringRef getArgument() const override { return "rwkv-pipeline-error"; }
  void runOnOperation() override {
    getOperation().emitError(message);
    signalPassFailure();
  }
  std::string message;
};
} // namespace

void rwkv::addPipelineError(OpPassManager &pm, std::string message) {
  pm.addPass(std::make_unique<ErrorPass>(std::move(message)));
}

/// Front half shared by every target: flatten blocks, expand composites,
/// lower to linalg on tensors and fuse element-wise chains.
static void buildFrontEnd(OpPassManager &pm, const RWKVPipelineOptions &opts,
                          bool tile = true, bool gpuWKV = false) {
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
  // GPU: the sequential recurrence one thread per state row, before
  // rwkv-parallelize-wkv (which then sees only the gradients and the
  // chunked form).
  if (gpuWKV)
    pm.addPass(createRWKVLowerWKVToRowsPass());
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
  if (!tile)
    return;
  RWKVTileAndFusePassOptions tileOpts;
  tileOpts.tileTokens = opts.tileTokens;
  tileOpts.tileOutputs = opts.tileOutputs;
  pm.addPass(createRWKVTileAndFusePass(tileOpts));
  if (opts.threads && opts.parallelizeLinalg)
    pm.addPass(createRWKVParallelizeLinalgPass());
  pm.addPass(createCanonicalizerPass());
}

/// Bufferizes the whole module; entry points return results through
/// caller-provided buffers, which gives the runtime a fixed C ABI.
static void addBufferization(OpPassManager &pm, bool prefetch,
                             bool inPlaceStates) {
  addUpstream(pm, "eliminate-empty-tensors,"
                  "one-shot-bufferize{bufferize-function-boundaries "
                  "function-boundary-type-conversion=identity-layout-map},"
                  "canonicalize,cse,scf-forall-to-parallel,"
                  "drop-equivalent-buffer-results");
  pm.addPass(createRWKVEntryOutParamsPass({inPlaceStates}));
  if (prefetch)
    pm.addPass(createRWKVPrefetchWeightRowsPass());
  addUpstream(pm,
              "buffer-deallocation-pipeline,convert-bufferization-to-memref");
  pm.addPass(createRWKVLowerStridedCopiesPass());
}

/// Loops on memrefs to the LLVM dialect for the host.
static void addCpuBackEnd(OpPassManager &pm, bool threads) {
  addUpstream(pm, "expand-strided-metadata,lower-affine,canonicalize,cse");
  // Projection tiles run on all cores through OpenMP (libomp).
  if (threads) {
    addUpstream(pm, "convert-scf-to-openmp,canonicalize");
    pm.addPass(createRWKVGuardParallelRegionsPass());
    pm.addPass(createRWKVMergeParallelRegionsPass());
    pm.addPass(createRWKVInlineStaticSchedulePass());
  }
  addUpstream(pm, "convert-scf-to-cf,canonicalize,cse,"
                  "func.func(llvm-request-c-wrappers),"
                  "convert-vector-to-llvm{reassociate-fp-reductions "
                  "enable-x86vector},"
                  "convert-to-llvm,convert-openmp-to-llvm,"
                  "reconcile-unrealized-casts");
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
    vecOpts.bf16Dot = opts.bf16Dot;
    // `auto` is the compilation target's to resolve (CpuTarget); without
    // one, nothing says that the integer dot products exist.
    vecOpts.intDot =
        opts.intDot == "auto" ? std::string("off") : std::string(opts.intDot);
    pm.addPass(createRWKVVectorizeProjectionsPass(vecOpts));
    pm.addPass(createCanonicalizerPass());
  }
  if (opts.approximateMath)
    pm.addPass(createRWKVApproximateMathPass());
  addBufferization(pm, opts.vectorWidth > 0 && opts.prefetch,
                   /*inPlaceStates=*/true);
  addUpstream(pm, "func.func(convert-linalg-to-loops)");
  addCpuBackEnd(pm, opts.threads);
}

void rwkv::buildRWKVCudaPipeline(OpPassManager &pm,
                                 const RWKVPipelineOptions &opts) {
  // Both are spliced into the NVVM pipeline string below.
  const std::string &chip = opts.gpuChip, &format = opts.gpuFormat;
  if (!llvm::Regex("^sm_[0-9]+[af]?$").match(chip)) {
    pm.addPass(std::make_unique<ErrorPass>(
        "gpu-chip must be sm_NN (sm_80, sm_90a, ...), got '" + chip + "'"));
    return;
  }
  if (format != "fatbin" && format != "bin" && format != "isa") {
    pm.addPass(std::make_unique<ErrorPass>(
        "gpu-format must be fatbin, bin or isa, got '" + format + "'"));
    return;
  }
  const std::string &mma = opts.gpuMma;
  if (mma != "f32" && mma != "bf16x2" && mma != "bf16" && mma != "off") {
    pm.addPass(std::make_unique<ErrorPass>(
        "gpu-mma must be f32, bf16x2, bf16 or off, got '" + mma + "'"));
    return;
  }
  // No CPU tiles: the loop mapping below distributes each op over threads.
  buildFrontEnd(pm, opts, /*tile=*/false, /*gpuWKV=*/true);
  if (!opts.lowerToLLVM)
    return;
  addBufferization(pm, /*prefetch=*/false, /*inPlaceStates=*/false);
  // bf16 mma.sync needs sm_80 (the chip's digits, "sm_90a" -> 90).
  if (mma != "off" && std::stoi(chip.substr(3)) >= 80) {
    RWKVMmaProjectionsPassOptions mmaOpts;
    mmaOpts.activations = mma;
    pm.addNestedPass<func::FuncOp>(createRWKVMmaProjectionsPass(mmaOpts));
  }
  addUpstream(pm, "func.func(convert-linalg-to-parallel-loops),canonicalize");
  RWKVMapParallelLoopsToGPUPassOptions mapOpts;
  mapOpts.blockSize = opts.gpuBlockSize;
  pm.addNestedPass<func::FuncOp>(createRWKVMapParallelLoopsToGPUPass(mapOpts));
  addUpstream(pm, "func.func(scf-parallel-for-to-nested-fors),canonicalize,"
                  "cse");
  pm.addNestedPass<func::FuncOp>(createRWKVPromoteLoopAccumulatorsPass());
  // The emulation runs the warps' subgroup reductions itself.
  RWKVWarpReductionsPassOptions warpOpts;
  warpOpts.lowerToShuffles = !opts.gpuEmulate;
  pm.addNestedPass<func::FuncOp>(createRWKVWarpReductionsPass(warpOpts));
  // After the warps: their lanes' vector loads get the alignment too.
  pm.addNestedPass<func::FuncOp>(createRWKVLowerKernelTransfersPass());
  if (opts.gpuEmulate) {
    pm.addPass(createRWKVEmulateGpuLaunchPass());
    addCpuBackEnd(pm, opts.threads);
    return;
  }
  pm.addNestedPass<func::FuncOp>(createRWKVGpuHostBuffersPass());
  // Outlining needs the constants sunk into the launches first, or they
  // become kernel parameters (cuda-codegen.md §1.0).
  addUpstream(pm, "gpu-launch-sink-index-computations,gpu-kernel-outlining");
  pm.addPass(createRWKVMergeGpuModulesPass());
  // Launches, allocations and copies chained on one stream (gpu-to-llvm
  // lowers gpu.alloc / gpu.memcpy only in this async form), with one
  // synchronisation at the end of each entry point.
  addUpstream(pm, "func.func(gpu-async-region,llvm-request-c-wrappers)");
  addUpstream(pm, "gpu-lower-to-nvvm-pipeline{cubin-chip=" + chip +
                      " cubin-features=+ptx80 cubin-format=" + format +
                      " opt-level=3}");
  addUpstream(pm, "convert-to-llvm,reconcile-unrealized-casts");
}

void rwkv::registerRWKVPipelines() {
  PassPipelineRegistration<RWKVPipelineOptions>(
      "rwkv-cpu-pipeline",
      "Lower an rwkv model for the CPU (what rwkv-compile runs)",
      buildRWKVCpuPipeline);
  PassPipelineRegistration<RWKVPipelineOptions>(
      "rwkv-cuda-pipeline",
      "Lower an rwkv model for NVIDIA GPUs (what rwkv-compile --target=cuda "
      "runs)",
      buildRWKVCudaPipeline);
}
