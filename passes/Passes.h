//===- Passes.h - rwkv passes and pipelines ---------------------*- C++ -*-===//

#ifndef RWKV_PASSES_PASSES_H
#define RWKV_PASSES_PASSES_H

#include "dialect/RWKVOps.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Pass/Pass.h"
#include "mlir/Pass/PassManager.h"

namespace mlir::rwkv {

#define GEN_PASS_DECL
#include "passes/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "passes/Passes.h.inc"

/// Patterns that expand time_mix / channel_mix into primitive ops.
void populateDecompositionPatterns(RewritePatternSet &patterns);
/// Patterns that run each rwkv.wkv / rwkv.wkv_grad head in an scf.forall.
void populateParallelizeWKVPatterns(RewritePatternSet &patterns);

} // namespace mlir::rwkv

#endif // RWKV_PASSES_PASSES_H
