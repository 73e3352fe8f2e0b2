//===- CpuTarget.cpp - the CPU compilation target
//--------------------------===//
//
// x86-64 (host by default) through LLVM's TargetMachine, in process. Object
// files are linked into a shared library with the system C++ driver: Debian's
// LLVM 22 ships no lld library.
//
//===----------------------------------------------------------------------===//

#include "codegen/Target/Target.h"

#include "mlir/ExecutionEngine/OptUtils.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/Bitcode/BitcodeReader.h"
#include "llvm/Bitcode/BitcodeWriter.h"
#include "llvm/IR/IRBuilder.h"
#include "llvm/IR/LegacyPassManager.h"
#include "llvm/MC/MCSubtargetInfo.h"
#include "llvm/MC/TargetRegistry.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Target/TargetMachine.h"
#include "llvm/Target/TargetOptions.h"
#include "llvm/TargetParser/Host.h"
#include "llvm/TargetParser/Triple.h"
#include "llvm/Transforms/IPO/MergeFunctions.h"
#include "llvm/Transforms/Utils/SplitModule.h"

#include <functional>
#include <thread>

using namespace mlir;
using namespace mlir::rwkv;

namespace {

/// Routes the generated code's malloc/free through a hook that the runtime
/// sets once, before the first call: `void rwkv_set_allocator(void *(*alloc)
/// (void *ctx, size_t), void (*free)(void *ctx, void *), void *ctx)`. Prefill
/// allocates its [T, C] intermediates on every call; glibc returns blocks
/// this large to the kernel on free, so each call faulted them in again
/// (zeroed pages, a third of a 0.1B prefill). The runtime keeps them instead
/// (docs/runtime.md "Buffer cache"). Without a hook (older runtimes, CUDA
/// hosts) the calls go to malloc/free.
void addAllocatorHook(llvm::Module &module) {
  llvm::LLVMContext &ctx = module.getContext();
  llvm::Type *ptr = llvm::PointerType::get(ctx, 0);
  llvm::Type *i64 = llvm::Type::getInt64Ty(ctx);
  llvm::Type *voidTy = llvm::Type::getVoidTy(ctx);
  auto *mallocTy = llvm::FunctionType::get(ptr, {i64}, false);
  auto *freeTy = llvm::FunctionType::get(voidTy, {ptr}, false);
  // { alloc, free, ctx }, all null until rwkv_set_allocator.
  auto *hookTy = llvm::StructType::get(ctx, {ptr, ptr, ptr});
  auto *hook = new llvm::GlobalVariable(
      module, hookTy, /*isConstant=*/false, llvm::GlobalValue::InternalLinkage,
      llvm::ConstantAggregateZero::get(hookTy), "rwkv.allocator");
  auto field = [&](llvm::IRBuilder<> &b, unsigned i) {
    return b.CreateStructGEP(hookTy, hook, i);
  };
  auto loadField = [&](llvm::IRBuilder<> &b, unsigned i) {
    llvm::LoadInst *v = b.CreateAlignedLoad(ptr, field(b, i), llvm::Align(8));
    v->setAtomic(llvm::AtomicOrdering::Monotonic);
    return v;
  };

  auto *setter = llvm::Function::Create(
      llvm::FunctionType::get(voidTy, {ptr, ptr, ptr}, false),
      llvm::GlobalValue::ExternalLinkage, "rwkv_set_allocator", module);
  {
    llvm::IRBuilder<> b(llvm::BasicBlock::Create(ctx, "entry", setter));
    for (unsigned i = 0; i < 3; ++i)
      b.CreateAlignedStore(setter->getArg(i), field(b, i), llvm::Align(8))
          ->setAtomic(llvm::AtomicOrdering::Monotonic);
    b.CreateRetVoid();
  }

  llvm::FunctionCallee mallocFn =
      module.getOrInsertFunction("malloc", mallocTy);
  llvm::FunctionCallee freeFn = module.getOrInsertFunction("free", freeTy);
  auto *hookedMalloc = llvm::Function::Create(
      mallocTy, llvm::GlobalValue::InternalLinkage, "rwkv.malloc", module);
  auto *hookedFree = llvm::Function::Create(
      freeTy, llvm::GlobalValue::InternalLinkage, "rwkv.free", module);
  // Every existing call now goes through the hook; the fallbacks below are
  // the only direct calls left.
  mallocFn.getCallee()->replaceAllUsesWith(hookedMalloc);
  freeFn.getCallee()->replaceAllUsesWith(hookedFree);

  // One out-of-line copy each: allocations are per layer call, not per
  // element, and FileCheck can then see every call site go through them.
  auto buildDispatch = [&](llvm::Function *fn, unsigned slot,
                           llvm::FunctionCallee fallback) {
    fn->addFnAttr(llvm::Attribute::NoInline);
    llvm::IRBuilder<> b(llvm::BasicBlock::Create(ctx, "entry", fn));
    auto *viaHook = llvm::BasicBlock::Create(ctx, "hook", fn);
    auto *viaLibc = llvm::BasicBlock::Create(ctx, "libc", fn);
    llvm::Value *callee = loadField(b, slot);
    b.CreateCondBr(b.CreateIsNull(callee), viaLibc, viaHook);
    bool returnsPtr = !fn->getReturnType()->isVoidTy();
    auto *calleeTy = llvm::FunctionType::get(
        fn->getReturnType(), {ptr, fn->getArg(0)->getType()}, false);
    b.SetInsertPoint(viaHook);
    llvm::Value *r =
        b.CreateCall(calleeTy, callee, {loadField(b, 2), fn->getArg(0)});
    returnsPtr ? b.CreateRet(r) : b.CreateRetVoid();
    b.SetInsertPoint(viaLibc);
    r = b.CreateCall(fallback, {fn->getArg(0)});
    returnsPtr ? b.CreateRet(r) : b.CreateRetVoid();
  };
  buildDispatch(hookedMalloc, 0, mallocFn);
  buildDispatch(hookedFree, 1, freeFn);
}

/// The entry points' C wrappers (`_mlir_ciface_*`, `*_packed`) and the
/// thunks MergeFunctions leaves (rwkv_step -> rwkv_forward) do nothing but
/// pass every weight's memref descriptor on: one call with thousands of
/// scalar arguments (5 + 2 x rank per weight, ~800 weights for a 24-layer
/// model). SelectionDAG's optimising scheduler is superlinear in such a
/// call's DAG: these few instructions were 70% of the 1.5B shape's code
/// generation (_mlir_ciface_rwkv_forward_all alone 4.6 s at -O3, 0.75 s at
/// -O0). They run once per call, so they are emitted without optimisation
/// (optnone: the fast instruction selector and scheduler); everything that
/// loops stays -O3. Run after the IR pipeline, which has already cleaned
/// them up.
void markGlueForFastCodegen(llvm::Module &module) {
  for (llvm::Function &f : module) {
    if (f.isDeclaration() || f.hasFnAttribute(llvm::Attribute::AlwaysInline))
      continue;
    llvm::StringRef name = f.getName();
    bool wrapper =
        name.starts_with("_mlir_ciface_") || name.ends_with("_packed");
    // A thunk: one block whose only work is a call.
    bool thunk = f.size() == 1 && f.front().size() <= 2 &&
                 llvm::isa<llvm::CallInst>(f.front().front());
    if (!wrapper && !thunk)
      continue;
    f.addFnAttr(llvm::Attribute::OptimizeNone);
    f.addFnAttr(llvm::Attribute::NoInline);
  }
}

class CpuTarget final : public CompilationTarget {
public:
  CpuTarget(std::unique_ptr<llvm::TargetMachine> tm, unsigned optLevel,
            std::function<std::unique_ptr<llvm::TargetMachine>()> makeTM)
      : tm(std::move(tm)), optLevel(optLevel), makeTM(std::move(makeTM)) {}

