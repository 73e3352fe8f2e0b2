#!/usr/bin/env python3
"""Generates ../wkv-grad-numerics.mlir (pure Python, float64): the reference
gradients of rwkv.wkv (spec §1.6 forward, §2.3 backward; w is the log-decay so
dw = dd * exp(w)), checked against central finite differences of
L = sum(dy*y) + sum(dS*S_T) before any number is written.

    python3 wkv_grad_numerics.py > ../wkv-grad-numerics.mlir
"""
import math
import random
import struct
import sys

B, H, N, T = 1, 2, 4, 5
C = H * N
rnd = random.Random(7)


def f32(x):
    return struct.unpack('f', struct.pack('f', x))[0]


def act(lo, hi):  # [B][T][C], rounded to f32 so the test's inputs are exact
    return [[[f32(rnd.uniform(lo, hi)) for _ in range(C)] for _ in range(T)] for _ in range(B)]


def state():
    return [[[[f32(rnd.uniform(-0.5, 0.5)) for _ in range(N)] for _ in range(N)]
             for _ in range(H)] for _ in range(B)]


r, k, v = act(-1, 1), act(-1, 1), act(-1, 1)
w = act(-0.6, -0.05)                                   # log-decay
a = [[[0.0] * C for _ in range(T)] for _ in range(B)]
b = [[[0.0] * C for _ in range(T)] for _ in range(B)]
for bi in range(B):                                    # a = -kk, b = kk * alpha
    for t in range(T):
        for h in range(H):
            kk = [rnd.gauss(0, 1) for _ in range(N)]
            nrm = math.sqrt(sum(x * x for x in kk))
            for n in range(N):
                a[bi][t][h * N + n] = f32(-kk[n] / nrm)
                b[bi][t][h * N + n] = f32(kk[n] / nrm * rnd.uniform(0, 1))
s0 = state()
dy = act(-1, 1)
ds = [[[[f32(rnd.uniform(-1, 1)) for _ in range(N)] for _ in range(N)]
       for _ in range(H)] for _ in range(B)]


def vec(x, bi, t, h):
    return x[bi][t][h * N:(h + 1) * N]


def step(S, wt, kt, vt, at, bt):
    sa = [sum(S[i][j] * at[j] for j in range(N)) for i in range(N)]
    return [[S[i][j] * math.exp(wt[j]) + kt[j] * vt[i] + sa[i] * bt[j]
             for j in range(N)] for i in range(N)], sa


def forward(r, w, k, v, a, b, s0):
    y = [[[0.0] * C for _ in range(T)] for _ in range(B)]
    sT = [[None] * H for _ in range(B)]
    for bi in range(B):
        for h in range(H):
            S = s0[bi][h]
            for t in range(T):
                S, _ = step(S, *(vec(x, bi, t, h) for x in (w, k, v, a, b)))
                rt = vec(r, bi, t, h)
                for i in range(N):
                    y[bi][t][h * N + i] = sum(S[i][j] * rt[j] for j in range(N))
            sT[bi][h] = S
    return y, sT


def backward(r, w, k, v, a, b, s0, dy, ds):
    grads = [[[[0.0] * C for _ in range(T)] for _ in range(B)] for _ in range(6)]
    dr, dw, dk, dv, da, db = grads
    dstate = [[None] * H for _ in range(B)]
    for bi in range(B):
        for h in range(H):
            states, sas = [s0[bi][h]], []
            for t in range(T):
                S, sa = step(states[-1], *(vec(x, bi, t, h) for x in (w, k, v, a, b)))
                states.append(S)
                sas.append(sa)
            G = [row[:] for row in ds[bi][h]]
            for t in range(T - 1, -1, -1):
                rt, wt, kt, vt, at, bt, dyt = (vec(x, bi, t, h) for x in (r, w, k, v, a, b, dy))
                Sp, Sn, sa = states[t], states[t + 1], sas[t]
                d = [math.exp(x) for x in wt]
                G = [[G[i][j] + dyt[i] * rt[j] for j in range(N)] for i in range(N)]
                dsa = [sum(G[i][j] * bt[j] for j in range(N)) for i in range(N)]
                for n in range(N):
                    o = h * N + n
                    dr[bi][t][o] = sum(Sn[i][n] * dyt[i] for i in range(N))
                    dv[bi][t][o] = sum(G[n][j] * kt[j] for j in range(N))
                    dk[bi][t][o] = sum(G[i][n] * vt[i] for i in range(N))
                    db[bi][t][o] = sum(G[i][n] * sa[i] for i in range(N))
                    dw[bi][t][o] = sum(G[i][n] * Sp[i][n] for i in range(N)) * d[n]
                    da[bi][t][o] = sum(Sp[i][n] * dsa[i] for i in range(N))
                G = [[G[i][j] * d[j] + dsa[i] * at[j] for j in range(N)] for i in range(N)]
            dstate[bi][h] = G
    return grads + [dstate]


