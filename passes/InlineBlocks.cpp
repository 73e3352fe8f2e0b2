//===- InlineBlocks.cpp - dissolve rwkv.block ------------------------------===//
//
// rwkv.block only groups one layer for readability and scheduling. Lowering
// works on flat IR, so this pass splices each block's body into its parent.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "mlir/IR/PatternMatch.h"

#define DEBUG_TYPE "rwkv-inline-blocks"

namespace mlir::rwkv {
#define GEN_PASS_DEF_RWKVINLINEBLOCKSPASS
#include "passes/Passes.h.inc"

namespace {
struct RWKVInlineBlocksPass final
    : impl::RWKVInlineBlocksPassBase<RWKVInlineBlocksPass> {
  void runOnOperation() override {
    SmallVector<BlockOp> blocks;
    getOperation()->walk([&](BlockOp op) { blocks.push_back(op); });
    IRRewriter rewriter(&getContext());
    // Walk order is post-order, so nested blocks are spliced first.
    for (BlockOp op : blocks) {
      Block &body = op.getBody().front();
      auto yield = llvm::cast<YieldOp>(body.getTerminator());
      SmallVector<Value> values(yield.getValues());
      rewriter.eraseOp(yield);
      rewriter.inlineBlockBefore(&body, op);
      rewriter.replaceOp(op, values);
    }
  }
};
} // namespace
} // namespace mlir::rwkv
