//===- RWKV4Ops.td - ops specific to RWKV-4 ----------------*- tablegen -*-===//
//
// RWKV-4 shares embed, the norms, mix (with the operands swapped: its mixes
// weight the current token), linear and head with the later versions; only
// its per-channel WKV with the (aa, bb, pp) state is its own.
//
//===----------------------------------------------------------------------===//

#ifndef RWKV_DIALECT_RWKV4OPS_TD
#define RWKV_DIALECT_RWKV4OPS_TD

def RWKV_WKV4Op : RWKV_Op<"wkv4", [Pure,
    AllTypesMatch<["k", "v", "y"]>, AllTypesMatch<["w", "u"]>,
    AllTypesMatch<["aa", "bb", "pp", "new_aa", "new_bb", "new_pp"]>]> {
  let summary = "The RWKV-4 WKV recurrence in its numerically stable form";
  let description = [{
    Per batch row and channel, over t = 0..T-1 (spec §4.2), with the
    log-decay `w = -exp(time_decay)` and the bonus `u = time_first`:

    ```
    ww = u + k;  p = max(pp, ww);  e1 = exp(pp - p);  e2 = exp(ww - p)
    y  = (e1 * aa + e2 * v) / (e1 * bb + e2)
    ww = w + pp; p = max(ww, k);   e1 = exp(ww - p);  e2 = exp(k - p)
    aa = e1 * aa + e2 * v;  bb = e1 * bb + e2;  pp = p
    ```

    `k, v, y` are `[B, T, C]`, `w, u` are `[C]`, the state `aa, bb, pp` is
    `[B, C]` each (`pp` starts at -1e30). The sums it keeps are
    `a_t = aa * e^pp` and `b_t = bb * e^pp`, so no exponent overflows.

    ```mlir
    %y, %aa1, %bb1, %pp1 = rwkv.wkv4 %w, %u, %k, %v, %aa, %bb, %pp
        : tensor<128xf32>, tensor<1x?x128xf32>, tensor<1x128xf32>
    ```
  }];
  let arguments = (ins RWKV_Activation:$w, RWKV_Activation:$u,
                       RWKV_Activation:$k, RWKV_Activation:$v,
                       RWKV_Activation:$aa, RWKV_Activation:$bb,
                       RWKV_Activation:$pp);
  let results = (outs RWKV_Activation:$y, RWKV_Activation:$new_aa,
                      RWKV_Activation:$new_bb, RWKV_Activation:$new_pp);
  let assemblyFormat = [{
    $w `,` $u `,` $k `,` $v `,` $aa `,` $bb `,` $pp attr-dict `:` type($w)
    `,` type($k) `,` type($aa)
  }];
  let hasVerifier = 1;
}

#endif // RWKV_DIALECT_RWKV4OPS_TD
