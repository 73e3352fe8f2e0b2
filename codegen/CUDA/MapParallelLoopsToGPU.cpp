//===- MapParallelLoopsToGPU.cpp - scf.parallel nests as gpu.launch -------===//
//
// The generic SIMT mapping of the CUDA target. After bufferization every
// linalg op is an scf.parallel over its parallel dimensions (reductions are
// scf.for inside). Each outermost scf.parallel becomes one gpu.launch with a
// 1-D grid of fixed-size blocks: a thread owns one point of the iteration
// space, the last dimension fastest, so neighbouring threads touch
// neighbouring channels (coalesced). The trip counts stay dynamic (the token
// count is a run-time value): upstream's transform mapping and
// gpu-map-parallel-loops need static or invariant tile bounds (see
// ../shared/docs/cuda-codegen.md §1.1), a linearised index does not.
//
// Host loops that still read or write memory (a reduction with no parallel
// dimension, a copy loop) run as a one-thread kernel: every access to a
// buffer happens on the device, where the buffers live. The exception is the
// deallocation lowering's bookkeeping (ownership flags and base addresses,
// memrefs of i1 / index, and its dealloc_helper), which stays host code.
//
//===----------------------------------------------------------------------===//

#include "codegen/Passes.h"

#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/IR/IRMapping.h"

#define DEBUG_TYPE "rwkv-map-parallel-loops-to-gpu"

