//===- CudaTarget.cpp - the CUDA compilation target -----------------------===//
//
// rwkv-compile --target=cuda: the CUDA pipeline (codegen/Pipelines.cpp) maps
// the model onto gpu.launch kernels, NVVM compiles them to one embedded
// device binary (a fatbin: SASS for the chip plus PTX for newer ones), and
// the host code, an ordinary x86-64 shared library with the CPU libraries'
// ABI, launches them.
//
// The host code calls MLIR's CUDA wrapper API (mgpuModuleLoad,
// mgpuLaunchKernel, mgpuMemAlloc, ...), which the rwkv runtime implements
// over a lazily dlopen'ed driver. The library neither links nor imports
// those symbols: each becomes an internal stub that jumps through an
// exported pointer `rwkv_cuda_import_<name>`, listed in
// `rwkv_cuda_imports`, which the runtime fills. The module constructor that
// loads the device binary becomes `rwkv_cuda_init()`, so nothing touches
// CUDA at dlopen: a machine without a GPU loads the library, reads its
// description and gets a clear error (docs/ABI.md, "CUDA libraries").
//
//===----------------------------------------------------------------------===//

#include "codegen/Target/Target.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/IR/Constants.h"
#include "llvm/IR/IRBuilder.h"
#include "llvm/MC/MCSubtargetInfo.h"
#include "llvm/MC/TargetRegistry.h"
#include "llvm/Support/Regex.h"
#include "llvm/Support/TargetSelect.h"

#include <algorithm>

using namespace mlir;
using namespace mlir::rwkv;

namespace {

/// Replaces the module's `global_name` structor list by one exported
/// function that runs them (in priority order; reversed for destructors).
void structorsToFunction(llvm::Module &m, llvm::StringRef globalName,
                         llvm::StringRef fnName, bool reverse) {
  llvm::LLVMContext &ctx = m.getContext();
  SmallVector<std::pair<uint64_t, llvm::Constant *>> fns;
  if (llvm::GlobalVariable *gv = m.getNamedGlobal(globalName)) {
    if (auto *arr = llvm::dyn_cast<llvm::ConstantArray>(gv->getInitializer()))
      for (llvm::Use &u : arr->operands()) {
        auto *entry = llvm::cast<llvm::ConstantStruct>(u.get());
        auto *prio = llvm::cast<llvm::ConstantInt>(entry->getOperand(0));
        fns.push_back({prio->getZExtValue(), entry->getOperand(1)});
      }
    gv->eraseFromParent();
  }
  std::stable_sort(fns.begin(), fns.end(), [&](auto &a, auto &b) {
    return reverse ? a.first > b.first : a.first < b.first;
  });
  auto *fnTy = llvm::FunctionType::get(llvm::Type::getVoidTy(ctx), false);
  auto *fn = llvm::Function::Create(fnTy, llvm::GlobalValue::ExternalLinkage,
                                    fnName, m);
  llvm::IRBuilder<> b(llvm::BasicBlock::Create(ctx, "entry", fn));
  for (auto &[prio, callee] : fns)
    b.CreateCall(fnTy, callee);
  b.CreateRetVoid();
}

/// Every declared mgpu* function becomes an internal stub that calls
/// through the exported pointer `rwkv_cuda_import_<name>`.
void addImportTable(llvm::Module &m) {
  llvm::LLVMContext &ctx = m.getContext();
  auto *ptrTy = llvm::PointerType::getUnqual(ctx);
  SmallVector<std::string> names;
  for (llvm::Function &f : m) {
    if (!f.isDeclaration() || !f.getName().starts_with("mgpu"))
      continue;
    names.push_back(f.getName().str());
    auto *slot = new llvm::GlobalVariable(m, ptrTy, /*isConstant=*/false,
                                          llvm::GlobalValue::ExternalLinkage,
                                          llvm::ConstantPointerNull::get(ptrTy),
                                          "rwkv_cuda_import_" + f.getName());
    llvm::IRBuilder<> b(llvm::BasicBlock::Create(ctx, "entry", &f));
    SmallVector<llvm::Value *> args;
    for (llvm::Argument &a : f.args())
      args.push_back(&a);
    llvm::CallInst *call =
        b.CreateCall(f.getFunctionType(), b.CreateLoad(ptrTy, slot), args);
    if (f.getReturnType()->isVoidTy())
      b.CreateRetVoid();
    else
      b.CreateRet(call);
    f.setLinkage(llvm::GlobalValue::InternalLinkage);
  }
  auto *list = llvm::ConstantDataArray::getString(ctx, llvm::join(names, ","));
  new llvm::GlobalVariable(m, list->getType(), /*isConstant=*/true,
                           llvm::GlobalValue::ExternalLinkage, list,
                           "rwkv_cuda_imports");
  structorsToFunction(m, "llvm.global_ctors", "rwkv_cuda_init",
                      /*reverse=*/false);
  structorsToFunction(m, "llvm.global_dtors", "rwkv_cuda_fini",
                      /*reverse=*/true);
}

class CudaTarget final : public CompilationTarget {
public:
  CudaTarget(std::string chip, bool emulate,
             std::unique_ptr<CompilationTarget> host)
      : chip(std::move(chip)), emulate(emulate), host(std::move(host)) {}

