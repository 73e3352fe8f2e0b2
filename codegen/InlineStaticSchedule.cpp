//===- InlineStaticSchedule.cpp - static OpenMP loops without the runtime -===//
//
// Every tile loop of a generated kernel runs as `omp.parallel { omp.wsloop
// }`, which libomp executes through `__kmpc_for_static_init`: the Debian
// builds of libomp are compiled with KMP_DEBUG and format two debug strings
// (vsnprintf, malloc, free) on each call whether or not tracing is on. With
// its implicit barrier (the region's join repeats it) the loop entry costs
// as much as the fork itself, and a decoded token runs about 550 of them
// (bench/omp: 1.5 us inside a forked region, 0.26 us of a serialized one's
// 0.33). The default static schedule is simple enough to compute inline:
// thread t of n takes the t-th block of ceil(total / n) iterations.
//
//===----------------------------------------------------------------------===//

#include "codegen/Passes.h"
#include "codegen/SharedLoops.h"

#include "mlir/Dialect/OpenMP/OpenMPDialect.h"

#define DEBUG_TYPE "rwkv-inline-static-schedule"

namespace mlir::rwkv {
#define GEN_PASS_DEF_RWKVINLINESTATICSCHEDULEPASS
#include "codegen/Passes.h.inc"

SmallVector<omp::LoopNestOp> plainSharedLoops(omp::ParallelOp parallel) {
  Region &region = parallel.getRegion();
  if (!region.hasOneBlock() || !parallel.getReductionVars().empty() ||
      !parallel.getPrivateVars().empty())
    return {};
  Block &block = region.front();
  if (!isa<omp::TerminatorOp>(block.back()) || &block.front() == &block.back())
    return {};
  SmallVector<omp::LoopNestOp> nests;
  for (Operation &op :
       llvm::make_range(block.begin(), std::prev(block.end()))) {
    auto wsloop = dyn_cast<omp::WsloopOp>(op);
    if (!wsloop || wsloop.getScheduleKind() || wsloop.getOrdered() ||
        !wsloop.getReductionVars().empty() ||
        !wsloop.getPrivateVars().empty() || !wsloop.getLinearVars().empty())
      return {};
    auto nest = dyn_cast<omp::LoopNestOp>(wsloop.getWrappedLoop());
    if (!nest || nest.getLoopInclusive() || !nest.getRegion().hasOneBlock() ||
        !isa<omp::YieldOp>(nest.getRegion().front().back()) ||
        !nest.getRegion().front().back().getOperands().empty())
      return {};
    nests.push_back(nest);
  }
  return nests;
}

namespace {

/// `@name() -> i32` of libomp, declared once in `module`.
LLVM::LLVMFuncOp ompQuery(ModuleOp module, StringRef name) {
  if (auto fn = module.lookupSymbol<LLVM::LLVMFuncOp>(name))
    return fn;
  OpBuilder b = OpBuilder::atBlockEnd(module.getBody());
  MLIRContext *ctx = module.getContext();
  return LLVM::LLVMFuncOp::create(
      b, module.getLoc(), name,
      LLVM::LLVMFunctionType::get(IntegerType::get(ctx, 32), {}));
}

void inlineSchedule(omp::LoopNestOp nest, LLVM::LLVMFuncOp threadNum,
                    LLVM::LLVMFuncOp numThreads) {
  auto wsloop = cast<omp::WsloopOp>(nest->getParentOp());
  OpBuilder b(wsloop);
  // The loop's implicit barrier: a later loop of the region needs what this
  // one wrote. After the last loop the region's join waits anyway.
  if (!wsloop.getNowait() && !isa<omp::TerminatorOp>(wsloop->getNextNode())) {
    b.setInsertionPointAfter(wsloop);
    omp::BarrierOp::create(b, wsloop.getLoc());
    b.setInsertionPoint(wsloop);
  }
  Location loc = nest.getLoc();
  auto index = [&](LLVM::LLVMFuncOp fn) -> Value {
    Value v = LLVM::CallOp::create(b, loc, fn, ValueRange{}).getResult();
    return arith::IndexCastOp::create(b, loc, b.getIndexType(), v);
  };
  Value tid = index(threadNum), nthreads = index(numThreads);
  Value zero = arith::ConstantIndexOp::create(b, loc, 0);
  Value one = arith::ConstantIndexOp::create(b, loc, 1);

  // Trip counts (an empty or reversed range runs nothing) and their product.
  SmallVector<Value> counts;
  Value total;
  for (auto [lb, ub, step] :
       llvm::zip(nest.getLoopLowerBounds(), nest.getLoopUpperBounds(),
                 nest.getLoopSteps())) {
    Value span = arith::SubIOp::create(b, loc, ub, lb);
    Value n = arith::CeilDivSIOp::create(b, loc, span, step);
    n = arith::MaxSIOp::create(b, loc, n, zero);
    counts.push_back(n);
    total = total ? arith::MulIOp::create(b, loc, total, n).getResult() : n;
  }
  Value chunk = arith::CeilDivSIOp::create(b, loc, total, nthreads);
  Value begin = arith::MulIOp::create(b, loc, tid, chunk);
  begin = arith::MinSIOp::create(b, loc, begin, total);
  Value end = arith::AddIOp::create(b, loc, begin, chunk);
  end = arith::MinSIOp::create(b, loc, end, total);

  auto loop = scf::ForOp::create(b, loc, begin, end, one);
  b.setInsertionPointToStart(loop.getBody());
  // Innermost dimension fastest, as in the collapsed loop of the runtime.
  Block &body = nest.getRegion().front();
  Value rest = loop.getInductionVar();
  SmallVector<Value> ivs(counts.size());
  for (int64_t d = counts.size() - 1; d >= 0; --d) {
    Value pos = rest;
    if (d > 0) {
      pos = arith::RemUIOp::create(b, loc, rest, counts[d]);
      rest = arith::DivUIOp::create(b, loc, rest, counts[d]);
    }
    Value scaled = arith::MulIOp::create(b, loc, pos, nest.getLoopSteps()[d]);
    ivs[d] =
        arith::AddIOp::create(b, loc, nest.getLoopLowerBounds()[d], scaled);
  }
  for (auto [arg, iv] : llvm::zip(body.getArguments(), ivs))
    arg.replaceAllUsesWith(iv);
  Block *forBody = loop.getBody();
  forBody->getOperations().splice(std::prev(forBody->end()),
                                  body.getOperations(), body.begin(),
                                  std::prev(body.end()));
  wsloop.erase();
}

struct RWKVInlineStaticSchedulePass final
    : impl::RWKVInlineStaticSchedulePassBase<RWKVInlineStaticSchedulePass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    SmallVector<omp::LoopNestOp> nests;
    module.walk([&](omp::ParallelOp parallel) {
      nests.append(plainSharedLoops(parallel));
    });
    if (nests.empty())
      return;
    LLVM::LLVMFuncOp threadNum = ompQuery(module, "omp_get_thread_num");
    LLVM::LLVMFuncOp numThreads = ompQuery(module, "omp_get_num_threads");
    for (omp::LoopNestOp nest : nests)
      inlineSchedule(nest, threadNum, numThreads);
  }
};

} // namespace
} // namespace mlir::rwkv
