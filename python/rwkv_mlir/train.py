"""TrainLibrary: a training library from `rwkv-compile --train` through the
C API (rwkvrt_train_*). Works on numpy arrays and, where torch is installed,
on CPU torch tensors; see docs/python.md."""

import ctypes
import json
from collections import namedtuple
from collections.abc import Mapping

import numpy as np

from . import _capi

WeightSpec = namedtuple("WeightSpec", "name dtype shape numel")

# numpy has no bfloat16: bf16 buffers are uint16 bit patterns.
_NP_DTYPES = {"f32": np.float32, "f16": np.float16, "bf16": np.uint16}
_TORCH_DTYPES = {"f32": "float32", "f16": "float16", "bf16": "bfloat16"}


def _torch_module():
    try:
        import torch
        return torch
    except ImportError:
        return None


def _is_torch(x):
    torch = _torch_module()
    return torch is not None and isinstance(x, torch.Tensor)


def float_to_bf16_bits(a):
    """float32 array -> bf16 bit patterns (uint16), round to nearest even."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    rounded = (u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1)))
    bits = (rounded >> np.uint32(16)).astype(np.uint16)
    nan = np.isnan(a)
    if nan.any():
        bits[nan] = 0x7FC0
    return bits


def bf16_bits_to_float(bits):
    """bf16 bit patterns (uint16) -> float32."""
    b = np.ascontiguousarray(bits, dtype=np.uint16).astype(np.uint32)
    return (b << np.uint32(16)).view(np.float32)


class TrainLibrary:
    """A loaded training library. `step` runs `rwkv_train_step`: the mean
    cross-entropy of a [B, T] batch and the f32 gradient of every weight and
    of each layer's initial WKV state. The caller owns the weights."""

    def __init__(self, path, threads=0, runtime=None, reuse_memory=True):
        self._lib = _capi.load_runtime(runtime)
        if reuse_memory:
            # Keep the step's freed buffers in malloc's heap (process-wide;
            # rwkvrt_train_reuse_freed_memory in rwkv_runtime.h).
            self._lib.rwkvrt_train_reuse_freed_memory()
        self.path = str(path)
        handle = ctypes.c_void_p()
        _capi.check(self._lib,
                    self._lib.rwkvrt_train_open(self.path.encode(),
                                                int(threads),
                                                ctypes.byref(handle)))
        self._handle = handle
        desc = _capi.TrainDesc()
        self._check(self._lib.rwkvrt_train_config(handle, ctypes.byref(desc)))
        self.batch = desc.batch
        self.context = desc.context
        self.vocab_size = desc.vocab_size
        self.n_layer = desc.n_layer
        self.ignore_index = desc.ignore_index
        js = ctypes.c_char_p()
        self._check(self._lib.rwkvrt_train_info_json(handle,
                                                     ctypes.byref(js)))
        self.info_json = js.value.decode()
        self.info = json.loads(self.info_json)
        self.weights = []
        for i in range(desc.n_weights):
            name, dtype = ctypes.c_char_p(), ctypes.c_char_p()
            shape = ctypes.POINTER(ctypes.c_int64)()
            rank, numel = ctypes.c_size_t(), ctypes.c_size_t()
            self._check(self._lib.rwkvrt_train_weight(
                handle, i, ctypes.byref(name), ctypes.byref(dtype),
                ctypes.byref(shape), ctypes.byref(rank), ctypes.byref(numel)))
            self.weights.append(
                WeightSpec(name.value.decode(), dtype.value.decode(),
                           tuple(shape[d] for d in range(rank.value)),
                           numel.value))
        self.weight_names = [w.name for w in self.weights]
        self._index = {w.name: i for i, w in enumerate(self.weights)}
        self.state_shape = ()
        self.state_numel = 0
        if self.n_layer:
            shape = ctypes.POINTER(ctypes.c_int64)()
            rank, numel = ctypes.c_size_t(), ctypes.c_size_t()
            self._check(self._lib.rwkvrt_train_state_shape(
                handle, 0, ctypes.byref(shape), ctypes.byref(rank),
                ctypes.byref(numel)))
            self.state_shape = tuple(shape[d] for d in range(rank.value))
            self.state_numel = numel.value

    def _check(self, status, what=""):
        _capi.check(self._lib, status, what or self.path)

    def close(self):
        if getattr(self, "_handle", None):
            self._lib.rwkvrt_train_close(self._handle)
            self._handle = None

    def __del__(self):
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return (f"TrainLibrary('{self.path}', batch={self.batch}, "
                f"context={self.context}, vocab={self.vocab_size}, "
                f"layers={self.n_layer}, weights={len(self.weights)})")

    # -- argument conversion ------------------------------------------------

    def _tokens(self, x, what):
        shape = (self.batch, self.context)
        if _is_torch(x):
            torch = _torch_module()
            t = x.detach().to("cpu", torch.int32).contiguous()
            got = tuple(t.shape)
            keep, ptr = t, t.data_ptr()
        else:
            a = np.ascontiguousarray(x, dtype=np.int32)
            got = a.shape
            keep, ptr = a, a.ctypes.data
        if got != shape:
            raise ValueError(f"{self.path}: {what} have shape {list(got)}, "
                             f"the library takes {list(shape)} [B, T]")
        return keep, ctypes.cast(ptr, ctypes.POINTER(ctypes.c_int32))

    @staticmethod
    def _input(x, dtype, numel, what):
        """A contiguous copy (or view) of `x` in `dtype`; (keep, address)."""
        if _is_torch(x):
            torch = _torch_module()
            t = x.detach().to("cpu", getattr(torch, _TORCH_DTYPES[dtype]))
            t = t.contiguous()
            n, shape = t.numel(), list(t.shape)
            keep, ptr = t, t.data_ptr()
        else:
            a = np.asarray(x)
            if dtype == "bf16" and a.dtype != np.uint16:
                a = float_to_bf16_bits(a)
            else:
                a = np.ascontiguousarray(a, dtype=_NP_DTYPES[dtype])
            n, shape = a.size, list(a.shape)
            keep, ptr = a, a.ctypes.data
        if n != numel:
            raise ValueError(f"{what} has shape {shape} ({n} elements), the "
                             f"library takes {numel} elements")
        return keep, ptr

    def _weight_list(self, weights):
        if isinstance(weights, Mapping):
            missing = [n for n in self.weight_names if n not in weights]
            if missing:
                raise KeyError(f"{self.path}: no value for weight "
                               f"'{missing[0]}' ({len(missing)} missing)")
            return [weights[n] for n in self.weight_names]
        weights = list(weights)
        if len(weights) != len(self.weights):
            raise ValueError(f"{self.path}: {len(weights)} weights given, "
                             f"the library takes {len(self.weights)}")
        return weights

    def _state_list(self, states):
        if states is None:
            return None
        if (_is_torch(states) or isinstance(states, np.ndarray)) and \
                states.ndim == len(self.state_shape) + 1:
            states = [states[l] for l in range(states.shape[0])]
        states = list(states)
        if len(states) != self.n_layer:
            raise ValueError(f"{self.path}: {len(states)} initial states "
                             f"given, the library takes {self.n_layer}")
        return states

    def _call_args(self, inputs, targets, weights, states):
        keep = []
        k, in_ptr = self._tokens(inputs, "inputs")
        keep.append(k)
        k, tgt_ptr = self._tokens(targets, "targets")
        keep.append(k)
        weights = self._weight_list(weights)
        w_ptrs = (ctypes.c_void_p * len(weights))()
        for i, (w, spec) in enumerate(zip(weights, self.weights)):
            k, w_ptrs[i] = self._input(w, spec.dtype, spec.numel,
                                       f"weight '{spec.name}'")
            keep.append(k)
        states = self._state_list(states)
        s_ptrs = None
        if states is not None:
            s_ptrs = (ctypes.c_void_p * self.n_layer)()
            for l, s in enumerate(states):
                if s is not None:
                    k, s_ptrs[l] = self._input(s, "f32", self.state_numel,
                                               f"initial state of layer {l}")
                    keep.append(k)
        return keep, in_ptr, tgt_ptr, w_ptrs, s_ptrs, any(
            _is_torch(w) for w in weights)

    @staticmethod
    def _output(buf, numel, what):
        if _is_torch(buf):
            torch = _torch_module()
            if buf.dtype != torch.float32 or buf.device.type != "cpu" or \
                    not buf.is_contiguous() or buf.numel() != numel:
                raise ValueError(f"{what}: the output buffer must be a "
                                 f"contiguous CPU float32 tensor of {numel} "
                                 f"elements")
            return buf.data_ptr()
        if not isinstance(buf, np.ndarray) or buf.dtype != np.float32 or \
                not buf.flags.c_contiguous or not buf.flags.writeable or \
                buf.size != numel:
            raise ValueError(f"{what}: the output buffer must be a writable "
                             f"C-contiguous float32 array of {numel} elements")
        return buf.ctypes.data

    def _new_output(self, shape, as_torch):
        if as_torch:
            torch = _torch_module()
            return torch.empty(shape, dtype=torch.float32)
        return np.empty(shape, dtype=np.float32)

    # -- entry points -------------------------------------------------------

    def step(self, inputs, targets, weights, states=None, weight_grads=None,
             state_grads=None):
        """One training step. `inputs`, `targets`: [B, T] ids. `weights`: in
        `weight_names` order (or a mapping by name), any float dtype: each is
        converted to the library's dtype (bf16 weights get bf16 copies).
        `states`: None (zero), per-layer [B, H, N, N] (entries may be None)
        or one [L, B, H, N, N] array. `weight_grads` / `state_grads`:
        optional preallocated float32 outputs. Returns (loss, weight_grads,
        state_grads): gradients in the library's shapes, torch tensors when
        the weights are torch tensors, else numpy arrays."""
        keep, in_ptr, tgt_ptr, w_ptrs, s_ptrs, as_torch = self._call_args(
            inputs, targets, weights, states)
        if weight_grads is None:
            weight_grads = [self._new_output(w.shape, as_torch)
                            for w in self.weights]
        if state_grads is None:
            state_grads = [self._new_output(self.state_shape, as_torch)
                           for _ in range(self.n_layer)]
        weight_grads, state_grads = list(weight_grads), list(state_grads)
        if len(weight_grads) != len(self.weights) or \
                len(state_grads) != self.n_layer:
            raise ValueError(f"{self.path}: one gradient buffer per weight "
                             f"and per layer is needed")
        g_ptrs = (ctypes.c_void_p * len(self.weights))()
        for i, (g, spec) in enumerate(zip(weight_grads, self.weights)):
            g_ptrs[i] = self._output(g, spec.numel,
                                     f"gradient of '{spec.name}'")
        sg_ptrs = (ctypes.c_void_p * max(self.n_layer, 1))()
        for l, g in enumerate(state_grads):
            sg_ptrs[l] = self._output(g, self.state_numel,
                                      f"gradient of the state of layer {l}")
        loss = ctypes.c_float()
        self._check(self._lib.rwkvrt_train_step(
            self._handle, in_ptr, tgt_ptr, w_ptrs, s_ptrs, g_ptrs, sg_ptrs,
            ctypes.byref(loss)))
        del keep
        return loss.value, weight_grads, state_grads

    def loss(self, inputs, targets, weights, states=None):
        """The loss alone (`rwkv_train_loss`, forward only)."""
        keep, in_ptr, tgt_ptr, w_ptrs, s_ptrs, _ = self._call_args(
            inputs, targets, weights, states)
        loss = ctypes.c_float()
        self._check(self._lib.rwkvrt_train_loss(
            self._handle, in_ptr, tgt_ptr, w_ptrs, s_ptrs, ctypes.byref(loss)))
        del keep
        return loss.value
