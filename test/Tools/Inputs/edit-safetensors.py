"""Rewrites one tensor of a safetensors file, to make malformed checkpoints.

    edit-safetensors.py IN OUT drop NAME     remove the tensor
    edit-safetensors.py IN OUT shrink NAME   keep only the first half (dim 0)
    edit-safetensors.py IN OUT int8 NAME     store it as int8 (same shape)
    edit-safetensors.py IN OUT u8 NAME       store it as u8 (same shape)
    edit-safetensors.py IN OUT dtype NAME DT set the dtype (F32, BF16, U8, ...)
    edit-safetensors.py IN OUT shape NAME D0,D1,...  set the shape
The last two keep the leading bytes and zero-fill to the new size.
"""
import json
import struct
import sys

src, dst, action, name = sys.argv[1:5]
arg = sys.argv[5] if len(sys.argv) > 5 else None
SIZES = {"F64": 8, "I64": 8, "F32": 4, "I32": 4, "F16": 2, "BF16": 2,
         "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}
with open(src, "rb") as f:
    (n,) = struct.unpack("<Q", f.read(8))
    header = json.loads(f.read(n))
    data = f.read()
meta = header.pop("__metadata__", None)
out = {}
blobs = []
offset = 0
for key, info in header.items():
    begin, end = info["data_offsets"]
    blob = data[begin:end]
    if key == name:
        if action == "drop":
            continue
        if action == "shrink":
            info["shape"][0] //= 2
            blob = blob[: len(blob) // 2]
        elif action in ("int8", "u8"):
            count = 1
            for d in info["shape"]:
                count *= d
            info["dtype"] = "I8" if action == "int8" else "U8"
            blob = bytes(count)
        elif action in ("dtype", "shape"):
            if action == "dtype":
                info["dtype"] = arg
            else:
                info["shape"] = [int(d) for d in arg.split(",")]
            count = SIZES[info["dtype"]]
            for d in info["shape"]:
                count *= d
            blob = (blob + bytes(count))[:count]
    out[key] = {"dtype": info["dtype"], "shape": info["shape"],
                "data_offsets": [offset, offset + len(blob)]}
    blobs.append(blob)
    offset += len(blob)
if meta is not None:
    out["__metadata__"] = meta
text = json.dumps(out).encode()
text += b" " * (-len(text) % 8)
with open(dst, "wb") as f:
    f.write(struct.pack("<Q", len(text)))
    f.write(text)
    for blob in blobs:
        f.write(blob)
