"""Checkpoint headers and tensors in numpy, without torch: `torch.save` zip
files (.pth) and safetensors, read lazily; safetensors written.

Used by rwkv_mlir.model to convert weights for a strategy whose dtype
differs from the checkpoint's (e.g. 'cpu bf16' on an fp32 file). Like the
runtime's reader (runtime/checkpoint/PthReader.cpp), the pickle is decoded
with an allow-list: only torch's tensor rebuild functions, storage types and
(ordered) dicts are accepted, nothing else is constructed or executed.

bf16 has no numpy dtype: bf16 tensors are uint16 arrays of bit patterns.
"""

import collections
import json
import os
import pickle
import struct
import zipfile

import numpy as np

# dtype names as the runtime prints them (rwkv::dtypeName).
_PTH_STORAGES = {
    "FloatStorage": "f32", "HalfStorage": "f16", "BFloat16Storage": "bf16",
    "DoubleStorage": "f64", "LongStorage": "i64", "IntStorage": "i32",
    "ShortStorage": "i16", "CharStorage": "i8", "ByteStorage": "u8",
    "BoolStorage": "bool",
}
_ST_DTYPES = {
    "F32": "f32", "F16": "f16", "BF16": "bf16", "F64": "f64", "I64": "i64",
    "I32": "i32", "I16": "i16", "I8": "i8", "U8": "u8", "BOOL": "bool",
}
_ST_NAMES = {v: k for k, v in _ST_DTYPES.items()}
NP_DTYPES = {
    "f32": np.float32, "f16": np.float16, "bf16": np.uint16,
    "f64": np.float64, "i64": np.int64, "i32": np.int32, "i16": np.int16,
    "i8": np.int8, "u8": np.uint8, "bool": np.bool_,
}
FLOAT_DTYPES = ("f32", "f16", "bf16", "f64")


class CheckpointError(ValueError):
    pass


TensorInfo = collections.namedtuple("TensorInfo", "name dtype shape")


# -- .pth ---------------------------------------------------------------------

class _Storage:
    def __init__(self, dtype, key, numel):
        self.dtype, self.key, self.numel = dtype, key, numel


class _TensorRef:
    def __init__(self, storage, offset, shape, stride):
        self.storage, self.offset = storage, offset
        self.shape, self.stride = tuple(shape), tuple(stride)


def _rebuild_tensor_v2(storage, offset, size, stride, *_):
    return _TensorRef(storage, offset, size, stride)


def _rebuild_parameter(data, *_):
    return data


class _StorageType:
    def __init__(self, name):
        self.name = name


class _Unpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name in _PTH_STORAGES:
            return _StorageType(name)
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        raise CheckpointError(f"disallowed global '{module}.{name}' in the "
                              f"checkpoint's pickle")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5
                and pid[0] == "storage"):
            raise CheckpointError(f"unexpected persistent id {pid!r}")
        st = pid[1]
        name = st.name if isinstance(st, _StorageType) else str(st)
        if name not in _PTH_STORAGES:
            raise CheckpointError(f"unsupported storage type {name}")
        return _Storage(_PTH_STORAGES[name], str(pid[2]), int(pid[4]))


def _flatten(obj, prefix=""):
    """name -> _TensorRef of a (nested) state dict."""
    out = collections.OrderedDict()
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}{k}" if not prefix
                                else f"{prefix}.{k}"))
    elif isinstance(obj, _TensorRef):
        out[prefix] = obj
    return out


class _Pth:
    def __init__(self, path):
        self.path = path
        try:
            self.zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as e:
            raise CheckpointError(f"{path}: not a torch.save zip file: {e}")
        names = self.zip.namelist()
        pkl = [n for n in names if n.endswith("/data.pkl")] or \
            [n for n in names if n == "data.pkl"]
        if not pkl:
            raise CheckpointError(f"{path}: no data.pkl in the archive")
        self.prefix = pkl[0][:-len("data.pkl")]
        with self.zip.open(pkl[0]) as f:
            obj = _Unpickler(f).load()
        self.refs = _flatten(obj)

    def tensors(self):
        return [TensorInfo(n, r.storage.dtype, r.shape)
                for n, r in self.refs.items()]

    def array(self, name):
        r = self.refs[name]
        dt = np.dtype(NP_DTYPES[r.storage.dtype])
        raw = self.zip.read(f"{self.prefix}data/{r.storage.key}")
        flat = np.frombuffer(raw, dtype=dt, count=r.storage.numel)
        if not r.shape:
            return flat[r.offset:r.offset + 1].reshape(()).copy()
        strides = tuple(s * dt.itemsize for s in r.stride)
        view = np.lib.stride_tricks.as_strided(
            flat[r.offset:], shape=r.shape, strides=strides)
        return np.ascontiguousarray(view)


