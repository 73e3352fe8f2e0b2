"""`RWKV`: the `rwkv` pip package's model API (`rwkv.model.RWKV`) on
libraries compiled by rwkv-compile (see docs/python.md, "pip-compatible
API").

    from rwkv_mlir.model import RWKV
    model = RWKV(model="/path/RWKV-x070-World-0.1B", strategy="cpu fp32")
    # also a llama.cpp RWKV-7 GGUF: RWKV(model="/path/model-F16.gguf", ...)
    out, state = model.forward([187, 510, 1563], None)   # GPT mode
    out, state = model.forward([310], state)              # RNN mode

The first use of a checkpoint compiles it with rwkv-compile into a cache
folder ($RWKV_MLIR_CACHE, default ~/.cache/rwkv_mlir); later uses load the
cached library. Everything runs through the runtime's C API
(runtime/core/rwkv_runtime.h) with ctypes.
"""

import ctypes
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import types

import numpy as np

from . import _capi
from . import _checkpoint
from ._capi import RWKVError

CACHE_ENV = "RWKV_MLIR_CACHE"
COMPILER_ENV = "RWKV_MLIR_COMPILER"
THREADS_ENV = "RWKV_MLIR_THREADS"
QUIET_ENV = "RWKV_MLIR_QUIET"
# Bumped when the cache layout or the conversion rules change.
_CACHE_FORMAT = 1

__all__ = ["RWKV", "RWKVState", "RWKVError", "StrategyError",
           "parse_strategy", "cache_dir", "find_compiler"]


def _torch():
    try:
        import torch
        return torch
    except ImportError:
        return None


# -- strategy ----------------------------------------------------------------

class StrategyError(ValueError):
    """A strategy string the pip grammar (spec §6.1) does not accept."""


# pip's regex (rwkv/model.py): stages "device dtype[quant] [*N[+]]" joined
# by "->".
_STRATEGY_RE = re.compile(
    r"^(?:(?:^|->) *(?:cuda(?::[\d]+)?|cpu|mps|dml) "
    r"(?:fp(?:16|32)|bf16)(?:i8|i4|i3)?(?: \*[\d]+\+?)? *)+$")
_STAGE_RE = re.compile(
    r"^(cuda(?::\d+)?|cpu|mps|dml) (fp16|fp32|bf16)(i8|i4|i3)?"
    r"(?: \*(\d+)(\+)?)?$")
_DTYPES = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}
# Strategy suffix -> rwkv-quantize --type.
_QUANT_TYPES = {"i8": "int8", "i4": "int4"}


def parse_strategy(strategy):
    """Parses a pip strategy string into a list of stages
    `(device, dtype, quant, layers, stream)`, e.g. 'cpu fp32' ->
    [('cpu', 'fp32', None, None, False)]. Raises StrategyError for a string
    the pip grammar rejects."""
    if not isinstance(strategy, str):
        raise StrategyError(f"the strategy must be a string such as "
                            f"'cpu fp32', not {type(strategy).__name__}")
    s = strategy.strip()
    if not _STRATEGY_RE.match(s):
        raise StrategyError(
            f"invalid strategy '{strategy}': expected stages 'DEVICE DTYPE' "
            f"(device cpu, cuda[:N], mps or dml; dtype fp32, bf16 or fp16, "
            f"optionally with i8 or i4) joined by '->', e.g. 'cpu fp32' or "
            f"'cpu bf16'")
    stages = []
    for part in s.split("->"):
        m = _STAGE_RE.match(part.strip())
        if not m:
            raise StrategyError(f"invalid strategy stage '{part.strip()}' "
                                f"in '{strategy}'")
        dev, dt, quant, n, plus = m.groups()
        stages.append((dev, dt, quant, int(n) if n else None, bool(plus)))
    return stages


CUDA_ARCH_ENV = "RWKV_MLIR_CUDA_ARCH"


