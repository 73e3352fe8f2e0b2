//===- EmulateGpuLaunch.cpp - run gpu.launch bodies on the host -----------===//
//
// Checks the GPU mapping without a GPU: each gpu.launch becomes an
// scf.parallel over its blocks around an scf.parallel over its threads, the
// launch's block and thread ids the induction variables, and the CPU back
// end lowers the rest. The kernel bodies, their index arithmetic and the
// host code between the launches are exactly what the CUDA back end
// compiles, so the golden tests of a library built this way check them.
// Launches that share memory between threads or synchronise them are not
// expressible as independent iterations and are refused, with one
// exception: `gpu.subgroup_reduce add` (rwkv-warp-reductions). Each lane
// recomputes the operand of all 32 lanes of its warp (the operand's
// backward slice, which only reads memory, with the lane's thread id) and
// combines them in the butterfly order of upstream's shuffle lowering
// (offsets 1, 2, 4, ..., 16, own value first), so it gets the sum its lane
// gets on the GPU, bit for bit.
//
//===----------------------------------------------------------------------===//

#include "codegen/CUDA/WarpUtils.h"
#include "codegen/Passes.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#define DEBUG_TYPE "rwkv-emulate-gpu-launch"

namespace mlir::rwkv {
#define GEN_PASS_DEF_RWKVEMULATEGPULAUNCHPASS
#include "codegen/Passes.h.inc"

namespace {

/// Replaces `r` (inside the emulated thread loop `threads`, whose first
/// induction variable is the thread id) by the value its lane gets on the
/// GPU: the operands of the 32 lanes of the warp, recomputed here, summed
/// by the butterfly.
LogicalResult emulateSubgroupReduce(gpu::SubgroupReduceOp r,
                                    scf::ParallelOp threads,
                                    gpu::KernelDim3 block) {
  std::optional<int64_t> bx = getConstantIntValue(block.x),
                         by = getConstantIntValue(block.y),
                         bz = getConstantIntValue(block.z);
  if (r.getOp() != gpu::AllReduceOperation::ADD || r.getClusterSize() ||
      !isa<FloatType>(r.getType()) || !bx || *bx % kWarpSize || by != 1 ||
      bz != 1)
    return r.emitError("only a float gpu.subgroup_reduce add over whole warps "
                       "of a 1-D block can be emulated");
  Value tid = threads.getInductionVars()[0];
  // The operand's backward slice inside the thread loop: the ops to rerun
  // for every lane (values used in their regions count as operands).
  llvm::SetVector<Operation *> slice;
  SmallVector<Value> work = {r.getValue()};
  Region &threadBody = threads.getRegion();
  while (!work.empty()) {
    Value v = work.pop_back_val();
    if (v == tid || !threadBody.isAncestor(v.getParentRegion()))
      continue;
    Operation *def = v.getDefiningOp();
    if (!def)
      return r.emitError("the operand of a gpu.subgroup_reduce depends on a "
                         "loop inside the kernel; cannot emulate");
    if (!slice.insert(def))
      continue;
    if (!readsOnly(def))
      return r.emitError("the operand of a gpu.subgroup_reduce is computed "
                         "by an op that writes memory; cannot emulate");
    for (Value operand : def->getOperands())
      work.push_back(operand);
    def->walk([&](Operation *inner) {
      for (Value operand : inner->getOperands())
        if (!def->isAncestor(operand.getParentRegion()->getParentOp()))
          work.push_back(operand);
    });
  }
  OpBuilder b(r);
  Location loc = r.getLoc();
  Type t = r.getType();
  auto idx = [&](int64_t v) -> Value {
    return arith::ConstantIndexOp::create(b, loc, v);
  };
  Value lane = arith::RemUIOp::create(b, loc, tid, idx(kWarpSize));
  Value base = arith::SubIOp::create(b, loc, tid, lane);
  // The 32 lanes' operands as one vector (no memory: the emulated thread
  // loop may run in parallel), then the butterfly on it.
  auto vecType = VectorType::get({kWarpSize}, t);
  Value c0 = idx(0), c1 = idx(1), cW = idx(kWarpSize);
  Value init = arith::ConstantOp::create(b, loc, b.getZeroAttr(vecType));
  auto lanes = scf::ForOp::create(
      b, loc, c0, cW, c1, ValueRange{init},
      [&](OpBuilder &lb, Location ll, Value l, ValueRange acc) {
        IRMapping map;
        map.map(tid, arith::AddIOp::create(lb, ll, base, l).getResult());
        // Program order, outermost slice ops only (a region op is cloned
        // with its body).
        threads.getBody()->walk<WalkOrder::PreOrder>([&](Operation *op) {
          if (!slice.contains(op))
            return WalkResult::advance();
          lb.clone(*op, map);
          return WalkResult::skip();
        });
        Value v = vector::InsertOp::create(lb, ll, map.lookup(r.getValue()),
                                           acc[0], ArrayRef<OpFoldResult>{l});
        scf::YieldOp::create(lb, ll, v);
      });
  Value vals = lanes.getResult(0);
  for (int64_t off = 1; off < kWarpSize; off *= 2) {
    SmallVector<int64_t> partner;
    for (int64_t l = 0; l < kWarpSize; ++l)
      partner.push_back(l ^ off);
    Value other = vector::ShuffleOp::create(b, loc, vals, vals, partner);
    vals = arith::AddFOp::create(b, loc, vals, other);
  }
  Value mine =
      vector::ExtractOp::create(b, loc, vals, ArrayRef<OpFoldResult>{lane});
  r.getResult().replaceAllUsesWith(mine);
  r.erase();
  return success();
}

LogicalResult emulate(gpu::LaunchOp launch) {
  if (!launch.getWorkgroupAttributions().empty() ||
      !launch.getPrivateAttributions().empty() ||
      launch.getDynamicSharedMemorySize() || launch.getAsyncToken() ||
      !launch.getAsyncDependencies().empty() || launch.getClusterSizeX())
    return launch.emitError("only synchronous launches without shared "
                            "memory or clusters can be emulated");
  WalkResult sync = launch.getBody().walk([](Operation *op) {
    if (isa<gpu::BarrierOp, gpu::ShuffleOp, gpu::AllReduceOp>(op) ||
        op->getDialect()->getNamespace() == "nvvm")
      return WalkResult::interrupt();
    return WalkResult::advance();
  });
  if (sync.wasInterrupted())
    return launch.emitError("a kernel whose threads synchronise or "
                            "communicate cannot be emulated");
  OpBuilder b(launch);
  Location loc = launch.getLoc();
  Value zero = arith::ConstantIndexOp::create(b, loc, 0);
  Value one = arith::ConstantIndexOp::create(b, loc, 1);
  gpu::KernelDim3 grid = launch.getGridSizeOperandValues();
  gpu::KernelDim3 block = launch.getBlockSizeOperandValues();
  SmallVector<Value> zeros(3, zero), ones(3, one);
  auto blocks = scf::ParallelOp::create(
      b, loc, zeros, ValueRange{grid.x, grid.y, grid.z}, ones);
  b.setInsertionPointToStart(blocks.getBody());
  auto threads = scf::ParallelOp::create(
      b, loc, zeros, ValueRange{block.x, block.y, block.z}, ones);
  b.setInsertionPointToStart(threads.getBody());

  Block &body = launch.getBody().front();
  IRMapping map;
  gpu::KernelDim3 bid = launch.getBlockIds(), tid = launch.getThreadIds(),
                  gridArg = launch.getGridSize(),
                  blockArg = launch.getBlockSize();
  auto bivs = blocks.getInductionVars(), tivs = threads.getInductionVars();
  map.map(bid.x, bivs[0]);
  map.map(bid.y, bivs[1]);
  map.map(bid.z, bivs[2]);
  map.map(tid.x, tivs[0]);
  map.map(tid.y, tivs[1]);
  map.map(tid.z, tivs[2]);
  map.map(gridArg.x, grid.x);
  map.map(gridArg.y, grid.y);
  map.map(gridArg.z, grid.z);
  map.map(blockArg.x, block.x);
  map.map(blockArg.y, block.y);
  map.map(blockArg.z, block.z);
  for (Operation &op : body.without_terminator())
    b.clone(op, map);
  launch.erase();
  // The id ops of the body (rather than the region arguments) read the
  // induction variables too.
  SmallVector<std::pair<Operation *, Value>> ids;
  WalkResult bad = threads.getBody()->walk([&](Operation *op) {
    if (auto id = dyn_cast<gpu::BlockIdOp>(op))
      ids.push_back({op, bivs[static_cast<unsigned>(id.getDimension())]});
    else if (auto id = dyn_cast<gpu::ThreadIdOp>(op))
      ids.push_back({op, tivs[static_cast<unsigned>(id.getDimension())]});
    else if (isa<gpu::GridDimOp, gpu::BlockDimOp, gpu::GlobalIdOp,
                 gpu::LaneIdOp>(op))
      return WalkResult::interrupt();
    return WalkResult::advance();
  });
  if (bad.wasInterrupted())
    return threads.emitError("a kernel reads its launch geometry through an "
                             "op the emulation does not map");
  for (auto [op, iv] : ids) {
    op->getResult(0).replaceAllUsesWith(iv);
    op->erase();
  }
  SmallVector<gpu::SubgroupReduceOp> reduces;
  threads.getBody()->walk(
      [&](gpu::SubgroupReduceOp r) { reduces.push_back(r); });
  for (gpu::SubgroupReduceOp r : reduces)
    if (failed(emulateSubgroupReduce(r, threads, block)))
      return failure();
  return success();
}

struct RWKVEmulateGpuLaunchPass final
    : impl::RWKVEmulateGpuLaunchPassBase<RWKVEmulateGpuLaunchPass> {
  void runOnOperation() override {
    SmallVector<gpu::LaunchOp> launches;
    getOperation()->walk([&](gpu::LaunchOp l) { launches.push_back(l); });
    for (gpu::LaunchOp l : launches)
      if (failed(emulate(l)))
        return signalPassFailure();
  }
};

} // namespace
} // namespace mlir::rwkv
