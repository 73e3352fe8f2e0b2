#!/usr/bin/env python3
"""make_gguf.py - write an RWKV-7 .pth the way llama.cpp writes it as GGUF.

Test-data generator for the GGUF reader (runtime/checkpoint/Gguf.cpp). No
`gguf` package is needed: the container, the metadata llama.cpp's
convert_hf_to_gguf.py (class Rwkv7Model) writes, its tensor transforms and the
block quantizations of gguf-py/gguf/quants.py are reproduced here with numpy.

  make_gguf.py model.pth -o 'out/tiny-{type}.gguf' [--types f32,f16,...]

Types:
  f32, f16, bf16, q8_0  convert_hf_to_gguf.py --outtype <type>
  q4_0                  convert_hf_to_gguf.py --outtype bf16, then
                        llama-quantize ... Q4_0 (its default type rules)
--dequantized also writes '{type}-deq' files for q8_0/q4_0: the quantized
tensors decoded as gguf-py does and stored as BF16, the reader's reference.

What convert_hf_to_gguf.py does to a released x070 state_dict:
  * every tensor becomes float32 first (bf16 is not a numpy dtype);
  * att.x_r/x_w/x_k/x_v/x_a/x_g ([1,1,C] each) are stacked into
    blk.N.time_mix_lerp_fused [6,1,1,C] (ggml ne {C,1,1,6}), order r,w,k,v,a,g;
  * everything else is squeeze()d ([1,1,C] -> [C]); att.r_k [H,N] is
    flattened to [C];
  * the LoRA factors w1,w2,a1,a2,v1,v2,g1,g2 are transposed (x @ w1 becomes a
    ggml_mul_mat with ne {C, D});
  * layer 0's v0/v1/v2 are dropped and replaced by copies of a0/a1/a2
    (llama.cpp creates them for every layer but never reads layer 0's);
  * 1-D tensors, time_mix_w1/w2 and time_mix_lerp_fused are always F32;
    other matrices take the output type (Q8_0 falls back to F16 when a row is
    not a multiple of 32).
llama-quantize Q4_0 quantizes every >= 2-D '*weight' except norms and RWKV's
small matrices (time_mix_w0..g2, lerp_fused, decay_w1/w2): those keep the input
type. output.weight gets Q6_K, or Q8_0 when ne[0] is not a multiple of 256.
"""

import argparse
import os
import struct
import sys

import numpy as np

GGUF_MAGIC = b"GGUF"
GGUF_VERSION = 3
ALIGNMENT = 32  # GGUF_DEFAULT_ALIGNMENT

# GGUFValueType
UINT32, INT32, FLOAT32, STRING, ARRAY = 4, 5, 6, 8, 9

# GGMLQuantizationType and (block size, type size) from GGML_QUANT_SIZES
F32, F16, Q4_0, Q8_0, Q6_K, BF16 = 0, 1, 2, 8, 14, 30
QUANT_SIZES = {F32: (1, 4), F16: (1, 2), Q4_0: (32, 18), Q8_0: (32, 34),
               Q6_K: (256, 210), BF16: (1, 2)}
TYPE_NAMES = {F32: "F32", F16: "F16", Q4_0: "Q4_0", Q8_0: "Q8_0",
              Q6_K: "Q6_K", BF16: "BF16"}

# LlamaFileType (general.file_type)
FILE_TYPES = {"f32": 0, "f16": 1, "q4_0": 2, "q8_0": 7, "bf16": 32}
OUT_TYPES = {"f32": F32, "f16": F16, "bf16": BF16, "q8_0": Q8_0}


# --- gguf-py/gguf/quants.py, numpy only ------------------------------------

def np_roundf(n):
    # round half away from zero
    a = abs(n)
    floored = np.floor(a)
    b = floored + np.floor(2 * (a - floored))
    return np.sign(n) * b


def quantize_bf16(x):
    n = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    n = np.where((n & 0x7fffffff) > 0x7f800000,
                 (n & np.uint32(0xffff0000)) | np.uint32(64 << 16), n)
    n = (np.uint64(n) + (0x7fff + ((n >> 16) & 1))) >> 16
    return n.astype(np.uint16).view(np.uint8)


def quantize_q8_0(blocks):
    d = abs(blocks).max(axis=1, keepdims=True) / 127
    with np.errstate(divide="ignore"):
        id = np.where(d == 0, 0, 1 / d)
    qs = np_roundf(blocks * id)
    d = d.astype(np.float16).view(np.uint8)
    qs = qs.astype(np.int8).view(np.uint8)
    return np.concatenate([d, qs], axis=1)


