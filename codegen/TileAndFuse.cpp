//===- TileAndFuse.cpp - parallel tiles of projections
//---------------------===//
//
// Projections dominate RWKV inference (every weight byte is read once per
// token). Tiling their parallel dimensions into an scf.forall gives the unit
// of multi-threading, and fusing the all-parallel producers into each tile
// keeps the lerps, activations and the accumulator fill next to the dot
// products that consume them instead of in separate buffers.
//
//===----------------------------------------------------------------------===//

#include "codegen/Passes.h"

#include "mlir/Dialect/Linalg/Transforms/TilingInterfaceImpl.h"
#include "mlir/Dialect/SCF/Transforms/TileUsingInterface.h"
#include "mlir/Interfaces/TilingInterface.h"

#define DEBUG_TYPE "rwkv-tile-and-fuse"

namespace mlir::rwkv {
#define GEN_PASS_DEF_RWKVTILEANDFUSEPASS
#include "codegen/Passes.h.inc"

namespace {

/// Output tiles up to which a fused producer may be recomputed per tile.
constexpr int64_t kMaxProducerRecompute = 8;

bool isAllParallel(Operation *op) {
  auto linalgOp = dyn_cast_or_null<linalg::LinalgOp>(op);
  return linalgOp && linalgOp.getNumLoops() == linalgOp.getNumParallelLoops();
}

/// Whether some input is read in another dimension order than the loops
/// (e.g. the transposed operands of the gradient projections). Fused into a
/// tile, such a producer would redo a strided copy in every tile that
/// shares the slice; materialised once, it is an O(size) copy.
bool readsTransposed(Operation *op) {
  auto linalgOp = cast<linalg::LinalgOp>(op);
  for (OpOperand *in : linalgOp.getDpsInputOperands()) {
    int64_t last = -1;
    for (AffineExpr e : linalgOp.getMatchingIndexingMap(in).getResults()) {
      auto d = dyn_cast<AffineDimExpr>(e);
      if (!d)
        continue;
      if (static_cast<int64_t>(d.getPosition()) < last)
        return true;
      last = d.getPosition();
    }
  }
  return false;
}

struct RWKVTileAndFusePass final
    : impl::RWKVTileAndFusePassBase<RWKVTileAndFusePass> {
  using Base::Base;

  void runOnOperation() override {
    SmallVector<linalg::GenericOp> projections;
    getOperation()->walk([&](linalg::GenericOp op) {
      if (op->hasAttr(kProjectionAttr) && op.getNumLoops() == 4)
        projections.push_back(op);
    });

    IRRewriter rewriter(&getContext());
    for (linalg::GenericOp op : projections) {
      // (b, t, o, i): one batch row, `tileTokens` tokens and `tileOutputs`
      // output channels per tile; the reduction stays whole so the fill of
      // the accumulator can be fused.
      // Inference (a dynamic token count, or the head's last position)
      // with a static batch of several rows keeps the batch whole in each
      // tile (0: not tiled), so that a tile's weight rows serve every
      // sequence of a batched decode step instead of being re-read per row.
      // Training (a static T > 1) tiles rows.
      SmallVector<int64_t> ranges = op.getStaticLoopRanges();
      bool wholeBatch = !ShapedType::isDynamic(ranges[0]) && ranges[0] > 1 &&
                        (ShapedType::isDynamic(ranges[1]) || ranges[1] == 1);
      int64_t batchTile = wholeBatch ? 0 : 1;
      SmallVector<OpFoldResult> sizes = getAsIndexOpFoldResult(
          &getContext(), {batchTile, tileTokens, tileOutputs, 0});
      scf::SCFTilingOptions tiling;
      tiling.setTileSizes(sizes).setLoopType(
          scf::SCFTilingOptions::LoopType::ForallOp);
      scf::SCFTileAndFuseOptions options;
      options.setTilingOptions(tiling);
      // A producer fused into the activation operand is recomputed in
      // every output tile. Wide projections (0.1B: 12 tiles of 768 outputs,
      // 48 of the FFN key's 3072) would redo their norm and lerps that many
      // times, which costs more than the projection's own tile over the
      // prompt or a training batch: their producers stay outside.
      int64_t nOut =
          cast<RankedTensorType>(op.getResultTypes()[0]).getDimSize(2);
      bool recompute =
          ShapedType::isDynamic(nOut) ||
          llvm::divideCeil(nOut, tileOutputs) <= kMaxProducerRecompute;
      options.setFusionControlFn(
          [recompute](tensor::ExtractSliceOp, OpResult producer, bool)
              -> std::optional<scf::SCFTileAndFuseOptions::ControlFnResult> {
            Operation *owner = producer.getOwner();
            // The accumulator fill is always fused (no recompute).
            if (isa<linalg::FillOp>(owner))
              return scf::SCFTileAndFuseOptions::ControlFnResult{};
            // Reductions (norms, other projections) would be recomputed per
            // tile: only cheap all-parallel producers are fused.
            if (!recompute || !isAllParallel(owner) || readsTransposed(owner))
              return std::nullopt;
            return scf::SCFTileAndFuseOptions::ControlFnResult{};
          });
      rewriter.setInsertionPoint(op);
      FailureOr<scf::SCFTileAndFuseResult> result =
          scf::tileConsumerAndFuseProducersUsingSCF(
              rewriter, cast<TilingInterface>(op.getOperation()), options);
      if (failed(result)) {
        op.emitError("failed to tile projection");
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
