"""Two-process DDP (gloo, CPU) over rwkv_mlir.RWKV7: each rank runs a B = 2
library on its own 2 rows of a 4-row batch. The DDP-averaged gradients must
equal one process's average of two B = 2 steps on the same 4 rows (= the
mean over the 4 rows: every row counts T positions), and 3 AdamW steps must
give the same weights.

Environment as test_train.py; with RWKV_TRAIN_LIB the golden tiny model is
used, else the fake training library (RWKV_FAKE_TRAIN_MODEL).
Run: python3 test_ddp.py [-v]
"""

import json
import os
import socket
import tempfile
import unittest

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel as DDP

from rwkv_mlir import RWKV7, TrainLibrary

FAKE = os.environ.get("RWKV_FAKE_TRAIN_MODEL")
TRAIN_LIB = os.environ.get("RWKV_TRAIN_LIB")
GOLDEN = os.environ.get("RWKV_GOLDEN_DIR", "/work/shared/golden")
WORLD = 2
STEPS = 3


def make_model(lib_path):
    lib = TrainLibrary(lib_path, threads=1)
    if lib_path == TRAIN_LIB:
        return RWKV7.from_pth(os.path.join(GOLDEN, "tiny", "model.pth"), lib)
    # The fake library: seeded float weights (emb is rounded to bf16).
    g = torch.Generator().manual_seed(0)
    return RWKV7(lib, {w.name: torch.randn(w.shape, generator=g)
                       for w in lib.weights})


def make_batch(lib_path):
    """4 rows: for the golden model its 2 rows plus 2 seeded ones."""
    lib = TrainLibrary(lib_path, threads=1)
    rng = np.random.default_rng(7)
    t, v = lib.context, lib.vocab_size
    window = rng.integers(1, v, size=(4, t + 1), dtype=np.int64)
    if lib_path == TRAIN_LIB:
        with open(os.path.join(GOLDEN, "tiny", "train_b2t64",
                               "tokens.json")) as f:
            tok = json.load(f)
        window[:2, :-1] = tok["inputs"]
        window[:2, 1:] = tok["targets"]
    inputs = torch.tensor(window[:, :-1], dtype=torch.int32)
    targets = torch.tensor(window[:, 1:], dtype=torch.int32)
    return inputs, targets


def make_optimizer(params):
    return torch.optim.AdamW(params, lr=1e-3, betas=(0.9, 0.99), eps=1e-8,
                             weight_decay=0.01)


def worker(rank, port, lib_path, out_dir):
    torch.set_num_threads(1)
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        model = make_model(lib_path)
        ddp = DDP(model)
        opt = make_optimizer(ddp.parameters())
        inputs, targets = make_batch(lib_path)
        rows = slice(2 * rank, 2 * rank + 2)
        first_grads = None
        for step in range(STEPS):
            opt.zero_grad()
            ddp(inputs[rows], targets[rows]).backward()
            if step == 0:
                first_grads = {n: p.grad.clone()
                               for n, p in model.named_parameters()}
            opt.step()
        torch.save({"grads": first_grads,
                    "weights": {n: p.detach().clone()
                                for n, p in model.named_parameters()}},
                   os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rel(a, b):
    scale = b.abs().max().item()
    err = (a - b).abs().max().item()
    return err / scale if scale > 0 else err


@unittest.skipUnless(TRAIN_LIB or FAKE, "no training library given")
class DDPMatchesOneProcess(unittest.TestCase):

    def test_ddp(self):
        lib_path = TRAIN_LIB or FAKE
        with tempfile.TemporaryDirectory() as out_dir:
            mp.spawn(worker, args=(free_port(), lib_path, out_dir),
                     nprocs=WORLD, join=True)
            ranks = [torch.load(os.path.join(out_dir, f"rank{r}.pt"))
                     for r in range(WORLD)]

        # One process: the mean of two B = 2 steps on the same 4 rows.
        model = make_model(lib_path)
        opt = make_optimizer(model.parameters())
        inputs, targets = make_batch(lib_path)
        for step in range(STEPS):
            opt.zero_grad()
            loss = (model(inputs[:2], targets[:2]) +
                    model(inputs[2:], targets[2:])) / 2
            loss.backward()
            if step == 0:
                ref_grads = {n: p.grad.clone()
                             for n, p in model.named_parameters()}
            opt.step()
        worst_g = worst_w = 0.0
        for name, p in model.named_parameters():
            for r in range(WORLD):
                g = rel(ranks[r]["grads"][name], ref_grads[name])
                w = rel(ranks[r]["weights"][name], p.detach())
                self.assertLess(g, 1e-6, f"rank {r}: gradient of {name}")
                self.assertLess(w, 1e-6, f"rank {r}: {name} after {STEPS} "
                                "AdamW steps")
                worst_g, worst_w = max(worst_g, g), max(worst_w, w)
        moved = max(rel(ranks[0]["weights"][n], p0)
                    for n, p0 in make_model(lib_path).named_parameters())
        self.assertGreater(moved, 0)  # the optimizer did update the weights
        print(f"\n[ info ] {lib_path}: DDP vs one process, gradients rel "
              f"{worst_g:.1e}, weights after {STEPS} steps rel {worst_w:.1e}")


if __name__ == "__main__":
    unittest.main()