  llvm::StringRef getName() const override { return "cpu"; }

  void buildPipeline(OpPassManager &pm,
                     const RWKVPipelineOptions &opts) const override {
    // The projection dot products are vectorised in MLIR: one zmm of f32 on
    // AVX-512, one ymm otherwise.
    RWKVPipelineOptions cpuOpts;
    cpuOpts.copyOptionValuesFrom(opts);
    if (cpuOpts.vectorWidth > 0 &&
        tm->getMCSubtargetInfo()->checkFeatures("+avx512f"))
      cpuOpts.vectorWidth = 16;
    // vdpbf16ps needs AVX512-BF16 (and VL for the 8-lane form); without it
    // the library would die of SIGILL at its first prefill.
    if (cpuOpts.bf16Dot != "off" &&
        !tm->getMCSubtargetInfo()->checkFeatures("+avx512bf16,+avx512vl")) {
      addPipelineError(pm, "bf16-dot=" + cpuOpts.bf16Dot +
                               " needs a target with avx512bf16 (e.g. "
                               "--target-cpu=znver4 or sapphirerapids); " +
                               describe() + " has none");
      return;
    }
    // vpdpbusd: AVX512-VNNI (with VL: narrow inputs take ymm steps) for 16
    // lanes, AVX512-VNNI with VL or AVX-VNNI for 8. `auto` uses it where the
    // target has it.
    const llvm::MCSubtargetInfo &sti = *tm->getMCSubtargetInfo();
    bool vnni = sti.checkFeatures("+avx512vnni,+avx512vl") ||
                (cpuOpts.vectorWidth < 16 && sti.checkFeatures("+avxvnni"));
    if (cpuOpts.intDot == "auto") {
      cpuOpts.intDot = vnni && cpuOpts.vectorWidth > 0 ? "vnni" : "off";
    } else if ((cpuOpts.intDot == "vnni" || cpuOpts.intDot == "vnni8") &&
               !vnni) {
      addPipelineError(pm, "int-dot=" + cpuOpts.intDot +
                               " needs a target with avx512vnni or "
                               "avxvnni (e.g. --target-cpu=znver4, "
                               "sapphirerapids or alderlake); " +
                               describe() + " has none");
      return;
    } else if (cpuOpts.intDot != "off" && cpuOpts.intDot != "vnni" &&
               cpuOpts.intDot != "vnni8") {
      addPipelineError(pm, "int-dot must be auto, off, vnni or vnni8, not '" +
                               cpuOpts.intDot + "'");
      return;
    }
    buildRWKVCpuPipeline(pm, cpuOpts);
  }