def _plan(strategy):
    """(weight dtype, quantization, target) of a strategy, or an exception
    naming what is missing. The quantization is None, 'i8' (rwkv-quantize
    int8) or 'i4' (rwkv-quantize --type int4). 'cuda[:0]' stages compile
    for the CUDA target (rwkv-compile --target=cuda); one target per
    library."""
    stages = parse_strategy(strategy)
    devices = set()
    for dev, dt, quant, n, plus in stages:
        if quant == "i3":
            raise NotImplementedError(
                f"strategy '{strategy}': i3 (3-bit weights) is not "
                f"supported: rwkv-quantize writes int8 (i8) and group-wise "
                f"int4 (i4) matrices; use e.g. 'cpu fp32i4' or 'cpu fp32i8'")
        if dev in ("mps", "dml"):
            what = {"mps": "Metal (mps)", "dml": "DirectML (dml)"}[dev]
            raise NotImplementedError(
                f"strategy '{strategy}': rwkv-mlir has no {what} target "
                f"(rwkv-compile builds CPU and CUDA libraries). Use 'cpu "
                f"fp32' or 'cuda fp16'.")
        if dev not in ("cpu", "cuda", "cuda:0"):
            raise NotImplementedError(
                f"strategy '{strategy}': device '{dev}': the CUDA target "
                f"runs on the first GPU (cuda or cuda:0) only")
        devices.add("cuda" if dev.startswith("cuda") else "cpu")
    if len(devices) > 1:
        raise NotImplementedError(
            f"strategy '{strategy}': one target for all layers only (a "
            f"compiled library runs on one device); got cpu and cuda")
    kinds = {(dt, quant) for _, dt, quant, _, _ in stages}
    if len(kinds) > 1:
        raise NotImplementedError(
            f"strategy '{strategy}': one dtype for all layers only (a "
            f"compiled library has one weight layout); got "
            f"{', '.join(sorted(d + (q or '') for d, q in kinds))}")
    dt, quant = kinds.pop()
    target = devices.pop()
    if target == "cuda" and quant:
        raise NotImplementedError(
            f"strategy '{strategy}': {_QUANT_TYPES[quant]} weights are "
            f"CPU-only so far; use 'cuda fp16' or 'cuda bf16'")
    return _DTYPES[dt], quant, target


# -- files ---------------------------------------------------------------------

def cache_dir():
    """The cache folder: $RWKV_MLIR_CACHE, else $XDG_CACHE_HOME/rwkv_mlir,
    else ~/.cache/rwkv_mlir."""
    d = os.environ.get(CACHE_ENV)
    if not d:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(
            os.path.expanduser("~"), ".cache")
        d = os.path.join(base, "rwkv_mlir")
    return os.path.abspath(d)


_default_cache_dir = cache_dir


def _tool(name, env=None):
    """A build tool: $env, else next to the loaded librwkvrt.so
    (lib/../bin), else build/bin of this checkout, else PATH."""
    if env and os.environ.get(env):
        p = os.environ[env]
        if not os.path.isfile(p):
            raise FileNotFoundError(f"${env} is '{p}', which does not exist")
        return p
    cands = []
    if _capi._lib_path:
        libdir = os.path.dirname(os.path.abspath(_capi._lib_path))
        cands += [os.path.join(libdir, name),
                  os.path.join(libdir, "..", "bin", name)]
    here = os.path.dirname(os.path.abspath(__file__))
    cands += [os.path.join(here, "bin", name),
              os.path.join(here, "..", "..", "build", "bin", name)]
    for c in cands:
        if os.path.isfile(c) and os.access(c, os.X_OK):
            return os.path.normpath(c)
    found = shutil.which(name)
    if found:
        return found
    return None


def find_compiler():
    """Path of rwkv-compile ($RWKV_MLIR_COMPILER, next to the runtime
    library, build/bin, PATH); FileNotFoundError if none."""
    p = _tool("rwkv-compile", COMPILER_ENV)
    if not p:
        raise FileNotFoundError(
            f"rwkv-compile not found (looked next to the runtime library, "
            f"in build/bin of this checkout and on PATH); build the CMake "
            f"target rwkv-compile or set ${COMPILER_ENV} to its path")
    return p


def _resolve_checkpoint(path):
    """The checkpoint file: `path` as given, else with '.pth',
    '.safetensors' or '.gguf' appended (pip appends '.pth'); a name that
    ends in '.gguf' is taken as it is."""
    path = os.fspath(path)
    tried = []
    cands = (path,) if path.lower().endswith(".gguf") else \
        (path, path + ".pth", path + ".safetensors", path + ".gguf")
    for cand in cands:
        tried.append(cand)
        if os.path.isfile(cand):
            return os.path.abspath(cand)
    raise FileNotFoundError(
        f"checkpoint not found: tried {', '.join(repr(t) for t in tried)}")


def _file_id(path):
    st = os.stat(path)
    return [os.path.realpath(path), st.st_size, st.st_mtime_ns]


