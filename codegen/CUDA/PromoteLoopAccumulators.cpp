//===- PromoteLoopAccumulators.cpp - reductions in registers --------------===//
//
// convert-linalg-to-parallel-loops leaves a reduction as an scf.for that
// loads the output element, adds to it and stores it back on every
// iteration. In a kernel that is a global-memory round trip per
// multiply-add; with the element carried as an iter_arg it is one load
// before the loop and one store after it, and the add chain stays in a
// register. (On the host it also keeps LLVM from vectorising the loop behind
// run-time alias checks, whose outcome, and so the rounding, would depend on
// the buffers' addresses.)
//
// Applies to a loop whose body loads and stores one memref at the same
// loop-invariant indices and touches that memref nowhere else; bufferization
// never aliases the output of a reduction with what it reads.
//
//===----------------------------------------------------------------------===//

#include "codegen/Passes.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"

#define DEBUG_TYPE "rwkv-promote-loop-accumulators"

namespace mlir::rwkv {
#define GEN_PASS_DEF_RWKVPROMOTELOOPACCUMULATORSPASS
#include "codegen/Passes.h.inc"

namespace {

bool definedOutside(Value v, scf::ForOp loop) {
  return !loop.getRegion().isAncestor(v.getParentRegion());
}

/// The one load/store pair of `loop` on a memref, if it qualifies.
std::optional<std::pair<memref::LoadOp, memref::StoreOp>>
findAccumulator(scf::ForOp loop) {
  SmallVector<memref::LoadOp> loads;
  SmallVector<memref::StoreOp> stores;
  loop.getBody()->walk([&](Operation *op) {
    if (auto l = dyn_cast<memref::LoadOp>(op))
      loads.push_back(l);
    else if (auto s = dyn_cast<memref::StoreOp>(op))
      stores.push_back(s);
  });
  if (stores.size() != 1)
    return std::nullopt;
  memref::StoreOp store = stores.front();
  // The store must run on every iteration, directly in the body.
  if (store->getBlock() != loop.getBody())
    return std::nullopt;
  Value mem = store.getMemRef();
  if (!definedOutside(mem, loop) ||
      !llvm::all_of(store.getIndices(),
                    [&](Value i) { return definedOutside(i, loop); }))
    return std::nullopt;
  memref::LoadOp load;
  for (memref::LoadOp l : loads) {
    if (l.getMemRef() != mem)
      continue;
    if (load || l->getBlock() != loop.getBody() ||
        l.getIndices() != store.getIndices() || !l->isBeforeInBlock(store))
      return std::nullopt;
    load = l;
  }
  if (!load)
    return std::nullopt;
  // No other use of the memref in the loop (a view of it, a call).
  for (Operation *user : mem.getUsers())
    if (loop->isAncestor(user) && user != load && user != store)
      return std::nullopt;
  return std::make_pair(load, store);
}

void promote(scf::ForOp loop, memref::LoadOp load, memref::StoreOp store) {
  OpBuilder b(loop);
  Location loc = load.getLoc();
  Value init =
      memref::LoadOp::create(b, loc, load.getMemRef(), load.getIndices());
  IRRewriter rewriter(loop.getContext());
  auto newLoop = cast<scf::ForOp>(*loop.replaceWithAdditionalYields(
      rewriter, init, /*replaceInitOperandUsesInLoop=*/false,
      [&](OpBuilder &, Location, ArrayRef<BlockArgument>) {
        return SmallVector<Value>{store.getValueToStore()};
      }));
  Value acc = newLoop.getRegionIterArgs().back();
  load.getResult().replaceAllUsesWith(acc);
  load.erase();
  // The yield now carries the value; the store moves after the loop.
  b.setInsertionPointAfter(newLoop);
  memref::StoreOp::create(b, loc, newLoop.getResults().back(),
                          store.getMemRef(), store.getIndices());
  store.erase();
}

struct RWKVPromoteLoopAccumulatorsPass final
    : impl::RWKVPromoteLoopAccumulatorsPassBase<
          RWKVPromoteLoopAccumulatorsPass> {
  void runOnOperation() override {
    // Innermost loops first: an outer loop then sees its inner reduction
    // as one load and one store.
    SmallVector<scf::ForOp> loops;
    getOperation()->walk([&](scf::ForOp loop) {
      if (loop->getParentOfType<gpu::LaunchOp>())
        loops.push_back(loop);
    });
    for (scf::ForOp loop : loops)
      if (auto acc = findAccumulator(loop))
        promote(loop, acc->first, acc->second);
  }
};

} // namespace
} // namespace mlir::rwkv
