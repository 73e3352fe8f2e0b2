//===- RWKV5Ops.td - ops specific to RWKV-5 and RWKV-6 -----*- tablegen -*-===//
//
// RWKV-5 (Eagle) and RWKV-6 (Finch) share one WKV: a per-head matrix state
// with a diagonal decay and a bonus for the current token. They differ only
// in where the decay comes from (a static `[C]` parameter in 5.x, a per-token
// `[B, T, C]` value computed through a LoRA in 6), which is the shape of
// the `w` operand, not a second op.
//
//===----------------------------------------------------------------------===//

#ifndef RWKV_DIALECT_RWKV5OPS_TD
#define RWKV_DIALECT_RWKV5OPS_TD

def RWKV_WKV5Op : RWKV_Op<"wkv5", [Pure,
    AllTypesMatch<["r", "k", "v", "y"]>,
    AllTypesMatch<["state", "new_state"]>]> {
  let summary = "The RWKV-5/6 WKV recurrence (diagonal decay and bonus)";
  let description = [{
    For each batch row and head, over t = 0..T-1 (spec §4.3, §4.4), with the
    state `S[key i][value j]` (the pip package's layout) and the decay
    `d = exp(-exp(w))` taken from the log-log decay `w`:

    ```
    y[j]    = sum_i r[i] * (u[i] * k[i] * v[j] + S[i][j])
    S[i][j] = k[i] * v[j] + d[i] * S[i][j]
    ```

    `r, k, v, y` are `[B, T, C]` and `u` is `[C]` (`H * N = C`). `w` is
    either `[C]` (RWKV-5: one decay per channel for every token) or
    `[B, T, C]` (RWKV-6: data-dependent). The state is `[B, H, N, N]`.

    ```mlir
    %y, %s = rwkv.wkv5 %r, %w, %k, %v, %u, %state
        : tensor<1x?x128xf32>, tensor<128xf32>, tensor<128xf32>,
          tensor<1x2x64x64xf32>
    ```
  }];
  let arguments = (ins RWKV_Activation:$r, RWKV_Activation:$w,
                       RWKV_Activation:$k, RWKV_Activation:$v,
                       RWKV_Activation:$u, RWKV_Activation:$state);
  let results = (outs RWKV_Activation:$y, RWKV_Activation:$new_state);
  let assemblyFormat = [{
    $r `,` $w `,` $k `,` $v `,` $u `,` $state attr-dict `:` type($r) `,`
    type($w) `,` type($u) `,` type($state)
  }];
  let hasVerifier = 1;
}

#endif // RWKV_DIALECT_RWKV5OPS_TD
