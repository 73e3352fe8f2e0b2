"""rwkv_mlir: Python bindings of the rwkv-mlir runtime (ctypes on the C API
of librwkvrt.so; see docs/python.md).

* TrainLibrary: a library from `rwkv-compile MODEL.pth --train --batch B
  --ctx T`: loss and gradients of a batch (numpy or torch).
* RWKV7 (needs torch): an nn.Module over a TrainLibrary whose parameters are
  float32 master weights, so torch optimizers and DDP train it.
* wkv7 (needs torch): the WKV7 recurrence as an autograd op over a kernel
  library from `rwkv-compile --kernel wkv7` (WKV7Library).
* rwkv_mlir.model.RWKV, rwkv_mlir.utils.PIPELINE / PIPELINE_ARGS: the `rwkv`
  pip package's inference API (forward, sampling, generate) on libraries
  rwkv-compile builds and caches on first use.

The runtime library is found through $RWKV_MLIR_RUNTIME or load_runtime(path).
"""

from ._capi import RWKVError, load_runtime
from .train import (TrainLibrary, WeightSpec, bf16_bits_to_float,
                    float_to_bf16_bits)

__all__ = [
    "RWKVError", "load_runtime", "TrainLibrary", "WeightSpec", "RWKV7",
    "wkv7", "WKV7Library", "bf16_bits_to_float", "float_to_bf16_bits",
    "RWKV", "PIPELINE", "PIPELINE_ARGS"
]


def __getattr__(name):
    # torch is imported only when the torch parts are used.
    if name == "RWKV7":
        from .torch_model import RWKV7
        return RWKV7
    if name in ("wkv7", "WKV7Library"):
        from . import kernel
        return getattr(kernel, name)
    if name == "RWKV":
        from .model import RWKV
        return RWKV
    if name in ("PIPELINE", "PIPELINE_ARGS"):
        from . import utils
        return getattr(utils, name)
    raise AttributeError(f"module 'rwkv_mlir' has no attribute '{name}'")
