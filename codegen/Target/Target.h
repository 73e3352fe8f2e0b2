//===- Target.h - the compilation-target interface --------------*- C++ -*-===//
//
// Everything target-specific sits behind CompilationTarget: the pass
// pipeline below the rwkv front end, the LLVM target machine, and how an
// object becomes a loadable library. rwkv-compile only talks to this
// interface, so the CUDA target plugs into the same driver.
//
//===----------------------------------------------------------------------===//

#ifndef RWKV_CODEGEN_TARGET_TARGET_H
#define RWKV_CODEGEN_TARGET_TARGET_H

#include "codegen/Pipelines.h"

#include "mlir/IR/BuiltinOps.h"
#include "llvm/IR/Module.h"
#include "llvm/Support/raw_ostream.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace mlir::rwkv {

/// Target knobs of an ahead-of-time compile.
struct TargetOptions {
  /// CPU name for the LLVM backend; empty means the host CPU.
  std::string cpu;
  /// LLVM feature string (`+avx2,+fma,-avx512f`); empty means the host's
  /// features when `cpu` is empty, and the CPU's defaults otherwise.
  std::string features;
  /// LLVM middle/back-end optimisation level, 0-3.
  unsigned optLevel = 3;
};

enum class OutputKind { Assembly, Object };

class CompilationTarget {
public:
  virtual ~CompilationTarget();
  virtual llvm::StringRef getName() const = 0;
  /// Adds the passes from the rwkv dialect down to the LLVM dialect.
  virtual void buildPipeline(OpPassManager &pm,
                             const RWKVPipelineOptions &opts) const = 0;
  /// Sets the triple and data layout of `module` and runs the LLVM
  /// optimisation pipeline on it.
  virtual LogicalResult optimize(llvm::Module &module) const = 0;
  /// Adds target runtime hooks to the translated module (for the CPU:
  /// `rwkv_set_num_threads`), before optimisation.
  virtual LogicalResult finalize(llvm::Module &module) const = 0;
  /// Writes assembly or an object file for `module`.
  virtual LogicalResult emit(llvm::Module &module, OutputKind kind,
                             llvm::raw_pwrite_stream &os) const = 0;
  /// Writes object files for `module` into `paths`: with several paths the
  /// module is split into that many linkable parts, compiled on as many
  /// threads (code generation is most of a compile). One path: `emit`.
  virtual LogicalResult emitObjects(llvm::Module &module,
                                    llvm::ArrayRef<std::string> paths) const;
  /// Links object files into a shared library.
  virtual LogicalResult link(llvm::ArrayRef<std::string> objects,
                             const std::string &output) const = 0;
  /// Human-readable description (triple, CPU, features) for diagnostics.
  virtual std::string describe() const = 0;
  /// Extra string fields of `rwkv_model_info()` (the CUDA target's
  /// `"target": "cuda"`); none for the CPU.
  virtual std::vector<std::pair<std::string, std::string>>
  modelInfoFields() const {
    return {};
  }
};

/// The x86-64 (or host) CPU target. Returns null and fills `error` when the
/// CPU or features are unknown to LLVM.
std::unique_ptr<CompilationTarget> createCpuTarget(const TargetOptions &opts,
                                                   std::string &error);

/// NVIDIA GPUs: `opts.cpu` is the SM architecture (default sm_90);
/// `hostOpts` describe the CPU of the host code. With `emulate` the
/// GPU-mapped kernels run on the host instead (a CPU library that checks the
/// CUDA pipeline's mapping). Null + `error` for an unknown architecture.
std::unique_ptr<CompilationTarget>
createCudaTarget(const TargetOptions &opts, const TargetOptions &hostOpts,
                 bool emulate, std::string &error);

/// Writes the one device binary (PTX text, cubin or fatbin bytes) that a
/// module lowered by the CUDA pipeline embeds.
LogicalResult writeDeviceCode(ModuleOp module, llvm::raw_ostream &os);

//===----------------------------------------------------------------------===//
// Target-independent ABI pieces (docs/ABI.md)
//===----------------------------------------------------------------------===//

/// Version of the compiled-model ABI written into every library.
constexpr int kRWKVAbiVersion = 1;

/// Describes the entry points of an imported (not yet lowered) module as the
/// JSON returned by `rwkv_model_info()`. Fails if the module is not an rwkv
/// model module (no `rwkv.config`, no entry points).
/// `extraFields` are added as strings (CompilationTarget::modelInfoFields).
FailureOr<std::string> buildModelInfo(
    ModuleOp module,
    llvm::ArrayRef<std::pair<std::string, std::string>> extraFields = {});

/// Names of the public entry points of an imported module.
SmallVector<std::string> getEntryPointNames(ModuleOp module);

/// Adds `rwkv_model_info()` and one `<entry>_packed(void **)` wrapper per
/// entry point to a translated module.
LogicalResult addABIEntryPoints(llvm::Module &module, llvm::StringRef info,
                                llvm::ArrayRef<std::string> entryPoints,
                                std::string &error);

} // namespace mlir::rwkv

#endif // RWKV_CODEGEN_TARGET_TARGET_H
