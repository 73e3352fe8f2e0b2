//===- EntryOutParams.cpp - out-parameters for public entry points --------===//
//
// The compiled library's ABI returns every result through a buffer the
// runtime owns. Upstream promoteBufferResultsToOutParams does the rewrite;
// this pass restricts it to public functions, because the outlined layer
// functions return dynamically shaped values that call sites cannot
// preallocate.
//
//===----------------------------------------------------------------------===//

#include "codegen/Passes.h"

#include "mlir/Dialect/Bufferization/Transforms/Passes.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"

#define DEBUG_TYPE "rwkv-entry-out-params"

namespace mlir::rwkv {
#define GEN_PASS_DEF_RWKVENTRYOUTPARAMSPASS
#include "codegen/Passes.h.inc"

namespace {
struct RWKVEntryOutParamsPass final
    : impl::RWKVEntryOutParamsPassBase<RWKVEntryOutParamsPass> {
  void runOnOperation() override {
    bufferization::BufferResultsToOutParamsOpts opts;
    opts.filterFn = [](func::FuncOp *fn) { return fn->isPublic(); };
    opts.modifyPublicFunctions = true;
    opts.hoistStaticAllocs = true;
    // linalg.copy lowers to plain loops; memref.copy of a strided view would
    // need libmlir_c_runner_utils at run time.
    opts.memCpyFn = [](OpBuilder &b, Location loc, Value from, Value to) {
      linalg::CopyOp::create(b, loc, from, to);
      return success();
    };
    if (failed(bufferization::promoteBufferResultsToOutParams(getOperation(),
                                                              opts)))
      signalPassFailure();
  }
};
} // namespace
} // namespace mlir::rwkv
