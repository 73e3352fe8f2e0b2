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
// A lane reads one element per step only where it must: when the loads
// that depend on the loop counter all run along their innermost dimension
// and the rest of the body is element-wise, lane l takes `vector-width`
// consecutive elements per step (l * width, + 32 * width, ...) as vector
// loads and vector arithmetic, and reduces its vector once after the loop.
// For a bf16 GEMV that is one 16-byte load of 8 weights per lane and step,
// 512 contiguous bytes per warp, instead of 2-byte loads (64 bytes).
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
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/IRMapping.h"
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

/// Whether the innermost dimension of `t` has unit stride.
bool unitInnerStride(MemRefType t) {
  SmallVector<int64_t> strides;
  int64_t offset;
  return t.getRank() > 0 && succeeded(t.getStridesAndOffset(strides, offset)) &&
         strides.back() == 1;
}

/// Lane `lane` of the sum `loop` taking `width` consecutive iterations per
/// step instead of one: the loop becomes
///   scf.for %i = lb + lane * width to ub step 32 * width
///       iter_args(%acc = zero : vector<width x f>)
/// with each load whose last index is the induction variable (and whose
/// other indices do not depend on it) a vector.load of `width` elements
/// (what rwkv-lower-kernel-transfers then gives a 16-byte alignment: one
/// ld.global.v4 of 8 bf16 weights instead of 8 two-byte loads), the
/// element-wise arithmetic on vectors (loop-invariant scalars broadcast),
/// and the lane's sum a vector.reduction after the loop. Returns that sum,
/// or failure (nothing changed) when the body holds anything else: a load
/// along another dimension (the [in, out] LoRA factors), an index computed
/// from the induction variable, a non-element-wise op.
FailureOr<Value> vectorizeLanes(scf::ForOp loop, Value lane, int64_t width) {
  Block *body = loop.getBody();
  Value iv = loop.getInductionVar(), acc = loop.getRegionIterArg(0);
  auto add = cast<arith::AddFOp>(body->getTerminator()->getOperand(0).getDefiningOp());
  Value term = add.getLhs() == acc ? add.getRhs() : add.getLhs();
  // Which values vary with the induction variable; check every op first.
  llvm::SmallPtrSet<Value, 16> varying = {iv};
  auto varies = [&](Value v) { return varying.contains(v); };
  for (Operation &op : body->without_terminator()) {
    if (&op == add.getOperation())
      continue;
    bool any = llvm::any_of(op.getOperands(), varies);
    if (!any) {
      if (op.getNumRegions() != 0)
        return failure();
      continue;
    }
    if (auto load = dyn_cast<memref::LoadOp>(op)) {
      ValueRange idx = load.getIndices();
      if (idx.empty() || idx.back() != iv || varies(load.getMemRef()) ||
          llvm::any_of(idx.drop_back(), varies) ||
          !unitInnerStride(load.getMemRefType()))
        return failure();
    } else if (!op.hasTrait<OpTrait::Vectorizable>() ||
               !op.hasTrait<OpTrait::Elementwise>() ||
               op.getNumRegions() != 0 || op.getNumResults() != 1 ||
               !op.getResult(0).getType().isIntOrFloat()) {
      return failure();
    }
    for (Value r : op.getResults())
      varying.insert(r);
  }
  if (!varies(term))
    return failure();

  OpBuilder b(loop);
  Location loc = loop.getLoc();
  Type elem = acc.getType();
  auto vecOf = [&](Type t) { return VectorType::get({width}, t); };
  Value zero = arith::ConstantOp::create(
      b, loc, DenseElementsAttr::get(vecOf(elem), b.getZeroAttr(elem)));
  Value lb = arith::AddIOp::create(
      b, loc, loop.getLowerBound(),
      arith::MulIOp::create(b, loc, lane,
                            arith::ConstantIndexOp::create(b, loc, width)));
  Value step = arith::ConstantIndexOp::create(b, loc, kWarpSize * width);
  auto lanes = scf::ForOp::create(
      b, loc, lb, loop.getUpperBound(), step, ValueRange{zero},
      [&](OpBuilder &lb, Location l, Value i, ValueRange it) {
        IRMapping map;
        map.map(iv, i);
        auto lifted = [&](Value v) -> Value {
          Value m = map.lookupOrDefault(v);
          if (varies(v))
            return m;
          return vector::BroadcastOp::create(lb, l, vecOf(v.getType()), m);
        };
        for (Operation &op : body->without_terminator()) {
          if (&op == add.getOperation())
            continue;
          if (!llvm::any_of(op.getOperands(), varies)) {
            lb.clone(op, map);
            continue;
          }
          if (auto load = dyn_cast<memref::LoadOp>(op)) {
            SmallVector<Value> idx;
            for (Value x : load.getIndices())
              idx.push_back(map.lookupOrDefault(x));
            map.map(load.getResult(),
                    vector::LoadOp::create(
                        lb, l, vecOf(load.getType()),
                        map.lookupOrDefault(load.getMemRef()), idx)
                        .getResult());
            continue;
          }
          // The same op (its properties: fastmath, predicates) on vectors:
          // loop-invariant operands broadcast, the result type widened.
          SmallVector<Value> operands;
          for (Value x : op.getOperands())
            operands.push_back(lifted(x));
          Operation *c = lb.clone(op, map);
          c->setOperands(operands);
          c->getResult(0).setType(vecOf(op.getResult(0).getType()));
          map.map(op.getResult(0), c->getResult(0));
        }
        Value sum = arith::AddFOp::create(lb, l, it[0], lifted(term),
                                          add.getFastmath());
        scf::YieldOp::create(lb, l, sum);
      });
  b.setInsertionPointAfter(lanes);
  Value partial = vector::ReductionOp::create(
      b, loc, vector::CombiningKind::ADD, lanes.getResult(0), Value(),
      add.getFastmath());
  return partial;
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

    // Lane l sums iterations l, l + 32, ... (or, vectorized, the runs of
    // `width` from l * width on, 32 * width apart); the partial sums meet
    // in a subgroup reduction, then the loop's initial value is added once.
    for (scf::ForOp loop : sums) {
      OpBuilder lb(loop);
      Value init = loop.getInitArgs()[0];
      auto add = cast<arith::AddFOp>(
          loop.getBody()->getTerminator()->getOperand(0).getDefiningOp());
      int64_t trip = *getConstantIntValue(loop.getUpperBound()) -
                     *getConstantIntValue(loop.getLowerBound());
      FailureOr<Value> partial = failure();
      for (int64_t width = maxVectorWidth; width > 1 && failed(partial);
           width /= 2)
        if (trip % (kWarpSize * width) == 0)
          partial = vectorizeLanes(loop, lane, width);
      if (succeeded(partial)) {
        lb.setInsertionPointAfter(partial->getDefiningOp());
        Value total = gpu::SubgroupReduceOp::create(
            lb, loc, *partial, gpu::AllReduceOperation::ADD,
            /*uniform=*/true);
        loop.getResult(0).replaceAllUsesWith(
            arith::AddFOp::create(lb, loc, init, total, add.getFastmath())
                .getResult());
        loop.erase();
        continue;
      }
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
