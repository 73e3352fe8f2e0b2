//===- EmulateGpuLaunch.cpp - run gpu.launch bodies on the host -----------===//
//
// Checks the GPU mapping without a GPU: each gpu.launch becomes an
// scf.parallel over its blocks around an scf.parallel over its threads, the
// launch's block and thread ids the induction variables, and the CPU back
// end lowers the rest. The kernel bodies, their index arithmetic and the
// host code between the launches are exactly what the CUDA back end
// compiles, so the golden tests of a library built this way check them.
// Launches that share memory between threads or synchronise them are not
// expressible as independent iterations and are refused.
//
//===----------------------------------------------------------------------===//

#include "codegen/Passes.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/IR/IRMapping.h"

#define DEBUG_TYPE "rwkv-emulate-gpu-launch"

namespace mlir::rwkv {
#define GEN_PASS_DEF_RWKVEMULATEGPULAUNCHPASS
#include "codegen/Passes.h.inc"

namespace {

LogicalResult emulate(gpu::LaunchOp launch) {
  if (!launch.getWorkgroupAttributions().empty() ||
      !launch.getPrivateAttributions().empty() ||
      launch.getDynamicSharedMemorySize() || launch.getAsyncToken() ||
      !launch.getAsyncDependencies().empty() || launch.getClusterSizeX())
    return launch.emitError("only synchronous launches without shared "
                            "memory or clusters can be emulated");
  WalkResult sync = launch.getBody().walk([](Operation *op) {
    if (isa<gpu::BarrierOp, gpu::ShuffleOp, gpu::AllReduceOp,
            gpu::SubgroupReduceOp>(op) ||
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
