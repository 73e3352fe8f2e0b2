//===- UnwrapModel.cpp - rwkv.model to the codegen module form
//-------------===//
//
// rwkv.model is the dialect's whole-model structure (its verifier checks the
// entry points against the config). Code generation and the library ABI work
// on plain module-level functions with `rwkv.config` on the module, so the
// pipelines start by unwrapping.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "mlir/IR/SymbolTable.h"

#define DEBUG_TYPE "rwkv-unwrap-model"

namespace mlir::rwkv {
#define GEN_PASS_DEF_RWKVUNWRAPMODELPASS
#include "passes/Passes.h.inc"

namespace {
struct RWKVUnwrapModelPass final
    : impl::RWKVUnwrapModelPassBase<RWKVUnwrapModelPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    SmallVector<ModelOp> models(module.getOps<ModelOp>());
    if (models.empty())
      return;
    if (models.size() > 1) {
      models[1].emitError("a module holds at most one rwkv.model (first is ")
          << models[0].getSymNameAttr() << ")";
      return signalPassFailure();
    }
    ModelOp model = models.front();
    if (auto existing = module->getAttrOfType<ModelConfigAttr>("rwkv.config");
        existing && existing != model.getConfig()) {
      model.emitError("config disagrees with the module's rwkv.config ")
          << existing;
      return signalPassFailure();
    }
    SymbolTable moduleSymbols(module);
    for (Operation &op : model.getBody().front())
      if (auto sym = dyn_cast<SymbolOpInterface>(&op);
          sym && moduleSymbols.lookup(sym.getName())) {
        op.emitError("symbol '")
            << sym.getName() << "' already exists in the module";
        return signalPassFailure();
      }
    module->setAttr("rwkv.config", model.getConfig());
    Block &body = model.getBody().front();
    module.getBody()->getOperations().splice(
        Block::iterator(model), body.getOperations(), body.begin(), body.end());
    model.erase();
  }
};
} // namespace
} // namespace mlir::rwkv
