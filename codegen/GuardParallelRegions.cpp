//===- GuardParallelRegions.cpp - no thread fork for a single tile --------===//
//
// A forall whose tile count depends on the prompt length (rwkv-tile-and-fuse,
// rwkv-parallelize-linalg on a dynamic T) has a single tile when one token is
// decoded. Forking the thread team for it costs microseconds per op, which
// over the ~100 such ops of a layer outweighs the op itself: decode of the
// 0.1B model fell from 66 to 42 tokens/s. The OpenMP `if` clause runs the
// region on the calling thread instead, so each parallel region here gets
// `if(more than one iteration)`.
//
//===----------------------------------------------------------------------===//

#include "codegen/Passes.h"

#include "mlir/Dialect/OpenMP/OpenMPDialect.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"

#define DEBUG_TYPE "rwkv-guard-parallel-regions"

namespace mlir::rwkv {
#define GEN_PASS_DEF_RWKVGUARDPARALLELREGIONSPASS
#include "codegen/Passes.h.inc"

namespace {

/// The loop nest work-shared by `parallel` (parallel { wsloop { loop_nest
/// } }, as convert-scf-to-openmp builds it), or null.
omp::LoopNestOp sharedLoop(omp::ParallelOp parallel) {
  omp::LoopNestOp nest;
  parallel.getRegion().walk([&](omp::LoopNestOp op) {
    if (!nest && isa<omp::WsloopOp>(op->getParentOp()))
      nest = op;
  });
  return nest;
}

struct RWKVGuardParallelRegionsPass final
    : impl::RWKVGuardParallelRegionsPassBase<RWKVGuardParallelRegionsPass> {
  void runOnOperation() override {
    OpBuilder b(&getContext());
    getOperation()->walk([&](omp::ParallelOp parallel) {
      if (parallel.getIfExpr())
        return;
      omp::LoopNestOp nest = sharedLoop(parallel);
      if (!nest)
        return;
      // The bounds must be available before the region.
      Region *region = &parallel.getRegion();
      for (Value v : nest->getOperands())
        if (region->isAncestor(v.getParentRegion()))
          return;
      // Statically more than one iteration in some loop: always fork.
      for (auto [lb, ub, step] :
           llvm::zip(nest.getLoopLowerBounds(), nest.getLoopUpperBounds(),
                     nest.getLoopSteps())) {
        std::optional<int64_t> l = getConstantIntValue(lb),
                               u = getConstantIntValue(ub),
                               s = getConstantIntValue(step);
        if (l && u && s && *l + *s < *u)
          return;
      }
      b.setInsertionPoint(parallel);
      Location loc = parallel.getLoc();
      Value any;
      for (auto [lb, ub, step] :
           llvm::zip(nest.getLoopLowerBounds(), nest.getLoopUpperBounds(),
                     nest.getLoopSteps())) {
        // More than one iteration: lb + step < ub (steps are positive).
        Value next = arith::AddIOp::create(b, loc, lb, step);
        Value more =
            arith::CmpIOp::create(b, loc, arith::CmpIPredicate::slt, next, ub);
        any = any ? arith::OrIOp::create(b, loc, any, more).getResult() : more;
      }
      if (any)
        parallel.getIfExprMutable().assign(any);
    });
  }
};

} // namespace
} // namespace mlir::rwkv
