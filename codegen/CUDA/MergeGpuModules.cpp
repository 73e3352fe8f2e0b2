//===- MergeGpuModules.cpp - all kernels in one gpu.module ----------------===//
//
// gpu-kernel-outlining puts every kernel into a gpu.module of its own, and
// gpu-module-to-binary then runs ptxas once per module: for a model with a
// few hundred launches that is minutes of compile time and as many device
// images to load. Merged, the whole model is one PTX module, one ptxas run
// and one cuModuleLoadData.
//
//===----------------------------------------------------------------------===//

#include "codegen/Passes.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/IR/SymbolTable.h"

#define DEBUG_TYPE "rwkv-merge-gpu-modules"

namespace mlir::rwkv {
#define GEN_PASS_DEF_RWKVMERGEGPUMODULESPASS
#include "codegen/Passes.h.inc"

namespace {

std::string printed(Operation *op) {
  std::string s;
  llvm::raw_string_ostream os(s);
  op->print(os, OpPrintingFlags().printGenericOpForm());
  return s;
}

struct RWKVMergeGpuModulesPass final
    : impl::RWKVMergeGpuModulesPassBase<RWKVMergeGpuModulesPass> {
  using Base::Base;
  void runOnOperation() override {
    ModuleOp module = getOperation();
    SmallVector<gpu::GPUModuleOp> modules(module.getOps<gpu::GPUModuleOp>());
    if (modules.size() < 2)
      return;
    OpBuilder b(modules.front());
    auto merged = gpu::GPUModuleOp::create(b, modules.front().getLoc(),
                                           moduleName.getValue());
    if (auto targets = modules.front().getTargetsAttr())
      merged.setTargetsAttr(targets);
    SymbolTable mergedSymbols(merged);
    Block &dest = merged.getBodyRegion().front();
    // Outlining names every kernel after its function; the modules' names
    // are the unique ones, so each kernel takes its module's name.
    llvm::DenseMap<SymbolRefAttr, StringAttr> renamed;
    for (gpu::GPUModuleOp m : modules) {
      for (auto fn : m.getOps<gpu::GPUFuncOp>()) {
        if (!fn.isKernel())
          continue;
        if (!m.lookupSymbol(m.getNameAttr()) ||
            m.lookupSymbol(m.getNameAttr()) == fn) {
          renamed[SymbolRefAttr::get(
              m.getNameAttr(), {FlatSymbolRefAttr::get(fn.getNameAttr())})] =
              m.getNameAttr();
          fn.setName(m.getNameAttr());
        } else {
          fn.emitError("cannot give kernel '")
              << fn.getName() << "' its module's name";
          return signalPassFailure();
        }
      }
    }
    for (gpu::GPUModuleOp m : modules) {
      if (m.getTargetsAttr() != merged.getTargetsAttr()) {
        m.emitError("gpu.modules with different targets cannot be merged");
        return signalPassFailure();
      }
      for (Operation &op :
           llvm::make_early_inc_range(m.getBodyRegion().front())) {
        auto sym = dyn_cast<SymbolOpInterface>(op);
        if (!sym) {
          op.moveBefore(&dest, dest.end());
          continue;
        }
        // Outlining copies the globals a kernel uses into its module: the
        // same definition arrives once per kernel.
        if (Operation *prior = mergedSymbols.lookup(sym.getName())) {
          if (printed(prior) != printed(&op)) {
            op.emitError("two kernel modules define '")
                << sym.getName() << "' differently";
            return signalPassFailure();
          }
          op.erase();
          continue;
        }
        op.moveBefore(&dest, dest.end());
        mergedSymbols.insert(&op);
      }
    }
    WalkResult unknown = module.walk([&](gpu::LaunchFuncOp launch) {
      auto it = renamed.find(launch.getKernel());
      if (it == renamed.end()) {
        launch.emitError("launches a kernel outside the merged modules");
        return WalkResult::interrupt();
      }
      launch.setKernelAttr(SymbolRefAttr::get(
          merged.getNameAttr(), {FlatSymbolRefAttr::get(it->second)}));
      return WalkResult::advance();
    });
    if (unknown.wasInterrupted())
      return signalPassFailure();
    for (gpu::GPUModuleOp m : modules)
      m.erase();
  }
};

} // namespace
} // namespace mlir::rwkv