  LogicalResult optimize(llvm::Module &module) const override {
    // The entry points get their own copies of identical code: rwkv_step
    // and rwkv_forward lower the same layers (the chunked WKV is the
    // recurrence on CPUs), with the same OpenMP regions. Merging identical
    // functions first keeps one copy, so O3 and code generation see a
    // module about a third smaller. Nothing compares the addresses of the
    // internal functions (layers, OpenMP regions), so they are
    // unnamed_addr: a merged copy's uses, including the region pointers
    // passed to __kmpc_fork_call, are redirected to the one kept, which in
    // turn makes the layers calling them identical.
    for (llvm::Function &f : module)
      if (f.hasLocalLinkage())
        f.setUnnamedAddr(llvm::GlobalValue::UnnamedAddr::Global);
    llvm::MergeFunctionsPass::runOnModule(module);
    module.setTargetTriple(tm->getTargetTriple());
    module.setDataLayout(tm->createDataLayout());
    auto transformer =
        makeOptimizingTransformer(optLevel, /*sizeLevel=*/0, tm.get());
    if (llvm::Error err = transformer(&module)) {
      llvm::errs() << "error: LLVM optimisation failed: "
                   << llvm::toString(std::move(err)) << "\n";
      return failure();
    }
    markGlueForFastCodegen(module);
    return success();
  }

