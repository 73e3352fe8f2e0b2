//===- LowerKernelTransfers.cpp - vector transfers in kernels as loads ----===//
//
// Kernels built on tensors (rwkv-lower-wkv-to-rows) read and write whole
// rows with vector.transfer_read / transfer_write. convert-gpu-to-nvvm does
// not lower those (it does lower vector.load / store), and the host-side
// vector lowering runs only after the kernel module has been reconciled, so
// the NVVM pipeline fails on an unrealized cast (../shared/docs/
// cuda-codegen.md §1.2). In-bounds rank-1 transfers over a unit-stride
// dimension are plain vector loads and stores; upstream's transfer lowering
// patterns rewrite them to exactly that inside every gpu.launch.
//
//===----------------------------------------------------------------------===//

#include "codegen/Passes.h"

#include "mlir/Dialect/Vector/Transforms/LoweringPatterns.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

#define DEBUG_TYPE "rwkv-lower-kernel-transfers"

namespace mlir::rwkv {
#define GEN_PASS_DEF_RWKVLOWERKERNELTRANSFERSPASS
#include "codegen/Passes.h.inc"

namespace {

struct RWKVLowerKernelTransfersPass final
    : impl::RWKVLowerKernelTransfersPassBase<RWKVLowerKernelTransfersPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    vector::populateVectorTransferLoweringPatterns(patterns,
                                                   /*maxTransferRank=*/1);
    FrozenRewritePatternSet frozen(std::move(patterns));
    SmallVector<gpu::LaunchOp> launches;
    getOperation()->walk([&](gpu::LaunchOp l) { launches.push_back(l); });
    for (gpu::LaunchOp launch : launches)
      if (failed(applyPatternsGreedily(launch.getBody(), frozen)))
        return signalPassFailure();
    // A transfer left in a kernel would fail much later, in the NVVM
    // translation, with no hint of where it came from.
    WalkResult left = getOperation()->walk([&](Operation *op) {
      if (isa<vector::TransferReadOp, vector::TransferWriteOp>(op) &&
          op->getParentOfType<gpu::LaunchOp>()) {
        op->emitError("vector transfer in a kernel is not an in-bounds "
                      "rank-1 access to a unit-stride dimension");
        return WalkResult::interrupt();
      }
      return WalkResult::advance();
    });
    if (left.wasInterrupted())
      signalPassFailure();
  }
};

} // namespace
} // namespace mlir::rwkv
