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

def RWKVEntryOutParamsPass
    : Pass<"rwkv-entry-out-params", "::mlir::ModuleOp"> {
  let summary = "Return the results of public entry points through buffers";
  let description = [{
    After bufferization, rewrites every memref result of a *public* function
    into a caller-provided out-parameter appended to the arguments (the ABI
    of docs/ABI.md). Static-shaped results that the function allocates
    itself are written straight into the out-parameter; others are copied
    with `linalg.copy`. Private functions (the outlined layers) keep their
    results, which may be dynamically shaped: upstream
    `buffer-results-to-out-params` cannot handle those at call sites.

    Before:
    ```mlir
    func.func @rwkv_step(%t: memref<1x?xi32>) -> memref<1x1x512xf32>
    ```
    After:
    ```mlir
    func.func @rwkv_step(%t: memref<1x?xi32>, %out: memref<1x1x512xf32>)
    ```
  }];
  let dependentDialects = ["::mlir::linalg::LinalgDialect",
                           "::mlir::memref::MemRefDialect"];
}

def RWKVFuseElementwisePass : Pass<"rwkv-fuse-elementwise"> {
  let summary = "Fuse chains of element-wise linalg.generics";
  let description = [{
    Runs upstream element-wise fusion (`linalg::fuseElementwiseOps`) with an
    RWKV-specific control: a producer is fused only into an all-parallel
    consumer. Fusing a lerp or an activation into a projection body would
    recompute it for every output channel (C times), so projections are left
    to `rwkv-tile-and-fuse`, which fuses per tile instead.

    The chains this merges are the LoRA tails (`sigmoid(a0 + x)`, the decay
    `exp(-e^-0.5 sigmoid(w0 + x))`), the key normalisation and `k_a` update,
    the value residual, and the bonus and gate after GroupNorm.

    Before:
    ```mlir
    %a = linalg.generic {iterator_types = ["parallel", ...]} ins(%x) { addf }
    %b = linalg.generic {iterator_types = ["parallel", ...]} ins(%a) { sigmoid }
    ```
    After:
    ```mlir
    %b = linalg.generic {iterator_types = ["parallel", ...]} ins(%x) { addf; sigmoid }
    ```
  }];
  let dependentDialects = ["::mlir::linalg::LinalgDialect"];
}

def RWKVTileAndFusePass : Pass<"rwkv-tile-and-fuse"> {
  let summary = "Tile projections into parallel tiles and fuse their producers";
  let description = [{
    Tiles every projection (`linalg.generic` tagged `rwkv.projection` by
    `convert-rwkv-to-linalg`: the linear layers, LoRA factors, FFN and head)
    along its parallel dimensions into an `scf.forall`, using
    `scf::tileConsumerAndFuseProducersUsingSCF`. All-parallel producers (the
    token-shift lerps, LoRA activations, ReLU², the accumulator fill) are
    fused into each tile; reductions are never recomputed per tile. The
    forall is what the CPU pipeline distributes over threads.

    Before:
    ```mlir
    %xr = linalg.generic ... { lerp }
    %r = linalg.generic {rwkv.projection} ins(%xr, %W) outs(%zero)
    ```
    After:
    ```mlir
    %r = scf.forall (%t, %o) ... {
      %xr_tile = linalg.generic ... { lerp }
      %acc = linalg.fill ...
      %r_tile = linalg.generic {rwkv.projection} ins(%xr_tile, %W_tile) outs(%acc)
    }
    ```
  }];
  let options = [
    Option<"tileTokens", "tile-tokens", "int64_t", "16",
           "Tokens per tile (sequence dimension)">,
    Option<"tileOutputs", "tile-outputs", "int64_t", "64",
           "Output channels per tile">
  ];
  let dependentDialects = ["::mlir::scf::SCFDialect",
                           "::mlir::tensor::TensorDialect",
                           "::mlir::affine::AffineDialect"];
}

#endif // RWKV_CODEGEN_PASSES_TD
