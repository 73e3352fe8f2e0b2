//===- rwkv-opt.cpp - rwkv optimizer driver --------------------------------===//
//
// MlirOptMain with the rwkv dialect, its passes and pipelines, and the
// upstream dialects, passes and extensions that the pipelines use.
//
//===----------------------------------------------------------------------===//

#include "codegen/Passes.h"
#include "codegen/Pipelines.h"
#include "dialect/RWKVDialect.h"
#include "passes/Passes.h"

#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Target/LLVMIR/Dialect/All.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"

int main(int argc, char **argv) {
  mlir::registerAllPasses();
  mlir::rwkv::registerRWKVPasses();
  mlir::rwkv::registerRWKVCodegenPasses();
  mlir::rwkv::registerRWKVPipelines();

  mlir::DialectRegistry registry;
  mlir::registerAllDialects(registry);
  mlir::registerAllExtensions(registry);
  mlir::registerAllGPUToLLVMIRTranslations(registry);
  registry.insert<mlir::rwkv::RWKVDialect>();
  return mlir::asMainReturnCode(
      mlir::MlirOptMain(argc, argv, "RWKV optimizer driver\n", registry));
}
