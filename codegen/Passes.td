//===- Passes.td - rwkv code generation passes -------------*- tablegen -*-===//
//
// Everything below the rwkv dialect: lowering to linalg, fusion, tiling,
// vectorisation and the LLVM / NVVM back ends. Keep alphabetical.
//
//===----------------------------------------------------------------------===//

#ifndef RWKV_CODEGEN_PASSES_TD
#define RWKV_CODEGEN_PASSES_TD

include "mlir/Pass/PassBase.td"

def ConvertRWKVToLinalgPass : Pass<"convert-rwkv-to-linalg"> {
  let summary = "Lower primitive rwkv ops to linalg, tensor and scf on tensors";
  let description = [{
    Every primitive op becomes `linalg.generic` ops (contractions, reductions
    and element-wise maps with `arith`/`math` bodies) plus `tensor` reshapes
    and slices. Weights are read in their own dtype and widened to f32 inside
    the generic bodies, so no converted copy of a weight is ever formed.
    `rwkv.wkv` becomes an `scf.for` over the sequence whose body updates the
    state with three generics (`sa = S a`, the rank-1 update, `y = S r`).
    Composite ops must be decomposed first (`rwkv-decompose`).

    Before:
    ```mlir
    %y = rwkv.linear %x, %w : tensor<1x?x128xf32>, tensor<64x128xbf16> -> tensor<1x?x64xf32>
    ```
    After:
    ```mlir
    %y = linalg.generic {iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
        ins(%x, %w : ...) outs(%zero : ...) { arith.extf; arith.mulf; arith.addf }
    ```
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::linalg::LinalgDialect",
                           "::mlir::math::MathDialect",
                           "::mlir::scf::SCFDialect",
                           "::mlir::tensor::TensorDialect"];
}

#endif // RWKV_CODEGEN_PASSES_TD
