#!/usr/bin/env python3
"""RWKV-5.0 and 5.1 previews end to end, against a float64 reference.

There is no golden data for the previews, so:
 1. rwkv5_reference.py (pip's att_one_v5 / att_one_v5_1 in float64) must
    reproduce golden/tiny-v5's logits_ref64 (5.2) to 1e-6: the reference
    is checked against the golden data before it checks the compiler;
 2. rwkv-init writes a 5.0 file (per-head decay, bonus as log u in
    att.time_first, no gate) and a 5.1 file (per-head decay, bonus u in
    att.time_faaaa, gate); rwkv-inspect must name them;
 3. rwkv-compile builds each, rwkv-run runs golden/tiny-v5's 128 tokens in
    RNN mode (one call and token by token) and GPT mode, and every
    position's logits must be within 1e-4 of the float64 reference (the
    golden tolerance), or, where the model itself is ill-conditioned in
    fp32, no farther than twice an fp32 evaluation of the same reference
    (the synthetic 5.0 file has a few such positions: its GroupNorm input
    has a large common offset and no gate shrinks it). The median error
    must stay below 1e-5 either way, and GPT must equal RNN to 1e-4 where
    the reference is well conditioned.

  rwkv5_preview_test.py BIN_DIR SHARED_DIR WORK_DIR
"""
import json
import os
import subprocess
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rwkv5_reference  # noqa: E402


def run(*cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"FAILED ({r.returncode}): {' '.join(cmd)}\n{r.stdout}{r.stderr}")
    return r.stdout


def reference(path, tokens, dtype):
    return rwkv5_reference.run(path, tokens, dtype)


def main():
    bin_dir, shared, work = sys.argv[1:4]
    os.makedirs(work, exist_ok=True)
    tokens_path = f"{shared}/golden/tiny-v5/seq128/tokens.json"
    with open(tokens_path) as f:
        tokens = json.load(f)
    failures = []

    # 1. The reference on the golden 5.2 model.
    ref = reference(f"{shared}/golden/tiny-v5/model.pth", tokens, torch.float64)
    gold = np.load(f"{shared}/golden/tiny-v5/seq128/logits_ref64.npy")
    err = float(np.abs(ref - gold).max())
    print(f"reference vs golden tiny-v5 logits_ref64: max |diff| {err:.3g}")
    if err > 1e-6:
        failures.append(f"the float64 reference misses golden tiny-v5 ({err})")

    for version, key in (("5.0", "time_first"), ("5.1", "time_faaaa")):
        pth = f"{work}/v{version}.pth"
        lib = f"{work}/v{version}.so"
        run(f"{bin_dir}/rwkv-init", "--version", version, "--dtype", "fp32",
            "-o", pth)
        info = json.loads(run(f"{bin_dir}/rwkv-inspect", pth))
        if info["version"] != 5 or info["version_string"] != version:
            failures.append(f"rwkv-inspect names {pth} "
                            f"{info['version']}/{info['version_string']}")
        keys = torch.load(pth, map_location="cpu").keys()
        if f"blocks.0.att.{key}" not in keys or \
                ("blocks.0.att.gate.weight" in keys) != (version == "5.1"):
            failures.append(f"{pth} does not have the {version} layout")
        run(f"{bin_dir}/rwkv-compile", pth, "-o", lib)
        ref64 = reference(pth, tokens, torch.float64)
        ref32 = reference(pth, tokens, torch.float32)
        cond = np.abs(ref32 - ref64).max(axis=1)
        tol = np.maximum(1e-4, 2 * cond)
        outs = {}
        for mode, extra in (("rnn", []), ("rnn-by-token", ["--token-by-token"]),
                            ("gpt", [])):
            out = f"{work}/v{version}-{mode}.npy"
            run(f"{bin_dir}/rwkv-run", lib, "--weights", pth, "--tokens-file",
                tokens_path, "--mode", mode.split("-")[0], "--logits-out", out,
                *extra)
            outs[mode] = np.load(out)
            e = np.abs(outs[mode] - ref64).max(axis=1)
            bad = np.nonzero(e > tol)[0]
            print(f"{version} {mode}: max |logit - ref64| {e.max():.3g} "
                  f"(median {np.median(e):.3g}; fp32 reference itself "
                  f"{cond.max():.3g})")
            if len(bad):
                failures.append(f"{version} {mode}: positions {bad.tolist()} "
                                f"off by {e[bad].tolist()}")
            if np.median(e) > 1e-5:
                failures.append(f"{version} {mode}: median error {np.median(e)}")
        well = cond < 2.5e-5
        d = np.abs(outs["gpt"] - outs["rnn"]).max(axis=1)[well]
        if d.max() > 1e-4:
            failures.append(f"{version}: GPT differs from RNN by {d.max()}")

    for f in failures:
        print("FAIL:", f)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
