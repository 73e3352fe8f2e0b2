//===- WarpReductions.cpp - one warp per reduction, coalesced -------------===//
//
// rwkv-map-parallel-loops-to-gpu gives every output of a projection or a
// norm its own thread, and that thread walks the reduction alone: in a
// decode GEMV the 32 threads of a warp read 32 different weight rows, 32
// separate memory transactions per step instead of one. Here each such
// thread becomes a warp. Lane l sums the inputs l, l + 32, l + 64, ... (the
// lanes of a warp read 32 consecutive elements of the same row: one
// coalesced transaction), `gpu.subgroup_reduce add` combines the 32 partial
// sums (butterfly shuffles, upstream's lowering), and lane 0 alone writes
// the result.
//
// The old thread's index arithmetic is kept as it is: every lane of a warp
// computes the ids of the thread it replaces (warp index = old global
// thread id), so all control flow around the loop stays uniform across the
// warp and the shuffles run converged. Applies to launches with 1-D blocks
// of a constant multiple of 32 threads whose only memory writes are
// memref.store to buffers the kernel reads only as a sum's initial value,
// and to loops inside them that reduce one float with a reassociable addf
// over a static trip count of at least `min-trip-count` and write nothing.
//
//===----------------------------------------------------------------------===//

#include "codegen/CUDA/WarpUtils.h"
#include "codegen/Passes.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/GPU/Transforms/Passes.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

#define DEBUG_TYPE "rwkv-warp-reductions"

