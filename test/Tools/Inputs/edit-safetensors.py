"""Rewrites one tensor of a safetensors file, to make malformed checkpoints.

    edit-safetensors.py IN OUT drop NAME     remove the tensor
    edit-safetensors.py IN OUT shrink NAME   keep only the first half (dim 0)
    edit-safetensors.py IN OUT int8 NAME     store it as int8 (same shape)
"""
import json
import struct
import sys

src, dst, action, name = sys.argv[1:5]
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
        elif action == "int8":
            count = 1
            for d in info["shape"]:
                count *= d
            info["dtype"] = "I8"
            blob = bytes(count)
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