  LogicalResult finalize(llvm::Module &module) const override {
    addAllocatorHook(module);

    // void rwkv_set_num_threads(int): the thread count of the OpenMP team
    // that runs the projection tiles.
    llvm::LLVMContext &ctx = module.getContext();
    llvm::Type *i32 = llvm::Type::getInt32Ty(ctx);
    llvm::Type *voidTy = llvm::Type::getVoidTy(ctx);
    auto *fnTy = llvm::FunctionType::get(voidTy, {i32}, false);
    llvm::FunctionCallee omp =
        module.getOrInsertFunction("omp_set_num_threads", fnTy);
    auto *fn = llvm::Function::Create(fnTy, llvm::GlobalValue::ExternalLinkage,
                                      "rwkv_set_num_threads", module);
    llvm::IRBuilder<> b(llvm::BasicBlock::Create(ctx, "entry", fn));
    b.CreateCall(omp, {fn->getArg(0)});
    b.CreateRetVoid();

    // LLVM defaults to 256-bit vectors on many AVX-512 CPUs; the kernels are
    // bandwidth- and FMA-bound loops where full-width zmm pays off.
    if (tm->getMCSubtargetInfo()->checkFeatures("+avx512f"))
      for (llvm::Function &f : module)
        if (!f.isDeclaration())
          f.addFnAttr("prefer-vector-width", "512");
    return success();
  }

  LogicalResult emit(llvm::Module &module, OutputKind kind,
                     llvm::raw_pwrite_stream &os) const override {
    llvm::legacy::PassManager pm;
    auto fileType = kind == OutputKind::Assembly
                        ? llvm::CodeGenFileType::AssemblyFile
                        : llvm::CodeGenFileType::ObjectFile;
    if (tm->addPassesToEmitFile(pm, os, nullptr, fileType)) {
      llvm::errs() << "error: target " << describe()
                   << " cannot emit this file type\n";
      return failure();
    }
    pm.run(module);
    return success();
  }

  LogicalResult emitObjects(llvm::Module &module,
                            llvm::ArrayRef<std::string> paths) const override {
    if (paths.size() <= 1)
      return CompilationTarget::emitObjects(module, paths);
    // Split into linkable parts (internal symbols become hidden externals),
    // each carried as bitcode into its own context and target machine: an
    // LLVMContext and a TargetMachine are not shared between threads.
    std::vector<llvm::SmallVector<char, 0>> parts;
    llvm::SplitModule(module, paths.size(),
                      [&](std::unique_ptr<llvm::Module> part) {
                        parts.emplace_back();
                        llvm::raw_svector_ostream os(parts.back());
                        llvm::WriteBitcodeToFile(*part, os);
                      });
    std::vector<std::string> errors(parts.size());
    std::vector<std::thread> threads;
    for (size_t i = 0; i < parts.size(); ++i)
      threads.emplace_back([&, i] {
        llvm::LLVMContext ctx;
        auto m = llvm::parseBitcodeFile(
            llvm::MemoryBufferRef(
                llvm::StringRef(parts[i].data(), parts[i].size()), "part"),
            ctx);
        if (!m) {
          errors[i] = llvm::toString(m.takeError());
          return;
        }
        std::unique_ptr<llvm::TargetMachine> partTM = makeTM();
        std::error_code ec;
        llvm::raw_fd_ostream os(paths[i], ec);
        if (ec || !partTM) {
          errors[i] = paths[i] + ": " + ec.message();
          return;
        }
        llvm::legacy::PassManager pm;
        if (partTM->addPassesToEmitFile(pm, os, nullptr,
                                        llvm::CodeGenFileType::ObjectFile)) {
          errors[i] = "cannot emit an object file";
          return;
        }
        pm.run(**m);
      });
    for (std::thread &t : threads)
      t.join();
    for (const std::string &e : errors)
      if (!e.empty()) {
        llvm::errs() << "error: code generation: " << e << "\n";
        return failure();
      }
    // SplitModule may make fewer parts than asked for: empty objects.
    for (size_t i = parts.size(); i < paths.size(); ++i) {
      llvm::LLVMContext ctx;
      llvm::Module empty("empty", ctx);
      empty.setTargetTriple(tm->getTargetTriple());
      empty.setDataLayout(tm->createDataLayout());
      if (failed(CompilationTarget::emitObjects(empty, {paths[i]})))
        return failure();
    }
    return success();
  }

