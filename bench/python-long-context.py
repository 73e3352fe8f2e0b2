#!/usr/bin/env python3
"""Constant memory over a long document through the pip-compatible Python
API: feeds N tokens (default 1M) in chunks of 1024 through
`model.forward(chunk, state)` and records the process RSS (VmRSS of
/proc/self/status) at the start, every --report-every chunks and at the
end, and the tokens/s.

    PYTHONPATH=python RWKV_MLIR_RUNTIME=build/lib/librwkvrt.so \\
      python3 bench/python-long-context.py --model ../shared/golden/tiny/model.pth

The tokens are uniform random ids (PCG64, --seed), drawn chunk by chunk so
that the input itself takes no memory. `rss_growth_kib` is the largest RSS
seen after the first --warmup chunks minus the RSS right after them (the
first calls allocate the entry points' buffers once). unittests/python/
test_pip_api.py runs this on 64k tokens and bounds the growth.
"""

import argparse
import json
import os
import sys
import time

import numpy as np


def rss_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def run(model, tokens=1 << 20, chunk=1024, report_every=64, warmup=2,
        seed=0, log=print):
    """Feeds `tokens` random ids in chunks through model.forward; returns a
    dict of the figures (RSS in KiB)."""
    rng = np.random.default_rng(seed)
    V = model.vocab_size
    n_chunks = (tokens + chunk - 1) // chunk
    samples = [("start", 0, rss_kib())]
    log(f"start: RSS {samples[0][2] / 1024:.1f} MiB")
    state = None
    base = None
    peak_after = 0
    fed = 0
    t0 = time.perf_counter()
    t_warm = None
    out = None
    for i in range(n_chunks):
        n = min(chunk, tokens - fed)
        ids = rng.integers(0, V, size=n).tolist()
        out, state = model.forward(ids, state)
        fed += n
        if i + 1 == warmup:
            base = rss_kib()
            t_warm = time.perf_counter()
            samples.append(("warm", fed, base))
        elif base is not None:
            peak_after = max(peak_after, rss_kib())
        if (i + 1) % report_every == 0 or i + 1 == n_chunks:
            r = rss_kib()
            samples.append(("chunk", fed, r))
            el = time.perf_counter() - t0
            log(f"{fed:>9} tokens  {fed / el:9.1f} tok/s  RSS "
                f"{r / 1024:8.1f} MiB")
    t1 = time.perf_counter()
    end = rss_kib()
    samples.append(("end", fed, end))
    if base is None:
        base = end
    if t_warm is None:
        t_warm = t0
    warm_tokens = fed - min(fed, warmup * chunk)
    result = {
        "tokens": fed, "chunk": chunk, "vocab": V,
        "seconds": t1 - t0,
        "tokens_per_s": fed / (t1 - t0),
        "tokens_per_s_after_warmup":
            warm_tokens / (t1 - t_warm) if t1 > t_warm and warm_tokens
            else fed / (t1 - t0),
        "rss_start_kib": samples[0][2], "rss_after_warmup_kib": base,
        "rss_peak_after_warmup_kib": max(peak_after, end),
        "rss_end_kib": end,
        "rss_growth_kib": max(peak_after, end) - base,
        "samples": samples,
        "finite": bool(np.isfinite(np.asarray(out)).all()),
    }
    log(f"end: {fed} tokens in {result['seconds']:.1f} s "
        f"({result['tokens_per_s']:.1f} tok/s), RSS "
        f"{samples[0][2] / 1024:.1f} -> {base / 1024:.1f} (after "
        f"{warmup} chunks) -> {end / 1024:.1f} MiB, growth after warm-up "
        f"{result['rss_growth_kib']} KiB")
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--model", default=os.path.join(
        here, "..", "..", "shared", "golden", "tiny", "model.pth"))
    ap.add_argument("--strategy", default="cpu fp32")
    ap.add_argument("--tokens", type=int, default=1 << 20)
    ap.add_argument("--chunk", type=int, default=1024)
    ap.add_argument("--report-every", type=int, default=64)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="write the figures to this file")
    a = ap.parse_args()
    sys.path.insert(0, os.path.join(here, "..", "python"))
    try:
        import torch  # noqa: F401  (forward returns torch tensors: import
        # it before the first RSS sample, which then shows the model alone)
    except ImportError:
        pass
    from rwkv_mlir.model import RWKV
    model = RWKV(model=a.model, strategy=a.strategy, threads=a.threads)
    r = run(model, tokens=a.tokens, chunk=a.chunk,
            report_every=a.report_every, seed=a.seed)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(r, f, indent=1)


if __name__ == "__main__":
    main()