  llvm::StringRef getName() const override { return "cuda"; }

  void buildPipeline(OpPassManager &pm,
                     const RWKVPipelineOptions &opts) const override {
    RWKVPipelineOptions cudaOpts;
    cudaOpts.copyOptionValuesFrom(opts);
    cudaOpts.gpuChip = chip;
    cudaOpts.gpuEmulate = emulate;
    buildRWKVCudaPipeline(pm, cudaOpts);
  }

  LogicalResult optimize(llvm::Module &module) const override {
    return host->optimize(module);
  }

  LogicalResult finalize(llvm::Module &module) const override {
    if (emulate)
      return host->finalize(module);
    addImportTable(module);
    return success();
  }

  LogicalResult emit(llvm::Module &module, OutputKind kind,
                     llvm::raw_pwrite_stream &os) const override {
    return host->emit(module, kind, os);
  }

  LogicalResult emitObjects(llvm::Module &module,
                            llvm::ArrayRef<std::string> paths) const override {
    return host->emitObjects(module, paths);
  }

  LogicalResult link(llvm::ArrayRef<std::string> objects,
                     const std::string &output) const override {
    return host->link(objects, output);
  }

  std::vector<std::pair<std::string, std::string>>
  modelInfoFields() const override {
    if (emulate)
      return {{"emulates", "cuda"}, {"cuda_arch", chip}};
    return {{"target", "cuda"}, {"cuda_arch", chip}};
  }

  std::string describe() const override {
    return "cuda chip=" + chip +
           (emulate ? " (emulated on the host: " : " (host: ") +
           host->describe() + ")";
  }

private:
  std::string chip;
  bool emulate;
  std::unique_ptr<CompilationTarget> host;
};

} // namespace

std::unique_ptr<CompilationTarget>
mlir::rwkv::createCudaTarget(const TargetOptions &opts,
                             const TargetOptions &hostOpts, bool emulate,
                             std::string &error) {
  std::string chip = opts.cpu.empty() ? "sm_90" : opts.cpu;
  // The chip is spliced into a pass pipeline string: only sm_NN[a|f].
  if (!llvm::Regex("^sm_[0-9]+[af]?$").match(chip)) {
    error = "unknown CUDA architecture '" + chip +
            "' (expected sm_NN, e.g. sm_80, sm_89, sm_90, sm_90a)";
    return nullptr;
  }
  LLVMInitializeNVPTXTargetInfo();
  LLVMInitializeNVPTXTarget();
  LLVMInitializeNVPTXTargetMC();
  LLVMInitializeNVPTXAsmPrinter();
  llvm::Triple triple("nvptx64-nvidia-cuda");
  const llvm::Target *nvptx = llvm::TargetRegistry::lookupTarget(triple, error);
  if (!nvptx)
    return nullptr;
  std::unique_ptr<llvm::MCSubtargetInfo> sti(
      nvptx->createMCSubtargetInfo(triple, chip, ""));
  if (!sti || !sti->isCPUStringValid(chip)) {
    error =
        "unknown CUDA architecture '" + chip + "' for LLVM's NVPTX back end";
    return nullptr;
  }
  std::unique_ptr<CompilationTarget> host = createCpuTarget(hostOpts, error);
  if (!host)
    return nullptr;
  return std::make_unique<CudaTarget>(chip, emulate, std::move(host));
}

LogicalResult mlir::rwkv::writeDeviceCode(ModuleOp module,
                                          llvm::raw_ostream &os) {
  SmallVector<gpu::ObjectAttr> objects;
  module.walk([&](gpu::BinaryOp bin) {
    for (Attribute a : bin.getObjects())
      objects.push_back(llvm::cast<gpu::ObjectAttr>(a));
  });
  if (objects.empty())
    return module.emitError("no device code in the module (not a CUDA "
                            "compile?)");
  if (objects.size() > 1)
    return module.emitError("the module holds ")
           << objects.size() << " device binaries, not the one of "
           << "rwkv-merge-gpu-modules";
  os << objects.front().getObject().getValue();
  return success();
}
