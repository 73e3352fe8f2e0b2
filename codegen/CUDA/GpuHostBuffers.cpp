//===- GpuHostBuffers.cpp - host buffers as device buffers ----------------===//
//
// The CUDA library is called with device pointers (docs/ABI.md), so every
// buffer the host code of an entry point makes is device memory too: a host
// memref.alloc becomes gpu.alloc (cuMemAlloc through the runtime), its
// dealloc gpu.dealloc, and a contiguous memref.copy between them gpu.memcpy
// (strided copies were turned into kernels by rwkv-lower-strided-copies and
// the loop mapping). Runs after rwkv-map-parallel-loops-to-gpu, when host
// code no longer loads or stores; one that still does is an error, since
// the host would dereference a device pointer.
//
//===----------------------------------------------------------------------===//

#include "codegen/Passes.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/MemRef/Utils/MemRefUtils.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

#define DEBUG_TYPE "rwkv-gpu-host-buffers"

namespace mlir::rwkv {
#define GEN_PASS_DEF_RWKVGPUHOSTBUFFERSPASS
#include "codegen/Passes.h.inc"

namespace {

bool onHost(Operation *op) { return !op->getParentOfType<gpu::LaunchOp>(); }

/// Host data: the deallocation lowering's flags and addresses.
bool isHostData(Value memref) {
  return isHostBookkeeping(cast<MemRefType>(memref.getType()));
}

struct AllocToGpu final : OpRewritePattern<memref::AllocOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(memref::AllocOp op,
                                PatternRewriter &rewriter) const override {
    if (!onHost(op) || isHostData(op.getResult()))
      return rewriter.notifyMatchFailure(op, "device-side or host data");
    rewriter.replaceOpWithNewOp<gpu::AllocOp>(
        op, op.getType(), /*asyncToken=*/Type(), /*asyncDependencies=*/
        ValueRange(), op.getDynamicSizes(), op.getSymbolOperands(),
        /*hostShared=*/false);
    return success();
  }
};

struct DeallocToGpu final : OpRewritePattern<memref::DeallocOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(memref::DeallocOp op,
                                PatternRewriter &rewriter) const override {
    if (!onHost(op) || isHostData(op.getMemref()))
      return rewriter.notifyMatchFailure(op, "device-side or host data");
    rewriter.replaceOpWithNewOp<gpu::DeallocOp>(op, /*asyncToken=*/Type(),
                                                ValueRange(), op.getMemref());
    return success();
  }
};

bool isContiguous(Type type) {
  auto memref = cast<MemRefType>(type);
  return memref.getLayout().isIdentity() ||
         memref::isStaticShapeAndContiguousRowMajor(memref);
}

struct CopyToGpu final : OpRewritePattern<memref::CopyOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(memref::CopyOp op,
                                PatternRewriter &rewriter) const override {
    if (!onHost(op) || isHostData(op.getSource()) || isHostData(op.getTarget()))
      return rewriter.notifyMatchFailure(op, "device-side copy or host data");
    rewriter.replaceOpWithNewOp<gpu::MemcpyOp>(op, /*asyncToken=*/Type(),
                                               ValueRange(), op.getTarget(),
                                               op.getSource());
    return success();
  }
};

struct RWKVGpuHostBuffersPass final
    : impl::RWKVGpuHostBuffersPassBase<RWKVGpuHostBuffersPass> {
  void runOnOperation() override {
    if (isDeallocHelper(getOperation()))
      return;
    WalkResult hostAccess = getOperation()->walk([&](Operation *op) {
      Value mem;
      if (auto load = dyn_cast<memref::LoadOp>(op))
        mem = load.getMemRef();
      else if (auto store = dyn_cast<memref::StoreOp>(op))
        mem = store.getMemRef();
      else if (auto alloca = dyn_cast<memref::AllocaOp>(op))
        mem = alloca.getResult();
      if (mem && onHost(op) && !isHostData(mem)) {
        op->emitError("host code accesses a buffer, which lives in device "
                      "memory (rwkv-map-parallel-loops-to-gpu should have "
                      "made it a kernel)");
        return WalkResult::interrupt();
      }
      auto copy = dyn_cast<memref::CopyOp>(op);
      if (copy && onHost(op) && !isHostData(copy.getTarget()) &&
          (!isContiguous(copy.getSource().getType()) ||
           !isContiguous(copy.getTarget().getType()))) {
        op->emitError("a strided copy on the host: it must be a kernel "
                      "(run rwkv-lower-strided-copies first)");
        return WalkResult::interrupt();
      }
      return WalkResult::advance();
    });
    if (hostAccess.wasInterrupted())
      return signalPassFailure();
    RewritePatternSet patterns(&getContext());
    patterns.add<AllocToGpu, DeallocToGpu, CopyToGpu>(&getContext());
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      return signalPassFailure();
  }
};

} // namespace
} // namespace mlir::rwkv
