//===- Passes.h - rwkv code generation passes -------------------*- C++ -*-===//

#ifndef RWKV_CODEGEN_PASSES_H
#define RWKV_CODEGEN_PASSES_H

#include "dialect/IRUtils.h"
#include "dialect/RWKVOps.h"
#include "mlir/Dialect/Affine/IR/AffineOps.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Dialect/X86Vector/X86VectorDialect.h"
#include "mlir/Pass/Pass.h"
#include "mlir/Transforms/DialectConversion.h"

namespace mlir::rwkv {

#define GEN_PASS_DECL
#include "codegen/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "codegen/Passes.h.inc"

/// CUDA pipeline: memrefs of i1 or index are the deallocation lowering's
/// ownership flags and base addresses, host data (model data never has
/// these element types); `dealloc_helper` is its host function.
inline bool isHostBookkeeping(MemRefType type) {
  Type e = type.getElementType();
  return e.isInteger(1) || e.isIndex();
}
inline bool isDeallocHelper(Operation *fn) {
  auto sym = fn->getAttrOfType<StringAttr>("sym_name");
  return sym && sym.getValue() == "dealloc_helper";
}

/// Lowerings of the primitive rwkv ops to linalg on tensors, by area.
void populateRWKVNormToLinalgPatterns(RewritePatternSet &patterns);
void populateRWKVProjectionToLinalgPatterns(RewritePatternSet &patterns);
void populateRWKVSequenceToLinalgPatterns(RewritePatternSet &patterns);
/// rwkv.wkv4 and rwkv.wkv5 (RWKV-4/5/6) as sequential loops.
void populateRWKVWKV456ToLinalgPatterns(RewritePatternSet &patterns);
void populateRWKVChunkedWKVToLinalgPatterns(RewritePatternSet &patterns);
/// The training ops: cross_entropy and the adjoints (Gradients.cpp).
void populateRWKVGradientToLinalgPatterns(RewritePatternSet &patterns);
/// The loss and its gradient of the same logits, lowered together (one
/// statistics pass for both); applied before the conversion.
void populateRWKVCrossEntropyPairPatterns(RewritePatternSet &patterns);
/// rwkv.wkv_grad: sequential (every mode) and chunked (mode = chunked).
void populateRWKVWKVGradToLinalgPatterns(RewritePatternSet &patterns);
void populateRWKVChunkedWKVGradToLinalgPatterns(RewritePatternSet &patterns);
/// CUDA: the sequential rwkv.wkv as one thread per state row.
void populateLowerWKVToRowsPatterns(RewritePatternSet &patterns);
/// Element-wise fusion restricted to all-parallel consumers.
void populateRWKVFuseElementwisePatterns(RewritePatternSet &patterns);

/// All of the above.
void populateRWKVToLinalgConversionPatterns(RewritePatternSet &patterns,
                                            bool chunkedWKV = true);

} // namespace mlir::rwkv

#endif // RWKV_CODEGEN_PASSES_H
