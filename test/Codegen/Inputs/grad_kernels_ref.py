#!/usr/bin/env python3
"""Generates test/Codegen/grad-kernels-numerics.mlir.

Inputs are small constants; the expected outputs are the closed-form
gradients in float64, each checked against central finite differences of the
forward before it is written. The CHECK patterns accept about 4 significant
digits (the kernels run in f32).

    python3 test/Codegen/Inputs/grad_kernels_ref.py > test/Codegen/grad-kernels-numerics.mlir
"""
import math
import sys

import numpy as np

IGNORE = -100


def fd_grad(f, x, h=1e-6):
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        fp = f()
        x[i] = old - h
        fm = f()
        x[i] = old
        g[i] = (fp - fm) / (2 * h)
    return g


def check(name, closed, fd, tol=1e-6):
    err = np.max(np.abs(closed - fd)) if closed.size else 0.0
    scale = max(1.0, np.max(np.abs(closed)))
    assert err <= tol * scale, f"{name}: closed form vs FD differ by {err}"
    print(f"// {name}: |closed - FD| = {err:.1e}", file=sys.stderr)


# ---------------------------------------------------------------- patterns


def num_pattern(e):
    """A regex matching printMemrefF32's %g print of any value within half a
    unit of the 4th significant digit of `e` (but not finer than 1e-5)."""
    if abs(e) < 1e-5:
        # 0 or f32 round-off, printed as e.g. 3.7e-08.
        return "{{-?(0|[0-9.]+e-(0[6-9]|[1-9][0-9]))}}"
    assert 1e-4 <= abs(e) < 1000, f"value {e} out of pattern range"
    d = min(5, max(0, 3 - math.floor(math.log10(abs(e)))))
    half = 0.5 * 10 ** (-d)
    cells = []
    for v in (abs(e) - half, abs(e) + half):
        s = f"{math.floor(v * 10**d) / 10**d:.{d}f}"
        if s not in cells:
            cells.append(s)
    pats = []
    for s in cells:
        if "." in s:
            ip, fr = s.split(".")
            frs = fr.rstrip("0")
            zeros = fr[len(frs):]
            if frs:
                p = ip + r"\." + frs + (f"({zeros}[0-9]*)?" if zeros else "[0-9]*")
            else:
                p = ip + rf"(\.{zeros}[0-9]*)?"
        else:
            p = s + r"(\.[0-9]*)?"
        pats.append(p)
    sign = "-" if e < 0 else ""
    body = pats[0] if len(pats) == 1 else "(" + "|".join(pats) + ")"
    return "{{" + sign + body + "}}"


def check_lines(label, arr, first):
    arr = np.asarray(arr, dtype=np.float64)
    sizes = ", ".join(str(s) for s in arr.shape)
    # The prints are chained with CHECK-NEXT, so none can go missing.
    directive = "CHECK" if first else "CHECK-NEXT"
    out = [f"// {label}",
           f"// {directive}: rank = {arr.ndim} offset = 0 sizes = [{sizes}]"]
    if arr.ndim == 0:
        out.append(f"// CHECK-NEXT: [{num_pattern(float(arr))}]")
        return out
    rows = arr.reshape(-1, arr.shape[-1])
    for r in rows:
        out.append("// CHECK-NEXT: [" + ",    ".join(num_pattern(float(v)) for v in r) + "]")
    return out


def dense(arr, dtype):
    arr = np.asarray(arr)
    def rec(a):
        if a.ndim == 0:
            v = a.item()
            return str(int(v)) if dtype.startswith("i") else repr(float(v))
        return "[" + ", ".join(rec(s) for s in a) + "]"
    shape = "x".join(str(s) for s in arr.shape)
    return f"dense<{rec(arr)}> : tensor<{shape}x{dtype}>"


# --------------------------------------------------------------- references


def ce_forward(x, W, tgt, l2wrap=0.0, with_l2=False):
    xs = x.reshape(-1, x.shape[-1])
    t = tgt.reshape(-1)
    z = xs @ W.T
    m = z.max(axis=1)
    lse = m + np.log(np.exp(z - m[:, None]).sum(axis=1))
    counted = t != IGNORE
    n = counted.sum()
    if n == 0:
        return 0.0
    zt = np.array([z[i, t[i]] if counted[i] else 0.0 for i in range(len(t))])
    loss = (lse - zt)[counted].sum() / n
    if with_l2:
        loss += l2wrap / (2 * n) * (m[counted] ** 2).sum()
    return loss