namespace mlir::rwkv {
#define GEN_PASS_DEF_RWKVMAPPARALLELLOOPSTOGPUPASS
#include "codegen/Passes.h.inc"

namespace {

bool insideKernel(Operation *op) {
  return op->getParentOfType<gpu::LaunchOp>() != nullptr;
}

/// Creates a launch of `grid` x `block` threads (1-D) before `anchor`.
gpu::LaunchOp createLaunch(OpBuilder &b, Location loc, Value grid,
                           Value block) {
  Value one = arith::ConstantIndexOp::create(b, loc, 1);
  auto launch = gpu::LaunchOp::create(b, loc, grid, one, one, block, one, one);
  OpBuilder::InsertionGuard g(b);
  b.setInsertionPointToEnd(&launch.getBody().front());
  gpu::TerminatorOp::create(b, loc);
  return launch;
}

/// scf.parallel (%i, %j) = (lb) to (ub) step (s) { body }
///   -> gpu.launch blocks(ceil(n / B)) threads(B) {
///        %g = bid * B + tid
///        scf.if %g < n { %i, %j = delinearize(%g); body }
///      }
LogicalResult mapParallel(scf::ParallelOp par, int64_t blockSize) {
  if (par.getNumResults() != 0)
    return par.emitError("an scf.parallel with reductions cannot be mapped "
                         "to one thread per iteration");
  OpBuilder b(par);
  Location loc = par.getLoc();
  SmallVector<Value> counts;
  Value total = arith::ConstantIndexOp::create(b, loc, 1);
  Value zero = arith::ConstantIndexOp::create(b, loc, 0);
  std::optional<int64_t> staticTotal = 1;
  for (auto [lb, ub, step] :
       llvm::zip(par.getLowerBound(), par.getUpperBound(), par.getStep())) {
    // An empty range (ub <= lb) counts 0, not a wrapped unsigned span.
    Value span = arith::MaxSIOp::create(
        b, loc, arith::SubIOp::create(b, loc, ub, lb), zero);
    Value n = arith::CeilDivUIOp::create(b, loc, span, step);
    counts.push_back(n);
    total = arith::MulIOp::create(b, loc, total, n);
    std::optional<int64_t> l = getConstantIntValue(lb),
                           u = getConstantIntValue(ub),
                           st = getConstantIntValue(step);
    if (staticTotal && l && u && st && *st > 0)
      *staticTotal *= std::max<int64_t>(0, llvm::divideCeil(*u - *l, *st));
    else
      staticTotal.reset();
  }
  // A small static iteration space is one block of exactly that size.
  int64_t threads = blockSize;
  if (staticTotal)
    threads = std::max<int64_t>(1, std::min(threads, *staticTotal));
  Value block = arith::ConstantIndexOp::create(b, loc, threads);
  // An empty iteration space still launches one block, whose threads all
  // fail the guard: a zero grid is a launch error, and a conditional launch
  // would split the entry point's chain of asynchronous launches.
  Value grid = arith::MaxUIOp::create(
      b, loc, arith::CeilDivUIOp::create(b, loc, total, block),
      arith::ConstantIndexOp::create(b, loc, 1));
  gpu::LaunchOp launch = createLaunch(b, loc, grid, block);

  b.setInsertionPointToStart(&launch.getBody().front());
  Value bid = launch.getBlockIds().x, tid = launch.getThreadIds().x;
  Value g = arith::AddIOp::create(
      b, loc, arith::MulIOp::create(b, loc, bid, block), tid);
  Value inRange =
      arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult, g, total);
  auto guard = scf::IfOp::create(b, loc, inRange, /*withElseRegion=*/false);
  b.setInsertionPointToStart(guard.thenBlock());
  IRMapping map;
  Value rest = g;
  SmallVector<Value> ivs(counts.size());
  for (int64_t d = counts.size() - 1; d >= 0; --d) {
    Value idx =
        d == 0 ? rest
               : arith::RemUIOp::create(b, loc, rest, counts[d]).getResult();
    if (d > 0)
      rest = arith::DivUIOp::create(b, loc, rest, counts[d]);
    ivs[d] = arith::AddIOp::create(
        b, loc, par.getLowerBound()[d],
        arith::MulIOp::create(b, loc, idx, par.getStep()[d]));
  }
  for (auto [iv, v] : llvm::zip(par.getInductionVars(), ivs))
    map.map(iv, v);
  for (Operation &op : par.getBody()->without_terminator())
    b.clone(op, map);
  par.erase();
  return success();
}

/// Wraps a host op that touches memory in a one-thread kernel.
void wrapInSingleThread(Operation *op) {
  OpBuilder b(op);
  Location loc = op->getLoc();
  Value one = arith::ConstantIndexOp::create(b, loc, 1);
  gpu::LaunchOp launch = createLaunch(b, loc, one, one);
  op->moveBefore(&launch.getBody().front().back());
}

bool accessesDeviceMemory(Operation *op) {
  bool found = false;
  op->walk([&](Operation *inner) {
    if (auto load = dyn_cast<memref::LoadOp>(inner))
      found |= !isHostBookkeeping(load.getMemRefType());
    else if (auto store = dyn_cast<memref::StoreOp>(inner))
      found |= !isHostBookkeeping(store.getMemRefType());
  });
  return found;
}

struct RWKVMapParallelLoopsToGPUPass final
    : impl::RWKVMapParallelLoopsToGPUPassBase<RWKVMapParallelLoopsToGPUPass> {
  using Base::Base;
  void runOnOperation() override {
    // The bookkeeping helper is host code by construction.
    if (isDeallocHelper(getOperation()))
      return;
    if (blockSize <= 0 || blockSize > 1024) {
      getOperation()->emitError("block-size must be in [1, 1024], got ")
          << static_cast<int64_t>(blockSize);
      return signalPassFailure();
    }
    SmallVector<scf::ParallelOp> outer;
    getOperation()->walk([&](scf::ParallelOp par) {
      if (!par->getParentOfType<scf::ParallelOp>() && !insideKernel(par))
        outer.push_back(par);
    });
    for (scf::ParallelOp par : outer)
      if (failed(mapParallel(par, blockSize)))
        return signalPassFailure();
    // What is left on the host and still reads or writes a buffer: the
    // outermost such loop (or the access itself) runs on one thread.
    SmallVector<Operation *> serial;
    getOperation()->walk<WalkOrder::PreOrder>([&](Operation *op) {
      if (isa<gpu::LaunchOp>(op))
        return WalkResult::skip();
      if (isa<scf::ForOp, memref::LoadOp, memref::StoreOp>(op) &&
          accessesDeviceMemory(op)) {
        bool hasLaunch = false;
        op->walk([&](gpu::LaunchOp) { hasLaunch = true; });
        if (!hasLaunch) {
          serial.push_back(op);
          return WalkResult::skip();
        }
      }
      return WalkResult::advance();
    });
    for (Operation *op : serial) {
      if (op->getNumResults() != 0) {
        op->emitError("host code reads device memory into a value the "
                      "host uses");
        return signalPassFailure();
      }
      wrapInSingleThread(op);
    }
    // Model data never has the bookkeeping element types; if it did, a
    // kernel would read host memory.
    WalkResult bad = getOperation()->walk([&](gpu::LaunchOp launch) {
      WalkResult inner = launch.getBody().walk([&](Operation *op) {
        for (Value v : op->getOperands())
          if (auto t = dyn_cast<MemRefType>(v.getType());
              t && isHostBookkeeping(t)) {
            op->emitError("a kernel accesses a memref of i1 or index, which "
                          "this pipeline keeps on the host");
            return WalkResult::interrupt();
          }
        return WalkResult::advance();
      });
      return inner.wasInterrupted() ? WalkResult::interrupt()
                                    : WalkResult::advance();
    });
    if (bad.wasInterrupted())
      return signalPassFailure();
  }
};

} // namespace
} // namespace mlir::rwkv
