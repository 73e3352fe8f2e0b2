//===- EntryOutParams.cpp - out-parameters for public entry points --------===//
//
// The compiled library's ABI returns every result through a buffer the
// runtime owns. Upstream promoteBufferResultsToOutParams does the rewrite;
// this pass restricts it to public functions, because the outlined layer
// functions return dynamically shaped values that call sites cannot
// preallocate.
//
// A state that the WKV updates in place comes back as the state argument
// itself, and its out-parameter would get a full copy of it on every call
// (0.1B: 2.4 MB per decoded token, 19 MB per batch-8 step, on one thread).
// With in-place-states that copy is skipped when the runtime passes the
// argument's own buffer as the out-parameter, and the library tells the
// runtime which states it may pass that way.
//
//===----------------------------------------------------------------------===//

#include "codegen/Passes.h"

#include "mlir/Dialect/Bufferization/Transforms/Passes.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"

#define DEBUG_TYPE "rwkv-entry-out-params"

namespace mlir::rwkv {
#define GEN_PASS_DEF_RWKVENTRYOUTPARAMSPASS
#include "codegen/Passes.h.inc"

namespace {

constexpr llvm::StringLiteral kStateAttr = "rwkv.state";

/// The `rwkv.state` name of `v` if it is a state argument of its function,
/// or null.
StringAttr stateArgName(Value v) {
  auto arg = dyn_cast<BlockArgument>(v);
  if (!arg || !arg.getOwner()->isEntryBlock())
    return {};
  auto fn = dyn_cast<func::FuncOp>(arg.getOwner()->getParentOp());
  if (!fn)
    return {};
  return fn.getArgAttrOfType<StringAttr>(arg.getArgNumber(), kStateAttr);
}

/// Names of the states that `fn` returns unchanged: result 1 + i is the
/// i-th state argument itself (results are the logits, then the new states
/// in argument order; docs/ABI.md), with an identity layout, so that one
/// buffer can serve as both.
llvm::SetVector<StringRef> statesReturnedInPlace(func::FuncOp fn) {
  llvm::SetVector<StringRef> names;
  if (!fn.getBody().hasOneBlock())
    return names;
  auto ret = cast<func::ReturnOp>(fn.getBody().front().getTerminator());
  unsigned state = 0;
  for (BlockArgument arg : fn.getArguments()) {
    StringAttr name = stateArgName(arg);
    if (!name)
      continue;
    ++state;
    if (state >= ret.getNumOperands() || ret.getOperand(state) != arg)
      continue;
    auto type = dyn_cast<MemRefType>(arg.getType());
    if (type && type.getLayout().isIdentity())
      names.insert(name.getValue());
  }
  return names;
}

struct RWKVEntryOutParamsPass final
    : impl::RWKVEntryOutParamsPassBase<RWKVEntryOutParamsPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    // States returned unchanged by every entry point (the runtime passes
    // the same buffers to all of them).
    std::optional<llvm::SetVector<StringRef>> shared;
    if (inPlaceStates)
      for (auto fn : module.getOps<func::FuncOp>()) {
        if (!fn.isPublic() || fn.isDeclaration())
          continue;
        llvm::SetVector<StringRef> names = statesReturnedInPlace(fn);
        if (!shared)
          shared = std::move(names);
        else
          shared->remove_if([&](StringRef n) { return !names.contains(n); });
      }
    // Attribute strings: they live as long as the context.
    ArrayRef<StringRef> names =
        shared ? shared->getArrayRef() : ArrayRef<StringRef>();

    bufferization::BufferResultsToOutParamsOpts opts;
    opts.filterFn = [](func::FuncOp *fn) { return fn->isPublic(); };
    opts.modifyPublicFunctions = true;
    opts.hoistStaticAllocs = true;
    // linalg.copy lowers to plain loops; memref.copy of a strided view would
    // need libmlir_c_runner_utils at run time.
    opts.memCpyFn = [&](OpBuilder &b, Location loc, Value from, Value to) {
      StringAttr state = stateArgName(from);
      if (!state || !llvm::is_contained(names, state.getValue())) {
        linalg::CopyOp::create(b, loc, from, to);
        return success();
      }
      // Both identity layouts: equal base pointers are the same buffer.
      Value src = memref::ExtractAlignedPointerAsIndexOp::create(b, loc, from);
      Value dst = memref::ExtractAlignedPointerAsIndexOp::create(b, loc, to);
      Value other =
          arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ne, src, dst);
      scf::IfOp::create(b, loc, other, [&](OpBuilder &nb, Location l) {
        linalg::CopyOp::create(nb, l, from, to);
        scf::YieldOp::create(nb, l);
      });
      return success();
    };
    if (failed(bufferization::promoteBufferResultsToOutParams(module, opts)))
      return signalPassFailure();
    if (names.empty())
      return;

    // const char rwkv_in_place_states[] = "wkv:0,wkv:1";
    std::string list = llvm::join(names, ",");
    list.push_back('\0');
    OpBuilder b = OpBuilder::atBlockEnd(module.getBody());
    auto type = LLVM::LLVMArrayType::get(b.getI8Type(), list.size());
    LLVM::GlobalOp::create(b, module.getLoc(), type, /*isConstant=*/true,
                           LLVM::Linkage::External, "rwkv_in_place_states",
                           b.getStringAttr(list));
  }
};
} // namespace
} // namespace mlir::rwkv
