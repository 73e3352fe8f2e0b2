//===- ParallelizeLinalg.cpp - the rest of the linalg ops on all threads --===//
//
// rwkv-tile-and-fuse threads the projections. Everything else (the
// element-wise chains that could not be fused into a projection, norm
// statistics, weight transposes of the gradient contractions, column sums of
// the parameter gradients, softmax tiles, accumulator fills) would run on
// one thread while the others wait: over a training step that is a third of
// the wall time. This pass tiles each such op along its parallel dimensions
// into an scf.forall, with tiles of about `min-work` iterations, fusing the
// fill of its accumulator into the tile. Small ops (decode, per-token state
// work) are left alone, and so is everything already inside an scf.forall.
//
//===----------------------------------------------------------------------===//

#include "codegen/Passes.h"

#include "mlir/Dialect/SCF/Transforms/TileUsingInterface.h"
#include "mlir/Interfaces/TilingInterface.h"

#define DEBUG_TYPE "rwkv-parallelize-linalg"

namespace mlir::rwkv {
#define GEN_PASS_DEF_RWKVPARALLELIZELINALGPASS
#include "codegen/Passes.h.inc"

namespace {

/// Size assumed for a dynamic loop (a prompt or batch of unknown length).
constexpr int64_t kDynamicGuess = 1024;
/// Smallest tile of the innermost loop (one or more cache lines of f32).
constexpr int64_t kMinInnerTile = 16;

/// Tile sizes giving tiles of about `work` iterations, or none when the op
/// is too small to be worth a parallel region. Parallel loops are tiled
/// from the outermost; reduction loops stay whole, the innermost parallel
/// loops are kept whole as long as the tile stays under `work`.
std::optional<SmallVector<int64_t>> chooseTiles(linalg::LinalgOp op,
                                                int64_t work) {
  SmallVector<int64_t> ranges = op.getStaticLoopRanges();
  SmallVector<int64_t> staticRanges = ranges;
  SmallVector<utils::IteratorType> iters = op.getIteratorTypesArray();
  unsigned n = ranges.size();
  if (n == 0)
    return std::nullopt;
  int64_t total = 1, inner = 1;
  for (unsigned d = 0; d < n; ++d) {
    if (ShapedType::isDynamic(ranges[d]))
      ranges[d] = kDynamicGuess;
    total *= ranges[d];
    if (iters[d] == utils::IteratorType::reduction)
      inner *= ranges[d];
  }
  if (total < 2 * work)
    return std::nullopt;
  SmallVector<int64_t> tiles(n, 0);
  bool tiled = false, outerWhole = false;
  for (int d = n - 1; d >= 0; --d) {
    if (iters[d] != utils::IteratorType::parallel)
      continue;
    if (tiled) {
      // Static loops outside a dynamic tiled one stay whole (below).
      if (!outerWhole || ShapedType::isDynamic(staticRanges[d]))
        tiles[d] = 1;
      continue;
    }
    if (inner * ranges[d] <= work) {
      inner *= ranges[d];
      continue;
    }
    // Tiling a dynamic loop (the tokens) with a static one outside it (the
    // sequences of a --batch N library): the static loop stays whole in
    // every tile, so that the tile count follows the tokens alone and a
    // one-token step of a batch is one tile, which
    // rwkv-guard-parallel-regions runs without forking; split by sequence
    // instead, each of the N tiles would be one token's row and the step
    // would fork for every element-wise op of the layer.
    int64_t outer = 1;
    if (ShapedType::isDynamic(staticRanges[d]))
      for (int e = 0; e < d; ++e)
        if (iters[e] == utils::IteratorType::parallel &&
            !ShapedType::isDynamic(staticRanges[e]))
          outer *= staticRanges[e];
    int64_t size = std::max<int64_t>(1, work / (inner * outer));
    if (d == static_cast<int>(n) - 1)
      size = std::max(size, kMinInnerTile);
    if (size >= ranges[d])
      continue;
    tiles[d] = size;
    tiled = true;
    outerWhole = outer > 1;
  }
  if (!tiled)
    return std::nullopt;
  // A dimension left whole before the tiled one is tiled by 1 (unless it
  // stays whole, above).
  return tiles;
}

struct RWKVParallelizeLinalgPass final
    : impl::RWKVParallelizeLinalgPassBase<RWKVParallelizeLinalgPass> {
  using Base::Base;

  void runOnOperation() override {
    SmallVector<linalg::LinalgOp> candidates;
    getOperation()->walk([&](linalg::LinalgOp op) {
      if (!op.hasPureTensorSemantics() || op->getParentOfType<scf::ForallOp>())
        return;
      candidates.push_back(op);
    });

    IRRewriter rewriter(&getContext());
    // Consumers first, so that a fill fused into its reduction's tiles is
    // dead (and skipped) by the time it is reached.
    for (linalg::LinalgOp op : llvm::reverse(candidates)) {
      if (op->use_empty())
        continue;
      std::optional<SmallVector<int64_t>> tiles = chooseTiles(op, minWork);
      if (!tiles)
        continue;
      scf::SCFTilingOptions tiling;
      tiling.setTileSizes(getAsIndexOpFoldResult(&getContext(), *tiles))
          .setLoopType(scf::SCFTilingOptions::LoopType::ForallOp);
      scf::SCFTileAndFuseOptions options;
      options.setTilingOptions(tiling);
      // Only the accumulator fill is pulled in: any other producer would be
      // recomputed per tile or would need its own halo.
      options.setFusionControlFn(
          [](tensor::ExtractSliceOp, OpResult producer, bool)
              -> std::optional<scf::SCFTileAndFuseOptions::ControlFnResult> {
            if (isa<linalg::FillOp>(producer.getOwner()))
              return scf::SCFTileAndFuseOptions::ControlFnResult{};
            return std::nullopt;
          });
      rewriter.setInsertionPoint(op);
      FailureOr<scf::SCFTileAndFuseResult> result =
          scf::tileConsumerAndFuseProducersUsingSCF(
              rewriter, cast<TilingInterface>(op.getOperation()), options);
      if (failed(result)) {
        op->emitError("failed to tile into parallel tiles");
        return signalPassFailure();
      }
      for (OpResult res : op->getResults())
        if (Value repl = result->replacements.lookup(res))
          rewriter.replaceAllUsesWith(res, repl);
      rewriter.eraseOp(op);
    }
  }
};

} // namespace
} // namespace mlir::rwkv
