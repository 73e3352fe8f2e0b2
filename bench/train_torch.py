#!/usr/bin/python3
"""Plain PyTorch (eager, fp32) RWKV-7 training step: the baseline that
bench/rwkv-train-bench is compared with (docs/PERFORMANCE.md, "Training").

  train_torch.py MODEL.pth --batch B --ctx T [--threads N] [--steps K]
                 [--warmup 1] [--seed S]
  train_torch.py --check-golden DIR     # e.g. ../shared/golden/tiny

The forward is the spec's training forward (rwkv-architecture.md §1.4-1.7,
§2.1) on [B, T]: ln0 applied to the embedding, zero token shift and zero
WKV state at t = 0, decay d = exp(-e^-0.5 * sigmoid(w0 + wl)), the WKV7
recurrence run sequentially over t as batched [B, H, N, N] torch ops (no
per-head Python loops), GroupNorm eps 64e-5, mean cross-entropy over all
B*T positions (§2.7, no L2Wrap). loss.backward() gives the gradient of
every checkpoint tensor. Weights are upcast to fp32 (torch.load).

--check-golden DIR loads DIR/model.pth and DIR/train_b2t64/tokens.json and
checks the loss against manifest loss.loss_ce (1e-5 absolute) and every
gradient against DIR/train_b2t64/grads/<name>.npy (max|g-ref|/max|ref| <=
1e-4). Exit status 1 on any mismatch.
"""

import argparse
import json
import math
import os
import resource
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

DECAY_SCALE = -math.exp(-0.5)  # d = exp(-e^-0.5 * sigmoid(w))


def load_params(path):
    sd = torch.load(path, map_location="cpu")
    return {k: v.detach().to(torch.float32).contiguous().requires_grad_(True)
            for k, v in sd.items()}


def config(p):
    V, C = p["emb.weight"].shape
    H, N = p["blocks.0.att.r_k"].shape
    L = 1 + max(int(k.split(".")[1]) for k in p if k.startswith("blocks."))
    return V, C, H, N, L


def wkv7(r, w, k, v, a, b, H, N):
    """Sequential WKV7 (spec §1.6, training clampw form).

    r, w (raw), k, v, a, b: [B, T, C]. Returns y [B, T, C].
    S[b, h, i, j]: value row i, key column j.
    """
    B, T, C = r.shape
    d = torch.exp(DECAY_SCALE * torch.sigmoid(w))  # [B, T, C]
    # Per-step views laid out for batched matmuls over [B, H].
    r_ = r.view(B, T, H, N, 1)
    k_ = k.view(B, T, H, 1, N)
    v_ = v.view(B, T, H, N, 1)
    a_ = a.view(B, T, H, N, 1)
    b_ = b.view(B, T, H, 1, N)
    d_ = d.view(B, T, H, 1, N)
    S = torch.zeros(B, H, N, N, dtype=r.dtype)
    ys = []
    for t in range(T):
        sa = torch.matmul(S, a_[:, t])                        # [B,H,N,1]
        S = S * d_[:, t] + torch.matmul(sa, b_[:, t]) \
            + torch.matmul(v_[:, t], k_[:, t])                # [B,H,N,N]
        ys.append(torch.matmul(S, r_[:, t]))                  # [B,H,N,1]
    return torch.stack(ys, dim=1).view(B, T, C)


def shift(x):
    """Previous token's x, zero at t = 0 (ZeroPad2d((0,0,1,-1)))."""
    return F.pad(x, (0, 0, 1, -1))


def forward_loss(p, inputs, targets):
    V, C, H, N, L = config(p)
    B, T = inputs.shape
    x = F.embedding(inputs, p["emb.weight"])
    x = F.layer_norm(x, (C,), p["blocks.0.ln0.weight"], p["blocks.0.ln0.bias"],
                     eps=1e-5)
    v_first = None
    for l in range(L):
        pre = f"blocks.{l}."
        at = lambda n: p[pre + "att." + n]
        vec = lambda n: at(n).view(C)
        # TimeMix (§1.5)
        xa = F.layer_norm(x, (C,), p[pre + "ln1.weight"], p[pre + "ln1.bias"],
                          eps=1e-5)
        dx = shift(xa) - xa
        xr = xa + dx * vec("x_r")
        xw = xa + dx * vec("x_w")
        xk = xa + dx * vec("x_k")
        xv = xa + dx * vec("x_v")
        xaa = xa + dx * vec("x_a")
        xg = xa + dx * vec("x_g")
        r = F.linear(xr, at("receptance.weight"))
        w = vec("w0") + torch.tanh(xw @ at("w1")) @ at("w2")
        k = F.linear(xk, at("key.weight"))
        v = F.linear(xv, at("value.weight"))
        a = torch.sigmoid(vec("a0") + (xaa @ at("a1")) @ at("a2"))
        g = torch.sigmoid(xg @ at("g1")) @ at("g2")
        kk = F.normalize((k * vec("k_k")).view(B, T, H, N), dim=-1,
                         p=2.0, eps=1e-12).view(B, T, C)
        k = k * (1 + (a - 1) * vec("k_a"))
        if l == 0:
            v_first = v
        else:
            v = v + (v_first - v) * torch.sigmoid(
                vec("v0") + (xv @ at("v1")) @ at("v2"))
        y = wkv7(r, w, k, v, -kk, kk * a, H, N)
        y = F.group_norm(y.reshape(B * T, C), H, at("ln_x.weight"),
                         at("ln_x.bias"), eps=64e-5).view(B, T, C)
        bonus = (r * k * at("r_k").reshape(C)).view(B, T, H, N).sum(
            dim=-1, keepdim=True) * v.view(B, T, H, N)
        y = y + bonus.view(B, T, C)
        x = x + F.linear(y * g, at("output.weight"))
        # ChannelMix (§1.7)
        xf = F.layer_norm(x, (C,), p[pre + "ln2.weight"], p[pre + "ln2.bias"],
                          eps=1e-5)
        xk = xf + (shift(xf) - xf) * p[pre + "ffn.x_k"].view(C)
        h = torch.relu(F.linear(xk, p[pre + "ffn.key.weight"])) ** 2
        x = x + F.linear(h, p[pre + "ffn.value.weight"])
    x = F.layer_norm(x, (C,), p["ln_out.weight"], p["ln_out.bias"], eps=1e-5)
    logits = F.linear(x, p["head.weight"])
    return F.cross_entropy(logits.view(B * T, V), targets.reshape(B * T))


