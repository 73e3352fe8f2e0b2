//===- LowerStridedCopies.cpp - strided memref.copy as linalg.copy --------===//
//
// convert-to-llvm turns a memref.copy into llvm.memcpy only when both sides
// are contiguous; otherwise it emits a call to `memrefCopy` from MLIR's C
// runner utils, a library the compiled model does not link (with batch > 1
// the per-token slices of the WKV output are strided, and the .so then fails
// to load). As linalg.copy the copy becomes ordinary loops, like every other
// generic.
//
//===----------------------------------------------------------------------===//

#include "codegen/Passes.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/MemRef/Utils/MemRefUtils.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

#define DEBUG_TYPE "rwkv-lower-strided-copies"

namespace mlir::rwkv {
#define GEN_PASS_DEF_RWKVLOWERSTRIDEDCOPIESPASS
#include "codegen/Passes.h.inc"

namespace {

bool isContiguous(Type type) {
  auto memref = cast<MemRefType>(type);
  return memref.getLayout().isIdentity() ||
         memref::isStaticShapeAndContiguousRowMajor(memref);
}

struct StridedCopyToLinalg final : OpRewritePattern<memref::CopyOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(memref::CopyOp op,
                                PatternRewriter &rewriter) const override {
    if (isContiguous(op.getSource().getType()) &&
        isContiguous(op.getTarget().getType()))
      return rewriter.notifyMatchFailure(op, "lowers to llvm.memcpy");
    rewriter.replaceOpWithNewOp<linalg::CopyOp>(op, op.getSource(),
                                                op.getTarget());
    return success();
  }
};

struct RWKVLowerStridedCopiesPass final
    : impl::RWKVLowerStridedCopiesPassBase<RWKVLowerStridedCopiesPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    patterns.add<StridedCopyToLinalg>(&getContext());
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      return signalPassFailure();
  }
};

} // namespace
} // namespace mlir::rwkv
