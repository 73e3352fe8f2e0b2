"""rwkv_mlir.wkv7 (the WKV7 recurrence as a torch autograd op) against a
plain float64 torch recurrence: forward, final state and the gradients of
every input and of the initial state. The kernel libraries come from
`rwkv-compile --kernel wkv7` (the python.wkv7.compile.* fixtures):
$RWKV_WKV7_LIBS lists them, ':'-separated. $RWKV_COMPILE, when set, is
rwkv-compile for the option-error checks."""

import os
import subprocess
import unittest

import torch

import rwkv_mlir
from rwkv_mlir import RWKVError

LIBS = [p for p in os.environ.get("RWKV_WKV7_LIBS", "").split(":") if p]
COMPILE = os.environ.get("RWKV_COMPILE")


def reference(r, w, k, v, a, b, state0, heads):
    """sa = S a; S = S diag(exp(w)) + v k^T + sa b^T; y = S r, per row and
    head; S[i][j] with i the value and j the key channel."""
    bsz, t, c = r.shape
    n = c // heads

    def split(x):
        return x.view(bsz, t, heads, n)

    r, w, k, v, a, b = map(split, (r, w, k, v, a, b))
    s = state0
    ys = []
    for i in range(t):
        sa = torch.einsum("bhij,bhj->bhi", s, a[:, i])
        s = (s * torch.exp(w[:, i]).unsqueeze(2) +
             v[:, i].unsqueeze(3) * k[:, i].unsqueeze(2) +
             sa.unsqueeze(3) * b[:, i].unsqueeze(2))
        ys.append(torch.einsum("bhij,bhj->bhi", s, r[:, i]))
    return torch.stack(ys, 1).reshape(bsz, t, c), s


def inputs(lib, seed):
    g = torch.Generator().manual_seed(seed)
    shape = (lib.batch, lib.context, lib.heads, lib.head_size)

    def rnd(scale=1.0):
        return torch.randn(shape, generator=g, dtype=torch.float64) * scale

    r, k, v = rnd(0.5), rnd(0.5), rnd(0.5)
    # w: the log-decay in (-0.6, 0); a, b as RWKV-7 makes them (-kk and
    # kk * iclr with kk unit-norm per head), so the state stays bounded.
    w = -0.6 * torch.rand(shape, generator=g, dtype=torch.float64) - 1e-3
    kk = rnd()
    kk = kk / kk.norm(dim=-1, keepdim=True)
    iclr = torch.rand(shape, generator=g, dtype=torch.float64)
    a, b = -kk, kk * iclr
    flat = [x.reshape(lib.batch, lib.context, -1) for x in (r, w, k, v, a, b)]
    state0 = torch.randn(lib.state_shape, generator=g,
                         dtype=torch.float64) * 0.3
    return flat, state0


def assert_close(tc, got, want, what, rtol=1e-4):
    got = got.double()
    err = (got - want).abs().max().item()
    scale = want.abs().max().item()
    tc.assertLessEqual(err, rtol * scale + 1e-7,
                       f"{what}: max error {err:.3g}, max |ref| {scale:.3g}")


