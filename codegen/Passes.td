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
    state with three generics (`sa = S a`, the rank-1 update, `y = S r`),
    or, for `mode = chunked` (and `chunked-wkv`), an `scf.for` over chunks
    of the WY form (spec §2.6, docs/codegen.md).
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
                           "::mlir::tensor::TensorDialect",
                           "::mlir::vector::VectorDialect"];
  let options = [
    Option<"chunkedWKV", "chunked-wkv", "bool", "true",
           "Lower `rwkv.wkv {mode = chunked}` to the chunk-parallel (WY) form; "
           "when false, every wkv becomes the token-by-token recurrence">
  ];
}

def RWKVEmulateGpuLaunchPass : Pass<"rwkv-emulate-gpu-launch"> {
  let summary = "Run gpu.launch bodies on the host as parallel loops";
  let description = [{
    Replaces every `gpu.launch` by an `scf.parallel` over its grid around an
    `scf.parallel` over its block, with the block and thread ids the
    induction variables, so the CPU back end can run the kernels of the CUDA
    pipeline and the golden tests check the GPU mapping without a GPU
    (`rwkv-compile --target=cuda --cuda-emulate`). Launches with shared
    memory, barriers, shuffles or NVVM ops are refused. Two warp-wide ops
    are emulated, each lane recomputing the operands of the 32 lanes of
    its warp (their backward slice, which may only read memory and depend
    on the thread id and on loop counters that are the same in every
    lane):
    - a float `gpu.subgroup_reduce add` (`rwkv-warp-reductions` with
      `lower-to-shuffles=false`), summed in the butterfly order of
      upstream's shuffle lowering, so each lane gets what it gets on the
      GPU;
    - a bf16 `nvvm.mma.sync` m16n8k16 (`rwkv-mma-projections`): the lane's
      four outputs from the whole A and B fragments, summed over k in
      order in f32 (the products are exact; the tensor cores' summation
      order is unspecified).

    Before:
    ```mlir
    gpu.launch blocks(%bx, %by, %bz) in (%gx = %n, %gy = %c1, %gz = %c1)
               threads(%tx, %ty, %tz) in (%sx = %c256, %sy = %c1, %sz = %c1) {
      ... %bx, %tx ...
      gpu.terminator
    }
    ```
    After:
    ```mlir
    scf.parallel (%bx, %by, %bz) = (%c0, %c0, %c0) to (%n, %c1, %c1) step (...) {
      scf.parallel (%tx, %ty, %tz) = (%c0, %c0, %c0) to (%c256, %c1, %c1) step (...) {
        ... %bx, %tx ...
      }
    }
    ```
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::LLVM::LLVMDialect",
                           "::mlir::scf::SCFDialect",
                           "::mlir::vector::VectorDialect"];
}

def RWKVGpuHostBuffersPass
    : Pass<"rwkv-gpu-host-buffers", "::mlir::func::FuncOp"> {
  let summary = "Allocate and copy the host code's buffers on the device";
  let description = [{
    In the CUDA pipeline, after `rwkv-map-parallel-loops-to-gpu`: every
    `memref.alloc` / `memref.dealloc` / contiguous `memref.copy` outside a
    `gpu.launch` becomes `gpu.alloc` / `gpu.dealloc` / `gpu.memcpy`, since
    the entry points of a CUDA library receive device pointers. Host code
    that still loads, stores, `alloca`s or copies a strided view is an error
    (it would dereference device memory on the host).

    Before:
    ```mlir
    %t = memref.alloc(%n) : memref<?x64xf32>
    memref.copy %t, %out : memref<?x64xf32> to memref<?x64xf32>
    memref.dealloc %t : memref<?x64xf32>
    ```
    After:
    ```mlir
    %t = gpu.alloc (%n) : memref<?x64xf32>
    gpu.memcpy %out, %t : memref<?x64xf32>, memref<?x64xf32>
    gpu.dealloc %t : memref<?x64xf32>
    ```
  }];
  let dependentDialects = ["::mlir::gpu::GPUDialect"];
}

def RWKVMapParallelLoopsToGPUPass
    : Pass<"rwkv-map-parallel-loops-to-gpu", "::mlir::func::FuncOp"> {
  let summary = "Map each outermost scf.parallel to a gpu.launch";
  let description = [{
    The generic SIMT mapping of the CUDA pipeline. Every outermost
    `scf.parallel` (what `convert-linalg-to-parallel-loops` and
    `scf-forall-to-parallel` make of the bufferized linalg ops and foralls)
    becomes a `gpu.launch` with a 1-D grid of `block-size` threads; a thread
    owns one point of the (linearised, last dimension fastest) iteration
    space, the bounds may be dynamic, and out-of-range threads of the last
    block do nothing. Nested `scf.parallel`s stay inside the thread (lower
    them with `scf-parallel-for-to-nested-fors`). Host loops that still read
    or write memory become one-thread kernels.

    Before:
    ```mlir
    scf.parallel (%t, %c) = (%c0, %c0) to (%T, %c768) step (%c1, %c1) {
      %v = memref.load %x[%t, %c] : memref<?x768xf32>
      memref.store %v, %y[%t, %c] : memref<?x768xf32>
    }
    ```
    After:
    ```mlir
    gpu.launch blocks(%bx, ...) in (%gx = %grid, ...) threads(%tx, ...) in (%sx = %c256, ...) {
      %g = (%bx * 256 + %tx)
      scf.if (%g < %T * 768) {
        %t = %g / 768, %c = %g % 768
        ...
      }
    }
    ```
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::gpu::GPUDialect",
                           "::mlir::scf::SCFDialect"];
  let options = [
    Option<"blockSize", "block-size", "int64_t", "256",
           "Threads per block (1-1024)">
  ];
}

def RWKVMergeGpuModulesPass
    : Pass<"rwkv-merge-gpu-modules", "::mlir::ModuleOp"> {
  let summary = "Move every outlined kernel into one gpu.module";
  let description = [{
    After `gpu-kernel-outlining`, which makes one `gpu.module` per kernel:
    moves all kernels into a single `gpu.module` and retargets the
    `gpu.launch_func`s, so the model compiles to one PTX module (one ptxas
    run, one device image). Symbols that several modules define (the
    globals outlining copies into each) are kept once if identical.

    Before:
    ```mlir
    gpu.module @f_kernel { gpu.func @f_kernel(...) kernel { ... } }
    gpu.module @f_kernel_0 { gpu.func @f_kernel_0(...) kernel { ... } }
    gpu.launch_func @f_kernel::@f_kernel ...
    ```
    After:
    ```mlir
    gpu.module @rwkv_kernels {
      gpu.func @f_kernel(...) kernel { ... }
      gpu.func @f_kernel_0(...) kernel { ... }
    }
    gpu.launch_func @rwkv_kernels::@f_kernel ...
    ```
  }];
  let dependentDialects = ["::mlir::gpu::GPUDialect"];
  let options = [
    Option<"moduleName", "module-name", "std::string", "\"rwkv_kernels\"",
           "Name of the merged gpu.module">
  ];
}

def RWKVLowerWKVToRowsPass : Pass<"rwkv-lower-wkv-to-rows"> {
  let summary = "Run the WKV7 recurrence as one thread per state row";
  let description = [{
    The CUDA target's lowering of the sequential `rwkv.wkv`. Row `i` of a
    head's `N x N` state needs only that row and the head's vectors:
    `sa[i] = S[i]·a`, the update `S[i] = (S[i]·d + k·v[i]) + sa[i]·b` and
    `y[i] = S[i]·r`. Each (batch row, head, state row) is therefore
    independent over the whole sequence: the op becomes an `scf.forall`
    over `(b, h, i)` whose body carries its row through the token loop as a
    `vector<N>` value (registers on the GPU) and writes its column of `y`.
    `d = exp(w)` is one element-wise `linalg.generic` before it. The chunked
    form is left to convert-rwkv-to-linalg.

    RWKV-5/6 (`rwkv.wkv5`, state `S[key i][value j]`) split along the value
    index: thread `(b, h, j)` gathers its strided column `S[:, j]` with N
    scalar reads once per call, carries it as a `vector<N>` through
    `y[j] = r·((u⊙k) v[j] + S[:, j])` and `S[:, j] = k v[j] + d⊙S[:, j]`,
    and scatters it back once; `d = exp(-exp(w))` is computed before the
    loop.

    The sequential `rwkv.wkv_grad` of a training step (static shapes) is
    split the same way: the backward of row `i` needs only row `i` too, and
    what does not (the column sums `dk`, `db`, `dw`, `da`, `dr` over `i`)
    feeds nothing of the recurrence. A forall over `(b, h, i)` saves the
    rows at the start of every `chunk_length`-token segment; per segment,
    last first, a forall over `(b, h, i)` recomputes its rows and walks the
    tokens backwards carrying row `i` of the state gradient (`dv`, `dsa`),
    saving `S_{t-1}`, `sa`, `G` and `dsa` in segment buffers, and the column
    sums are `linalg.generic` reductions over `(b, t, h, j)` of those.

    Before:
    ```mlir
    %y, %s = rwkv.wkv %r, %w, %k, %v, %a, %b, %s0
        : tensor<2x?x128xf32>, tensor<2x2x64x64xf32>
    ```
    After:
    ```mlir
    %d = linalg.generic ... ins(%w) { math.exp }
    %0:2 = scf.forall (%bi, %h, %i) in (2, 2, 64)
        shared_outs(%oy = %e, %os = %s0) {
      %srow = tensor.extract_slice %os[%bi, %h, %i, 0] [1, 1, 1, 64] [1, 1, 1, 1]
      %row0 = vector.transfer_read %srow[%c0], %cst : tensor<64xf32>, vector<64xf32>
      %res:2 = scf.for %t = %c0 to %T step %c1 iter_args(%row = %row0, %ycol = ...) {
        %rv = vector.transfer_read %r[%bi, %t, %h*64], %cst ...
        ... vector.reduction <add> ... arith.mulf / arith.addf on vector<64xf32>
        %y1 = tensor.insert %yi into %ycol[%t] : tensor<?xf32>
        scf.yield %next, %y1 : vector<64xf32>, tensor<?xf32>
      }
      ...
    }
    ```
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::linalg::LinalgDialect",
                           "::mlir::math::MathDialect",
                           "::mlir::scf::SCFDialect",
                           "::mlir::tensor::TensorDialect",
                           "::mlir::vector::VectorDialect"];
}

def RWKVLowerKernelTransfersPass
    : Pass<"rwkv-lower-kernel-transfers", "::mlir::func::FuncOp"> {
  let summary = "Rewrite vector transfers inside gpu.launch as loads and stores";
  let description = [{
    convert-gpu-to-nvvm lowers `vector.load` / `vector.store` but not
    `vector.transfer_read` / `transfer_write`. Inside every `gpu.launch`,
    in-bounds rank-1 transfers over a unit-stride dimension (what
    `rwkv-lower-wkv-to-rows` emits) become `vector.load` / `vector.store`
    through upstream's transfer lowering patterns; any other transfer left
    in a kernel is an error. A kernel load or store whose element offset is
    provably a multiple of 4 (whole buffers start 16-byte aligned; subview
    offsets and index arithmetic are followed) gets `alignment = 16`, so
    that NVPTX emits `ld.global.v4` rather than one load per element.

    Before:
    ```mlir
    %v = vector.transfer_read %m[%i, %c0], %cst {in_bounds = [true]}
        : memref<?x64xf32>, vector<64xf32>
    ```
    After:
    ```mlir
    %v = vector.load %m[%i, %c0] {alignment = 16 : i64}
        : memref<?x64xf32>, vector<64xf32>
    ```
  }];
  let dependentDialects = ["::mlir::vector::VectorDialect"];
}

def RWKVPromoteLoopAccumulatorsPass
    : Pass<"rwkv-promote-loop-accumulators", "::mlir::func::FuncOp"> {
  let summary = "Carry a kernel loop's accumulator in a register";
  let description = [{
    Inside `gpu.launch` bodies: an `scf.for` that loads and stores one
    memref element at the same loop-invariant indices on every iteration
    (what `convert-linalg-to-parallel-loops` makes of a reduction) and uses
    that memref nowhere else gets the element as an `iter_arg`: one load
    before the loop, one store after it.

    Before:
    ```mlir
    scf.for %k = %c0 to %c768 step %c1 {
      %a = memref.load %y[%t, %n] : memref<?x1024xf32>
      %s = arith.addf %a, %p : f32
      memref.store %s, %y[%t, %n] : memref<?x1024xf32>
    }
    ```
    After:
    ```mlir
    %init = memref.load %y[%t, %n] : memref<?x1024xf32>
    %r = scf.for %k = %c0 to %c768 step %c1 iter_args(%a = %init) -> (f32) {
      %s = arith.addf %a, %p : f32
      scf.yield %s : f32
    }
    memref.store %r, %y[%t, %n] : memref<?x1024xf32>
    ```
  }];
}

def RWKVWarpReductionsPass
    : Pass<"rwkv-warp-reductions", "::mlir::func::FuncOp"> {
  let summary = "One warp per reduction: coalesced GEMV and norm sums";
  let description = [{
    After `rwkv-promote-loop-accumulators`: in a `gpu.launch` with 1-D
    blocks of a constant multiple of 32 threads, every thread becomes a
    warp (32 times the blocks; each lane recomputes the ids of the thread
    it replaces, so control flow stays uniform across the warp). A loop
    that sums one float with a reassociable `arith.addf` over a static
    trip count of at least `min-trip-count`, and writes nothing, is split
    across the lanes: lane l takes iterations l, l + 32, ..., so the lanes
    of a warp read consecutive elements of a weight row (coalesced), and
    `gpu.subgroup_reduce add` combines their partial sums; the loop's
    initial value is added once after it. Where every load of the body
    that depends on the loop counter reads along its innermost, unit-stride
    dimension and the rest is element-wise arithmetic, a lane takes
    `vector-width` consecutive iterations per step instead (runs
    32 x width apart, when the trip count is a multiple of that): vector
    loads (8 bf16 weights: one 16-byte `ld.global.v4` once
    `rwkv-lower-kernel-transfers` has proved the alignment), the arithmetic
    on vectors, one `vector.reduction` after the loop. Stores run on lane 0
    only. With
    `lower-to-shuffles` (the default) the reductions become butterfly
    `gpu.shuffle xor`s (upstream's lowering); `rwkv-emulate-gpu-launch`
    runs them on the host otherwise. Launches with other writes, shuffles
    or barriers are left alone.

    Before (one thread per output):
    ```mlir
    gpu.launch blocks(%bx, ...) in (%gx = %grid, ...) threads(%tx, ...) in (%sx = %c256, ...) {
      %g = (%bx * 256 + %tx) ...
      %init = memref.load %y[%o]
      %r = scf.for %i = %c0 to %c768 step %c1 iter_args(%a = %init) -> (f32) {
        ... %s = arith.addf %a, %p fastmath<reassoc,contract> : f32
        scf.yield %s : f32
      }
      memref.store %r, %y[%o]
    }
    ```
    After (one warp per output):
    ```mlir
    gpu.launch blocks(%bx, ...) in (%gx = %grid * 32, ...) threads(...) {
      %lane = %tx % 32, %w = (%bx * 256 + %tx) / 32
      ... the old ids: %w / 256, %w % 256 ...
      %p = scf.for %i = %lane to %c768 step %c32 iter_args(%a = %zero) ...
      %t = gpu.subgroup_reduce add %p uniform : (f32) -> f32
      %r = arith.addf %init, %t
      scf.if (%lane == 0) { memref.store %r, %y[%o] }
    }
    ```
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::gpu::GPUDialect",
                           "::mlir::scf::SCFDialect",
                           "::mlir::vector::VectorDialect"];
  let options = [
    Option<"minTripCount", "min-trip-count", "int64_t", "64",
           "Shortest reduction that gets a warp">,
    Option<"maxVectorWidth", "vector-width", "int64_t", "8",
           "Consecutive iterations a lane takes per step (vector loads; "
           "1 = one element per lane and step)">,
    Option<"lowerToShuffles", "lower-to-shuffles", "bool", "true",
           "Lower gpu.subgroup_reduce to gpu.shuffle xor">
  ];
}

def RWKVMmaProjectionsPass
    : Pass<"rwkv-mma-projections", "::mlir::func::FuncOp"> {
  let summary = "Prefill and training projections on the tensor cores "
                "(bf16 mma.sync)";
  let description = [{
    After bufferization, before `convert-linalg-to-parallel-loops`: every
    `linalg.generic {rwkv.projection}` that computes
    `out[rows..., n] += x[rows..., k] * extf(W[n, k])` (or `W[k, n]`) with
    f32 `x` and `out`, a static bf16 `W`, `n % 8 == 0` and `k % 16 == 0`
    becomes, when its rows (batch x tokens, a run-time value) number at
    least `min-rows`, a `gpu.launch` of warps that each own 16 rows x up to
    32 outputs and step through `k` 16 at a time with
    `nvvm.mma.sync` m16n8k16 (bf16 x bf16, f32 accumulation; sm_80 and
    newer). Fewer rows (decode) run the original op, which the generic
    mapping turns into a GEMV. The f32 activations enter as bf16 pieces,
    each the rounded rest of the ones before, one mma per piece:
    `activations=f32` (the default) takes three (`hi`, `mid`, `lo`: all 24
    bits of x), `bf16x2` two (16 bits), `bf16` one (x rounded).

    Before:
    ```mlir
    linalg.generic {indexing_maps = [(b, t, n, k) -> (b, t, k), (n, k),
                                     (b, t, n)], ...} {rwkv.projection}
        ins(%x, %w : memref<1x?x768xf32>, memref<768x768xbf16>)
        outs(%y : memref<1x?x768xf32>)
    ```
    After:
    ```mlir
    %rows = ...  // 1 * dim(%x, 1)
    scf.if (%rows >= 16) {
      gpu.launch blocks(%bx, %by, %bz) in (%gx = %c24, %gy = ceildiv(%rows, 64), ...)
                 threads(%tx, ...) in (%sx = %c128, ...) {
        %r = scf.for %k0 = %c0 to %c768 step %c16 iter_args(%acc...) {
          %a = vector.load %x[..., %k0 + %q2] : vector<2xf32>
          %hi = arith.truncf %a : vector<2xf32> to vector<2xbf16>
          %mid = arith.truncf (%a - extf %hi) ... %lo = ...
          %b = vector.load %w[%n0 + %g, %k0 + %q2] : vector<2xbf16>
          %d = nvvm.mma.sync A[...] B[...] C[...] {shape = m16n8k16, bf16}
        }
        vector.store ... %y[..., %n0 + %q2]
      }
    } else {
      linalg.generic ... (as before)
    }
    ```
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::gpu::GPUDialect",
                           "::mlir::LLVM::LLVMDialect",
                           "::mlir::memref::MemRefDialect",
                           "::mlir::NVVM::NVVMDialect",
                           "::mlir::scf::SCFDialect",
                           "::mlir::vector::VectorDialect"];
  let options = [
    Option<"activations", "activations", "std::string", "\"f32\"",
           "How the f32 activations enter the bf16 mma: f32 (three bf16 "
           "pieces, exact), bf16x2 (two) or bf16 (rounded, one mma)">,
    Option<"minRows", "min-rows", "int64_t", "16",
           "Fewest rows (batch x tokens) that take the tensor-core kernel">
  ];
}

def RWKVPrefetchWeightRowsPass : Pass<"rwkv-prefetch-weight-rows"> {
  let summary = "Prefetch the next block of weight rows in vector dot products";
  let description = [{
    After bufferization, for every `scf.for` whose body reads several rows
    `%w[%row, %iv]` of a 2-D memref (the row indices loop-invariant, the
    column the induction variable) with `vector.transfer_read` — the
    register blocks of `rwkv-vectorize-projections` — inserts before each
    such read a `memref.prefetch` of the same column `n` rows further down,
    where `n` is the number of distinct rows the loop reads: the rows of the
    next register block. The row is clamped to the last row of the memref.
    Loops that read a single row (one long stream) are left alone.

    Before:
    ```mlir
    scf.for %i = %c0 to %c768 step %c16 iter_args(...) {
      %a = vector.transfer_read %w[%o, %i], %pad : memref<64x768xbf16>, vector<16xbf16>
      %b = vector.transfer_read %w[%o1, %i], %pad : memref<64x768xbf16>, vector<16xbf16>
    ```
    After:
    ```mlir
    %p = arith.minui (%o + 2), %c63
    %p1 = arith.minui (%o1 + 2), %c63
    scf.for %i = %c0 to %c768 step %c16 iter_args(...) {
      memref.prefetch %w[%p, %i], read, locality<3>, data : memref<64x768xbf16>
      %a = vector.transfer_read %w[%o, %i], %pad : memref<64x768xbf16>, vector<16xbf16>
      memref.prefetch %w[%p1, %i], read, locality<3>, data : memref<64x768xbf16>
      %b = vector.transfer_read %w[%o1, %i], %pad : memref<64x768xbf16>, vector<16xbf16>
    ```
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::memref::MemRefDialect"];
}

def RWKVApproximateMathPass : Pass<"rwkv-approximate-math"> {
  let summary = "Replace f32 math.exp and math.tanh with polynomial approximations";
  let description = [{
    Rewrites `math.exp` and `math.tanh` on f32 (scalars and vectors) into the
    upstream polynomial approximations (`populateMathPolynomialApproximationPatterns`:
    range reduction, a polynomial and exponent arithmetic; a few ulp of
    error). After lowering, a libm call in an element-wise loop would keep
    LLVM from vectorising it; plain arithmetic vectorises.

    Before:
    ```mlir
    %e = math.exp %x : f32
    ```
    After:
    ```mlir
    %k = math.roundeven (%x * log2(e)) ...  // and arith ops, no math.exp
    ```
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::math::MathDialect",
                           "::mlir::vector::VectorDialect"];
}

def RWKVLowerStridedCopiesPass : Pass<"rwkv-lower-strided-copies"> {
  let summary = "Rewrite non-contiguous memref.copy into linalg.copy";
  let description = [{
    A `memref.copy` between non-contiguous memrefs would lower to a call to
    `memrefCopy` (MLIR's C runner utils), which a compiled model does not
    link. This pass rewrites such copies into `linalg.copy`, which
    `convert-linalg-to-loops` turns into loops. Copies whose both sides are
    contiguous are kept: they become `llvm.memcpy`.

    Before:
    ```mlir
    memref.copy %a, %b : memref<2x128xf32> to memref<2x128xf32, strided<[?, 1], offset: ?>>
    ```
    After:
    ```mlir
    linalg.copy ins(%a : memref<2x128xf32>) outs(%b : memref<2x128xf32, strided<[?, 1], offset: ?>>)
    ```
  }];
  let dependentDialects = ["::mlir::linalg::LinalgDialect"];
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

    With `in-place-states`, a state argument (`rwkv.state`) that every entry
    point returns unchanged at its own position (the state was updated in
    place) is copied into its out-parameter only when the two are different
    buffers, and the module exports the names of those states as the C
    string `rwkv_in_place_states` ("wkv:0,wkv:1"): the runtime then passes
    one buffer as both, and a decoded token copies no state.
  }];
  let options = [
    Option<"inPlaceStates", "in-place-states", "bool", "false",
           "Let in-place states alias their out-parameters (CPU runtime)">
  ];
  let dependentDialects = ["::mlir::linalg::LinalgDialect",
                           "::mlir::memref::MemRefDialect",
                           "::mlir::scf::SCFDialect",
                           "::mlir::LLVM::LLVMDialect"];
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

def RWKVParallelizeLinalgPass : Pass<"rwkv-parallelize-linalg"> {
  let summary = "Tile the remaining large linalg ops into parallel tiles";
  let description = [{
    After `rwkv-tile-and-fuse` only the projections run in an `scf.forall`.
    This pass tiles every other linalg op on tensors that is not already
    inside an `scf.forall` and whose iteration space holds at least twice
    `min-work` iterations (element-wise chains, norm statistics, weight
    transposes, column sums of parameter gradients, softmax tiles, fills)
    along its parallel loops into an `scf.forall` whose tiles hold about
    `min-work` iterations: parallel loops are kept whole from the innermost
    while the tile stays under `min-work`, the next one is tiled, the outer
    ones by 1; reduction loops stay whole. The fill of an accumulator is
    fused into the tiles of its reduction. Decode-sized ops stay as they are.

    Before:
    ```mlir
    %z = linalg.fill ins(%c0) outs(%e : tensor<2048xf32>)
    %s = linalg.generic {iterator_types = ["parallel", "reduction"]}
        ins(%x : tensor<2048x768xf32>) outs(%z : tensor<2048xf32>)
    ```
    After (min-work = 16384: 21 rows per tile):
    ```mlir
    %s = scf.forall (%i) = (0) to (2048) step (21) shared_outs(%o = %e) {
      %z_t = linalg.fill ins(%c0) outs(%o_slice : tensor<?xf32>)
      %s_t = linalg.generic ... ins(%x_slice : tensor<?x768xf32>) outs(%z_t)
      scf.forall.in_parallel { tensor.parallel_insert_slice %s_t into %o[%i] }
    }
    ```
  }];
  let options = [
    Option<"minWork", "min-work", "int64_t", "16384",
           "Loop iterations per parallel tile">
  ];
  let dependentDialects = ["::mlir::scf::SCFDialect",
                           "::mlir::tensor::TensorDialect",
                           "::mlir::affine::AffineDialect"];
}

def RWKVGuardParallelRegionsPass : Pass<"rwkv-guard-parallel-regions"> {
  let summary = "Run single-iteration OpenMP parallel regions on the caller";
  let description = [{
    Gives every `omp.parallel` whose body is a work-shared `omp.loop_nest`
    (what `convert-scf-to-openmp` builds from the tile foralls) an `if`
    clause that is true only when the loop has more than one iteration (none
    when some loop statically has several).
    Tile counts that depend on a dynamic prompt length collapse to one tile
    when a single token is decoded; with the clause that tile runs on the
    calling thread instead of forking the thread team for it.

    Before:
    ```mlir
    omp.parallel {
      omp.wsloop {
        omp.loop_nest (%i) : index = (%lb) to (%ub) step (%s) { ... }
      }
    }
    ```
    After:
    ```mlir
    %next = arith.addi %lb, %s : index
    %more = arith.cmpi slt, %next, %ub : index
    omp.parallel if(%more) { ... }
    ```
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect"];
}

def RWKVMergeParallelRegionsPass : Pass<"rwkv-merge-parallel-regions"> {
  let summary = "Run the independent work-shared loops of consecutive "
                "OpenMP regions in one region";
  let description = [{
    Combines consecutive `omp.parallel` regions that are always forked (no
    `if` clause) and hold only work-shared loops: the second region's loops
    join the first region, so the thread team is forked and joined once for
    both. The code between the two regions that the second needs (the
    serial preparation of its input, allocations, index arithmetic) moves
    above the first region when it reads and writes nothing the first
    region writes, and nothing the first region reads is written by it;
    otherwise the regions stay apart. Memory is compared by the memrefs each
    op names (`LocalAliasAnalysis`: distinct allocations do not alias,
    function arguments may), and an op whose effects name no memref
    conflicts with everything.

    When the second region's loops read or write nothing the first region
    writes (and write nothing it reads), the first region's last loop gets
    `nowait`: the threads go on without waiting for each other. Otherwise
    the loop's implicit barrier orders them. In a decode step this puts the
    r, k and v products of a layer (and other independent products) in one
    region.

    Before:
    ```mlir
    omp.parallel {
      omp.wsloop { omp.loop_nest ... { ... writes %r ... } }
      omp.terminator
    }
    scf.for ... { ... quantizes %xk into %qk ... }
    omp.parallel {
      omp.wsloop { omp.loop_nest ... { ... reads %qk, writes %k ... } }
      omp.terminator
    }
    ```
    After:
    ```mlir
    scf.for ... { ... quantizes %xk into %qk ... }
    omp.parallel {
      omp.wsloop nowait { omp.loop_nest ... { ... writes %r ... } }
      omp.wsloop { omp.loop_nest ... { ... reads %qk, writes %k ... } }
      omp.terminator
    }
    ```
  }];
  let options = [
    Option<"barriers", "barriers", "bool", /*default=*/"true",
           "Also merge regions whose loops depend on each other, behind a "
           "barrier">,
  ];
}

def RWKVInlineStaticSchedulePass : Pass<"rwkv-inline-static-schedule",
                                         "::mlir::ModuleOp"> {
  let summary = "Share OpenMP loops out statically without the runtime's "
                "scheduler";
  let description = [{
    Rewrites every `omp.parallel` whose whole body is `omp.wsloop`s with
    the default schedule (what `convert-scf-to-openmp` builds from the tile
    foralls) into a region that computes its thread's share of the loop
    itself: the iterations are counted and linearized, thread `t` of `n`
    runs the contiguous block `[t*c, min((t+1)*c, total))` with
    `c = ceil(total / n)` (libomp's default static partition, so every
    thread gets the same iterations as before) in an `scf.for`, and the
    loop indices are rebuilt from the linear index.

    The runtime's loop entry (`__kmpc_for_static_init`, which the libomp
    builds of Debian format two debug strings in, on every call) and the
    loop's implicit barrier, which the region's join repeats, go away: a
    decode step runs about 550 of these loops. A loop without `nowait`
    that another loop of the region follows (rwkv-merge-parallel-regions)
    keeps its barrier as an `omp.barrier`.

    Before:
    ```mlir
    omp.parallel {
      omp.wsloop {
        omp.loop_nest (%i) : index = (%lb) to (%ub) step (%s) {
          ...
          omp.yield
        }
      }
      omp.terminator
    }
    ```
    After:
    ```mlir
    omp.parallel {
      %t = llvm.call @omp_get_thread_num() : () -> i32
      %n = llvm.call @omp_get_num_threads() : () -> i32
      ... %begin, %end: this thread's block of the iterations
      scf.for %l = %begin to %end step %c1 {
        %i = ... %lb + %l * %s
        ...
      }
      omp.terminator
    }
    ```
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::LLVM::LLVMDialect",
                           "::mlir::scf::SCFDialect"];
}

def RWKVVectorizeProjectionsPass : Pass<"rwkv-vectorize-projections"> {
  let summary = "Vectorise the projection tiles with register accumulators";
  let description = [{
    Rewrites every projection contraction (`linalg.generic` tagged
    `rwkv.projection`, normally a tile inside the `scf.forall` of
    `rwkv-tile-and-fuse`) into `scf.for` loops whose reduction loop carries
    its accumulators as vector `iter_args`. This runs on tensors, before
    bufferization: there the accumulators are SSA values and stay in
    registers, whereas after bufferization LLVM cannot prove that the
    accumulator does not alias the inputs inside the OpenMP region and keeps
    a scalar load/store per multiply-add.

    For `W[o, i]` (`i` contiguous) the reduction dimension is the vector
    dimension. Output rows are taken 4 at a time; within a row block the
    tokens go in register blocks of `token-block` (prefill: every weight
    vector is loaded and widened once for all tokens of the block), then
    the remaining tokens one by one (decode). One horizontal
    `vector.reduction` per output at the end. bf16 weights are read as
    packed pairs: one `vector<2·VL x bf16>` load, bit-cast to i32, gives the
    even elements (`shl 16`) and the odd ones (`and 0xffff0000`) as two f32
    vectors, and `x` is split likewise with `vector.deinterleave`.
    Packed int4 `W[o, i / 2]` (`rwkv.linear ... group G`) is read as VL
    bytes per step (2·VL weights, inside one group when G is a multiple of
    2·VL, otherwise the tile stays scalar): the bytes are sign-extended to
    i32, the low nibbles become f32 through `xor 8` into the mantissa of
    2^23 and one subtraction, the high ones through `shrsi 4` and `sitofp`;
    `x` is deinterleaved as for bf16 pairs, and the group's bf16 scale
    multiplies the two weight vectors (token blocks) or the step's sum (one
    token).
    With `bf16-dot=exact|round` (targets with AVX512-BF16; opt-in, the
    default is `off`) bf16 `W[o, i]` weights are not widened at all: `x` is
    converted to bf16 parts once, before the tile loop when the tiles take
    whole rows of it (as for the int-dot quantization; otherwise once per
    tile): `exact`: `p0 = bf16(x)`,
    `p1 = bf16(x - p0)`, `p2 = bf16(x - p0 - p1)`, whose sum is x exactly,
    so every product is exact and the sums are as accurate as f32 FMAs;
    `round`: `p0` only. Each step is one `x86vector.avx512.dot`
    (`vdpbf16ps`: 2·VL products summed pairwise into VL f32 lanes) per
    token, row and part, on the weights as loaded.
    With `int-dot=vnni` (targets with AVX512-VNNI or AVX-VNNI;
    `rwkv-compile` picks it there) int8 and packed int4 `W[o, i]` weights
    are not widened either. `x` is quantized per token to 15 bits (scale =
    absmax / 32512, `q = 256 * hi + lo` as two signed bytes), once per
    projection before the tile loop when the tile's `x` is a slice of whole
    rows (otherwise per tile), and each step is `rwkv.x86.dpbusd`
    (`vpdpbusd`: unsigned x signed bytes, four products per i32 lane) on
    the weight bytes as loaded: int8 weights made unsigned by `xor 0x80`
    (the `128 * sum(q)` it adds is subtracted per output from prefix sums
    of q), int4 nibbles by one `xor 0x88` (q + 8, the `8 * sum` per lane
    comes from per-lane corrections of x), two accumulators per token and
    row (hi, lo) for int8, one f32 accumulator per token and row for int4
    (each step's lanes converted and scaled by their groups' scales).
    Steps of 4·VL bytes (half that when the input width is not a multiple);
    token blocks of 2.
    With `int-dot=vnni8` x is quantized to 8 bits instead (scale =
    absmax / 127, q is its own single part): one `vpdpbusd` per step, token
    and row instead of two, which halves the instruction count of the
    compute-bound cases (batched decode, prefill) at llama.cpp's activation
    precision; int8 row-scaled weights then take token blocks of 4 on
    16-lane targets.
    For `W[i, o]` (LoRA factors) the output dimension is the vector
    dimension (outer-product form). The multiply-adds keep the
    contraction's fastmath flags (`reassoc,contract`), so LLVM emits FMAs.
    Tiles whose vectorised extent is not a static multiple of
    `vector-width` are left unchanged (scalar).

    Before:
    ```mlir
    %r = linalg.generic {rwkv.projection} ins(%x, %w : tensor<1x?x64xf32>,
        tensor<16x64xbf16>) outs(%acc : tensor<1x?x16xf32>) { acc + x * extf(w) }
    ```
    After (one token per step shown; the 2-token block is alike with
    8 accumulators, one per token and row):
    ```mlir
    %r = scf.for %o = %c0 to %c16 step %c4 ... scf.for %t ... {
      %v:8 = scf.for %i = %c0 to %c64 step %c16
          iter_args(%a0 = %zero, ...) -> (vector<8xf32>, ...) {
        %xv = vector.transfer_read %x[%b, %t, %i] : vector<16xf32>
        %xe, %xo = vector.deinterleave %xv : vector<16xf32> -> vector<8xf32>
        %wv = vector.transfer_read %w[%o, %i] : vector<16xbf16>
        %wi = vector.bitcast %wv : vector<16xbf16> to vector<8xi32>
        %we = vector.bitcast (arith.shli %wi, 16) : vector<8xi32> to vector<8xf32>
        %wo = vector.bitcast (arith.andi %wi, 0xffff0000) : ... to vector<8xf32>
        %m = arith.mulf %xe, %we fastmath<reassoc,contract> : vector<8xf32>
        %n = arith.addf %a0, %m fastmath<reassoc,contract> : vector<8xf32>
        ...
      }
      %s = vector.reduction <add>, (%v#0 + %v#1), %init fastmath<reassoc,contract>
      %acc' = tensor.insert %s into %acc[%b, %t, %o]
      ...
    }
    ```
  }];
  let options = [
    Option<"vectorWidth", "vector-width", "int64_t", "8",
           "f32 lanes per vector (8 for AVX2, 16 for AVX-512)">,
    Option<"tokenBlock", "token-block", "int64_t", "0",
           "tokens per register block of a W[o, i] projection (0: 2 for "
           "8-lane vectors, 4 for 16-lane ones)">,
    Option<"bf16Dot", "bf16-dot", "std::string", "\"off\"",
           "bf16 W[o, i] weights through AVX512-BF16 dot products "
           "(x86vector.avx512.dot): off; exact (x as the sum of three bf16, "
           "f32 accuracy); round (x rounded to bf16, as llama.cpp's BF16 and "
           "the pip package's bf16 strategy)">,
    Option<"intDot", "int-dot", "std::string", "\"off\"",
           "int8 and packed int4 W[o, i] weights through the integer dot "
           "products of AVX512-VNNI / AVX-VNNI (vpdpbusd) on x quantized "
           "per token: off (weights widened to f32); vnni (x to 15 bits, "
           "two vpdpbusd per step); vnni8 (x to 8 bits, one)">
  ];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::scf::SCFDialect",
                           "::mlir::tensor::TensorDialect",
                           "::mlir::vector::VectorDialect",
                           "::mlir::x86vector::X86VectorDialect",
                           "::mlir::math::MathDialect",
                           "::mlir::rwkv::RWKVDialect"];
}

#endif // RWKV_CODEGEN_PASSES_TD
