#!/usr/bin/env python3
"""Float64 reference of RWKV-5 inference (5.0, 5.1 and 5.2), per token.

Spec §4.3 as the pip package computes it (att_one_v5 for 5.0, att_one_v5_1
for 5.1 and 5.2): the 5.0/5.1 previews keep one decay and one bonus per head
([H]; the bonus is stored as log u under att.time_first, or as u under
att.time_faaaa), 5.2 one per channel ([H, N]); 5.0 has no gate.

  rwkv5_reference.py MODEL.pth TOKENS.json OUT_LOGITS.npy

writes the [T, V] logits (float64 rounded to float32) of every position, in
RNN mode from the zero state. There is no golden data for the previews, so
the test (rwkv5-preview.sh) first checks this reference against
golden/tiny-v5's logits_ref64 (5.2), then uses it on synthetic 5.0/5.1 files.
"""
import json
import sys

import numpy as np
import torch


def layer_norm(x, w, b, eps=1e-5):
    mu = x.mean()
    var = ((x - mu) ** 2).mean()
    return (x - mu) / torch.sqrt(var + eps) * w + b


def group_norm(x, groups, w, b, eps):
    g = x.view(groups, -1)
    mu = g.mean(dim=1, keepdim=True)
    var = ((g - mu) ** 2).mean(dim=1, keepdim=True)
    return ((g - mu) / torch.sqrt(var + eps)).flatten() * w + b


def run(path, tokens, dtype=torch.float64):
    """Logits [T, V] (float32) of every position; `dtype` is the precision
    of the whole computation (float32 shows the model's own conditioning)."""
    w = {k: v.to(dtype).squeeze() if k.split(".")[-1].startswith("time_")
         else v.to(dtype) for k, v in torch.load(path, map_location="cpu").items()}
    C = w["emb.weight"].shape[1]
    L = 1 + max(int(k.split(".")[1]) for k in w if k.startswith("blocks."))
    td = w["blocks.0.att.time_decay"]
    H = td.shape[0]
    N = C // H
    per_channel = td.dim() == 2  # 5.2
    gate = "blocks.0.att.gate.weight" in w  # 5.1 and 5.2
    emb = w["emb.weight"]
    att_x = torch.zeros(L, C, dtype=dtype)
    ffn_x = torch.zeros(L, C, dtype=dtype)
    s = torch.zeros(L, H, N, N, dtype=dtype)  # [h][key][value]
    out = []
    for tok in tokens:
        x = layer_norm(emb[tok], w["blocks.0.ln0.weight"], w["blocks.0.ln0.bias"])
        for l in range(L):
            p = f"blocks.{l}."
            a = p + "att."
            xx = layer_norm(x, w[p + "ln1.weight"], w[p + "ln1.bias"])
            sx = att_x[l]

            def mix(name):
                m = w[a + name]
                return xx * m + sx * (1 - m)

            r = (w[a + "receptance.weight"] @ mix("time_mix_r")).view(H, 1, N)
            k = (w[a + "key.weight"] @ mix("time_mix_k")).view(H, N, 1)
            v = (w[a + "value.weight"] @ mix("time_mix_v")).view(H, 1, N)
            shape = (H, N, 1) if per_channel else (H, 1, 1)
            decay = torch.exp(-torch.exp(w[a + "time_decay"])).reshape(shape)
            if a + "time_faaaa" in w:
                u = w[a + "time_faaaa"].reshape(shape)
            else:
                u = torch.exp(w[a + "time_first"]).reshape(shape)
            kv = k @ v
            y = (r @ (u * kv + s[l])).flatten()
            s[l] = kv + decay * s[l]
            y = group_norm(y, H, w[a + "ln_x.weight"], w[a + "ln_x.bias"], 64e-5)
            if gate:
                g = w[a + "gate.weight"] @ mix("time_mix_g")
                y = y * (g * torch.sigmoid(g))
            x = x + w[a + "output.weight"] @ y
            att_x[l] = xx

            f = p + "ffn."
            xx = layer_norm(x, w[p + "ln2.weight"], w[p + "ln2.bias"])
            sx = ffn_x[l]
            kx = xx * w[f + "time_mix_k"] + sx * (1 - w[f + "time_mix_k"])
            rx = xx * w[f + "time_mix_r"] + sx * (1 - w[f + "time_mix_r"])
            kk = torch.relu(w[f + "key.weight"] @ kx) ** 2
            x = x + torch.sigmoid(w[f + "receptance.weight"] @ rx) * (
                w[f + "value.weight"] @ kk)
            ffn_x[l] = xx
        x = layer_norm(x, w["ln_out.weight"], w["ln_out.bias"])
        out.append((w["head.weight"] @ x).numpy())
    return np.stack(out).astype(np.float32)


def main():
    path, tokens_path, out_path = sys.argv[1:4]
    with open(tokens_path) as f:
        tokens = json.load(f)
    if isinstance(tokens, dict):
        tokens = tokens["tokens"]
    np.save(out_path, run(path, tokens))


if __name__ == "__main__":
    main()
