//===- ConvertRWKVToLinalg.cpp - primitive rwkv ops to linalg -------------===//
//
// Drives the per-area lowerings (Norms.cpp, Projections.cpp, Sequence.cpp,
// WKV456.cpp, ChunkedWKV.cpp, Gradients.cpp, WKVGrad.cpp, ChunkedWKVGrad.cpp).
// Composite ops are not legal input: run rwkv-decompose first.
//
//===----------------------------------------------------------------------===//

#include "codegen/Passes.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Transforms/WalkPatternRewriteDriver.h"

#define DEBUG_TYPE "convert-rwkv-to-linalg"

namespace mlir::rwkv {
#define GEN_PASS_DEF_CONVERTRWKVTOLINALGPASS
#include "codegen/Passes.h.inc"

void populateRWKVToLinalgConversionPatterns(RewritePatternSet &patterns,
                                            bool chunkedWKV) {
  populateRWKVNormToLinalgPatterns(patterns);
  populateRWKVProjectionToLinalgPatterns(patterns);
  populateRWKVSequenceToLinalgPatterns(patterns);
  populateRWKVWKV456ToLinalgPatterns(patterns);
  populateRWKVGradientToLinalgPatterns(patterns);
  populateRWKVWKVGradToLinalgPatterns(patterns);
  if (chunkedWKV) {
    populateRWKVChunkedWKVToLinalgPatterns(patterns);
    populateRWKVChunkedWKVGradToLinalgPatterns(patterns);
  }
}

namespace {
struct ConvertRWKVToLinalgPass final
    : impl::ConvertRWKVToLinalgPassBase<ConvertRWKVToLinalgPass> {
  using Base::Base;

  void runOnOperation() override {
    MLIRContext *ctx = &getContext();
    {
      RewritePatternSet pairs(ctx);
      populateRWKVCrossEntropyPairPatterns(pairs);
      walkAndApplyPatterns(getOperation(), std::move(pairs));
    }
    ConversionTarget target(*ctx);
    target.addIllegalDialect<RWKVDialect>();
    // Structure ops are dissolved by rwkv-inline-blocks, not here.
    target.addLegalOp<BlockOp, YieldOp>();
    target.markUnknownOpDynamicallyLegal([](Operation *) { return true; });
    RewritePatternSet patterns(ctx);
    populateRWKVToLinalgConversionPatterns(patterns, chunkedWKV);
    if (failed(applyPartialConversion(getOperation(), target,
                                      std::move(patterns))))
      signalPassFailure();
  }
};
} // namespace
} // namespace mlir::rwkv
