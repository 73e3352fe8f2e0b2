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
// buffer happens on the device, where the buffers live; a scalar read on the
// host goes there with the arithmetic and the store it feeds (a training
// step's loss). A host loop around one parallel loop over the columns of its
// buffers (the embedding gradient's scatter-add over tokens) is interchanged
// first, so that each column's thread walks the host loop. The exception is
// the deallocation lowering's bookkeeping (ownership flags and base
// addresses, memrefs of i1 / index, and its dealloc_helper), which stays
// host code.
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

/// Wraps the host ops [first, last] of one block in a one-thread kernel.
void wrapInSingleThread(Operation *first, Operation *last) {
  OpBuilder b(first);
  Location loc = first->getLoc();
  Value one = arith::ConstantIndexOp::create(b, loc, 1);
  gpu::LaunchOp launch = createLaunch(b, loc, one, one);
  Operation *terminator = &launch.getBody().front().back();
  for (Operation *op = first, *next; op; op = next) {
    next = op == last ? nullptr : op->getNextNode();
    op->moveBefore(terminator);
  }
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

/// For a host op whose results read device memory, the last op of the
/// shortest range of its block that starts at it and holds every transitive
/// user of a value defined in the range, when the range is only pure
/// arithmetic and device-memory loads and stores (so it can run on one
/// device thread as it is). Fails when a value escapes the range or the
/// range holds anything else.
FailureOr<Operation *> scalarChainEnd(Operation *first) {
  auto allowed = [](Operation *op) {
    if (isa<memref::LoadOp, memref::StoreOp>(op))
      return accessesDeviceMemory(op);
    if (isa<scf::ForOp>(op)) {
      bool hasLaunch = false;
      op->walk([&](gpu::LaunchOp) { hasLaunch = true; });
      return !hasLaunch;
    }
    return isPure(op) && op->getNumRegions() == 0;
  };
  Block *block = first->getBlock();
  Operation *last = first;
  for (Operation *op = first; op; op = op->getNextNode()) {
    if (op->hasTrait<OpTrait::IsTerminator>() || !allowed(op))
      return failure();
    for (Value v : op->getResults())
      for (Operation *user : v.getUsers()) {
        Operation *u = block->findAncestorOpInBlock(*user);
        if (!u || u->isBeforeInBlock(first))
          return failure();
        if (last->isBeforeInBlock(u))
          last = u;
      }
    if (op == last)
      return last;
  }
  return failure();
}

/// The buffer a view chain (subview, collapse_shape, ...) starts from.
Value viewRoot(Value m) {
  while (auto view = m.getDefiningOp<ViewLikeOpInterface>())
    m = view.getViewSource();
  return m;
}

/// Whether `m` addresses its root's elements with the root's last dimension
/// as its own, unit-stride and whole: a row-major identity-layout root of
/// last dimension `width`, reached through subviews that keep that dimension
/// entire. Element (..., j) of such a view is then root column j.
bool keepsColumns(Value m, int64_t width) {
  while (Operation *def = m.getDefiningOp()) {
    if (auto sub = dyn_cast<memref::SubViewOp>(def)) {
      if (sub.getStaticOffsets().back() != 0 ||
          sub.getStaticSizes().back() != width ||
          sub.getStaticStrides().back() != 1 ||
          sub.getDroppedDims().test(sub.getSourceType().getRank() - 1))
        return false;
      m = sub.getSource();
    } else if (auto c = dyn_cast<memref::CollapseShapeOp>(def)) {
      // Rows merged, the last dimension its own group.
      if (c.getReassociationIndices().back().size() != 1)
        return false;
      m = c.getSrc();
    } else if (auto e = dyn_cast<memref::ExpandShapeOp>(def)) {
      if (e.getReassociationIndices().back().size() != 1)
        return false;
      m = e.getSrc();
    } else {
      break;
    }
  }
  auto t = dyn_cast<MemRefType>(m.getType());
  return t && t.getLayout().isIdentity() && t.getRank() > 0 &&
         t.getShape().back() == width &&
         (isa<BlockArgument>(m) || m.getDefiningOp<memref::AllocOp>());
}

/// A host scf.for whose body is scalar set-up and one 1-D scf.parallel over
/// the columns of its buffers (the embedding gradient's scatter-add: token
/// by token, row emb[id] += dy[t]):
///   scf.for %i { pre; scf.parallel (%j) = (0) to (W) { body } }
///   -> scf.parallel (%j) = (0) to (W) { scf.for %i { pre; body } }
/// so the mapping gives each column one thread that walks the tokens in
/// order (deterministic, no atomics) instead of launching a kernel per
/// token from a host loop that reads device memory. Legal when every access
/// of the body is to column %j of a row-major buffer of width W (so two
/// columns never touch the same element) and the set-up reads no buffer the
/// body writes.
LogicalResult interchangeColumnLoop(scf::ForOp loop) {
  Block *body = loop.getBody();
  if (loop.getNumResults() != 0 || body->getOperations().size() < 2)
    return failure();
  auto par = dyn_cast<scf::ParallelOp>(body->getTerminator()->getPrevNode());
  if (!par || par.getNumLoops() != 1 || par.getNumResults() != 0)
    return failure();
  std::optional<int64_t> lb = getConstantIntValue(par.getLowerBound()[0]),
                         ub = getConstantIntValue(par.getUpperBound()[0]),
                         step = getConstantIntValue(par.getStep()[0]);
  if (!lb || !ub || !step || *lb != 0 || *step != 1)
    return failure();
  Value j = par.getInductionVars()[0];
  llvm::SmallPtrSet<Value, 4> written;
  WalkResult r = par.getBody()->walk([&](Operation *op) {
    Value m;
    ValueRange idx;
    if (auto l = dyn_cast<memref::LoadOp>(op)) {
      m = l.getMemRef();
      idx = l.getIndices();
    } else if (auto st = dyn_cast<memref::StoreOp>(op)) {
      m = st.getMemRef();
      idx = st.getIndices();
      written.insert(viewRoot(m));
    } else {
      return isPure(op) || isa<scf::YieldOp, scf::ReduceOp>(op)
                 ? WalkResult::advance()
                 : WalkResult::interrupt();
    }
    if (idx.empty() || idx.back() != j || !keepsColumns(m, *ub))
      return WalkResult::interrupt();
    return WalkResult::advance();
  });
  if (r.wasInterrupted())
    return failure();
  for (Operation &op : body->without_terminator()) {
    if (&op == par.getOperation())
      break;
    if (auto l = dyn_cast<memref::LoadOp>(op)) {
      if (written.contains(viewRoot(l.getMemRef())))
        return failure();
    } else if (!isPure(&op) || op.getNumRegions() != 0) {
      return failure();
    }
  }
  OpBuilder b(loop);
  auto outer = scf::ParallelOp::create(b, par.getLoc(), par.getLowerBound(),
                                       par.getUpperBound(), par.getStep());
  b.setInsertionPointToStart(outer.getBody());
  auto inner = scf::ForOp::create(b, loop.getLoc(), loop.getLowerBound(),
                                  loop.getUpperBound(), loop.getStep());
  b.setInsertionPoint(inner.getBody()->getTerminator());
  IRMapping map;
  map.map(loop.getInductionVar(), inner.getInductionVar());
  map.map(j, outer.getInductionVars()[0]);
  for (Operation &op : body->without_terminator())
    if (&op != par.getOperation())
      b.clone(op, map);
  for (Operation &op : par.getBody()->without_terminator())
    b.clone(op, map);
  loop.erase();
  return success();
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
    SmallVector<scf::ForOp> hostLoops;
    getOperation()->walk([&](scf::ForOp loop) {
      if (!loop->getParentOfType<scf::ParallelOp>() && !insideKernel(loop))
        hostLoops.push_back(loop);
    });
    for (scf::ForOp loop : hostLoops)
      (void)interchangeColumnLoop(loop);
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
    llvm::SmallPtrSet<Operation *, 16> wrapped;
    for (Operation *op : serial) {
      if (wrapped.contains(op))
        continue;
      Operation *last = op;
      if (op->getNumResults() != 0) {
        // A scalar read by the host (a loss divided by its token count):
        // the chain from the read to the store of what it computes runs
        // on the thread too.
        FailureOr<Operation *> end = scalarChainEnd(op);
        if (failed(end)) {
          op->emitError("host code reads device memory into a value the "
                        "host uses");
          return signalPassFailure();
        }
        last = *end;
      }
      for (Operation *o = op;; o = o->getNextNode()) {
        wrapped.insert(o);
        if (o == last)
          break;
      }
      wrapInSingleThread(op, last);
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
