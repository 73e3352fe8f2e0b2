"""The WKV7 recurrence as a torch autograd op over a kernel library from
`rwkv-compile --kernel wkv7 --batch B --ctx T --heads H --head-size N`
(C API rwkvrt_kernel_* / rwkvrt_wkv7_*; see docs/python.md)."""

import ctypes
import os

import torch

from ._capi import check, load_runtime

KERNEL_ENV = "RWKV_MLIR_WKV7_LIBRARY"


class WKV7Library:
    """A WKV7 kernel library: `forward` and `backward` on CPU float32
    tensors of the compiled shape ([B, T, H*N] and [B, H, N, N])."""

    def __init__(self, path, threads=0):
        self._rt = load_runtime()
        self.path = str(path)
        handle = ctypes.c_void_p()
        check(self._rt, self._rt.rwkvrt_kernel_open(
            self.path.encode(), int(threads), ctypes.byref(handle)))
        self._handle = handle
        dims = [ctypes.c_int64() for _ in range(4)]
        check(self._rt, self._rt.rwkvrt_kernel_shape(
            handle, *[ctypes.byref(d) for d in dims]))
        self.batch, self.context, self.heads, self.head_size = (
            d.value for d in dims)
        self.channels = self.heads * self.head_size

    def __del__(self):
        h = getattr(self, "_handle", None)
        if h is not None and h.value:
            self._rt.rwkvrt_kernel_close(h)
            self._handle = None

    @property
    def act_shape(self):
        return (self.batch, self.context, self.channels)

    @property
    def state_shape(self):
        return (self.batch, self.heads, self.head_size, self.head_size)

    def _f32(self, t, shape, name):
        if t.device.type != "cpu":
            raise ValueError(f"wkv7: {name} is on {t.device}; the kernel "
                             f"library runs on the CPU")
        if t.numel() != _prod(shape):
            raise ValueError(
                f"wkv7: {name} has shape {list(t.shape)}, the library "
                f"{self.path} is compiled for {list(shape)}")
        return t.detach().to(torch.float32).contiguous().view(shape)

    def forward(self, r, w, k, v, a, b, state0=None):
        """(y [B, T, C], final state [B, H, N, N]) as float32."""
        ins = [self._f32(t, self.act_shape, n)
               for t, n in zip((r, w, k, v, a, b), "rwkvab")]
        s0 = None if state0 is None else self._f32(state0, self.state_shape,
                                                   "state0")
        y = torch.empty(self.act_shape, dtype=torch.float32)
        s = torch.empty(self.state_shape, dtype=torch.float32)
        check(self._rt, self._rt.rwkvrt_wkv7_forward(
            self._handle, *[t.data_ptr() for t in ins],
            None if s0 is None else s0.data_ptr(), y.data_ptr(),
            s.data_ptr()), "wkv7 forward")
        return y, s

    def backward(self, r, w, k, v, a, b, state0, dy, dstate):
        """(dr, dw, dk, dv, da, db, dstate0) as float32; state0, dy and
        dstate may be None (zero)."""
        ins = [self._f32(t, self.act_shape, n)
               for t, n in zip((r, w, k, v, a, b), "rwkvab")]
        s0 = None if state0 is None else self._f32(state0, self.state_shape,
                                                   "state0")
        if dy is None:
            dy = torch.zeros(self.act_shape, dtype=torch.float32)
        dy = self._f32(dy, self.act_shape, "grad_y")
        ds = None if dstate is None else self._f32(dstate, self.state_shape,
                                                   "grad_state")
        grads = [torch.empty(self.act_shape, dtype=torch.float32)
                 for _ in range(6)]
        gs = torch.empty(self.state_shape, dtype=torch.float32)
        check(self._rt, self._rt.rwkvrt_wkv7_backward(
            self._handle, *[t.data_ptr() for t in ins],
            None if s0 is None else s0.data_ptr(), dy.data_ptr(),
            None if ds is None else ds.data_ptr(),
            *[g.data_ptr() for g in grads], gs.data_ptr()), "wkv7 backward")
        return (*grads, gs)


def _prod(shape):
    n = 1
    for d in shape:
        n *= d
    return n


_libraries = {}


def _library(library):
    if isinstance(library, WKV7Library):
        return library
    if library is None:
        library = os.environ.get(KERNEL_ENV)
        if not library:
            raise ValueError(
                "wkv7: no kernel library: pass library=PATH (from "
                "rwkv-compile --kernel wkv7 ...) or set " + KERNEL_ENV)
    key = os.path.realpath(str(library))
    lib = _libraries.get(key)
    if lib is None:
        lib = _libraries[key] = WKV7Library(library)
    return lib


class _WKV7(torch.autograd.Function):

    @staticmethod
    def forward(ctx, lib, r, w, k, v, a, b, state0):
        y, s = lib.forward(r, w, k, v, a, b, state0)
        ctx.lib = lib
        ctx.save_for_backward(r, w, k, v, a, b, state0)
        ctx.has_state0 = state0 is not None
        return y, s

    @staticmethod
    def backward(ctx, grad_y, grad_state):
        r, w, k, v, a, b, state0 = ctx.saved_tensors
        if not ctx.has_state0:
            state0 = None
        grads = ctx.lib.backward(r, w, k, v, a, b, state0, grad_y, grad_state)
        ins = (r, w, k, v, a, b)
        out = [None]
        for g, x in zip(grads[:6], ins):
            out.append(g.view(x.shape).to(x.dtype))
        out.append(grads[6].to(state0.dtype) if ctx.has_state0 else None)
        return tuple(out)


def wkv7(r, w, k, v, a, b, state0=None, library=None):
    """The RWKV-7 WKV recurrence as an autograd op (RWKV-LM / fla style):
    per row and head, with d = exp(w) (`w` is the LOG-decay, w <= 0),

        sa = S a;  S = S diag(d) + v k^T + sa b^T;  y = S r

    `r, w, k, v, a, b`: [B, T, H*N] or [B, T, H, N] CPU tensors of the
    library's shape (computed in float32); `state0`: [B, H, N, N] or None
    (zero). `library`: a WKV7Library or the path of a library from
    `rwkv-compile --kernel wkv7 --batch B --ctx T --heads H --head-size N`
    (default $RWKV_MLIR_WKV7_LIBRARY). Returns (y, final_state): y in r's
    shape and dtype, the state [B, H, N, N] float32. Gradients flow to every
    input and to state0."""
    lib = _library(library)
    shape = r.shape
    for name, t in zip("wkvab", (w, k, v, a, b)):
        if t.shape != shape:
            raise ValueError(f"wkv7: {name} has shape {list(t.shape)}, r has "
                             f"{list(shape)}")
    if tuple(shape[:2]) != (lib.batch, lib.context) or (
            tuple(shape[2:]) not in ((lib.channels,),
                                     (lib.heads, lib.head_size))):
        raise ValueError(
            f"wkv7: inputs have shape {list(shape)}, the library {lib.path} "
            f"takes [{lib.batch}, {lib.context}, {lib.channels}] or "
            f"[{lib.batch}, {lib.context}, {lib.heads}, {lib.head_size}]")
    if state0 is not None and tuple(state0.shape) != lib.state_shape:
        raise ValueError(f"wkv7: state0 has shape {list(state0.shape)}, "
                         f"expected {list(lib.state_shape)}")
    y, s = _WKV7.apply(lib, r, w, k, v, a, b, state0)
    return y.view(shape).to(r.dtype), s