def flat(x):
    return [y for z in x for y in flat(z)] if isinstance(x, list) else [x]


def unflat(vals, like):
    it = iter(vals)

    def go(x):
        return [go(z) for z in x] if isinstance(x, list) else next(it)
    return go(like)


inputs = [r, w, k, v, a, b, s0]
grads = backward(*inputs, dy, ds)


def loss(xs):
    y, sT = forward(*xs)
    return sum(p * q for p, q in zip(flat(dy), flat(y))) + \
        sum(p * q for p, q in zip(flat(ds), flat(sT)))


# Central finite differences of every input element.
eps, worst = 1e-6, 0.0
for idx, x in enumerate(inputs):
    base, g = flat(x), flat(grads[idx])
    for pos in range(len(base)):
        xs = list(inputs)
        for sign in (1, -1):
            pert = base[:]
            pert[pos] += sign * eps
            xs[idx] = unflat(pert, x)
            if sign == 1:
                lp = loss(xs)
            else:
                lm = loss(xs)
        fd = (lp - lm) / (2 * eps)
        worst = max(worst, abs(fd - g[pos]) / max(abs(v) for v in g))
if worst > 1e-7:
    sys.exit('finite differences disagree: %.2e' % worst)


def pattern(x, tol):
    """A FileCheck regex for printMemrefF32's rendering ('%.6g') of any value
    within tol of x: the leading digits of the values in [x - tol, x + tol]
    (at most 3 alternatives, at most 4 significant digits)."""
    if abs(x) <= tol:                         # on the absolute floor
        return '{{-?[0-9.e+-]+}}'
    lo, hi = abs(x) - tol * 1.01, abs(x) + tol * 1.01   # 1%: the 6-digit rounding
    e = math.floor(math.log10(abs(x)))
    if e < -4 or math.floor(math.log10(lo)) != e or math.floor(math.log10(hi)) != e:
        sys.exit('no fixed-point digits for %r' % x)
    sign = '-' if x < 0 else ''
    for n in (4, 3, 2, 1):
        q = 10.0 ** (e - n + 1)
        first, last = int(lo / q), int(hi / q)
        if last - first <= 2:
            break
    dec = max(0, -(e - n + 1))
    alts = []
    for m in range(first, last + 1):
        digits = '%s%.*f' % (sign, dec, m * q)
        if dec == 0:
            alts.append(digits + '(\\.[0-9]*)?')
            continue
        # '%g' drops trailing zeros: 0.4710 may print as 0.471.
        base = digits.rstrip('0')
        zeros = len(digits) - len(base)
        more = '[0-9]*' if not zeros else '(%s[0-9]*)?' % ('0' * zeros)
        alts.append(base.replace('.', '\\.') + more)
    return '{{' + (alts[0] if len(alts) == 1 else '(%s)' % '|'.join(alts)) + '}}'


def shape(x):
    return [len(x)] + shape(x[0]) if isinstance(x, list) else []


def checks(g):
    vals = flat(g)
    tol_abs = 1e-5 * max(abs(x) for x in vals)
    shp = shape(g)
    lines = ['// CHECK: Unranked Memref {{.*}} sizes = [%s]' % ', '.join(map(str, shp))]
    for i in range(0, len(vals), shp[-1]):
        pats = [pattern(x, max(1e-4 * abs(x), tol_abs)) for x in vals[i:i + shp[-1]]]
        lines.append('// CHECK-NEXT: {{^ *\\[*}}%s{{\\]*,? *$}}' % ',{{ +}}'.join(pats))
    return lines


def dense(x):
    if isinstance(x, list):
        return '[' + ', '.join(dense(z) for z in x) + ']'
    return repr(x)


ACT, STATE, ACT_S = 'tensor<1x?x8xf32>', 'tensor<1x2x4x4xf32>', 'tensor<1x5x8xf32>'
VARIANTS = [('seq2', 'sequential', 2), ('seq3', 'sequential', 3),
            ('chunked2', 'chunked', 2), ('chunked3', 'chunked', 3)]