# -- safetensors ---------------------------------------------------------------

class _Safetensors:
    def __init__(self, path):
        self.path = path
        with open(path, "rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]
            if n > (1 << 30):
                raise CheckpointError(f"{path}: bad safetensors header size")
            self.header = json.loads(f.read(n))
        self.base = 8 + n
        self.meta = self.header.pop("__metadata__", None) or {}

    def tensors(self):
        out = []
        for name, d in self.header.items():
            if d["dtype"] not in _ST_DTYPES:
                raise CheckpointError(f"{self.path}: tensor '{name}' has "
                                      f"unsupported dtype {d['dtype']}")
            out.append(TensorInfo(name, _ST_DTYPES[d["dtype"]],
                                  tuple(d["shape"])))
        return out

    def array(self, name):
        d = self.header[name]
        b, e = d["data_offsets"]
        dt = NP_DTYPES[_ST_DTYPES[d["dtype"]]]
        with open(self.path, "rb") as f:
            f.seek(self.base + b)
            raw = f.read(e - b)
        return np.frombuffer(raw, dtype=dt).reshape(d["shape"]).copy()


def open_checkpoint(path):
    """A reader with tensors() (TensorInfo in file order) and array(name)."""
    with open(path, "rb") as f:
        magic = f.read(9)
    if magic[:2] == b"PK":
        return _Pth(path)
    if len(magic) == 9 and magic[8:9] == b"{":
        return _Safetensors(path)
    raise CheckpointError(f"{path}: neither a torch.save zip (.pth) nor a "
                          f"safetensors file")


# -- conversion ----------------------------------------------------------------

def to_float32(a, dtype):
    if dtype == "bf16":
        b = np.ascontiguousarray(a, dtype=np.uint16).astype(np.uint32)
        return (b << np.uint32(16)).view(np.float32)
    return np.asarray(a, dtype=np.float32)


def from_float32(a, dtype):
    """float32 -> `dtype` (bf16: round to nearest even, as torch does)."""
    if dtype == "bf16":
        u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
        rounded = u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) &
                                           np.uint32(1))
        bits = (rounded >> np.uint32(16)).astype(np.uint16)
        nan = np.isnan(a)
        if nan.any():
            bits[nan] = 0x7FC0
        return bits
    return np.asarray(a, dtype=NP_DTYPES[dtype])


def write_safetensors(path, specs, get_array, metadata=None):
    """Writes a safetensors file through a temporary file renamed into
    place. specs: (name, dtype name, shape) in file order; get_array(name)
    returns that tensor (C-contiguous, in that dtype), one at a time, so a
    large checkpoint is never held whole in memory. The data section starts
    64-byte aligned; tensors follow each other without gaps."""
    header, offset = {}, 0
    for name, dtype, shape in specs:
        nbytes = int(np.prod(shape, dtype=np.int64)) * \
            np.dtype(NP_DTYPES[dtype]).itemsize
        header[name] = {"dtype": _ST_NAMES[dtype], "shape": list(shape),
                        "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * ((-(8 + len(blob))) % 64)
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(struct.pack("<Q", len(blob)))
            f.write(blob)
            for name, dtype, shape in specs:
                a = np.ascontiguousarray(get_array(name))
                want = header[name]["data_offsets"]
                if a.nbytes != want[1] - want[0]:
                    raise CheckpointError(f"{name}: {a.nbytes} bytes, "
                                          f"expected {want[1] - want[0]}")
                f.write(a.tobytes())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