def _cpu_id():
    """The host CPU (rwkv-compile targets it by default)."""
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
        first = text.split("\n\n")[0]
        keep = [ln for ln in first.splitlines()
                if ln.split(":")[0].strip() in ("vendor_id", "model name",
                                                "flags", "cpu family",
                                                "model")]
        return hashlib.sha256("\n".join(keep).encode()).hexdigest()[:16]
    except OSError:
        import platform
        return platform.machine()


def _key(obj):
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()
                          ).hexdigest()[:24]


def _verbose_default():
    return os.environ.get(QUIET_ENV, "0") in ("", "0")


def _log(msg):
    print(f"rwkv_mlir: {msg}", file=sys.stderr, flush=True)


def _run_tool(cmd, what, verbose):
    """Runs a build tool, relaying its stderr and, while it runs, a line
    with the elapsed time every 10 s. RWKVError with its message on
    failure."""
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    lines = []

    def pump():
        for raw in proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            lines.append(line)
            if verbose:
                print(f"  {line}", file=sys.stderr, flush=True)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    tick = 10.0
    while True:
        try:
            proc.wait(timeout=1.0)
            break
        except subprocess.TimeoutExpired:
            el = time.monotonic() - t0
            if verbose and el >= tick:
                _log(f"  {what}: {el:.0f} s")
                tick += 10.0
        except BaseException:
            proc.kill()
            proc.wait()
            raise
    reader.join()
    proc.stdout.close()
    if proc.returncode != 0:
        msg = "\n".join(l for l in lines if l.strip()) or \
            f"exit status {proc.returncode}"
        raise RWKVError(2, f"{what} failed: {msg}\n(command: "
                           f"{' '.join(cmd)})")
    return time.monotonic() - t0


# -- weights for a strategy ------------------------------------------------------

def _is_matrix(info):
    """Converted for a narrower strategy dtype: the projection matrices,
    embedding and head ('.weight', rank 2 after squeezing unit dims). The
    vectors (LayerNorm, decays, mixes, LoRAs) keep the checkpoint's dtype."""
    dims = [d for d in info.shape if d != 1]
    return info.name.endswith(".weight") and len(dims) == 2


# The GGUF names of the matrices _is_matrix selects in a .pth (llama.cpp's
# tensor names, docs/checkpoints.md): emb, head, att receptance/key/value/
# output, ffn key/value. The LoRA factors (time_mix_w1 ... g2) and the
# fused lerp tensor are not among them, as in a .pth.
_GGUF_MATRIX_RE = re.compile(
    r"^(?:token_embd|output|blk\.\d+\.(?:time_mix_(?:receptance|key|value|"
    r"output)|channel_mix_(?:key|value)))\.weight$")


def _cached_conversion(ckpt, dtype, cache, suffix, count, verbose, write):
    """(path, seconds) of `ckpt` with `count` matrices converted to `dtype`:
    the copy in `cache` keyed by the file and dtype if it exists (seconds
    None), else `write(path)` makes it."""
    key = _key({"format": _CACHE_FORMAT, "ckpt": _file_id(ckpt),
                "dtype": dtype})
    out = os.path.join(cache, f"weights-{key}{suffix}")
    if os.path.isfile(out):
        return out, None
    if verbose:
        _log(f"converting {count} matrices of {ckpt} to {dtype} -> {out}")
    t0 = time.monotonic()
    write(out)
    return out, time.monotonic() - t0


def _gguf_weights_for(ckpt, dtype, cache, verbose):
    """_weights_for on a llama.cpp GGUF file: the file itself, or a GGUF
    copy in the cache with its F32/F16/BF16 matrices in `dtype` (llama.cpp's
    layout kept: the runtime undoes it in either case). Block-quantized
    matrices run as the runtime reads them whatever the strategy (Q4_0 as
    int4, Q8_0 as int8, Q6_K dequantized to bf16), so fp16 cannot be
    honoured for them."""
    reader = _checkpoint.open_checkpoint(ckpt)   # checks the header
    if dtype == "f32":
        return ckpt, None
    mats = [t for t in reader.tensors() if _GGUF_MATRIX_RE.match(t.name)]
    quantized = [t for t in mats if t.dtype not in _checkpoint.FLOAT_DTYPES]
    if quantized and dtype != "bf16":
        types = sorted({t.dtype.upper() for t in quantized})
        raise NotImplementedError(
            f"{ckpt}: its {'/'.join(types)} matrices (e.g. "
            f"'{quantized[0].name}') run as the runtime reads them (Q4_0 as "
            f"int4, Q8_0 as int8, Q6_K dequantized to bf16), so they cannot "
            f"run as fp16; use a 'bf16' or 'fp32' strategy (both run them "
            f"so), or an F32/F16/BF16 GGUF")
    convert = [t for t in mats if t.dtype in _checkpoint.FLOAT_DTYPES
               and t.dtype != dtype]
    if not convert:
        return ckpt, None
    return _cached_conversion(
        ckpt, dtype, cache, ".gguf", len(convert), verbose,
        lambda out: reader.write_converted(
            out, {t.name: dtype for t in convert}))