NAMES = ['dr', 'dw', 'dk', 'dv', 'da', 'db', 'dstate']
PIPE = '''// RUN: rwkv-opt %s --convert-rwkv-to-linalg="chunked-wkv=OPT" \\
// RUN:   --one-shot-bufferize="bufferize-function-boundaries function-boundary-type-conversion=identity-layout-map" \\
// RUN:   --buffer-deallocation-pipeline --convert-bufferization-to-memref \\
// RUN:   --convert-linalg-to-loops --expand-strided-metadata --lower-affine \\
// RUN:   --convert-scf-to-cf --convert-to-llvm --reconcile-unrealized-casts \\
// RUN: | mlir-runner -e main -entry-point-result=void \\
// RUN:   -shared-libs=%mlir_runner_utils,%mlir_c_runner_utils \\
// RUN: | FileCheck %s
'''
out = ['''// GENERATED by Inputs/wkv_grad_numerics.py (float64 reference, checked by
// central finite differences); regenerate rather than edit.
//
// rwkv.wkv_grad run end to end (B=1, H=2, N=4, T=5 passed as dynamic). Every
// gradient of every variant is printed and must match the float64 value
// within 1e-4 relative (absolute floor 1e-5 * max|grad|). chunk_length 2 and
// 3 leave partial last segments / chunks. With chunked-wkv=0 the
// mode = chunked ops take the sequential lowering, with chunked-wkv=1 the
// chunked one.
''' + PIPE.replace('OPT', '0') + PIPE.replace('OPT', '1')]
out.append('func.func private @printMemrefF32(memref<*xf32>) attributes {llvm.emit_c_interface}')
for nm, ty, mty in (('act', ACT, 'memref<1x?x8xf32>'), ('state', STATE, 'memref<1x2x4x4xf32>')):
    out.append('''
func.func @print_%s(%%t: %s) {
  %%m = bufferization.to_buffer %%t read_only : %s to %s
  %%u = memref.cast %%m : %s to memref<*xf32>
  call @printMemrefF32(%%u) : (memref<*xf32>) -> ()
  return
}''' % (nm, ty, ty, mty, mty))
for name, mode, L in VARIANTS:
    args = ', '.join('%%%s: %s' % (n, ACT) for n in 'rwkvab') + \
        ', %%s: %s, %%dy: %s, %%ds: %s' % (STATE, ACT, STATE)
    body = ['', 'func.func @%s(%s) {' % (name, args),
            '  %dr, %dw, %dk, %dv, %da, %db, %dstate = rwkv.wkv_grad %r, %w, %k, %v, %a, %b, %s, %dy, %ds',
            '      {mode = #rwkv<wkv_mode %s>, chunk_length = %d : i64} : %s, %s' % (mode, L, ACT, STATE)]
    for g in NAMES[:6]:
        body.append('  call @print_act(%%%s) : (%s) -> ()' % (g, ACT))
    body.append('  call @print_state(%%dstate) : (%s) -> ()' % STATE)
    body += ['  return', '}']
    out.append('\n'.join(body))

out.append('\nfunc.func @main() {')
for nm, x in zip(['r', 'w', 'k', 'v', 'a', 'b', 'dy'], [r, w, k, v, a, b, dy]):
    out.append('  %%%s_s = arith.constant dense<%s> : %s' % (nm, dense(x), ACT_S))
    out.append('  %%%s = tensor.cast %%%s_s : %s to %s' % (nm, nm, ACT_S, ACT))
out.append('  %%s = arith.constant dense<%s> : %s' % (dense(s0), STATE))
out.append('  %%ds = arith.constant dense<%s> : %s' % (dense(ds), STATE))
for name, _, _ in VARIANTS:
    out.append('  call @%s(%%r, %%w, %%k, %%v, %%a, %%b, %%s, %%dy, %%ds) : (%s) -> ()'
               % (name, ', '.join([ACT] * 6 + [STATE, ACT, STATE])))
out.append('  return\n}\n')
for name, mode, L in VARIANTS:
    out.append('// %s: mode = %s, chunk_length = %d' % (name, mode, L))
    for gname, g in zip(NAMES, grads):
        out.append('// %s' % gname)
        out.extend(checks(g))
    out.append('')
print('\n'.join(out), end='')
print('finite-difference check: max rel. error %.1e' % worst, file=sys.stderr)