@unittest.skipUnless(LIBS, "RWKV_WKV7_LIBS is not set")
class WKV7(unittest.TestCase):

    def check_library(self, path):
        lib = rwkv_mlir.WKV7Library(path)
        self.assertEqual((lib.batch, lib.context, lib.heads, lib.head_size),
                         (2, 20, 2, 8))
        flat, state0 = inputs(lib, 0)
        # float64 reference with torch autograd.
        ref_in = [x.clone().requires_grad_() for x in flat]
        ref_s0 = state0.clone().requires_grad_()
        y_ref, s_ref = reference(*ref_in, ref_s0, lib.heads)
        g = torch.Generator().manual_seed(1)
        gy = torch.randn(y_ref.shape, generator=g, dtype=torch.float64)
        gs = torch.randn(s_ref.shape, generator=g, dtype=torch.float64)
        ((y_ref * gy).sum() + (s_ref * gs).sum()).backward()

        # The op on float32 copies.
        op_in = [x.float().requires_grad_() for x in flat]
        op_s0 = state0.float().requires_grad_()
        y, s = rwkv_mlir.wkv7(*op_in, op_s0, library=lib)
        self.assertEqual(y.shape, y_ref.shape)
        self.assertEqual(y.dtype, torch.float32)
        assert_close(self, y.detach(), y_ref.detach(), f"{path}: y")
        assert_close(self, s.detach(), s_ref.detach(), f"{path}: state")
        ((y * gy.float()).sum() + (s * gs.float()).sum()).backward()
        for name, x, xr in zip("rwkvab", op_in, ref_in):
            assert_close(self, x.grad, xr.grad, f"{path}: d{name}")
        assert_close(self, op_s0.grad, ref_s0.grad, f"{path}: dstate0")

        # [B, T, H, N] inputs, no initial state, only y used (grad_state
        # is None), library given by path.
        shape4 = (lib.batch, lib.context, lib.heads, lib.head_size)
        ref_in = [x.clone().requires_grad_() for x in flat]
        y_ref, _ = reference(*ref_in, torch.zeros_like(state0), lib.heads)
        (y_ref * gy).sum().backward()
        op_in = [x.float().view(shape4).requires_grad_() for x in flat]
        y, s = rwkv_mlir.wkv7(*op_in, library=path)
        self.assertEqual(tuple(y.shape), shape4)
        assert_close(self, y.detach().reshape(y_ref.shape), y_ref.detach(),
                     f"{path}: y (4-d, zero state)")
        (y.reshape(gy.shape) * gy.float()).sum().backward()
        for name, x, xr in zip("rwkvab", op_in, ref_in):
            assert_close(self, x.grad.reshape(xr.shape), xr.grad,
                         f"{path}: d{name} (4-d, zero state)")

    def test_libraries(self):
        for path in LIBS:
            with self.subTest(library=path):
                self.check_library(path)

    def test_errors(self):
        lib = rwkv_mlir.WKV7Library(LIBS[0])
        flat, _ = inputs(lib, 2)
        flat = [x.float() for x in flat]
        with self.assertRaisesRegex(ValueError, "the library .* takes"):
            rwkv_mlir.wkv7(*[x[:, :10] for x in flat], library=lib)
        with self.assertRaisesRegex(ValueError, "state0 has shape"):
            rwkv_mlir.wkv7(*flat, torch.zeros(1, 2, 8, 8), library=lib)
        with self.assertRaisesRegex(ValueError, "k has shape"):
            rwkv_mlir.wkv7(flat[0], flat[1], flat[2][:1], *flat[3:],
                           library=lib)
        with self.assertRaises(RWKVError) as cm:
            rwkv_mlir.WKV7Library("/nonexistent/wkv7.so")
        self.assertEqual(cm.exception.status, 2)
        self.assertIn("/nonexistent/wkv7.so", str(cm.exception))

    @unittest.skipUnless(COMPILE, "RWKV_COMPILE is not set")
    def test_compile_errors(self):
        cases = [
            (["--kernel", "wkv8", "--ctx", "4", "--heads", "1",
              "--head-size", "4"], "unknown --kernel 'wkv8'"),
            (["--kernel", "wkv7", "--ctx", "4", "--head-size", "4"],
             "--kernel needs --heads"),
            (["--kernel", "wkv7", "--heads", "1", "--head-size", "4"],
             "--kernel needs --ctx"),
            (["--kernel", "wkv7", "--ctx", "4", "--heads", "1"],
             "--kernel needs --head-size"),
            (["--kernel", "wkv7", "--ctx", "4", "--heads", "1",
              "--head-size", "4", "--train-wkv", "fast"],
             "--train-wkv must be sequential or chunked"),
            (["--heads", "2", "model.pth"], "kernel options"),
        ]
        for args, message in cases:
            with self.subTest(args=args):
                p = subprocess.run([COMPILE, *args, "-o", os.devnull],
                                   capture_output=True, text=True)
                self.assertNotEqual(p.returncode, 0)
                self.assertIn(message, p.stderr)


if __name__ == "__main__":
    unittest.main()
