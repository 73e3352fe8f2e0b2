//===- Pipelines.h - registered rwkv pipelines ------------------*- C++ -*-===//

#ifndef RWKV_CODEGEN_PIPELINES_H
#define RWKV_CODEGEN_PIPELINES_H

#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassOptions.h"

namespace mlir::rwkv {

/// Options shared by `rwkv-compile` and the registered pipelines, so that
/// `rwkv-opt --rwkv-cpu-pipeline='...'` reproduces any compile.
struct RWKVPipelineOptions : public PassPipelineOptions<RWKVPipelineOptions> {
  PassOptions::Option<bool> decompose{
      *this, "decompose",
      llvm::cl::desc("Expand composite ops into primitive ops"),
      llvm::cl::init(true)};
  PassOptions::Option<bool> outlineLayers{
      *this, "outline-layers",
      llvm::cl::desc("Outline layers into shared functions instead of "
                     "inlining every block"),
      llvm::cl::init(true)};
  PassOptions::Option<bool> lowerToLLVM{
      *this, "to-llvm", llvm::cl::desc("Lower all the way to the LLVM dialect"),
      llvm::cl::init(true)};
  PassOptions::Option<bool> chunkedWKV{
      *this, "chunked-wkv",
      llvm::cl::desc("Lower wkv {mode = chunked} to the chunk-parallel form "
                     "(off: the recurrence, faster on CPUs; docs/codegen.md)"),
      llvm::cl::init(false)};
  PassOptions::Option<bool> parallelWKV{
      *this, "parallel-wkv",
      llvm::cl::desc("Run each WKV recurrence (and its gradient) head by "
                     "head on all cores"),
      llvm::cl::init(true)};
  PassOptions::Option<int64_t> tileTokens{
      *this, "tile-tokens", llvm::cl::desc("Tokens per projection tile"),
      llvm::cl::init(16)};
  PassOptions::Option<int64_t> tileOutputs{
      *this, "tile-outputs",
      llvm::cl::desc("Output channels per projection tile"),
      llvm::cl::init(64)};
  PassOptions::Option<int64_t> vectorWidth{
      *this, "vector-width",
      llvm::cl::desc("f32 lanes of the projection dot products (0: scalar)"),
      llvm::cl::init(8)};
  PassOptions::Option<int64_t> tokenBlock{
      *this, "token-block",
      llvm::cl::desc("Tokens per register block of the projection dot "
                     "products (0: 2 for 8 lanes, 4 for 16)"),
      llvm::cl::init(0)};
  PassOptions::Option<std::string> bf16Dot{
      *this, "bf16-dot",
      llvm::cl::desc("bf16 projections through AVX512-BF16 dot products "
                     "(targets with avx512bf16): off, exact (x split into "
                     "three bf16: f32 accuracy) or round (x rounded to bf16, "
                     "as llama.cpp's BF16: fastest prefill, bf16 accuracy)"),
      llvm::cl::init("off")};
  PassOptions::Option<std::string> intDot{
      *this, "int-dot",
      llvm::cl::desc("int8 / int4 projections through integer dot products "
                     "on x quantized per token: off, vnni (vpdpbusd: "
                     "AVX512-VNNI, or AVX-VNNI with 8 lanes; x to 15 bits), "
                     "vnni8 (x to 8 bits: one vpdpbusd per step instead of "
                     "two, for compute-bound batched decode and prefill, at "
                     "llama.cpp's activation precision) or auto (the "
                     "compilation target decides: vnni, or off without "
                     "one)"),
      llvm::cl::init("auto")};
  PassOptions::Option<bool> prefetch{
      *this, "prefetch",
      llvm::cl::desc("Prefetch the next block of weight rows in the "
                     "projection dot products"),
      llvm::cl::init(true)};
  PassOptions::Option<bool> approximateMath{
      *this, "approximate-math",
      llvm::cl::desc("Polynomial f32 exp/tanh instead of libm calls, so "
                     "element-wise loops vectorise"),
      llvm::cl::init(true)};
  PassOptions::Option<bool> threads{
      *this, "threads",
      llvm::cl::desc("Run projection tiles on all cores (OpenMP)"),
      llvm::cl::init(true)};
  PassOptions::Option<bool> parallelizeLinalg{
      *this, "parallelize-linalg",
      llvm::cl::desc("With threads: also run the other large linalg ops in "
                     "parallel tiles (rwkv-parallelize-linalg)"),
      llvm::cl::init(true)};
  PassOptions::Option<std::string> gpuChip{
      *this, "gpu-chip",
      llvm::cl::desc("CUDA pipeline: the SM architecture (sm_80, sm_89, "
                     "sm_90, ...)"),
      llvm::cl::init("sm_90")};
  PassOptions::Option<std::string> gpuFormat{
      *this, "gpu-format",
      llvm::cl::desc("CUDA pipeline: the embedded device code: fatbin "
                     "(SASS + PTX), bin (cubin) or isa (PTX)"),
      llvm::cl::init("fatbin")};
  PassOptions::Option<int64_t> gpuBlockSize{
      *this, "gpu-block-size",
      llvm::cl::desc("CUDA pipeline: threads per block of the mapped loops"),
      llvm::cl::init(256)};
  PassOptions::Option<std::string> gpuMma{
      *this, "gpu-mma",
      llvm::cl::desc("CUDA pipeline: projections of 16 or more rows on the "
                     "tensor cores (rwkv-mma-projections, sm_80 and newer): "
                     "f32 (activations as three bf16 pieces, exact), "
                     "bf16x2 (two), bf16 (rounded) or off"),
      llvm::cl::init("f32")};
  PassOptions::Option<bool> gpuEmulate{
      *this, "gpu-emulate",
      llvm::cl::desc("CUDA pipeline: run the GPU-mapped kernels on the host "
                     "(rwkv-emulate-gpu-launch) instead of compiling them "
                     "for the device"),
      llvm::cl::init(false)};
};

/// The CPU pipeline: rwkv -> primitive ops -> linalg -> buffers -> LLVM.
void buildRWKVCpuPipeline(OpPassManager &pm, const RWKVPipelineOptions &opts);
/// The CUDA pipeline: the shared front half, bufferization, one gpu.launch
/// per parallel loop nest, device buffers, then NVVM and an embedded device
/// binary (or, with gpu-emulate, the kernels as host loops).
void buildRWKVCudaPipeline(OpPassManager &pm, const RWKVPipelineOptions &opts);
/// Adds a pass that fails with `message` (an option the target refuses).
void addPipelineError(OpPassManager &pm, std::string message);
/// Registers `rwkv-cpu-pipeline` and `rwkv-cuda-pipeline`.
void registerRWKVPipelines();

} // namespace mlir::rwkv

#endif // RWKV_CODEGEN_PIPELINES_H