def _gguf_matrices(path, dtype):
    """The `dtype` ("q4_0" or "q8_0") matrices of `path` if it is a GGUF
    file: the runtime runs them as int4 or int8 (groups of 32) without
    decoding them."""
    with open(path, "rb") as f:
        if f.read(4) != _checkpoint.GGUF_MAGIC:
            return []
    return [t for t in _checkpoint.open_checkpoint(path).tensors()
            if _GGUF_MATRIX_RE.match(t.name) and t.dtype == dtype]


def _weights_for(ckpt, dtype, cache, verbose):
    """The checkpoint to run for weight dtype `dtype`: the file itself when
    its matrices are already `dtype` or the strategy is fp32 (bf16/fp16 ->
    f32 is exact and the kernels compute in fp32 either way), else a
    converted safetensors copy in the cache (a GGUF copy for a GGUF)."""
    with open(ckpt, "rb") as f:
        magic = f.read(4)
    if magic == _checkpoint.GGUF_MAGIC:
        return _gguf_weights_for(ckpt, dtype, cache, verbose)
    if ckpt.lower().endswith(".gguf"):
        raise _checkpoint.CheckpointError(
            f"{ckpt}: not a GGUF file: it starts with {magic!r}, a GGUF file "
            f"with b'GGUF' (truncated, or another format renamed?)")
    if dtype == "f32":
        return ckpt, None
    reader = _checkpoint.open_checkpoint(ckpt)
    infos = reader.tensors()
    convert = [t for t in infos if _is_matrix(t)
               and t.dtype in _checkpoint.FLOAT_DTYPES and t.dtype != dtype]
    if not convert:
        return ckpt, None
    conv = {t.name for t in convert}
    specs = [(t.name, dtype if t.name in conv else t.dtype, t.shape)
             for t in infos]

    def get(name):
        a = reader.array(name)
        if name in conv:
            src = next(t.dtype for t in infos if t.name == name)
            return _checkpoint.from_float32(
                _checkpoint.to_float32(a, src), dtype)
        return a

    return _cached_conversion(
        ckpt, dtype, cache, ".safetensors", len(convert), verbose,
        lambda out: _checkpoint.write_safetensors(
            out, specs, get, {"source": ckpt, "rwkv_mlir": "convert"}))


# -- state -----------------------------------------------------------------------

