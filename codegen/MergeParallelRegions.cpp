//===- MergeParallelRegions.cpp - one thread fork for a layer's products --===//
//
// Every projection of a decode step is its own `omp.parallel`: a layer of
// the 0.1B model forks and joins the thread team 14 times, and each
// 768x768 product is a region of about 15 us whose fork, ramp-up and join
// are a large share of it. The r/k/v products (and other independent
// ones) only sit in separate regions because the serial code that prepares
// each (the per-token quantization of its input, allocations) lies between
// them. This pass moves that code above the previous region when it does
// not touch what the region touches, and then runs the two regions'
// work-shared loops in one: without a barrier (`nowait`) when the second
// loop does not touch what the first writes, behind the loop's implicit
// barrier otherwise. A barrier costs a fraction of a fork and join.
//
//===----------------------------------------------------------------------===//

#include "codegen/Passes.h"
#include "codegen/SharedLoops.h"

#include "mlir/Analysis/AliasAnalysis/LocalAliasAnalysis.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/OpenMP/OpenMPDialect.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#define DEBUG_TYPE "rwkv-merge-parallel-regions"

namespace mlir::rwkv {
#define GEN_PASS_DEF_RWKVMERGEPARALLELREGIONSPASS
#include "codegen/Passes.h.inc"

namespace {

/// Whether `parallel` is always forked and holds nothing but work-shared
/// loops that rwkv-inline-static-schedule can share out: the regions this
/// pass can combine.
bool isMergeable(omp::ParallelOp parallel) {
  return !parallel.getIfExpr() && !parallel.getNumThreads() &&
         !parallel.getProcBindKind() && parallel.getAllocateVars().empty() &&
         !plainSharedLoops(parallel).empty();
}

/// The memory an op and everything nested in it reads and writes, by the
/// memrefs it names; `unknown` when some effect names none.
struct Effects {
  llvm::SmallSetVector<Value, 8> reads, writes;
  bool unknown = false;

  void add(const Effects &other) {
    reads.insert_range(other.reads);
    writes.insert_range(other.writes);
    unknown |= other.unknown;
  }
  bool empty() const { return !unknown && reads.empty() && writes.empty(); }
};

Effects collectEffects(Operation *root) {
  Effects fx;
  root->walk([&](Operation *op) {
    if (fx.unknown)
      return WalkResult::interrupt();
    // A hint: it changes no memory.
    if (isa<memref::PrefetchOp>(op))
      return WalkResult::advance();
    auto iface = dyn_cast<MemoryEffectOpInterface>(op);
    if (!iface) {
      if (!op->hasTrait<OpTrait::HasRecursiveMemoryEffects>() &&
          !op->hasTrait<OpTrait::IsTerminator>())
        fx.unknown = true;
      return WalkResult::advance();
    }
    SmallVector<MemoryEffects::EffectInstance> effects;
    iface.getEffects(effects);
    for (const MemoryEffects::EffectInstance &e : effects) {
      // A fresh buffer is ordered by the SSA uses of its value.
      if (isa<MemoryEffects::Allocate>(e.getEffect()))
        continue;
      Value v = e.getValue();
      if (!v) {
        fx.unknown = true;
        break;
      }
      if (isa<MemoryEffects::Read>(e.getEffect()))
        fx.reads.insert(v);
      else
        fx.writes.insert(v);
    }
    return WalkResult::advance();
  });
  return fx;
}

/// Whether running `a` and `b` in either order, or at once, could differ.
bool conflict(const Effects &a, const Effects &b, LocalAliasAnalysis &alias) {
  if (a.empty() || b.empty())
    return false;
  if (a.unknown || b.unknown)
    return true;
  auto overlap = [&](const llvm::SmallSetVector<Value, 8> &xs,
                     const llvm::SmallSetVector<Value, 8> &ys) {
    for (Value x : xs)
      for (Value y : ys)
        if (!alias.alias(x, y).isNo())
          return true;
    return false;
  };
  return overlap(a.writes, b.writes) || overlap(a.writes, b.reads) ||
         overlap(a.reads, b.writes);
}

struct Merger {
  bool barriers = true;
  LocalAliasAnalysis alias;
  DenseMap<Operation *, Effects> cache;

  const Effects &effects(Operation *op) {
    auto it = cache.find(op);
    if (it == cache.end())
      it = cache.try_emplace(op, collectEffects(op)).first;
    return it->second;
  }

  /// Moves what `second` needs of the code between the regions above
  /// `first` and `second`'s loops into `first`; false (and no change) when
  /// that code cannot move.
  bool merge(omp::ParallelOp first, omp::ParallelOp second) {
    Block *block = first->getBlock();
    // What `second` depends on between them: values it uses, and ops whose
    // memory accesses conflict with it or with something it depends on.
    SmallVector<Operation *> needed;
    SmallPtrSet<Operation *, 16> neededSet;
    neededSet.insert(second);
    Effects neededFx = effects(second);
    for (Operation *op = second->getPrevNode(); op != first;
         op = op->getPrevNode()) {
      bool used = llvm::any_of(op->getUsers(), [&](Operation *user) {
        Operation *anc = block->findAncestorOpInBlock(*user);
        return anc && neededSet.contains(anc);
      });
      if (!used && !conflict(effects(op), neededFx, alias))
        continue;
      if (op->hasTrait<OpTrait::IsTerminator>() ||
          conflict(effects(op), effects(first), alias))
        return false;
      needed.push_back(op);
      neededSet.insert(op);
      neededFx.add(effects(op));
    }
    bool independent = !conflict(effects(first), effects(second), alias);
    if (!independent && !barriers)
      return false;
    for (Operation *op : llvm::reverse(needed))
      op->moveBefore(first);

    Block &into = first.getRegion().front();
    Block &from = second.getRegion().front();
    // With nothing shared, the threads go on to the next loop without
    // waiting for each other.
    if (independent)
      cast<omp::WsloopOp>(*std::prev(into.end(), 2)).setNowait(true);
    into.getOperations().splice(std::prev(into.end()), from.getOperations(),
                                from.begin(), std::prev(from.end()));
    Effects merged = effects(first);
    merged.add(effects(second));
    cache[first] = std::move(merged);
    cache.erase(second);
    second.erase();
    return true;
  }
};

struct RWKVMergeParallelRegionsPass final
    : impl::RWKVMergeParallelRegionsPassBase<RWKVMergeParallelRegionsPass> {
  using Base::Base;
  void runOnOperation() override {
    llvm::SetVector<Block *> blocks;
    getOperation()->walk([&](omp::ParallelOp parallel) {
      if (isMergeable(parallel))
        blocks.insert(parallel->getBlock());
    });
    Merger merger;
    merger.barriers = barriers;
    for (Block *block : blocks) {
      SmallVector<omp::ParallelOp> regions;
      for (auto parallel : block->getOps<omp::ParallelOp>())
        if (isMergeable(parallel))
          regions.push_back(parallel);
      omp::ParallelOp current;
      for (omp::ParallelOp parallel : regions) {
        if (!current || !merger.merge(current, parallel))
          current = parallel;
      }
    }
  }
};

} // namespace
} // namespace mlir::rwkv
