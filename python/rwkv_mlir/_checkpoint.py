"""Checkpoint headers and tensors in numpy, without torch: `torch.save` zip
files (.pth), safetensors and llama.cpp GGUF, read lazily; safetensors
written, and GGUF copied with float tensors in another float type.

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


# -- GGUF (llama.cpp) ----------------------------------------------------------
#
# Only what a dtype conversion of a GGUF file needs: the metadata and the
# tensor table, every length and offset checked, and a writer that copies a
# file with some float tensors stored in another float type. The runtime
# (runtime/checkpoint/Gguf.cpp, docs/checkpoints.md) validates the model and
# undoes llama.cpp's conversion; the converted file keeps llama.cpp's layout.

GGUF_MAGIC = b"GGUF"
# GGMLQuantizationType -> (name, block size, bytes per block): the types the
# runtime reads (F32, F16, BF16 as they are; Q4_0 and Q8_0 matrices repacked
# to int4 and int8 with bf16 scales per block of 32, other Q8_0, Q4_0 and
# Q6_K tensors dequantized to bf16 on load).
_GGML_TYPES = {0: ("F32", 1, 4), 1: ("F16", 1, 2), 30: ("BF16", 1, 2),
               8: ("Q8_0", 32, 34), 2: ("Q4_0", 32, 18),
               14: ("Q6_K", 256, 210)}
_GGML_FLOAT = {0: "f32", 1: "f16", 30: "bf16"}
_GGML_OF_DTYPE = {v: k for k, v in _GGML_FLOAT.items()}
# general.file_type (LlamaFileType) of a file whose matrices are all `dtype`.
_GGUF_FILE_TYPES = {"f32": 0, "f16": 1, "bf16": 32}
# GGUFValueType: fixed-size scalars (STRING = 8 and ARRAY = 9 vary).
_GGUF_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i",
                 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_GGUF_STRING, _GGUF_ARRAY = 8, 9

GgufTensor = collections.namedtuple("GgufTensor", "name type ne offset nbytes")


class _Gguf:
    """A GGUF v2/v3 file: `meta` (key -> value; arrays are not decoded),
    `tensor_table` (GgufTensor in file order), `tensors()` (TensorInfo with
    the numpy-order shape and a dtype name: 'f32', 'f16', 'bf16', or the
    ggml type in lower case such as 'q8_0'). CheckpointError, naming the
    file, for anything malformed."""

    def __init__(self, path):
        self.path = path
        with open(path, "rb") as f:
            self.size = os.fstat(f.fileno()).st_size
            # The header is small next to the tensors; read it in pieces.
            self._f = f
            self._pos = 0
            self._parse()
        self._f = None

    def _fail(self, msg):
        raise CheckpointError(f"{self.path}: {msg}")

    def _skip(self, n, what):
        if n > self.size - self._pos:
            self._fail(f"truncated GGUF header: {what} at byte {self._pos} "
                       f"needs {n} bytes, the {self.size}-byte file has "
                       f"{self.size - self._pos} left")
        self._pos += n

    def _take(self, n, what):
        start = self._pos
        self._skip(n, what)
        self._f.seek(start)
        return self._f.read(n)

    def _unpack(self, fmt, what):
        return struct.unpack(fmt, self._take(struct.calcsize(fmt), what))[0]

    def _string(self, what):
        n = self._unpack("<Q", f"the length of {what}")
        return self._take(n, what).decode("utf-8", "replace")

    def _value(self, vtype, what):
        if vtype in _GGUF_SCALARS:
            return self._unpack(_GGUF_SCALARS[vtype], what)
        if vtype == _GGUF_STRING:
            return self._string(what)
        if vtype == _GGUF_ARRAY:
            etype = self._unpack("<I", f"the element type of {what}")
            count = self._unpack("<Q", f"the length of {what}")
            if etype in _GGUF_SCALARS:
                self._skip(count * struct.calcsize(_GGUF_SCALARS[etype]),
                           what)
            elif etype == _GGUF_STRING:
                if count > self.size:
                    self._fail(f"{what}: {count} strings cannot fit in the "
                               f"file")
                for _ in range(count):
                    self._string(what)
            else:
                self._fail(f"{what}: arrays of value type {etype} are not "
                           f"valid GGUF")
            return None
        self._fail(f"{what}: unknown GGUF value type {vtype}")

    def _parse(self):
        magic = self._take(4, "the magic")
        if magic != GGUF_MAGIC:
            self._fail(f"not a GGUF file: it starts with {magic!r}, not "
                       f"b'GGUF'")
        version = self._unpack("<I", "the version")
        if version not in (2, 3):
            if version & 0xFFFF == 0 and (version >> 24) in (2, 3):
                self._fail("a big-endian GGUF file; llama.cpp's little-endian "
                           "files only are read")
            self._fail(f"GGUF version {version}; versions 2 and 3 are read")
        self.version = version
        n_tensors = self._unpack("<Q", "the tensor count")
        n_kv = self._unpack("<Q", "the metadata count")
        if n_tensors > self.size or n_kv > self.size:
            self._fail(f"GGUF header claims {n_tensors} tensors and {n_kv} "
                       f"metadata entries, more than the {self.size}-byte "
                       f"file can hold")
        # key -> value, and the raw bytes of each entry (for the writer).
        self.meta = collections.OrderedDict()
        self._meta_spans = []
        for i in range(n_kv):
            start = self._pos
            key = self._string(f"metadata key {i}")
            vtype = self._unpack("<I", f"the type of metadata '{key}'")
            vstart = self._pos
            self.meta[key] = self._value(vtype, f"metadata '{key}'")
            self._meta_spans.append((key, vtype, start, vstart, self._pos))
        table = []
        for i in range(n_tensors):
            name = self._string(f"the name of tensor {i}")
            n_dims = self._unpack("<I", f"the rank of tensor '{name}'")
            if not 1 <= n_dims <= 4:
                self._fail(f"tensor '{name}' has {n_dims} dimensions "
                           f"(1 to 4)")
            ne = [self._unpack("<Q", f"the shape of tensor '{name}'")
                  for _ in range(n_dims)]
            ttype = self._unpack("<I", f"the type of tensor '{name}'")
            offset = self._unpack("<Q", f"the offset of tensor '{name}'")
            table.append((name, ttype, ne, offset))
        self._header_end = self._pos
        align = self.meta.get("general.alignment", 32)
        if not isinstance(align, int) or align <= 0 or align & (align - 1):
            self._fail(f"metadata 'general.alignment' is {align!r}, expected "
                       f"a power of two")
        self.alignment = align
        self.data_start = -(-self._pos // align) * align
        self.tensor_table = []
        for name, ttype, ne, offset in table:
            nbytes = None
            if ttype in _GGML_TYPES:
                tname, block, tsize = _GGML_TYPES[ttype]
                numel = 1
                for d in ne:
                    numel *= d
                if ne[0] % block:
                    self._fail(f"tensor '{name}' ({tname}, ne {ne}): ne[0] "
                               f"is not a multiple of the block size {block}")
                nbytes = numel // block * tsize
                end = self.data_start + offset + nbytes
                if end > self.size:
                    self._fail(f"truncated: tensor '{name}' ({tname}, ne "
                               f"{ne}) ends at byte {end}, the file has "
                               f"{self.size}")
            self.tensor_table.append(GgufTensor(name, ttype, tuple(ne),
                                                offset, nbytes))
        arch = self.meta.get("general.architecture")
        if arch != "rwkv7":
            self._fail(f"general.architecture is {arch!r}: only llama.cpp's "
                       f"RWKV-7 GGUF files ('rwkv7') are read; run other "
                       f"versions from their .pth")

    @staticmethod
    def type_name(ttype):
        return _GGML_TYPES[ttype][0] if ttype in _GGML_TYPES \
            else f"ggml type {ttype}"

    def tensors(self):
        return [TensorInfo(t.name, _GGML_FLOAT.get(t.type)
                           or self.type_name(t.type).lower(),
                           tuple(reversed(t.ne)))
                for t in self.tensor_table]

    def _unsupported(self, t):
        self._fail(f"tensor '{t.name}' is {self.type_name(t.type)}, which "
                   f"the runtime does not read (F32, F16, BF16, Q8_0, Q4_0, "
                   f"Q6_K)")

    def _raw(self, f, t):
        if t.nbytes is None:
            self._unsupported(t)
        f.seek(self.data_start + t.offset)
        return f.read(t.nbytes)

    def array(self, name):
        """A float tensor as numpy (bf16: uint16 bit patterns), in numpy
        order (ggml's ne reversed), as stored: llama.cpp's layout."""
        t = next((t for t in self.tensor_table if t.name == name), None)
        if t is None:
            raise KeyError(name)
        if t.type not in _GGML_FLOAT:
            self._fail(f"tensor '{name}' is {self.type_name(t.type)}, not a "
                       f"float type")
        with open(self.path, "rb") as f:
            raw = self._raw(f, t)
        a = np.frombuffer(raw, dtype=NP_DTYPES[_GGML_FLOAT[t.type]])
        return a.reshape(tuple(reversed(t.ne))).copy()

    def write_converted(self, path, convert):
        """Writes a copy of this file to `path` (through a temporary file
        renamed into place) with each float tensor named in `convert`
        (name -> 'f32' | 'f16' | 'bf16') stored in that type (bf16: round
        to nearest even, as torch does), every other tensor and the
        metadata copied byte for byte, except general.file_type, set to the
        target type's when the file was a float one and every tensor named
        is converted to one type."""
        targets = set(convert.values())
        file_type = None
        if len(targets) == 1 and self.meta.get("general.file_type") in \
                _GGUF_FILE_TYPES.values():
            file_type = _GGUF_FILE_TYPES[targets.pop()]
        types, infos, offset = {}, [], 0
        for t in self.tensor_table:
            ttype = _GGML_OF_DTYPE[convert[t.name]] if t.name in convert \
                else t.type
            if t.name in convert and t.type not in _GGML_FLOAT:
                self._fail(f"tensor '{t.name}' is {self.type_name(t.type)}; "
                           f"only float tensors can be converted")
            if ttype not in _GGML_TYPES:
                self._unsupported(t)
            tsize = _GGML_TYPES[ttype][2]
            nbytes = t.nbytes if ttype == t.type else \
                t.nbytes // _GGML_TYPES[t.type][2] * tsize
            types[t.name] = (ttype, offset, nbytes)
            name = t.name.encode()
            infos.append(struct.pack("<Q", len(name)) + name +
                         struct.pack("<I", len(t.ne)) +
                         struct.pack(f"<{len(t.ne)}Q", *t.ne) +
                         struct.pack("<IQ", ttype, offset))
            offset += -(-nbytes // self.alignment) * self.alignment
        tmp = f"{path}.tmp{os.getpid()}"
        try:
            with open(self.path, "rb") as src, open(tmp, "wb") as out:
                out.write(GGUF_MAGIC + struct.pack(
                    "<IQQ", self.version, len(self.tensor_table),
                    len(self._meta_spans)))
                for key, vtype, start, vstart, end in self._meta_spans:
                    src.seek(start)
                    entry = src.read(end - start)
                    if key == "general.file_type" and file_type is not None \
                            and vtype == 4:
                        entry = entry[:vstart - start] + \
                            struct.pack("<I", file_type)
                    out.write(entry)
                for info in infos:
                    out.write(info)
                out.write(b"\0" * (-out.tell() % self.alignment))
                base = out.tell()
                for t in self.tensor_table:
                    ttype, off, nbytes = types[t.name]
                    raw = self._raw(src, t)
                    if ttype != t.type:   # (GGUF is little-endian)
                        src_dt, dst_dt = _GGML_FLOAT[t.type], \
                            _GGML_FLOAT[ttype]
                        a = np.frombuffer(raw, dtype=NP_DTYPES[src_dt])
                        raw = from_float32(to_float32(a, src_dt),
                                           dst_dt).tobytes()
                    if len(raw) != nbytes or out.tell() != base + off:
                        raise CheckpointError(f"{path}: internal error "
                                              f"writing '{t.name}'")
                    out.write(raw)
                    out.write(b"\0" * (-out.tell() % self.alignment))
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)


def open_checkpoint(path):
    """A reader with tensors() (TensorInfo in file order) and array(name)."""
    with open(path, "rb") as f:
        magic = f.read(9)
    if magic[:2] == b"PK":
        return _Pth(path)
    if len(magic) == 9 and magic[8:9] == b"{":
        return _Safetensors(path)
    if magic[:4] == GGUF_MAGIC:
        return _Gguf(path)
    raise CheckpointError(f"{path}: neither a torch.save zip (.pth), a "
                          f"safetensors file nor a GGUF file")


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
