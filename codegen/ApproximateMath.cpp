//===- ApproximateMath.cpp - f32 exp/tanh as vectorisable polynomials -----===//
//
// The element-wise loops (decay, sigmoid gates, LoRA tanh, the WKV decay)
// call libm's scalar expf/tanhf after lowering, and a call in its body keeps
// LLVM's loop vectoriser away from the whole loop. Debian ships no vector
// math library that LLVM's TargetLibraryInfo would map these to by default,
// so the upstream polynomial approximations (Cephes-style range reduction +
// polynomial, a few ulp) replace them with plain arithmetic that vectorises.
//
//===----------------------------------------------------------------------===//

#include "codegen/Passes.h"

#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Math/Transforms/Passes.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

#define DEBUG_TYPE "rwkv-approximate-math"

namespace mlir::rwkv {
#define GEN_PASS_DEF_RWKVAPPROXIMATEMATHPASS
#include "codegen/Passes.h.inc"

namespace {
struct RWKVApproximateMathPass final
    : impl::RWKVApproximateMathPassBase<RWKVApproximateMathPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    populateMathPolynomialApproximationPatterns(patterns, [](StringRef name) {
      return name == "math.exp" || name == "math.tanh";
    });
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      return signalPassFailure();
  }
};
} // namespace
} // namespace mlir::rwkv