class RWKVState:
    """The recurrent state of one sequence, owned by the runtime
    (rwkvrt_state). List-like in pip's layout: entry `i` is the state
    tensor `state_names[i] = (name, layer)` in the library's argument
    order, e.g. for RWKV-7 [att_shift, wkv, ffn_shift] per layer as pip's
    [att_x, wkv, ffn_x] (3 * n_layer entries).

    * `state[i]` returns a copy (float32 torch tensor, or numpy without
      torch) in the per-sequence shape ([C], [H, N, N]); `state[i] = t`
      writes one back. `len(state)`, iteration and slices work.
    * `forward` updates the state in place and returns the same object
      (pip does the same with its list): `copy.deepcopy(state)` (or
      `state.copy()`) keeps a snapshot; passing `None` starts afresh.
    * A plain list of tensors of the right shapes (e.g. `[t.clone() for t
      in state]`) is accepted by `forward` too.
    """

    __slots__ = ("_model", "_handle", "__weakref__")

    def __init__(self, model, handle):
        self._model = model            # keeps the model open
        self._handle = handle

    # -- lifetime
    def __del__(self):
        h = getattr(self, "_handle", None)
        if h is not None and h.value:
            self._model._rt.rwkvrt_state_free(h)
            self._handle = None

    def copy(self):
        out = ctypes.c_void_p()
        self._model._check(self._model._rt.rwkvrt_state_copy(
            self._handle, ctypes.byref(out)), "state copy")
        return RWKVState(self._model, out)

    def __copy__(self):
        # A shallow copy of pip's list shares tensors that forward replaces
        # rather than mutates, so it behaves as a snapshot: so does this.
        return self.copy()

    def __deepcopy__(self, memo):
        c = self.copy()
        memo[id(self)] = c
        return c

    def reset(self):
        """Back to the initial state of a new sequence."""
        self._model._check(self._model._rt.rwkvrt_state_reset(self._handle),
                           "state reset")

    def __reduce__(self):
        raise TypeError("an RWKVState cannot be pickled (it lives in the "
                        "runtime); save [t for t in state] or "
                        "state.numpy() instead")

    # -- tensors
    @property
    def model(self):
        return self._model

    @property
    def state_names(self):
        return [(e["name"], e["layer"]) for e in self._model._state_layout]

    def _buffer(self, i):
        e = self._model._state_layout[i]
        ptr = ctypes.POINTER(ctypes.c_float)()
        count = ctypes.c_size_t()
        self._model._check(self._model._rt.rwkvrt_state_tensor(
            self._handle, e["name"].encode(), e["layer"], ctypes.byref(ptr),
            ctypes.byref(count)), f"state tensor {e['name']}:{e['layer']}")
        if count.value != e["numel"]:
            raise RWKVError(3, f"state tensor {e['name']}:{e['layer']} has "
                               f"{count.value} values, the library "
                               f"describes {e['numel']}")
        return np.ctypeslib.as_array(ptr, shape=(count.value,))

    def _index(self, i):
        n = len(self._model._state_layout)
        if not isinstance(i, (int, np.integer)):
            raise TypeError(f"state indices must be integers or slices, "
                            f"not {type(i).__name__}")
        i = int(i)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"state index {i} out of range ({n} tensors)")
        return i

    def numpy(self, i=None):
        """A float32 numpy copy of tensor `i`, or of all as a list."""
        if i is None:
            return [self.numpy(j) for j in range(len(self))]
        i = self._index(i)
        return self._buffer(i).copy().reshape(
            self._model._state_layout[i]["shape"])

    def __len__(self):
        return len(self._model._state_layout)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        a = self.numpy(i)
        torch = _torch()
        return torch.from_numpy(a) if torch is not None else a

    def __setitem__(self, i, value):
        i = self._index(i)
        e = self._model._state_layout[i]
        a = _as_float32(value)
        if a.size != e["numel"]:
            raise ValueError(
                f"state[{i}] ({e['name']}:{e['layer']}) has shape "
                f"{list(e['shape'])}, got {list(a.shape)}")
        self._buffer(i)[:] = a.reshape(-1)

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __repr__(self):
        return (f"<RWKVState of {self._model.model_path!r}: "
                f"{len(self)} tensors>")


def _as_float32(x):
    torch = _torch()
    if torch is not None and isinstance(x, torch.Tensor):
        return x.detach().to("cpu", torch.float32).contiguous().numpy()
    return np.ascontiguousarray(x, dtype=np.float32)


# -- model -----------------------------------------------------------------------