def make_batch(seed, B, T, V):
    """The batch rwkv-train-bench uses: per row T + 1 ids in [1, V) from a
    64-bit LCG (state = state * 6364136223846793005 + 1442695040888963407,
    id = 1 + (state >> 33) % (V - 1)); inputs [:-1], targets [1:]."""
    x, ids = seed, []
    for _ in range(B * (T + 1)):
        x = (x * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        ids.append(1 + (x >> 33) % (V - 1))
    ids = torch.tensor(ids, dtype=torch.long).view(B, T + 1)
    return ids[:, :-1].contiguous(), ids[:, 1:].contiguous()


def train_step(p, inputs, targets):
    for t in p.values():
        t.grad = None
    loss = forward_loss(p, inputs, targets)
    loss.backward()
    return loss.item()


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def check_golden(root):
    case = os.path.join(root, "train_b2t64")
    manifest = json.load(open(os.path.join(case, "manifest.json")))
    toks = json.load(open(os.path.join(case, "tokens.json")))
    inputs = torch.tensor(toks["inputs"], dtype=torch.long)
    targets = torch.tensor(toks["targets"], dtype=torch.long)
    p = load_params(os.path.join(root, "model.pth"))
    torch.set_num_threads(1)
    loss = train_step(p, inputs, targets)
    ref = manifest["loss"]["loss_ce"]
    ok = abs(loss - ref) <= 1e-5
    print(f"loss {loss:.10f} reference {ref:.10f} diff {abs(loss-ref):.2e}"
          f" {'ok' if ok else 'MISMATCH'}")
    worst, worst_name, checked = 0.0, "", 0
    gdir = os.path.join(case, "grads")
    for fname in sorted(os.listdir(gdir)):
        name = fname[:-len(".npy")]
        gref = np.load(os.path.join(gdir, fname)).astype(np.float64)
        if name not in p:
            print(f"{name}: golden gradient but no such tensor")
            ok = False
            continue
        g = p[name].grad
        g = np.zeros(gref.shape) if g is None else \
            g.detach().double().numpy().reshape(gref.shape)
        scale = np.abs(gref).max()
        rel = np.abs(g - gref).max() / (scale if scale > 0 else 1.0)
        checked += 1
        if rel > worst:
            worst, worst_name = rel, name
        if rel > 1e-4:
            print(f"{name}: gradient rel error {rel:.3e} > 1e-4 MISMATCH")
            ok = False
    # Tensors with no golden file must get no (or a zero) gradient.
    for name, t in p.items():
        if not os.path.exists(os.path.join(gdir, name + ".npy")) and \
                t.grad is not None and t.grad.abs().max() > 0:
            print(f"{name}: nonzero gradient, golden has none MISMATCH")
            ok = False
    print(f"{checked} gradients, worst rel {worst:.3e} ({worst_name})")
    print("golden check " + ("passed" if ok else "FAILED"))
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("model", nargs="?")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--ctx", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--check-golden", metavar="DIR")
    args = ap.parse_args()
    if args.check_golden:
        return check_golden(args.check_golden)
    if not args.model:
        ap.error("MODEL.pth is required (or --check-golden DIR)")
    torch.set_num_threads(args.threads)
    p = load_params(args.model)
    V, C, H, N, L = config(p)
    B, T = args.batch, args.ctx
    inputs, targets = make_batch(args.seed, B, T, V)
    for _ in range(args.warmup):
        train_step(p, inputs, targets)
    times = []
    cpu0 = time.process_time()
    for _ in range(args.steps):
        t0 = time.perf_counter()
        loss = train_step(p, inputs, targets)
        times.append(time.perf_counter() - t0)
    cpu = (time.process_time() - cpu0) / args.steps
    best, mean = min(times), sum(times) / len(times)
    tokens = B * T
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
          f"eager fp32, B={B} T={T} (L{L} C{C} V{V})")
    print(f"torch step: loss {loss:.6f}, mean {mean:.3f} s, best {best:.3f} s"
          f" over {args.steps} step(s) ({args.warmup} warm-up); {cpu:.3f} CPU s"
          f" per step = {cpu / mean:.2f} cores busy")
    print(f"torch tokens/s: {tokens / mean:.1f} (best {tokens / best:.1f})")
    print(f"torch peak RSS: {peak_rss_mib():.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