  LogicalResult link(llvm::ArrayRef<std::string> objects,
                     const std::string &output) const override {
    auto driver = llvm::sys::findProgramByName("c++");
    if (!driver) {
      llvm::errs() << "error: no C++ driver ('c++') on PATH to link " << output
                   << "\n";
      return failure();
    }
    SmallVector<llvm::StringRef> args = {*driver, "-shared", "-o", output};
    for (const std::string &o : objects)
      args.push_back(o);
    // The generated code calls malloc/free, libm and the OpenMP runtime.
    args.push_back("-lm");
    args.push_back("-lomp");
    std::string err;
    int rc =
        llvm::sys::ExecuteAndWait(*driver, args, std::nullopt, {}, 0, 0, &err);
    if (rc != 0) {
      llvm::errs() << "error: linking " << output << " failed (" << rc
                   << "): " << err << "\n";
      return failure();
    }
    return success();
  }

  std::string describe() const override {
    return (tm->getTargetTriple().str() + " cpu=" + tm->getTargetCPU() +
            " features=" + tm->getTargetFeatureString())
        .str();
  }

private:
  std::unique_ptr<llvm::TargetMachine> tm;
  unsigned optLevel;
  std::function<std::unique_ptr<llvm::TargetMachine>()> makeTM;
};

} // namespace

std::unique_ptr<CompilationTarget>
mlir::rwkv::createCpuTarget(const TargetOptions &opts, std::string &error) {
  llvm::InitializeNativeTarget();
  llvm::InitializeNativeTargetAsmPrinter();
  llvm::Triple triple(llvm::sys::getDefaultTargetTriple());
  const llvm::Target *target =
      llvm::TargetRegistry::lookupTarget(triple, error);
  if (!target)
    return nullptr;

  std::string cpu =
      opts.cpu.empty() ? llvm::sys::getHostCPUName().str() : opts.cpu;
  std::string features = opts.features;
  if (opts.cpu.empty() && features.empty()) {
    llvm::StringMap<bool> host = llvm::sys::getHostCPUFeatures();
    for (auto &f : host)
      features += (features.empty() ? "" : ",") +
                  ((f.second ? "+" : "-") + f.first()).str();
  }
  // LLVM only warns (on stderr) about unknown CPUs; refuse them up front.
  std::unique_ptr<llvm::MCSubtargetInfo> sti(
      target->createMCSubtargetInfo(triple, cpu, ""));
  if (!sti || !sti->isCPUStringValid(cpu)) {
    error = "unknown target CPU '" + cpu + "' for " + triple.str();
    return nullptr;
  }
  auto level = opts.optLevel >= 3   ? llvm::CodeGenOptLevel::Aggressive
               : opts.optLevel == 2 ? llvm::CodeGenOptLevel::Default
               : opts.optLevel == 1 ? llvm::CodeGenOptLevel::Less
                                    : llvm::CodeGenOptLevel::None;
  auto makeTM = [=]() {
    return std::unique_ptr<llvm::TargetMachine>(target->createTargetMachine(
        triple, cpu, features, llvm::TargetOptions(), llvm::Reloc::PIC_,
        std::nullopt, level));
  };
  std::unique_ptr<llvm::TargetMachine> tm = makeTM();
  if (!tm) {
    error = "cannot create a target machine for " + triple.str();
    return nullptr;
  }
  return std::make_unique<CpuTarget>(std::move(tm), opts.optLevel, makeTM);
}
