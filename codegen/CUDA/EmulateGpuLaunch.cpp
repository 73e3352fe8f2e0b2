//===- EmulateGpuLaunch.cpp - run gpu.launch bodies on the host -----------===//
//
// Checks the GPU mapping without a GPU: each gpu.launch becomes an
// scf.parallel over its blocks around an scf.parallel over its threads, the
// launch's block and thread ids the induction variables, and the CPU back
// end lowers the rest. The kernel bodies, their index arithmetic and the
// host code between the launches are exactly what the CUDA back end
// compiles, so the golden tests of a library built this way check them.
// Launches that share memory between threads or synchronise them are not
// expressible as independent iterations and are refused, with two
// exceptions, for which each lane recomputes the operands of all 32 lanes
// of its warp (their backward slice, which only reads memory, with the
// lane's thread id; loop counters that are the same in every lane are
// shared):
// - `gpu.subgroup_reduce add` (rwkv-warp-reductions), combined in the
//   butterfly order of upstream's shuffle lowering (offsets 1, 2, 4, ...,
//   16, own value first), so each lane gets its GPU sum bit for bit;
// - a bf16 `nvvm.mma.sync` m16n8k16 (rwkv-mma-projections): the lane's four
//   outputs from the whole A and B fragments in the PTX ISA's layout.
//
//===----------------------------------------------------------------------===//

#include "codegen/CUDA/WarpUtils.h"
#include "codegen/Passes.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/Matchers.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#define DEBUG_TYPE "rwkv-emulate-gpu-launch"

