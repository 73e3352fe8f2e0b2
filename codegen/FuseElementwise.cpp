//===- FuseElementwise.cpp - fuse element-wise chains
//----------------------===//
//
// Upstream element-wise fusion with a control function that keeps lerps and
// activations out of projection bodies (they would be recomputed for every
// output channel); rwkv-tile-and-fuse fuses those per tile instead.
//
//===----------------------------------------------------------------------===//

#include "codegen/Passes.h"

#include "mlir/Dialect/Linalg/Transforms/Transforms.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

#define DEBUG_TYPE "rwkv-fuse-elementwise"

namespace mlir::rwkv {
#define GEN_PASS_DEF_RWKVFUSEELEMENTWISEPASS
#include "codegen/Passes.h.inc"

static bool isAllParallel(Operation *op) {
  auto linalgOp = dyn_cast_or_null<linalg::LinalgOp>(op);
  return linalgOp && linalgOp.getNumLoops() == linalgOp.getNumParallelLoops();
}

void populateRWKVFuseElementwisePatterns(RewritePatternSet &patterns) {
  linalg::populateElementwiseOpsFusionPatterns(
      patterns, [](OpOperand *fusedOperand) {
        Operation *producer = fusedOperand->get().getDefiningOp();
        Operation *consumer = fusedOperand->getOwner();
        if (!isAllParallel(producer) || !isAllParallel(consumer))
          return false;
        // A broadcast read (e.g. the per-key decay exp(w) into the N x N
        // state update) would recompute the producer for every broadcast
        // element: fuse only one-to-one accesses.
        auto linalgConsumer = cast<linalg::LinalgOp>(consumer);
        return linalgConsumer.getMatchingIndexingMap(fusedOperand)
            .isPermutation();
      });
}

namespace {
struct RWKVFuseElementwisePass final
    : impl::RWKVFuseElementwisePassBase<RWKVFuseElementwisePass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    populateRWKVFuseElementwisePatterns(patterns);
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};
} // namespace
} // namespace mlir::rwkv
