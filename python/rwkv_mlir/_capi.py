"""ctypes bindings of the runtime's C API (runtime/core/rwkv_runtime.h).

Only the C API is used, through ctypes, so the package does not depend on
the torch or Python version it runs with: librwkvrt.so is a plain C library.
"""

import ctypes
import os

RUNTIME_ENV = "RWKV_MLIR_RUNTIME"

OK = 0
_STATUS_NAMES = {
    1: "invalid argument",
    2: "load error",
    3: "runtime error",
    4: "out of memory",
    5: "busy",
}


class RWKVError(RuntimeError):
    """A failed runtime call; `status` is the rwkvrt_status code."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


class TrainDesc(ctypes.Structure):
    _fields_ = [
        ("batch", ctypes.c_int64),
        ("context", ctypes.c_int64),
        ("vocab_size", ctypes.c_int64),
        ("n_layer", ctypes.c_int64),
        ("n_weights", ctypes.c_int64),
        ("ignore_index", ctypes.c_int64),
    ]


class Config(ctypes.Structure):
    """rwkvrt_config."""
    _fields_ = [(f, ctypes.c_int64) for f in (
        "version", "n_layer", "n_embd", "n_head", "head_size", "dim_ffn",
        "vocab_size", "batch")]


_lib = None
_lib_path = None


def _candidates(path):
    if path:
        yield path
        return
    env = os.environ.get(RUNTIME_ENV)
    if env:
        yield env
        return
    # A build tree next to the source checkout (build/lib/librwkvrt.so).
    here = os.path.dirname(os.path.abspath(__file__))
    yield os.path.join(here, "librwkvrt.so")
    yield os.path.normpath(os.path.join(here, "..", "..", "build", "lib",
                                        "librwkvrt.so"))


def load_runtime(path=None):
    """Loads librwkvrt.so from `path`, else $RWKV_MLIR_RUNTIME, else the
    package folder or ../../build/lib. Returns the ctypes library; a second
    call returns the one already loaded (a different path is an error)."""
    global _lib, _lib_path
    if _lib is not None:
        if path and os.path.realpath(path) != os.path.realpath(_lib_path):
            raise RWKVError(2, f"the runtime is already loaded from "
                               f"'{_lib_path}', cannot load '{path}'")
        return _lib
    tried = []
    for cand in _candidates(path):
        if not os.path.exists(cand):
            tried.append(cand)
            continue
        try:
            lib = ctypes.CDLL(cand)
        except OSError as e:
            raise RWKVError(2, f"cannot load the runtime '{cand}': {e}")
        _declare(lib)
        _lib, _lib_path = lib, cand
        return lib
    raise RWKVError(
        2, "librwkvrt.so not found (tried " + ", ".join(tried) +
        f"); build the CMake target rwkvrt and set {RUNTIME_ENV} to its path")


def _declare(lib):
    c = ctypes
    P = c.POINTER
    i64, i32 = c.c_int64, c.c_int32
    h = c.c_void_p
    sigs = {
        "rwkvrt_last_error": (c.c_char_p, []),
        "rwkvrt_train_reuse_freed_memory": (None, []),
        "rwkvrt_train_open": (c.c_int, [c.c_char_p, c.c_int, P(h)]),
        "rwkvrt_train_close": (c.c_int, [h]),
        "rwkvrt_train_config": (c.c_int, [h, P(TrainDesc)]),
        "rwkvrt_train_info_json": (c.c_int, [h, P(c.c_char_p)]),
        "rwkvrt_train_weight":
        (c.c_int, [h, i64, P(c.c_char_p), P(c.c_char_p),
                   P(P(i64)), P(c.c_size_t), P(c.c_size_t)]),
        "rwkvrt_train_state_shape":
        (c.c_int, [h, i64, P(P(i64)), P(c.c_size_t), P(c.c_size_t)]),
        "rwkvrt_train_step":
        (c.c_int, [h, P(i32), P(i32), P(c.c_void_p), P(c.c_void_p),
                   P(c.c_void_p), P(c.c_void_p), P(c.c_float)]),
        "rwkvrt_train_loss":
        (c.c_int, [h, P(i32), P(i32), P(c.c_void_p), P(c.c_void_p),
                   P(c.c_float)]),
        "rwkvrt_kernel_open": (c.c_int, [c.c_char_p, c.c_int, P(h)]),
        "rwkvrt_kernel_close": (c.c_int, [h]),
        "rwkvrt_kernel_shape": (c.c_int, [h, P(i64), P(i64), P(i64),
                                          P(i64)]),
        "rwkvrt_wkv7_forward": (c.c_int, [h] + [c.c_void_p] * 9),
        "rwkvrt_wkv7_backward": (c.c_int, [h] + [c.c_void_p] * 16),
    }
    for name, (res, args) in sigs.items():
        fn = getattr(lib, name)
        fn.restype = res
        fn.argtypes = args
    # Inference (rwkv_mlir.model) and tokenizers (rwkv_mlir.utils). Declared
    # where the library exports them, so that an older librwkvrt.so still
    # serves the training modules; `require` names what is missing.
    optional = {
        "rwkvrt_model_open": (c.c_int, [c.c_char_p, c.c_char_p, c.c_int,
                                        P(h)]),
        "rwkvrt_model_close": (c.c_int, [h]),
        "rwkvrt_model_config": (c.c_int, [h, P(Config)]),
        "rwkvrt_model_info_json": (c.c_int, [h, P(c.c_char_p)]),
        "rwkvrt_state_new": (c.c_int, [h, P(h)]),
        "rwkvrt_state_copy": (c.c_int, [h, P(h)]),
        "rwkvrt_state_assign": (c.c_int, [h, h]),
        "rwkvrt_state_reset": (c.c_int, [h]),
        "rwkvrt_state_free": (c.c_int, [h]),
        "rwkvrt_state_tensor": (c.c_int, [h, c.c_char_p, i64,
                                          P(P(c.c_float)), P(c.c_size_t)]),
        "rwkvrt_step": (c.c_int, [h, h, P(i32), c.c_size_t, P(c.c_float),
                                  c.c_size_t]),
        "rwkvrt_forward": (c.c_int, [h, h, P(i32), c.c_size_t, c.c_int,
                                     P(c.c_float), c.c_size_t]),
        "rwkvrt_tokenizer_open": (c.c_int, [c.c_char_p, P(h)]),
        "rwkvrt_tokenizer_close": (c.c_int, [h]),
        "rwkvrt_tokenizer_vocab_size": (c.c_int, [h, P(c.c_size_t)]),
        "rwkvrt_tokenizer_encode": (c.c_int, [h, c.c_char_p, c.c_size_t,
                                              P(i32), c.c_size_t,
                                              P(c.c_size_t)]),
        "rwkvrt_tokenizer_decode": (c.c_int, [h, P(i32), c.c_size_t,
                                              c.c_char_p, c.c_size_t,
                                              P(c.c_size_t)]),
    }
    for name, (res, args) in optional.items():
        fn = getattr(lib, name, None)
        if fn is not None:
            fn.restype = res
            fn.argtypes = args


def require(lib, *names):
    """Raises RWKVError naming the C functions `lib` does not export (a
    librwkvrt.so older than this package)."""
    missing = [n for n in names if not hasattr(lib, n)]
    if missing:
        raise RWKVError(
            2, f"the runtime '{_lib_path}' does not export "
            f"{', '.join(missing)}; rebuild the CMake target rwkvrt")


def check(lib, status, what=""):
    """Raises RWKVError with rwkvrt_last_error() unless status is OK."""
    if status == OK:
        return
    msg = lib.rwkvrt_last_error().decode("utf-8", "replace")
    kind = _STATUS_NAMES.get(status, f"status {status}")
    if what and what in msg:
        what = ""  # the runtime's message names it already
    raise RWKVError(status, f"{what}: {msg}" if what else f"{msg} ({kind})")