namespace mlir::rwkv {
#define GEN_PASS_DEF_RWKVEMULATEGPULAUNCHPASS
#include "codegen/Passes.h.inc"

namespace {

/// Whether `v`, a block argument inside the thread loop, is the same in
/// every lane: the induction variable of an scf.for whose bounds are
/// constants or come from outside the thread loop.
bool isUniformInductionVar(Value v, Region &threadBody) {
  auto arg = dyn_cast<BlockArgument>(v);
  auto loop =
      arg ? dyn_cast<scf::ForOp>(arg.getOwner()->getParentOp()) : scf::ForOp();
  if (!loop || loop.getInductionVar() != v)
    return false;
  return llvm::all_of(
      ValueRange{loop.getLowerBound(), loop.getUpperBound(), loop.getStep()},
      [&](Value bound) {
        return matchPattern(bound, m_Constant()) ||
               !threadBody.isAncestor(bound.getParentRegion());
      });
}

/// What a warp-wide op at `user` needs to see the `values` of the other
/// lanes: their backward slice inside the thread loop, which must only read
/// memory and may depend on the thread id and on uniform loop counters.
FailureOr<llvm::SetVector<Operation *>>
laneSlice(Operation *user, ValueRange values, scf::ParallelOp threads) {
  Value tid = threads.getInductionVars()[0];
  llvm::SetVector<Operation *> slice;
  SmallVector<Value> work(values.begin(), values.end());
  Region &threadBody = threads.getRegion();
  while (!work.empty()) {
    Value v = work.pop_back_val();
    if (v == tid || !threadBody.isAncestor(v.getParentRegion()))
      continue;
    Operation *def = v.getDefiningOp();
    if (!def) {
      if (isUniformInductionVar(v, threadBody))
        continue;
      return user->emitError("an operand of this warp-wide op depends on a "
                             "value that differs between lanes inside the "
                             "kernel; cannot emulate");
    }
    if (!slice.insert(def))
      continue;
    if (!readsOnly(def))
      return user->emitError("an operand of this warp-wide op is computed "
                             "by an op that writes memory; cannot emulate");
    for (Value operand : def->getOperands())
      work.push_back(operand);
    def->walk([&](Operation *inner) {
      for (Value operand : inner->getOperands())
        if (!def->isAncestor(operand.getParentRegion()->getParentOp()))
          work.push_back(operand);
    });
  }
  return slice;
}

/// Recomputes `values` for the 32 lanes of the warp of the thread
/// `threads` runs: one vector<32xT> per value, lane l at position l (no
/// memory: the emulated thread loop may run in parallel).
SmallVector<Value> gatherLanes(OpBuilder &b, Location loc, ValueRange values,
                               const llvm::SetVector<Operation *> &slice,
                               scf::ParallelOp threads, Value base) {
  Value tid = threads.getInductionVars()[0];
  SmallVector<Value> inits;
  for (Value v : values)
    inits.push_back(arith::ConstantOp::create(
        b, loc, b.getZeroAttr(VectorType::get({kWarpSize}, v.getType()))));
  auto lanes = scf::ForOp::create(
      b, loc, arith::ConstantIndexOp::create(b, loc, 0),
      arith::ConstantIndexOp::create(b, loc, kWarpSize),
      arith::ConstantIndexOp::create(b, loc, 1), inits,
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
        SmallVector<Value> next;
        for (auto [v, a] : llvm::zip(values, acc))
          next.push_back(vector::InsertOp::create(
              lb, ll, map.lookupOrDefault(v), a, ArrayRef<OpFoldResult>{l}));
        scf::YieldOp::create(lb, ll, next);
      });
  return SmallVector<Value>(lanes.getResults());
}

/// Whole warps of a 1-D block: what the lane arithmetic below assumes.
bool wholeWarps(gpu::KernelDim3 block) {
  std::optional<int64_t> bx = getConstantIntValue(block.x),
                         by = getConstantIntValue(block.y),
                         bz = getConstantIntValue(block.z);
  return bx && *bx % kWarpSize == 0 && by == 1 && bz == 1;
}

/// Replaces `r` (inside the emulated thread loop `threads`, whose first
/// induction variable is the thread id) by the value its lane gets on the
/// GPU: the operands of the 32 lanes of the warp, recomputed here, summed
/// by the butterfly.
LogicalResult emulateSubgroupReduce(gpu::SubgroupReduceOp r,
                                    scf::ParallelOp threads,
                                    gpu::KernelDim3 block) {
  if (r.getOp() != gpu::AllReduceOperation::ADD || r.getClusterSize() ||
      !isa<FloatType>(r.getType()) || !wholeWarps(block))
    return r.emitError("only a float gpu.subgroup_reduce add over whole warps "
                       "of a 1-D block can be emulated");
  FailureOr<llvm::SetVector<Operation *>> slice =
      laneSlice(r, r.getValue(), threads);
  if (failed(slice))
    return failure();
  OpBuilder b(r);
  Location loc = r.getLoc();
  Value tid = threads.getInductionVars()[0];
  Value lane = arith::RemUIOp::create(
      b, loc, tid, arith::ConstantIndexOp::create(b, loc, kWarpSize));
  Value base = arith::SubIOp::create(b, loc, tid, lane);
  Value vals = gatherLanes(b, loc, r.getValue(), *slice, threads, base).front();
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

/// Replaces a bf16 `nvvm.mma.sync` m16n8k16 (row, col; f32 accumulators,
/// rwkv-mma-projections) by what its lane gets: the A and B fragments of
/// the 32 lanes recomputed here, and this lane's four outputs
/// D[g][q2..+1], D[g+8][q2..+1] summed over k in order from its C. The
/// products of two bf16 are exact in f32.
LogicalResult emulateMma(NVVM::MmaOp mma, scf::ParallelOp threads,
                         gpu::KernelDim3 block) {
  std::array<int64_t, 3> shape = {mma.getShape().getM(), mma.getShape().getN(),
                                  mma.getShape().getK()};
  if (shape != std::array<int64_t, 3>{16, 8, 16} ||
      mma.getMultiplicandAPtxType() != NVVM::MMATypes::bf16 ||
      mma.getMultiplicandBPtxType() != NVVM::MMATypes::bf16 ||
      mma.getLayoutA() != NVVM::MMALayout::row ||
      mma.getLayoutB() != NVVM::MMALayout::col ||
      mma.getOperandA().size() != 4 || mma.getOperandB().size() != 2 ||
      mma.getOperandC().size() != 4 ||
      !llvm::all_of(mma.getOperandC().getTypes(),
                    [](Type t) { return t.isF32(); }) ||
      !wholeWarps(block))
    return mma.emitError("only a bf16 nvvm.mma.sync m16n8k16 (row, col) with "
                         "f32 accumulators over whole warps of a 1-D block "
                         "can be emulated");
  SmallVector<Value> frags(mma.getOperandA());
  llvm::append_range(frags, mma.getOperandB());
  FailureOr<llvm::SetVector<Operation *>> slice =
      laneSlice(mma, frags, threads);
  if (failed(slice))
    return failure();
  OpBuilder b(mma);
  Location loc = mma.getLoc();
  auto idx = [&](int64_t v) -> Value {
    return arith::ConstantIndexOp::create(b, loc, v);
  };
  Value tid = threads.getInductionVars()[0];
  Value lane = arith::RemUIOp::create(b, loc, tid, idx(kWarpSize));
  Value base = arith::SubIOp::create(b, loc, tid, lane);
  // all[0..3] = the lanes' a0..a3, all[4..5] = their b0, b1.
  SmallVector<Value> all = gatherLanes(b, loc, frags, *slice, threads, base);
  Value g = arith::DivUIOp::create(b, loc, lane, idx(4));
  Value q2 = arith::MulIOp::create(
      b, loc, arith::RemUIOp::create(b, loc, lane, idx(4)), idx(2));
  Type i32 = b.getI32Type(), f32 = b.getF32Type();
  auto loop = scf::ForOp::create(
      b, loc, idx(0), idx(16), idx(1), mma.getOperandC(),
      [&](OpBuilder &lb, Location ll, Value k, ValueRange acc) {
        auto lidx = [&](int64_t v) -> Value {
          return arith::ConstantIndexOp::create(lb, ll, v);
        };
        // Element k of a row (column) sits in lane 4 * row + (k % 8) / 2,
        // register k / 8 (A: + 1 for rows 8-15), half k % 2.
        Value upperK = arith::CmpIOp::create(lb, ll, arith::CmpIPredicate::uge,
                                             k, lidx(8));
        Value kq = arith::DivUIOp::create(
            lb, ll, arith::RemUIOp::create(lb, ll, k, lidx(8)), lidx(2));
        Value odd = arith::CmpIOp::create(
            lb, ll, arith::CmpIPredicate::ne,
            arith::RemUIOp::create(lb, ll, k, lidx(2)), lidx(0));
        auto element = [&](Value lanesVec, Value src) -> Value {
          Value word = vector::ExtractOp::create(lb, ll, lanesVec,
                                                 ArrayRef<OpFoldResult>{src});
          // bf16 -> f32 is the 16 bits moved to the top.
          Value low = arith::ShLIOp::create(
              lb, ll, word, arith::ConstantIntOp::create(lb, ll, i32, 16));
          Value high = arith::AndIOp::create(
              lb, ll, word,
              arith::ConstantIntOp::create(lb, ll, i32, 0xFFFF0000LL));
          Value bits = arith::SelectOp::create(lb, ll, odd, high, low);
          return arith::BitcastOp::create(lb, ll, f32, bits);
        };
        auto srcLane = [&](Value row) -> Value {
          return arith::AddIOp::create(
              lb, ll, arith::MulIOp::create(lb, ll, row, lidx(4)), kq);
        };
        Value aSrc = srcLane(g);
        Value aTop = element(
            arith::SelectOp::create(lb, ll, upperK, all[2], all[0]), aSrc);
        Value aBottom = element(
            arith::SelectOp::create(lb, ll, upperK, all[3], all[1]), aSrc);
        Value bRegs = arith::SelectOp::create(lb, ll, upperK, all[5], all[4]);
        Value b0 = element(bRegs, srcLane(q2));
        Value b1 =
            element(bRegs, srcLane(arith::AddIOp::create(lb, ll, q2, lidx(1))));
        SmallVector<Value> next;
        for (auto [i, a, bv] :
             llvm::enumerate(SmallVector<Value>{aTop, aTop, aBottom, aBottom},
                             SmallVector<Value>{b0, b1, b0, b1}))
          next.push_back(arith::AddFOp::create(
              lb, ll, acc[i], arith::MulFOp::create(lb, ll, a, bv)));
        scf::YieldOp::create(lb, ll, next);
      });
  Value d = LLVM::PoisonOp::create(b, loc, mma.getType());
  for (int64_t e = 0; e < 4; ++e)
    d = LLVM::InsertValueOp::create(b, loc, d, loop.getResult(e), e);
  mma.getResult().replaceAllUsesWith(d);
  mma.erase();
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
        (op->getDialect()->getNamespace() == "nvvm" && !isa<NVVM::MmaOp>(op)))
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
  SmallVector<NVVM::MmaOp> mmas;
  threads.getBody()->walk([&](NVVM::MmaOp m) { mmas.push_back(m); });
  for (NVVM::MmaOp m : mmas)
    if (failed(emulateMma(m, threads, block)))
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