class RWKV:
    """An RWKV checkpoint compiled for the CPU (or, with a 'cuda' strategy,
    an NVIDIA GPU), with the pip package's
    `forward(tokens, state, full_output=False) -> (out, state)`.

    `model`: checkpoint path, with or without '.pth' (or '.safetensors',
    '.gguf'); a llama.cpp RWKV-7 '.gguf' is taken as it is.
    `strategy`: pip's strategy string; 'cpu fp32', 'cpu bf16', 'cpu fp16'
    (and 'cpu fp32i8' etc.: int8 matrices through rwkv-quantize, 'cpu
    fp32i4' etc.: group-wise int4 matrices, rwkv-quantize --type int4);
    'cuda
    fp16', 'cuda bf16', 'cuda fp32' compile for the CUDA target, for
    $RWKV_MLIR_CUDA_ARCH (default sm_80, whose PTX the driver also runs on
    newer GPUs). The dtype is the weights' dtype; the kernels compute in
    fp32 whatever it is.
    `threads`: compute threads (default $RWKV_MLIR_THREADS, else the
    OpenMP default). `cache_dir`: where compiled libraries are kept
    (default $RWKV_MLIR_CACHE or ~/.cache/rwkv_mlir). `verbose`: progress
    on stderr (pip prints its loading steps too).
    """

    def __init__(self, model, strategy="cpu fp32", verbose=None,
                 convert_and_save_and_exit=None, threads=None,
                 cache_dir=None, runtime=None):
        if convert_and_save_and_exit:
            raise NotImplementedError(
                "convert_and_save_and_exit: rwkv-mlir needs no converted "
                "file; the compiled library is cached instead")
        self._handle = None
        self.verbose = _verbose_default() if verbose is None else verbose
        self.strategy = strategy
        dtype, quant, self.target = _plan(strategy)
        self.model_path = _resolve_checkpoint(model)
        self._rt = _capi.load_runtime(runtime)
        _capi.require(self._rt, "rwkvrt_model_open", "rwkvrt_step",
                      "rwkvrt_forward", "rwkvrt_state_tensor")
        self.cache_dir = os.path.abspath(cache_dir) if cache_dir \
            else _default_cache_dir()
        try:
            os.makedirs(self.cache_dir, exist_ok=True)
        except OSError as e:
            raise RWKVError(2, f"cannot create the cache folder "
                               f"{self.cache_dir}: {e}")
        if threads is None:
            threads = int(os.environ.get(THREADS_ENV, "0") or 0)
        self.threads = int(threads)

        self.weights_path, self.library_path = self._prepare(dtype, quant)
        handle = ctypes.c_void_p()
        self._check(self._rt.rwkvrt_model_open(
            self.library_path.encode(), self.weights_path.encode(),
            self.threads, ctypes.byref(handle)), self.model_path)
        self._handle = handle
        cfg = _capi.Config()
        self._check(self._rt.rwkvrt_model_config(handle, ctypes.byref(cfg)))
        js = ctypes.c_char_p()
        self._check(self._rt.rwkvrt_model_info_json(handle,
                                                    ctypes.byref(js)))
        self.info = json.loads(js.value.decode())
        if cfg.batch != 1:
            raise RWKVError(2, f"{self.library_path}: a batch-{cfg.batch} "
                               f"library; RWKV runs batch-1 libraries")
        self.n_layer = int(cfg.n_layer)
        self.n_embd = int(cfg.n_embd)
        self.n_head = int(cfg.n_head)
        self.head_size = int(cfg.head_size)
        self.dim_ffn = int(cfg.dim_ffn)
        self.vocab_size = int(cfg.vocab_size)
        vs = self.info.get("config", {}).get("version_string")
        if vs is None and int(cfg.version) == 5:
            vs = _v5_subversion(self.model_path)
        self.version = _pip_version(int(cfg.version), vs)
        # The state tensors as the library lists them (docs/ABI.md): kind
        # "state" arguments with name, layer and [B, ...] shape.
        layout = []
        for a in self.info.get("args", []):
            if a.get("kind") != "state":
                continue
            shape = tuple(int(d) for d in a["shape"][1:])  # drop B = 1
            layout.append({"name": a["name"], "layer": int(a["layer"]),
                           "shape": shape,
                           "numel": int(np.prod(shape, dtype=np.int64))})
        if not layout:
            raise RWKVError(2, f"{self.library_path}: the library lists no "
                               f"state tensors")
        self._state_layout = layout
        self.args = types.SimpleNamespace(
            MODEL_NAME=self.model_path, strategy_string=strategy,
            n_layer=self.n_layer, n_embd=self.n_embd, n_head=self.n_head,
            head_size=self.head_size, dim_ffn=self.dim_ffn,
            n_att=self.n_embd, n_ffn=self.dim_ffn,
            vocab_size=self.vocab_size, version=self.version)
        if self.verbose:
            _log(f"{os.path.basename(self.model_path)}: RWKV-"
                 f"{self.version}, {self.n_layer} layers, n_embd "
                 f"{self.n_embd}, vocab {self.vocab_size}, '{strategy}' "
                 f"({self.library_path})")

    # -- compile and cache
    def _prepare(self, dtype, quant):
        cache = self.cache_dir
        weights, conv_s = _weights_for(self.model_path, dtype, cache,
                                       self.verbose)
        q4 = _gguf_matrices(weights, "q4_0") if quant else []
        q8 = _gguf_matrices(weights, "q8_0") if quant else []
        if q4 and quant != "i4":
            raise NotImplementedError(
                f"{weights}: its Q4_0 matrices (e.g. '{q4[0].name}') already "
                f"run as int4 (groups of 32); use an 'i4' strategy (the file "
                f"as it is), 'bf16' or 'fp32' (the same), or a float GGUF "
                f"for '{quant}'")
        # A Q4_0 file's Q8_0 head runs as int8 beside its int4 matrices.
        if q8 and not q4 and quant != "i8":
            raise NotImplementedError(
                f"{weights}: its Q8_0 matrices (e.g. '{q8[0].name}') already "
                f"run as int8 (groups of 32) and cannot be requantized; use "
                f"an 'i8' strategy (the file as it is), 'bf16' or 'fp32' (the "
                f"same), or a float GGUF for '{quant}'")
        if quant and not q4 and not q8:
            weights = self._quantize(weights, quant)
        compiler = find_compiler()
        target = [] if self.target == "cpu" else [
            "--target=cuda",
            "--cuda-arch=" + os.environ.get(CUDA_ARCH_ENV, "sm_80")]
        key = _key({"format": _CACHE_FORMAT, "weights": _file_id(weights),
                    "compiler": _file_id(compiler), "cpu": _cpu_id(),
                    "target": " ".join(target) or "cpu", "batch": 1})
        lib = os.path.join(cache, f"model-{key}.so")
        if os.path.isfile(lib):
            return weights, lib
        cmd = [compiler, weights, "-o", f"{lib}.tmp{os.getpid()}",
               "--cache-dir", os.path.join(cache, "compiler-" + _cpu_id())]
        cmd += target
        if self.verbose:
            where = "the CPU" if not target else " ".join(target)
            _log(f"compiling {weights} for {where} with {compiler} (first "
                 f"use; cached in {cache})")
        try:
            secs = _run_tool(cmd, "rwkv-compile", self.verbose)
            os.replace(f"{lib}.tmp{os.getpid()}", lib)
        finally:
            if os.path.exists(f"{lib}.tmp{os.getpid()}"):
                os.unlink(f"{lib}.tmp{os.getpid()}")
        with open(os.path.join(cache, f"model-{key}.json"), "w") as f:
            json.dump({"checkpoint": self.model_path, "weights": weights,
                       "strategy": self.strategy, "compiler": compiler,
                       "compile_seconds": round(secs, 2)}, f, indent=1)
        if self.verbose:
            _log(f"compiled in {secs:.1f} s -> {lib}")
        return weights, lib

    def _quantize(self, weights, quant="i8"):
        """The rwkv-quantize output of `weights` in the cache: int8 rows
        ('i8') or group-wise int4 ('i4', --type int4, its default group of
        32), written once per weights file and tool build."""
        qtype = _QUANT_TYPES[quant]
        tool = _tool("rwkv-quantize", "RWKV_MLIR_QUANTIZE")
        if not tool:
            raise FileNotFoundError(
                f"strategy '{self.strategy}' ({quant}) needs rwkv-quantize; "
                f"build the CMake target rwkv-quantize")
        what = {"format": _CACHE_FORMAT, "weights": _file_id(weights),
                "tool": _file_id(tool)}
        if qtype != "int8":      # int8 keys are those of earlier versions
            what["type"] = qtype
        out = os.path.join(self.cache_dir,
                           f"{qtype}-{_key(what)}.safetensors")
        if not os.path.isfile(out):
            tmp = f"{out[:-len('.safetensors')]}.tmp{os.getpid()}.safetensors"
            try:
                if self.verbose:
                    _log(f"quantizing {weights} to {qtype} -> {out}")
                _run_tool([tool, weights, tmp, "--type", qtype],
                          "rwkv-quantize", self.verbose)
                os.replace(tmp, out)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        return out

    # -- lifetime
    def _check(self, status, what=""):
        _capi.check(self._rt, status, what)

    def __del__(self):
        h = getattr(self, "_handle", None)
        if h is not None and h.value:
            # States hold a reference to the model, so none is left here.
            self._rt.rwkvrt_model_close(h)
            self._handle = None

    def __repr__(self):
        return (f"RWKV(model={self.model_path!r}, "
                f"strategy={self.strategy!r})")

    # -- state
    def new_state(self):
        """A state for a new sequence (what `state=None` starts from)."""
        out = ctypes.c_void_p()
        self._check(self._rt.rwkvrt_state_new(self._handle,
                                              ctypes.byref(out)), "state")
        return RWKVState(self, out)

    def generate_zero_state(self):
        """pip's name for new_state() (RWKV-7 class)."""
        return self.new_state()

    def _state(self, state):
        if state is None:
            return self.new_state()
        if isinstance(state, RWKVState):
            if state._model is not self:
                # The runtime refuses it too; this names the models.
                raise RWKVError(1, f"the state was made by the model of "
                                   f"{state._model.model_path!r} "
                                   f"('{state._model.strategy}'), not this "
                                   f"one ({self.model_path!r}, "
                                   f"'{self.strategy}')")
            return state
        if isinstance(state, (list, tuple)):
            n = len(self._state_layout)
            if len(state) != n:
                raise ValueError(
                    f"a state of this model has {n} tensors "
                    f"({n // self.n_layer} per layer), got {len(state)}")
            s = self.new_state()
            for i, t in enumerate(state):
                s[i] = t
            return s
        raise TypeError(f"state must be None, an RWKVState or a list of "
                        f"tensors, not {type(state).__name__}")

    # -- forward
    def _tokens(self, tokens):
        if tokens is None:
            raise TypeError(
                "forward(tokens, state): tokens is None; pass the ids to "
                "feed, e.g. forward([token], state) for the token just "
                "sampled (as the rwkv pip package requires)")
        torch = _torch()
        if torch is not None and isinstance(tokens, torch.Tensor):
            tokens = tokens.detach().cpu().reshape(-1).tolist()
        elif isinstance(tokens, np.ndarray):
            tokens = tokens.reshape(-1).tolist()
        elif isinstance(tokens, (int, np.integer)) and \
                not isinstance(tokens, bool):
            tokens = [int(tokens)]
        elif isinstance(tokens, (str, bytes)):
            raise TypeError("forward takes token ids, not text; encode it "
                            "first (PIPELINE.encode)")
        try:
            ids = list(tokens)
        except TypeError:
            raise TypeError(f"tokens must be a list of ints, not "
                            f"{type(tokens).__name__}") from None
        if not ids:
            raise ValueError("forward: the token list is empty")
        # Fast path: plain ints within int32 (the runtime checks [0, V)).
        arr = np.asarray(ids) if type(ids[0]) is int else None
        if arr is not None and arr.ndim == 1 and arr.dtype.kind == "i" \
                and arr.min() >= -2**31 and arr.max() < 2**31:
            return np.ascontiguousarray(arr, dtype=np.int32)
        for pos, t in enumerate(ids):
            if isinstance(t, bool) or not isinstance(t, (int, np.integer)):
                raise TypeError(f"token at position {pos} is "
                                f"{type(t).__name__} {t!r}, not an int")
            if not -2**31 <= int(t) < 2**31:
                raise RWKVError(1, f"token id {int(t)} at position {pos} is "
                                   f"out of range [0, {self.vocab_size})")
        return np.ascontiguousarray(ids, dtype=np.int32)

    def _logits(self, shape):
        torch = _torch()
        if torch is not None:
            t = torch.empty(shape, dtype=torch.float32)
            return t, t.data_ptr()
        a = np.empty(shape, dtype=np.float32)
        return a, a.ctypes.data

    def forward(self, tokens, state, full_output=False):
        """Runs `tokens` (a list of ids, or one int) from `state` (None: a
        new sequence). Returns (logits, state): logits float32 [V] for the
        last token, or [T, V] for every token with full_output and more
        than one token; state is updated in place and returned.
        One token runs the RNN entry point (rwkv_step), several the GPT one
        (rwkv_forward); both give the same logits."""
        ids = self._tokens(tokens)
        st = self._state(state)
        T, V = len(ids), self.vocab_size
        p_ids = ids.ctypes.data_as(ctypes.POINTER(ctypes.c_int32))
        if T == 1:
            out, ptr = self._logits((V,))
            status = self._rt.rwkvrt_step(
                self._handle, st._handle, p_ids, T,
                ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float)), V)
        else:
            shape = (T, V) if full_output else (V,)
            out, ptr = self._logits(shape)
            status = self._rt.rwkvrt_forward(
                self._handle, st._handle, p_ids, T, 1 if full_output else 0,
                ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float)),
                int(np.prod(shape)))
        self._check(status, "forward")
        return out, st

    __call__ = forward


def _pip_version(version, version_string=None):
    """pip's `model.version`: 4, 5, 5.1, 5.2, 6 (x060), 7 (x070)."""
    if version_string:
        vs = str(version_string)
        if vs.startswith("x0"):
            return int(vs[2:]) // 10 if vs[2:].isdigit() else version
        try:
            f = float(vs)
            return int(f) if f == int(f) else f
        except ValueError:
            pass
    return version


def _v5_subversion(path):
    """'5.0', '5.1' or '5.2' by pip's rule (spec §4.5): gate.weight makes
    5.1, a 2-D att.time_decay 5.2. The runtime reports the integer 5."""
    try:
        infos = _checkpoint.open_checkpoint(path).tensors()
    except (OSError, ValueError):
        return None
    sub = "5.0"
    for t in infos:
        if "gate.weight" in t.name and sub == "5.0":
            sub = "5.1"
        if "att.time_decay" in t.name and len(t.shape) > 1 \
                and t.shape[1] > 1:
            sub = "5.2"
    return sub