def ce_grad(x, W, tgt, dloss, l2wrap=0.0):
    xs = x.reshape(-1, x.shape[-1])
    t = tgt.reshape(-1)
    z = xs @ W.T
    counted = t != IGNORE
    n = counted.sum()
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    g = np.zeros_like(z)
    for i in range(len(t)):
        if not counted[i]:
            continue
        g[i] = p[i]
        g[i, t[i]] -= 1
        g[i] *= dloss / n
        if l2wrap > 0:
            am = int(np.argmax(z[i]))  # numpy: first index on ties
            g[i, am] += l2wrap * dloss / n * z[i, am]
    return (g @ W).reshape(x.shape), g.T @ xs


def ln_forward(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def ln_grad(x, w, dy, eps, param_dims=1):
    mu = x.mean(-1, keepdims=True)
    rstd = 1 / np.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + eps)
    xhat = (x - mu) * rstd
    gw = dy * w
    dx = rstd * (gw - gw.mean(-1, keepdims=True)
                 - xhat * (gw * xhat).mean(-1, keepdims=True))
    lead = tuple(range(x.ndim - param_dims))
    return dx, (dy * xhat).sum(lead), dy.sum(lead)


def gn_forward(x, w, b, groups, eps):
    B, T, C = x.shape
    x4 = x.reshape(B, T, groups, C // groups)
    return ln_forward(x4, w.reshape(groups, -1), b.reshape(groups, -1),
                      eps).reshape(x.shape)


def gn_grad(x, w, dy, groups, eps):
    B, T, C = x.shape
    dx, dw, db = ln_grad(x.reshape(B, T, groups, -1), w.reshape(groups, -1),
                         dy.reshape(B, T, groups, -1), eps, 2)
    return dx.reshape(x.shape), dw.reshape(C), db.reshape(C)


def l2n_forward(x, heads, eps):
    B, T, C = x.shape
    x4 = x.reshape(B, T, heads, -1)
    n = np.sqrt((x4 ** 2).sum(-1, keepdims=True))
    return (x4 / np.maximum(n, eps)).reshape(x.shape)


def l2n_grad(x, dy, heads, eps):
    B, T, C = x.shape
    x4 = x.reshape(B, T, heads, -1)
    d4 = dy.reshape(B, T, heads, -1)
    n = np.sqrt((x4 ** 2).sum(-1, keepdims=True))
    y = x4 / np.maximum(n, eps)
    dx = np.where(n > eps, (d4 - y * (y * d4).sum(-1, keepdims=True)) / n,
                  d4 / eps)
    return dx.reshape(x.shape)


# ------------------------------------------------------------------- inputs

rng = np.random.default_rng(7)


def grid(shape, step, lo, hi):
    """Random multiples of `step` in [lo, hi] (exact in bf16 and f32)."""
    k = rng.integers(int(lo / step), int(hi / step) + 1, size=shape)
    return k.astype(np.float64) * step


# cross_entropy, small: B=1, T=3, C=4, V=5, bf16 head; rows 1 and 3 of W
# equal so that token 0 has a tie at its maximum (L2Wrap picks index 1).
ce_x = np.array([[[0.5, -0.25, 1.0, 0.75], [-1.0, 0.5, 0.25, -0.5],
                  [0.25, 1.0, -0.75, 0.5]]])
ce_w = grid((5, 4), 0.125, -1, 1)
ce_w[1] = [0.75, -0.5, 1.0, 0.5]
ce_w[3] = ce_w[1]
ce_t = np.array([[2, IGNORE, 4]])
ce_dloss = 1.5
ce_l2 = 0.5
z0 = ce_x[0, 0] @ ce_w.T
assert z0[1] == z0[3] == z0.max(), "token 0 must tie at its max"

# cross_entropy, tiled: B=2, T=10 (20 tokens: a full tile of 16 and 4).
ct_x = grid((2, 10, 4), 0.0625, -1, 1)
ct_w = grid((5, 4), 0.0625, -1, 1)
ct_t = rng.integers(0, 5, size=(2, 10))
ct_t[1, 7] = IGNORE
ct_dloss = 0.75

ln_x = grid((1, 3, 4), 0.125, -2, 2)
ln_w = grid((4,), 0.125, 0.5, 1.5)  # bf16
ln_dy = grid((1, 3, 4), 0.125, -1, 1)
ln_eps = 1e-5

gn_x = grid((1, 3, 8), 0.125, -2, 2)
gn_w = grid((8,), 0.125, 0.5, 1.5)
gn_dy = grid((1, 3, 8), 0.125, -1, 1)
gn_eps = 0.015625  # 2^-6: large enough to matter

# l2_normalize: head 1 of token 1 has norm < eps, so the clamp is active.
l2_x = grid((1, 3, 8), 0.125, -1, 1)
l2_x[0, 1, 4:] = [0.125, -0.25, 0.125, 0.25]
l2_dy = grid((1, 3, 8), 0.125, -1, 1)
l2_eps = 0.5
assert np.sqrt((l2_x[0, 1, 4:] ** 2).sum()) < l2_eps

ts_ds = grid((2, 3, 2), 0.25, -2, 2)
ts_dl = grid((2, 2), 0.25, -2, 2)

# embed_grad: V=5; id 7 and -1 are out of range and must be dropped.
eg_tok = np.array([[3, 1, 3, 7], [0, 3, -1, 1]])
eg_dy = grid((2, 4, 3), 0.25, -2, 2)
EG_V = 5

# --------------------------------------------------- expected values + FD

ce_loss = ce_forward(ce_x, ce_w, ce_t)
ce_dx, ce_dw = ce_grad(ce_x, ce_w, ce_t, ce_dloss)
check("ce dx", ce_dx, ce_dloss * fd_grad(lambda: ce_forward(ce_x, ce_w, ce_t), ce_x))
check("ce dW", ce_dw, ce_dloss * fd_grad(lambda: ce_forward(ce_x, ce_w, ce_t), ce_w))
ce2_dx, ce2_dw = ce_grad(ce_x, ce_w, ce_t, ce_dloss, ce_l2)
# L2Wrap is the gradient of l2wrap/(2n) Σ (max z)²; the FD runs away from
# the tie (max is not differentiable there), so perturb token 0 off it by
# checking with W rows 1 and 3 separated in the FD model below.
w_sep = ce_w.copy()
w_sep[3] -= 1e-3
dx_sep, dw_sep = ce_grad(ce_x, w_sep, ce_t, ce_dloss, ce_l2)
f_l2 = lambda: ce_forward(ce_x, w_sep, ce_t, ce_l2, True)
check("ce+l2wrap dx", dx_sep, ce_dloss * fd_grad(f_l2, ce_x))
check("ce+l2wrap dW", dw_sep, ce_dloss * fd_grad(f_l2, w_sep))

ct_loss = ce_forward(ct_x, ct_w, ct_t)
ct_dx, ct_dw = ce_grad(ct_x, ct_w, ct_t, ct_dloss)
check("ce tiled dx", ct_dx, ct_dloss * fd_grad(lambda: ce_forward(ct_x, ct_w, ct_t), ct_x))
check("ce tiled dW", ct_dw, ct_dloss * fd_grad(lambda: ce_forward(ct_x, ct_w, ct_t), ct_w))

ln_b = np.zeros(4)
ln_dx, ln_dw, ln_db = ln_grad(ln_x, ln_w, ln_dy, ln_eps)
f = lambda: (ln_dy * ln_forward(ln_x, ln_w, ln_b, ln_eps)).sum()
check("ln dx", ln_dx, fd_grad(f, ln_x))
check("ln dw", ln_dw, fd_grad(f, ln_w))
check("ln db", ln_db, fd_grad(f, ln_b))

gn_b = np.zeros(8)
gn_dx, gn_dw, gn_db = gn_grad(gn_x, gn_w, gn_dy, 2, gn_eps)
f = lambda: (gn_dy * gn_forward(gn_x, gn_w, gn_b, 2, gn_eps)).sum()
check("gn dx", gn_dx, fd_grad(f, gn_x))
check("gn dw", gn_dw, fd_grad(f, gn_w))
check("gn db", gn_db, fd_grad(f, gn_b))

l2_dx = l2n_grad(l2_x, l2_dy, 2, l2_eps)
check("l2n dx", l2_dx,
      fd_grad(lambda: (l2_dy * l2n_forward(l2_x, 2, l2_eps)).sum(), l2_x))

ts_x = np.zeros((2, 3, 2))
ts_prev = np.zeros((2, 2))
def ts_obj():
    shifted = np.concatenate([ts_prev[:, None], ts_x[:, :-1]], axis=1)
    return (ts_ds * shifted).sum() + (ts_dl * ts_x[:, -1]).sum()
ts_din = np.concatenate([ts_ds[:, 1:], ts_dl[:, None]], axis=1)
ts_dprev = ts_ds[:, 0]
check("token_shift dinput", ts_din, fd_grad(ts_obj, ts_x))
check("token_shift dprev", ts_dprev, fd_grad(ts_obj, ts_prev))

eg_table = np.zeros((EG_V, 3))
eg_dt = np.zeros((EG_V, 3))
for (b, t), v in np.ndenumerate(eg_tok):
    if 0 <= v < EG_V:
        eg_dt[v] += eg_dy[b, t]
def eg_obj():
    return sum((eg_dy[b, t] * eg_table[v]).sum()
               for (b, t), v in np.ndenumerate(eg_tok) if 0 <= v < EG_V)
check("embed dtable", eg_dt, fd_grad(eg_obj, eg_table))

# ------------------------------------------------------------------- output

L = []
w = L.append
w("// RUN: rwkv-opt %s --convert-rwkv-to-linalg --one-shot-bufferize=\"bufferize-function-boundaries\" \\")
w("// RUN:   --convert-linalg-to-loops --expand-strided-metadata --lower-affine --convert-scf-to-cf \\")
w("// RUN:   --convert-to-llvm --reconcile-unrealized-casts \\")
w("// RUN: | %mlir-runner -e main -entry-point-result=void -shared-libs=%mlir_runner_utils,%mlir_c_runner_utils \\")
w("// RUN: | FileCheck %s")
w("// REQUIRES: mlir-runner")
w("")
w("// Numerics of the training-op lowerings (codegen/RWKVToLinalg/Gradients.cpp),")
w("// run with mlir-runner. GENERATED by Inputs/grad_kernels_ref.py: the expected")
w("// values are float64 closed forms, each checked against central finite")
w("// differences of the forward; patterns accept ~4 significant digits.")
w("")
w("func.func private @printMemrefF32(tensor<*xf32>)")
w("")

checks = []


def emit_print(name, val, ty, expected):
    w(f"  // {name}")
    w(f"  %{name}_u = tensor.cast {val} : {ty} to tensor<*xf32>")
    w(f"  call @printMemrefF32(%{name}_u) : (tensor<*xf32>) -> ()")
    checks.extend(check_lines(name, expected, not checks))


w("func.func @main() {")
# Constants.
w(f"  %ce_x = arith.constant {dense(ce_x, 'f32')}")
w(f"  %ce_w = arith.constant {dense(ce_w, 'bf16')}")
w(f"  %ce_t = arith.constant {dense(ce_t, 'i32')}")
w(f"  %ce_t64 = arith.constant {dense(ce_t, 'i64')}")
w(f"  %ce_dloss = arith.constant dense<{ce_dloss}> : tensor<f32>")
w("  %ce_loss = rwkv.cross_entropy %ce_x, %ce_w, %ce_t : tensor<1x3x4xf32>, tensor<5x4xbf16>, tensor<1x3xi32> -> tensor<f32>")
w("  %ce_dx, %ce_dw = rwkv.cross_entropy_grad %ce_x, %ce_w, %ce_t, %ce_dloss : tensor<1x3x4xf32>, tensor<5x4xbf16>, tensor<1x3xi32> -> tensor<1x3x4xf32>, tensor<5x4xf32>")
w(f"  %ce2_dx, %ce2_dw = rwkv.cross_entropy_grad %ce_x, %ce_w, %ce_t64, %ce_dloss {{l2wrap = {ce_l2} : f32}} : tensor<1x3x4xf32>, tensor<5x4xbf16>, tensor<1x3xi64> -> tensor<1x3x4xf32>, tensor<5x4xf32>")
emit_print("ce_loss", "%ce_loss", "tensor<f32>", ce_loss)
emit_print("ce_dx", "%ce_dx", "tensor<1x3x4xf32>", ce_dx)
emit_print("ce_dw", "%ce_dw", "tensor<5x4xf32>", ce_dw)
emit_print("ce2_dx", "%ce2_dx", "tensor<1x3x4xf32>", ce2_dx)
emit_print("ce2_dw", "%ce2_dw", "tensor<5x4xf32>", ce2_dw)

w(f"  %ct_x = arith.constant {dense(ct_x, 'f32')}")
w(f"  %ct_w = arith.constant {dense(ct_w, 'f32')}")
w(f"  %ct_t = arith.constant {dense(ct_t, 'i64')}")
w(f"  %ct_dloss = arith.constant dense<{ct_dloss}> : tensor<f32>")
w("  %ct_xd = tensor.cast %ct_x : tensor<2x10x4xf32> to tensor<2x?x4xf32>")
w("  %ct_td = tensor.cast %ct_t : tensor<2x10xi64> to tensor<2x?xi64>")
w("  %ct_loss = rwkv.cross_entropy %ct_xd, %ct_w, %ct_td : tensor<2x?x4xf32>, tensor<5x4xf32>, tensor<2x?xi64> -> tensor<f32>")
w("  %ct_dxd, %ct_dw = rwkv.cross_entropy_grad %ct_xd, %ct_w, %ct_td, %ct_dloss : tensor<2x?x4xf32>, tensor<5x4xf32>, tensor<2x?xi64> -> tensor<2x?x4xf32>, tensor<5x4xf32>")
w("  %ct_dx = tensor.cast %ct_dxd : tensor<2x?x4xf32> to tensor<2x10x4xf32>")
emit_print("ct_loss", "%ct_loss", "tensor<f32>", ct_loss)
emit_print("ct_dx", "%ct_dx", "tensor<2x10x4xf32>", ct_dx)
emit_print("ct_dw", "%ct_dw", "tensor<5x4xf32>", ct_dw)

w(f"  %ln_x = arith.constant {dense(ln_x, 'f32')}")
w(f"  %ln_w = arith.constant {dense(ln_w, 'bf16')}")
w(f"  %ln_dy = arith.constant {dense(ln_dy, 'f32')}")
w("  %ln_dx, %ln_dw, %ln_db = rwkv.layer_norm_grad %ln_x, %ln_w, %ln_dy : tensor<1x3x4xf32>, tensor<4xbf16> -> tensor<1x3x4xf32>, tensor<4xf32>, tensor<4xf32>")
emit_print("ln_dx", "%ln_dx", "tensor<1x3x4xf32>", ln_dx)
emit_print("ln_dw", "%ln_dw", "tensor<4xf32>", ln_dw)
emit_print("ln_db", "%ln_db", "tensor<4xf32>", ln_db)

w(f"  %gn_x = arith.constant {dense(gn_x, 'f32')}")
w(f"  %gn_w = arith.constant {dense(gn_w, 'f32')}")
w(f"  %gn_dy = arith.constant {dense(gn_dy, 'f32')}")
w(f"  %gn_dx, %gn_dw, %gn_db = rwkv.group_norm_grad %gn_x, %gn_w, %gn_dy {{num_groups = 2 : i64, epsilon = {gn_eps} : f32}} : tensor<1x3x8xf32>, tensor<8xf32> -> tensor<1x3x8xf32>, tensor<8xf32>, tensor<8xf32>")
emit_print("gn_dx", "%gn_dx", "tensor<1x3x8xf32>", gn_dx)
emit_print("gn_dw", "%gn_dw", "tensor<8xf32>", gn_dw)
emit_print("gn_db", "%gn_db", "tensor<8xf32>", gn_db)

w(f"  %l2_x = arith.constant {dense(l2_x, 'f32')}")
w(f"  %l2_dy = arith.constant {dense(l2_dy, 'f32')}")
w(f"  %l2_dx = rwkv.l2_normalize_grad %l2_x, %l2_dy {{num_heads = 2 : i64, epsilon = {l2_eps} : f32}} : tensor<1x3x8xf32> -> tensor<1x3x8xf32>")
emit_print("l2_dx", "%l2_dx", "tensor<1x3x8xf32>", l2_dx)

w(f"  %ts_ds = arith.constant {dense(ts_ds, 'f32')}")
w(f"  %ts_dl = arith.constant {dense(ts_dl, 'f32')}")
w("  %ts_din, %ts_dprev = rwkv.token_shift_grad %ts_ds, %ts_dl : tensor<2x3x2xf32>, tensor<2x2xf32>")
emit_print("ts_din", "%ts_din", "tensor<2x3x2xf32>", ts_din)
emit_print("ts_dprev", "%ts_dprev", "tensor<2x2xf32>", ts_dprev)
w("  %ts_dsd = tensor.cast %ts_ds : tensor<2x3x2xf32> to tensor<2x?x2xf32>")
w("  %tsd_dind, %tsd_dprev = rwkv.token_shift_grad %ts_dsd, %ts_dl : tensor<2x?x2xf32>, tensor<2x2xf32>")
w("  %tsd_din = tensor.cast %tsd_dind : tensor<2x?x2xf32> to tensor<2x3x2xf32>")
emit_print("tsd_din", "%tsd_din", "tensor<2x3x2xf32>", ts_din)

w(f"  %eg_tok = arith.constant {dense(eg_tok, 'i32')}")
w(f"  %eg_dy = arith.constant {dense(eg_dy, 'f32')}")
w("  %eg_dt = rwkv.embed_grad %eg_tok, %eg_dy : tensor<2x4xi32>, tensor<2x4x3xf32> -> tensor<5x3xf32>")
emit_print("eg_dt", "%eg_dt", "tensor<5x3xf32>", eg_dt)
w("  return")
w("}")
w("")
L.extend(checks)
print("\n".join(L))
