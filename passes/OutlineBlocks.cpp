//===- OutlineBlocks.cpp - one function per rwkv.block
//---------------------===//
//
// Every layer of a model has the same shapes, so outlining the layers into
// functions and letting duplicate-function-elimination merge them compiles
// the layer body once instead of n_layer times (x3 entry points).
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Transforms/RegionUtils.h"

#define DEBUG_TYPE "rwkv-outline-blocks"

namespace mlir::rwkv {
#define GEN_PASS_DEF_RWKVOUTLINEBLOCKSPASS
#include "passes/Passes.h.inc"

namespace {
struct RWKVOutlineBlocksPass final
    : impl::RWKVOutlineBlocksPassBase<RWKVOutlineBlocksPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    SymbolTable symbols(module);
    SmallVector<BlockOp> blocks;
    module->walk([&](BlockOp op) {
      // Nested blocks are outlined with their parent. Functions to be
      // differentiated are outlined too: rwkv-differentiate gives each
      // called layer one forward and one backward function.
      if (!op->getParentOfType<BlockOp>())
        blocks.push_back(op);
    });
    OpBuilder builder(&getContext());
    // Outlined functions follow their parent in layer order.
    DenseMap<Operation *, Operation *> lastOutlined;
    for (BlockOp op : blocks) {
      auto parentFn = op->getParentOfType<func::FuncOp>();
      if (!parentFn) {
        op.emitError("rwkv.block outside a func.func cannot be outlined");
        return signalPassFailure();
      }
      llvm::SetVector<Value> captured;
      getUsedValuesDefinedAbove(op.getBody(), captured);
      SmallVector<Type> argTypes;
      for (Value v : captured)
        argTypes.push_back(v.getType());
      auto fnType = builder.getFunctionType(argTypes, op.getResultTypes());

      Operation *&anchor = lastOutlined[parentFn];
      builder.setInsertionPointAfter(anchor ? anchor : parentFn.getOperation());
      std::string name =
          (parentFn.getName() + "_layer" + Twine(op.getLayerAttr().getInt()))
              .str();
      auto fn = func::FuncOp::create(builder, op.getLoc(), name, fnType);
      fn.setPrivate();
      symbols.insert(fn, builder.getInsertionPoint()); // uniquifies the name
      anchor = fn;

      Block *entry = fn.addEntryBlock();
      IRMapping map;
      for (auto [v, arg] : llvm::zip_equal(captured, entry->getArguments()))
        map.map(v, arg);
      builder.setInsertionPointToStart(entry);
      for (Operation &inner : op.getBody().front().without_terminator())
        builder.clone(inner, map);
      auto yield = cast<YieldOp>(op.getBody().front().getTerminator());
      SmallVector<Value> results;
      for (Value v : yield.getValues())
        results.push_back(map.lookupOrDefault(v));
      func::ReturnOp::create(builder, op.getLoc(), results);

      builder.setInsertionPoint(op);
      auto call = func::CallOp::create(builder, op.getLoc(), fn,
                                       captured.getArrayRef());
      op->replaceAllUsesWith(call.getResults());
      op->erase();
    }
  }
};
} // namespace
} // namespace mlir::rwkv