def quantize_q4_0(blocks):
    n_blocks = blocks.shape[0]
    imax = abs(blocks).argmax(axis=-1, keepdims=True)
    max = np.take_along_axis(blocks, imax, axis=-1)
    d = max / -8
    with np.errstate(divide="ignore"):
        id = np.where(d == 0, 0, 1 / d)
    qs = np.trunc((np.float64(blocks) * np.float64(id)) + np.float64(8.5),
                  dtype=np.float32).astype(np.uint8).clip(0, 15)
    qs = qs.reshape((n_blocks, 2, 16))
    qs = qs[..., 0, :] | (qs[..., 1, :] << np.uint8(4))
    d = d.astype(np.float16).view(np.uint8)
    return np.concatenate([d, qs], axis=-1)


def quantize_q6_k(blocks):
    """A valid Q6_K encoding (the layout of gguf-py's Q6_K.dequantize_blocks):
    one f16 super-scale d, 16 int8 sub-block scales, 6-bit quants q - 32.
    llama.cpp's encoder searches the scales (make_qx_quants); this one takes
    each sub-block's absmax / 32, which is enough to test a decoder."""
    n_blocks = blocks.shape[0]
    sub = blocks.reshape((n_blocks, 16, 16))
    imax = abs(sub).argmax(axis=-1, keepdims=True)
    scale = np.take_along_axis(sub, imax, axis=-1)[..., 0] / -32  # (n, 16)
    amax = abs(scale).max(axis=-1, keepdims=True)
    d = (amax / 127).astype(np.float16)
    df = d.astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        sc = np.where(df == 0, 0, np_roundf(scale / df)).clip(-128, 127)
    dl = (df * sc).reshape((n_blocks, 16, 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(dl == 0, 0, np_roundf(sub / dl))
    q = (q.clip(-32, 31) + 32).astype(np.uint8).reshape((n_blocks, 256))
    # element e = h*128 + s*32 + l (h half, s 0..3, l 0..31):
    # low 4 bits in ql[h*64 + (s%2)*32 + l] (s >= 2: high nibble),
    # high 2 bits in qh[h*32 + l] at bit 2*s
    q = q.reshape((n_blocks, 2, 4, 32))
    lo = q & np.uint8(0x0F)
    hi = q >> np.uint8(4)
    ql = (lo[:, :, 0:2, :] | (lo[:, :, 2:4, :] << np.uint8(4)))
    ql = ql.reshape((n_blocks, 128))
    qh = (hi[:, :, 0, :] | (hi[:, :, 1, :] << np.uint8(2)) |
          (hi[:, :, 2, :] << np.uint8(4)) | (hi[:, :, 3, :] << np.uint8(6)))
    qh = qh.reshape((n_blocks, 64))
    return np.concatenate([ql, qh, sc.astype(np.int8).view(np.uint8),
                           d.view(np.uint8)], axis=-1)


BLOCK_QUANTIZERS = {Q8_0: quantize_q8_0, Q4_0: quantize_q4_0,
                    Q6_K: quantize_q6_k}


def encode(data, qtype):
    """Bytes of `data` (float32, numpy row-major) stored as `qtype`."""
    data = np.ascontiguousarray(data, dtype=np.float32)
    if qtype == F32:
        return data.astype("<f4").tobytes()
    if qtype == F16:
        return data.astype("<f2").tobytes()
    if qtype == BF16:
        return quantize_bf16(data).tobytes()
    block, _ = QUANT_SIZES[qtype]
    assert data.shape[-1] % block == 0
    blocks = data.reshape((-1, block))
    return BLOCK_QUANTIZERS[qtype](blocks).tobytes()


def dequantize(blob, qtype):
    """gguf-py's dequantize_blocks for Q8_0, Q4_0 and Q6_K: float32 values."""
    block, size = QUANT_SIZES[qtype]
    b = np.frombuffer(blob, dtype=np.uint8).reshape((-1, size))
    n_blocks = b.shape[0]
    if qtype == Q8_0:
        d = b[:, :2].copy().view(np.float16).astype(np.float32)
        x = b[:, 2:].copy().view(np.int8).astype(np.float32)
        return (x * d).reshape(-1)
    if qtype == Q4_0:
        d = b[:, :2].copy().view(np.float16).astype(np.float32)
        qs = b[:, 2:].reshape((n_blocks, -1, 1, 16)) >> np.array(
            [0, 4], dtype=np.uint8).reshape((1, 1, 2, 1))
        qs = (qs & np.uint8(0x0F)).reshape((n_blocks, -1)).astype(np.int8)
        return (d * (qs - np.int8(8)).astype(np.float32)).reshape(-1)
    assert qtype == Q6_K
    ql, qh = b[:, :128], b[:, 128:192]
    scales = b[:, 192:208].copy().view(np.int8).astype(np.float32)
    d = b[:, 208:].copy().view(np.float16).astype(np.float32)
    d = (d * scales).reshape((n_blocks, 16, 1))
    ql = ql.reshape((n_blocks, -1, 1, 64)) >> np.array(
        [0, 4], dtype=np.uint8).reshape((1, 1, 2, 1))
    ql = (ql & np.uint8(0x0F)).reshape((n_blocks, -1, 32))
    qh = qh.reshape((n_blocks, -1, 1, 32)) >> np.array(
        [0, 2, 4, 6], dtype=np.uint8).reshape((1, 1, 4, 1))
    qh = (qh & np.uint8(0x03)).reshape((n_blocks, -1, 32))
    q = (ql | (qh << np.uint8(4))).astype(np.int8) - np.int8(32)
    q = q.reshape((n_blocks, 16, -1)).astype(np.float32)
    return (d * q).reshape(-1)


def dequantized(tensors):
    """The same tensors with each block-quantized one replaced by its gguf-py
    dequantization stored as BF16: what the reader must present."""
    out = []
    for name, data, qtype in tensors:
        if qtype in BLOCK_QUANTIZERS:
            data = dequantize(encode(data, qtype), qtype).reshape(data.shape)
            qtype = BF16
        out.append((name, data, qtype))
    return out


# --- convert_hf_to_gguf.py, class Rwkv7Model --------------------------------

LERP = ["r", "w", "k", "v", "a", "g"]
LORA = {"w1", "w2", "a1", "a2", "v1", "v2", "g1", "g2"}
ATT_VECTORS = {"w0", "a0", "v0", "k_k", "k_a", "r_k"}


def gguf_name(key):
    """GGUF name of a released-layout key (gguf-py tensor_mapping.py)."""
    top = {"emb.weight": "token_embd.weight",
           "blocks.0.ln0.weight": "token_embd_norm.weight",
           "blocks.0.ln0.bias": "token_embd_norm.bias",
           "ln_out.weight": "output_norm.weight",
           "ln_out.bias": "output_norm.bias",
           "head.weight": "output.weight"}
    if key in top:
        return top[key]
    parts = key.split(".")
    assert parts[0] == "blocks", key
    b, rest = parts[1], ".".join(parts[2:])
    table = {"ln1.weight": "attn_norm.weight", "ln1.bias": "attn_norm.bias",
             "ln2.weight": "attn_norm_2.weight",
             "ln2.bias": "attn_norm_2.bias",
             "att.receptance.weight": "time_mix_receptance.weight",
             "att.key.weight": "time_mix_key.weight",
             "att.value.weight": "time_mix_value.weight",
             "att.output.weight": "time_mix_output.weight",
             "att.ln_x.weight": "time_mix_ln.weight",
             "att.ln_x.bias": "time_mix_ln.bias",
             "ffn.x_k": "channel_mix_lerp_k.weight",
             "ffn.key.weight": "channel_mix_key.weight",
             "ffn.value.weight": "channel_mix_value.weight"}
    if rest in table:
        return f"blk.{b}.{table[rest]}"
    if rest.startswith("att.") and (rest[4:] in LORA or
                                    rest[4:] in ATT_VECTORS):
        return f"blk.{b}.time_mix_{rest[4:]}.weight"
    raise ValueError(f"no GGUF name for '{key}'")


def convert_tensors(state):
    """(gguf name, float32 array) in the order convert_hf_to_gguf emits."""
    lerp = {}
    for key, t in state.items():
        data = t.float().numpy()  # "convert any unsupported data types"
        parts = key.split(".")
        bid = int(parts[1]) if parts[0] == "blocks" else None
        if bid is not None and parts[2] == "att" and parts[3] in (
                "x_" + x for x in LERP):
            lerp.setdefault(bid, {})[parts[3][2:]] = data
            if len(lerp[bid]) == len(LERP):
                yield (f"blk.{bid}.time_mix_lerp_fused.weight",
                       np.stack([lerp[bid][x] for x in LERP], axis=0))
            continue
        if bid == 0 and key.split(".")[-1] in ("v0", "v1", "v2"):
            continue  # dummy v0/v1/v2 are written from a0/a1/a2 below
        data = np.squeeze(data)
        name = gguf_name(key)
        short = key.split(".")[-1]
        if key.startswith("blocks.") and parts[2] == "att" and short in LORA:
            data = np.ascontiguousarray(data.T)
        if short == "r_k":
            data = data.reshape(-1)
        if bid == 0 and "time_mix_a" in name:
            yield name.replace("time_mix_a", "time_mix_v"), data
        yield name, data


def convert_type(name, data, out):
    """TextModel.prepare_tensors: the GGML type of one converted tensor."""
    forced_f32 = ("time_mix_w1.weight", "time_mix_w2.weight",
                  "time_mix_lerp_fused.weight")
    if data.ndim <= 1 or name.endswith("_norm.weight"):
        return F32
    if name.endswith(forced_f32) or not name.endswith(".weight"):
        return F32
    qtype = OUT_TYPES[out]
    block, _ = QUANT_SIZES[qtype]
    if data.shape[-1] % block != 0:  # QuantError -> "falling back to F16"
        return F16
    return qtype


# llama-quantize (src/llama-quant.cpp): tensors it leaves alone
QUANT_SKIP = ("_norm.weight", "time_mix_first.weight", "time_mix_w0.weight",
              "time_mix_w1.weight", "time_mix_w2.weight",
              "time_mix_v0.weight", "time_mix_v1.weight",
              "time_mix_v2.weight", "time_mix_a0.weight",
              "time_mix_a1.weight", "time_mix_a2.weight",
              "time_mix_g1.weight", "time_mix_g2.weight",
              "time_mix_decay_w1.weight", "time_mix_decay_w2.weight",
              "time_mix_lerp_fused.weight")


def quantize_type(name, data, source_type, default, head_type):
    if not name.endswith("weight") or data.ndim < 2:
        return source_type
    if any(s in name for s in QUANT_SKIP):
        return source_type
    qtype = default
    if name == "output.weight":
        qtype = head_type or Q6_K
        if data.shape[-1] % QUANT_SIZES[qtype][0] != 0:
            qtype = Q8_0  # Q6_K's fallback
    if data.shape[-1] % QUANT_SIZES[qtype][0] != 0:
        raise ValueError(f"{name}: row of {data.shape[-1]} is not a multiple "
                         f"of the {TYPE_NAMES[qtype]} block")
    return qtype


def plan(state, out, head_type=None):
    """[(name, float32 array, ggml type)] for output type `out`."""
    tensors = []
    for name, data in convert_tensors(state):
        if out == "q4_0":
            src = convert_type(name, data, "bf16")
            qtype = quantize_type(name, data, src, Q4_0, head_type)
        else:
            qtype = convert_type(name, data, out)
        tensors.append((name, data, qtype))
    return tensors


# --- the container (gguf-py/gguf/gguf_writer.py) -----------------------------

def gguf_string(s):
    b = s if isinstance(s, bytes) else s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def kv(key, vtype, value, elem_type=None):
    out = gguf_string(key) + struct.pack("<I", vtype)
    if vtype == UINT32:
        return out + struct.pack("<I", value)
    if vtype == INT32:
        return out + struct.pack("<i", value)
    if vtype == FLOAT32:
        return out + struct.pack("<f", value)
    if vtype == STRING:
        return out + gguf_string(value)
    assert vtype == ARRAY
    out += struct.pack("<IQ", elem_type, len(value))
    if elem_type == STRING:
        return out + b"".join(gguf_string(v) for v in value)
    assert elem_type == INT32
    return out + struct.pack(f"<{len(value)}i", *value)


def pad(n):
    return (ALIGNMENT - n % ALIGNMENT) % ALIGNMENT


def metadata(config, out, name):
    arch = "rwkv7"
    ftype = FILE_TYPES[out]
    vocab = config["vocab"]
    # RWKV World style vocabulary: raw byte strings, not all valid UTF-8.
    tokens = [b"<s>"] + [bytes([i]) for i in range(256)]
    tokens += [f"tok{i}".encode() for i in range(len(tokens), vocab)]
    tokens = tokens[:vocab]
    return [
        kv("general.architecture", STRING, arch),
        kv("general.type", STRING, "model"),
        kv("general.name", STRING, name),
        kv(f"{arch}.context_length", UINT32, 1048576),
        kv(f"{arch}.embedding_length", UINT32, config["n_embd"]),
        kv(f"{arch}.block_count", UINT32, config["n_layer"]),
        kv(f"{arch}.attention.layer_norm_epsilon", FLOAT32, 1e-5),
        kv(f"{arch}.wkv.head_size", UINT32, config["head_size"]),
        kv(f"{arch}.attention.decay_lora_rank", UINT32, config["lora_w"]),
        kv(f"{arch}.attention.iclr_lora_rank", UINT32, config["lora_a"]),
        kv(f"{arch}.attention.value_residual_mix_lora_rank", UINT32,
           config["lora_v"]),
        kv(f"{arch}.attention.gate_lora_rank", UINT32, config["lora_g"]),
        kv(f"{arch}.feed_forward_length", UINT32, config["dim_ffn"]),
        kv("general.file_type", UINT32, ftype),
        kv(f"{arch}.attention.head_count", UINT32, 0),
        kv("general.quantization_version", UINT32, 2),
        kv("tokenizer.ggml.model", STRING, "rwkv"),
        kv("tokenizer.ggml.tokens", ARRAY, tokens, STRING),
        kv("tokenizer.ggml.token_type", ARRAY,
           [3] + [1] * (len(tokens) - 1), INT32),
        kv("tokenizer.ggml.eos_token_id", UINT32, 0),
        kv("tokenizer.chat_template", STRING, "rwkv-world"),
    ]


def write_gguf(path, kvs, tensors):
    infos, blobs, offset = [], [], 0
    for name, data, qtype in tensors:
        blob = encode(data, qtype)
        shape = data.shape
        # ggml's ne is the numpy shape reversed (ne[0] varies fastest)
        ne = list(reversed(shape))
        infos.append(gguf_string(name) + struct.pack("<I", len(ne)) +
                     struct.pack(f"<{len(ne)}Q", *ne) +
                     struct.pack("<IQ", qtype, offset))
        blobs.append(blob + b"\0" * pad(len(blob)))
        offset += len(blobs[-1])
    header = (GGUF_MAGIC + struct.pack("<IQQ", GGUF_VERSION, len(tensors),
                                       len(kvs)))
    head = header + b"".join(kvs) + b"".join(infos)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(head + b"\0" * pad(len(head)))
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def model_config(state):
    c = state["emb.weight"].shape[1]
    n_layer = 1 + max(int(k.split(".")[1]) for k in state
                      if k.startswith("blocks."))
    v1 = "blocks.1.att.v1" if n_layer > 1 else "blocks.0.att.v1"
    return {"n_embd": c, "n_layer": n_layer,
            "vocab": state["emb.weight"].shape[0],
            "head_size": state["blocks.0.att.r_k"].shape[1],
            "dim_ffn": state["blocks.0.ffn.key.weight"].shape[0],
            "lora_w": state["blocks.0.att.w1"].shape[1],
            "lora_a": state["blocks.0.att.a1"].shape[1],
            "lora_v": state[v1].shape[1] if v1 in state else 0,
            "lora_g": state["blocks.0.att.g1"].shape[1]}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("pth", help="RWKV-7 checkpoint in the released layout")
    p.add_argument("-o", "--output", required=True,
                   help="output path, '{type}' is replaced by the type")
    p.add_argument("--types", default="f32,f16,bf16,q8_0,q4_0")
    p.add_argument("--head-type", choices=["q6_k", "q8_0"],
                   help="q4_0: output.weight type (default: llama-quantize's "
                        "Q6_K, Q8_0 when n_embd %% 256 != 0)")
    p.add_argument("--name", default=None, help="general.name")
    p.add_argument("--dequantized", action="store_true",
                   help="for q8_0/q4_0 also write '{type}-deq': the "
                        "quantized tensors dequantized by numpy, as BF16")
    args = p.parse_args()

    import torch  # only needed to read the .pth
    state = torch.load(args.pth, map_location="cpu", weights_only=True)
    config = model_config(state)
    name = args.name or os.path.basename(os.path.dirname(
        os.path.abspath(args.pth)))
    head = {"q6_k": Q6_K, "q8_0": Q8_0}.get(args.head_type)
    for out in args.types.split(","):
        if out not in FILE_TYPES:
            sys.exit(f"make_gguf.py: unknown type '{out}'")
        path = args.output.replace("{type}", out)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        tensors = plan(state, out, head)
        write_gguf(path, metadata(config, out, name), tensors)
        if args.dequantized and out in ("q8_0", "q4_0"):
            write_gguf(args.output.replace("{type}", out + "-deq"),
                       metadata(config, out, name), dequantized(tensors))


if __name__ == "__main__":
    main()