namespace mlir::rwkv {
#define GEN_PASS_DEF_RWKVWARPREDUCTIONSPASS
#include "codegen/Passes.h.inc"

namespace {

/// A loop `scf.for %i = c0 to c1 step 1 iter_args(%a = %init) -> (f)` whose
/// body yields `arith.addf %a, %v` (reassoc) as the only use of %a, with
/// at least `minTrip` iterations and no writes: the sum may be split.
bool isSplittableSum(scf::ForOp loop, int64_t minTrip) {
  if (loop.getNumRegionIterArgs() != 1 ||
      !isa<FloatType>(loop.getResult(0).getType()))
    return false;
  std::optional<int64_t> lb = getConstantIntValue(loop.getLowerBound()),
                         ub = getConstantIntValue(loop.getUpperBound()),
                         st = getConstantIntValue(loop.getStep());
  if (!lb || !ub || !st || *st != 1 || *ub - *lb < minTrip)
    return false;
  Value acc = loop.getRegionIterArg(0);
  auto add = loop.getBody()
                 ->getTerminator()
                 ->getOperand(0)
                 .getDefiningOp<arith::AddFOp>();
  if (!add || !acc.hasOneUse() ||
      (add.getLhs() != acc && add.getRhs() != acc) ||
      !arith::bitEnumContainsAll(add.getFastmath(),
                                 arith::FastMathFlags::reassoc))
    return false;
  return readsOnly(loop);
}

struct RWKVWarpReductionsPass final
    : impl::RWKVWarpReductionsPassBase<RWKVWarpReductionsPass> {
  using Base::Base;

  void runOnOperation() override {
    SmallVector<gpu::LaunchOp> launches;
    getOperation()->walk([&](gpu::LaunchOp l) { launches.push_back(l); });
    for (gpu::LaunchOp launch : launches)
      rewrite(launch);
    if (!lowerToShuffles)
      return;
    RewritePatternSet patterns(&getContext());
    populateGpuLowerSubgroupReduceToShufflePatterns(patterns, kWarpSize);
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      return signalPassFailure();
  }

  void rewrite(gpu::LaunchOp launch) const {
    auto cst = [](Value v) { return getConstantIntValue(v); };
    gpu::KernelDim3 gridOps = launch.getGridSizeOperandValues(),
                    blockOps = launch.getBlockSizeOperandValues();
    std::optional<int64_t> bx = cst(blockOps.x), by = cst(blockOps.y),
                           bz = cst(blockOps.z), gy = cst(gridOps.y),
                           gz = cst(gridOps.z);
    if (!bx || *bx % kWarpSize || by != 1 || bz != 1 || gy != 1 || gz != 1 ||
        launch.getClusterSizeX() || !launch.getWorkgroupAttributions().empty())
      return;
    SmallVector<scf::ForOp> sums;
    bool otherWrites = false;
    launch.getBody().walk<WalkOrder::PreOrder>([&](Operation *op) {
      if (auto loop = dyn_cast<scf::ForOp>(op);
          loop && isSplittableSum(loop, minTripCount)) {
        sums.push_back(loop);
        return WalkResult::skip();
      }
      if (isa<gpu::ShuffleOp, gpu::SubgroupReduceOp, gpu::BarrierOp,
              gpu::AllReduceOp>(op))
        otherWrites = true;
      else if (!isa<memref::StoreOp>(op) && !isPure(op) &&
               op->getNumRegions() == 0 && !readsOnly(op) &&
               !isa<gpu::TerminatorOp>(op))
        otherWrites = true;
      return WalkResult::advance();
    });
    if (sums.empty() || otherWrites)
      return;
    // Lanes other than 0 must not read what lane 0 stores in the same
    // kernel (no ordering between lanes but the shuffles): a stored memref
    // may only be read as a sum's initial value, before the shuffles.
    llvm::SmallPtrSet<Value, 4> stored;
    llvm::SmallPtrSet<Operation *, 4> initLoads;
    launch.getBody().walk(
        [&](memref::StoreOp s) { stored.insert(s.getMemRef()); });
    for (scf::ForOp loop : sums)
      if (Operation *def = loop.getInitArgs()[0].getDefiningOp())
        initLoads.insert(def);
    WalkResult readsStored = launch.getBody().walk([&](Operation *op) {
      if (initLoads.contains(op))
        return WalkResult::advance();
      for (Value v : op->getOperands())
        if (stored.contains(v) && !isa<memref::StoreOp>(op))
          return WalkResult::interrupt();
      return WalkResult::advance();
    });
    if (readsStored.wasInterrupted())
      return;

    Block &body = launch.getBody().front();
    OpBuilder b(launch);
    Location loc = launch.getLoc();
    auto idx = [&](OpBuilder &ob, int64_t v) -> Value {
      return arith::ConstantIndexOp::create(ob, loc, v);
    };
    // Each old thread becomes a warp: 32 times the blocks.
    Value oldGrid = gridOps.x;
    launch.getGridSizeXMutable().assign(
        arith::MulIOp::create(b, loc, oldGrid, idx(b, kWarpSize)));

    b.setInsertionPointToStart(&body);
    Value block = idx(b, *bx);
    gpu::KernelDim3 bid = launch.getBlockIds(), tid = launch.getThreadIds();
    Value g = arith::AddIOp::create(
        b, loc, arith::MulIOp::create(b, loc, bid.x, block), tid.x);
    Value warpSize = idx(b, kWarpSize), lane0 = idx(b, 0);
    Value lane = arith::RemUIOp::create(b, loc, tid.x, warpSize);
    Value warp = arith::DivUIOp::create(b, loc, g, warpSize);
    Value oldBid = arith::DivUIOp::create(b, loc, warp, block);
    Value oldTid = arith::RemUIOp::create(b, loc, warp, block);
    SmallPtrSet<Operation *, 4> keep = {
        g.getDefiningOp(), lane.getDefiningOp(), warp.getDefiningOp(),
        g.getDefiningOp()->getOperand(0).getDefiningOp()};
    bid.x.replaceUsesWithIf(
        oldBid, [&](OpOperand &use) { return !keep.contains(use.getOwner()); });
    tid.x.replaceUsesWithIf(
        oldTid, [&](OpOperand &use) { return !keep.contains(use.getOwner()); });
    launch.getGridSize().x.replaceAllUsesWith(oldGrid);
    SmallVector<Operation *> idOps;
    body.walk([&](Operation *op) {
      if (isa<gpu::BlockIdOp, gpu::ThreadIdOp, gpu::GridDimOp>(op))
        idOps.push_back(op);
    });
    for (Operation *op : idOps) {
      Value with;
      if (auto id = dyn_cast<gpu::BlockIdOp>(op))
        with = id.getDimension() == gpu::Dimension::x ? oldBid : Value();
      else if (auto id = dyn_cast<gpu::ThreadIdOp>(op))
        with = id.getDimension() == gpu::Dimension::x ? oldTid : Value();
      else if (cast<gpu::GridDimOp>(op).getDimension() == gpu::Dimension::x)
        with = oldGrid;
      if (with) {
        op->getResult(0).replaceAllUsesWith(with);
        op->erase();
      }
    }

    // Lane l sums iterations l, l + 32, ...; the partial sums meet in a
    // subgroup reduction, then the loop's initial value is added once.
    for (scf::ForOp loop : sums) {
      OpBuilder lb(loop);
      Value init = loop.getInitArgs()[0];
      auto add = cast<arith::AddFOp>(
          loop.getBody()->getTerminator()->getOperand(0).getDefiningOp());
      Type t = init.getType();
      Value zero = arith::ConstantOp::create(lb, loc, lb.getZeroAttr(t));
      loop.getInitArgsMutable()[0].assign(zero);
      loop.getLowerBoundMutable().assign(
          arith::AddIOp::create(lb, loc, loop.getLowerBound(), lane));
      loop.getStepMutable().assign(warpSize);
      lb.setInsertionPointAfter(loop);
      Value total = gpu::SubgroupReduceOp::create(lb, loc, loop.getResult(0),
                                                  gpu::AllReduceOperation::ADD,
                                                  /*uniform=*/true);
      Value result =
          arith::AddFOp::create(lb, loc, init, total, add.getFastmath());
      loop.getResult(0).replaceAllUsesExcept(result, total.getDefiningOp());
    }

    // Every lane holds the sums (in its own butterfly order); lane 0 writes.
    SmallVector<memref::StoreOp> stores;
    body.walk([&](memref::StoreOp s) { stores.push_back(s); });
    for (memref::StoreOp s : stores) {
      OpBuilder sb(s);
      Value first =
          arith::CmpIOp::create(sb, loc, arith::CmpIPredicate::eq, lane, lane0);
      auto guard = scf::IfOp::create(sb, loc, first, /*withElseRegion=*/false);
      s->moveBefore(guard.thenBlock()->getTerminator());
    }
  }
};

} // namespace
} // namespace mlir::rwkv
