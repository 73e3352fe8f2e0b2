//===- Passes.td - rwkv dialect-level passes ---------------*- tablegen -*-===//
//
// Passes that rewrite rwkv to rwkv (or to linalg on tensors). Keep
// alphabetical; defs end in `Pass`; arguments are `rwkv-<verb>-<noun>`.
//
//===----------------------------------------------------------------------===//

#ifndef RWKV_PASSES_TD
#define RWKV_PASSES_TD

include "mlir/Pass/PassBase.td"

def RWKVDecomposePass : Pass<"rwkv-decompose"> {
  let summary = "Expand rwkv.time_mix and rwkv.channel_mix into primitive ops";
  let description = [{
    Rewrites the composite ops into the primitive rwkv ops (token_shift, mix,
    linear, lora, l2_normalize, wkv, group_norm) plus element-wise and
    per-head `linalg.generic` ops with `arith`/`math` bodies, exactly in the
    order of the reference (spec §1.5, §1.7). Later fusion and tiling passes
    regroup this IR by their own rules.

    Before:
    ```mlir
    %o, %s0, %s1, %vf = rwkv.time_mix %x, %shift, %wkv lerp(...) ...
    ```
    After:
    ```mlir
    %shifted, %last = rwkv.token_shift %x, %shift : ...
    %xr = rwkv.mix %x, %shifted, %x_r : ...
    ...
    %y, %state = rwkv.wkv %r, %w, %k, %v, %a, %b, %wkv : ...
    ```
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::linalg::LinalgDialect",
                           "::mlir::math::MathDialect",
                           "::mlir::tensor::TensorDialect"];
}

def RWKVDifferentiatePass : Pass<"rwkv-differentiate", "::mlir::ModuleOp"> {
  let summary = "Build the gradient function of every function tagged rwkv.gradient";
  let description = [{
    Reverse-mode differentiation on tensors. A `func.func` carrying
    `rwkv.gradient = "<name>"` must return a scalar loss (`tensor<f32>`)
    first. The pass adds a function `<name>` with the same arguments that
    runs the forward, then its adjoint, and returns the loss followed by the
    gradient of every floating-point argument (f32, in argument order; zeros
    where the loss does not depend on it).

    rwkv ops supply their rule through `DifferentiableOpInterface` (the
    norms, the WKV recurrence, the loss and the embedding emit their
    `rwkv.*_grad` ops; projections emit linalg contractions). Element-wise
    and sum-reduction `linalg.generic`s are differentiated by one rule that
    applies the chain rule to their arith/math body and sums broadcast
    operands back to their shape. Reshapes and casts pass gradients through.

    A `func.call` (a layer outlined by `rwkv-outline-blocks`) is
    differentiated once per callee: the forward calls `<callee>_fwd`, which
    also returns the values the backward reads (the tape), and the adjoint
    calls `<callee>_bwd(args, result gradients, tape)`. With
    `rwkv.recompute_layers` the forward calls the layer unchanged and the
    adjoint calls `<callee>_vjp(args, result gradients)`, which runs the
    layer's forward again (activation checkpointing). Layers of the same
    shape share these functions, so compile time does not grow with depth.

    Before:
    ```mlir
    func.func @loss(%x: tensor<1x4x8xf32>, %w: tensor<8xf32>, ...)
        -> tensor<f32> attributes {rwkv.gradient = "loss_grad"} { ... }
    ```
    After (added):
    ```mlir
    func.func @loss_grad(%x: tensor<1x4x8xf32>, %w: tensor<8xf32>, ...)
        -> (tensor<f32>, tensor<1x4x8xf32>, tensor<8xf32>) {
      ... forward ...
      %dx, %dw, %db = rwkv.layer_norm_grad %x, %w, %dy ...
      return %loss, %dx, %dw : ...
    }
    ```
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::linalg::LinalgDialect",
                           "::mlir::math::MathDialect",
                           "::mlir::tensor::TensorDialect"];
}

def RWKVInlineBlocksPass : Pass<"rwkv-inline-blocks"> {
  let summary = "Dissolve rwkv.block grouping into the enclosing region";
  let description = [{
    Moves the body of every `rwkv.block` in front of it and replaces the
    block's results with the values its `rwkv.yield` returns. Runs first in
    the pipelines: the blocks only group ops for readability.

    Before:
    ```mlir
    %r = rwkv.block layer 0 -> (tensor<1x1x8xf32>) {
      %y = rwkv.mix %x, %p, %m : ...
      rwkv.yield %y : tensor<1x1x8xf32>
    }
    ```
    After:
    ```mlir
    %y = rwkv.mix %x, %p, %m : ...
    ```
  }];
}

def RWKVOutlineBlocksPass : Pass<"rwkv-outline-blocks", "::mlir::ModuleOp"> {
  let summary = "Outline every rwkv.block into a private function";
  let description = [{
    Replaces each `rwkv.block` with a `func.call` to a new private function
    whose arguments are the values the block used from above (activations,
    state and the layer's weights) and whose results are the yielded values.
    Layers of one model share their shapes, so after
    `duplicate-function-elimination` every layer but the first calls the
    same function: the generated code no longer grows with the layer count.

    Before:
    ```mlir
    %r:5 = rwkv.block layer 1 -> (...) {
      ... uses %x, %s, %w ...
      rwkv.yield ...
    }
    ```
    After:
    ```mlir
    %r:5 = func.call @rwkv_step_layer1(%x, %s, %w, ...) : (...) -> (...)
    func.func private @rwkv_step_layer1(...) { ... return ... }
    ```
  }];
  let dependentDialects = ["::mlir::func::FuncDialect"];
}

def RWKVParallelizeWKVPass : Pass<"rwkv-parallelize-wkv"> {
  let summary = "Run every WKV recurrence head by head in an scf.forall";
  let description = [{
    The WKV recurrence is sequential over tokens but independent across
    batch rows and heads. Each `rwkv.wkv` and `rwkv.wkv_grad` over T > 1
    tokens, with `B * H > 1`, becomes an `scf.forall` over `(b, h)` that
    runs the same op on that head's slices: activations `[1, T, N]` at
    columns `h*N`, states `[1, 1, N, N]`. The forall is the unit of
    multi-threading (OpenMP on the CPU): one fork per call instead of the
    per-token forks of the whole recurrence's state updates. Results are
    written back with `tensor.parallel_insert_slice`. A dynamic T (inference
    functions, which also decode one token at a time) gets the forall
    behind `scf.if T > 1`; the else branch keeps the whole op (marked
    `rwkv.one_token_branch`), which updates the state in place: for one
    token, the per-head state buffers would cost more than the recurrence.

    Before:
    ```mlir
    %y, %s = rwkv.wkv %r, %w, %k, %v, %a, %b, %s0
        : tensor<2x16x128xf32>, tensor<2x2x64x64xf32>
    ```
    After:
    ```mlir
    %0:2 = scf.forall (%i, %h) in (2, 2) shared_outs(%oy = %e0, %os = %e1) {
      %rs = tensor.extract_slice %r[%i, 0, %h*64] [1, 16, 64] [1, 1, 1] ...
      ...
      %y1, %s1 = rwkv.wkv %rs, ... : tensor<1x16x64xf32>, tensor<1x1x64x64xf32>
      scf.forall.in_parallel {
        tensor.parallel_insert_slice %y1 into %oy[%i, 0, %h*64] ...
        tensor.parallel_insert_slice %s1 into %os[%i, %h, 0, 0] ...
      }
    }
    ```
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::scf::SCFDialect",
                           "::mlir::tensor::TensorDialect"];
}

def RWKVUnwrapModelPass : Pass<"rwkv-unwrap-model", "::mlir::ModuleOp"> {
  let summary = "Turn an rwkv.model into the module form used for codegen";
  let description = [{
    Moves the entry points of the module's `rwkv.model` to module level and
    records its configuration as the module attribute `rwkv.config`, which
    the code generator and the library ABI read (docs/ABI.md). A module
    already in that form is left alone; two models, or a model whose config
    disagrees with the module's, are errors.

    Before:
    ```mlir
    module {
      rwkv.model @tiny config = #rwkv.config<...> {
        func.func @rwkv_step(...) { ... }
      }
    }
    ```
    After:
    ```mlir
    module attributes {rwkv.config = #rwkv.config<...>} {
      func.func @rwkv_step(...) { ... }
    }
    ```
  }];
}

#endif // RWKV_PASSES_TD
