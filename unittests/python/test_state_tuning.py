"""State tuning end to end: rwkv-train --tune state, then rwkv-run
--init-state reproduces the loss the training library computes.

On golden/tiny (vocab 512, bf16):

1. `rwkv-train --tune state` (5 steps, B = 2, T = 16, lr 0.05) on a binidx
   corpus of T + 1 random ids < 512: its only window is every row of every
   step, so the logged loss falls at every step.
2. The output holds exactly one f32 `blocks.<l>.att.time_state` [H, N, N]
   per layer, non-zero; the base checkpoint is byte for byte unchanged.
3. `rwkv-run tiny.so --init-state tuned.pth --mode gpt --logits-out` on that
   window: the mean cross-entropy of its logits equals the loss of the
   training library rwkv-train used (from --cache-dir) with the tuned state
   as every row's initial state (1e-5 relative); so does the zero state's,
   which is also the loss rwkv-train logged at step 1; the two differ (the
   state is really loaded and matters) and the tuned one is lower.

Environment (set by ctest, unittests/python/CMakeLists.txt):
  RWKV_TRAIN_BIN, RWKV_RUN_BIN, RWKV_COMPILE_BIN   the tools
  RWKV_MLIR_RUNTIME     librwkvrt.so
  RWKV_SHARED_DIR       the shared folder (golden/, tokenizer/)
  RWKV_STATE_TEST_KEEP  if set, the work folder is kept and printed

Run: python3 test_state_tuning.py [-v]
"""

import csv
import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import torch

from rwkv_mlir import TrainLibrary

SHARED = os.environ.get("RWKV_SHARED_DIR", "/work/shared")
MODEL = os.path.join(SHARED, "golden", "tiny", "model.pth")
VOCAB = os.path.join(SHARED, "tokenizer", "rwkv_vocab_v20230424.txt")
TRAIN = os.environ.get("RWKV_TRAIN_BIN")
RUN = os.environ.get("RWKV_RUN_BIN")
COMPILE = os.environ.get("RWKV_COMPILE_BIN")

CTX, BATCH, STEPS = 16, 2, 5


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_binidx(prefix, docs):
    """Megatron MMapIndexedDataset (docs/train.md), u16 tokens (code 8)."""
    sizes = [len(d) for d in docs]
    pointers = np.cumsum([0] + [2 * s for s in sizes[:-1]]).astype("<i8")
    with open(prefix + ".bin", "wb") as f:
        for d in docs:
            f.write(np.asarray(d, "<u2").tobytes())
    with open(prefix + ".idx", "wb") as f:
        f.write(b"MMIDIDX\0\0")
        f.write(np.array([1], "<u8").tobytes())
        f.write(np.array([8], "u1").tobytes())
        f.write(np.array([len(docs), len(docs) + 1], "<u8").tobytes())
        f.write(np.asarray(sizes, "<i4").tobytes())
        f.write(pointers.tobytes())
        f.write(np.arange(len(docs) + 1, dtype="<i8").tobytes())


def mean_cross_entropy(logits, targets):
    x = np.asarray(logits, np.float64)
    m = x.max(axis=1, keepdims=True)
    lse = (m + np.log(np.exp(x - m).sum(axis=1, keepdims=True)))[:, 0]
    return float(np.mean(lse - x[np.arange(len(targets)), targets]))


def run(cmd, **kw):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, **kw)
    if p.returncode != 0:
        raise AssertionError("command failed (%d): %s\n%s" %
                             (p.returncode, " ".join(cmd), p.stdout))
    return p.stdout


@unittest.skipUnless(TRAIN and RUN and COMPILE and os.path.exists(MODEL),
                     "RWKV_TRAIN_BIN/RUN_BIN/COMPILE_BIN or golden/tiny "
                     "missing")
class StateTuning(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="rwkv-state-test-")
        d = cls.dir
        # One document of T + 1 ids < 512 (binidx tokens are taken as
        # stored, no separator is added): random sampling can only start at
        # 0, so every row of every step is this window.
        rng = np.random.default_rng(7)
        cls.stream = rng.integers(1, 512, size=CTX + 1).astype(np.int32)
        write_binidx(os.path.join(d, "corpus"), [cls.stream])

        cls.model_hash = sha256(MODEL)
        cls.out = os.path.join(d, "tuned_state.pth")
        cls.log = os.path.join(d, "loss.csv")
        cls.cache = os.path.join(d, "cache")
        cls.lib = os.path.join(d, "tiny.so")
        # The inference library compiles while rwkv-train compiles its step.
        compile_inf = subprocess.Popen(
            [COMPILE, MODEL, "-o", cls.lib], stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True)
        try:
            cmd = [TRAIN, "--model", MODEL, "--data",
                   os.path.join(d, "corpus"), "--tune", "state",
                   "--ctx", str(CTX), "--batch", str(BATCH),
                   "--steps", str(STEPS), "--lr", "0.05", "--print-every",
                   "1", "--out", cls.out, "--log", cls.log,
                   "--cache-dir", cls.cache]
            if os.path.exists(VOCAB):
                cmd += ["--vocab", VOCAB]
            cls.train_output = run(cmd)
        finally:
            compile_out, _ = compile_inf.communicate()
        if compile_inf.returncode != 0:
            raise AssertionError("rwkv-compile failed:\n" + compile_out)
        cls.model_hash_after = sha256(MODEL)

    @classmethod
    def tearDownClass(cls):
        if os.environ.get("RWKV_STATE_TEST_KEEP"):
            print("kept", cls.dir, file=sys.stderr)
        else:
            shutil.rmtree(cls.dir, ignore_errors=True)

    def checkpoint(self):
        return torch.load(MODEL, map_location="cpu")

    def geometry(self):
        """(n_layer, H, N) of the checkpoint."""
        sd = self.checkpoint()
        n_layer = len([k for k in sd if k.endswith(".att.r_k")])
        h, n = sd["blocks.0.att.r_k"].shape
        return n_layer, h, n

    def tuned(self):
        return torch.load(self.out, map_location="cpu")

    def logged_losses(self):
        with open(self.log) as f:
            rows = list(csv.DictReader(f))
        self.assertEqual([int(r["step"]) for r in rows],
                         list(range(1, STEPS + 1)), self.train_output)
        return [float(r["loss"]) for r in rows]

    def test_loss_went_down(self):
        losses = self.logged_losses()
        self.assertTrue(all(np.isfinite(losses)), losses)
        # The same batch at every step (measured: 10.57 9.09 8.03 7.28 6.74).
        for a, b in zip(losses, losses[1:]):
            self.assertLess(b, a, losses)
        self.assertLess(losses[-1], losses[0] - 1.0, losses)
        # The printed progress lines say the same.
        printed = [float(line.split()[3])
                   for line in self.train_output.splitlines()
                   if line.startswith("step ")]
        np.testing.assert_allclose(printed, losses, rtol=1e-5)

    def test_output_is_only_the_state(self):
        n_layer, h, n = self.geometry()
        sd = self.tuned()
        self.assertEqual(sorted(sd),
                         sorted("blocks.%d.att.time_state" % l
                                for l in range(n_layer)))
        for name, t in sd.items():
            self.assertEqual(tuple(t.shape), (h, n, n), name)
            self.assertEqual(t.dtype, torch.float32, name)
            self.assertTrue(torch.isfinite(t).all(), name)
            # Starts at zero: every layer's state moved.
            self.assertGreater(t.abs().max().item(), 1e-3, name)
        self.assertEqual(self.model_hash_after, self.model_hash,
                         "rwkv-train changed the base checkpoint")

    def test_rwkv_run_reproduces_training_loss(self):
        n_layer, h, n = self.geometry()
        window = self.stream[:CTX + 1]
        inputs, targets = window[:-1], window[1:]
        tokens_file = os.path.join(self.dir, "window.json")
        with open(tokens_file, "w") as f:
            json.dump([int(t) for t in inputs], f)

        def rwkv_run_loss(extra, name):
            npy = os.path.join(self.dir, name)
            run([RUN, self.lib, "--weights", MODEL, "--tokens-file",
                 tokens_file, "--mode", "gpt", "--logits-out", npy,
                 "--threads", "1"] + extra)
            logits = np.load(npy)
            self.assertEqual(logits.shape[0], CTX)
            return mean_cross_entropy(logits, targets)

        run_tuned = rwkv_run_loss(["--init-state", self.out], "tuned.npy")
        run_zero = rwkv_run_loss([], "zero.npy")

        # The library rwkv-train compiled into --cache-dir and trained with.
        libs = glob.glob(os.path.join(self.cache, "train-*.so"))
        self.assertEqual(len(libs), 1, libs)
        lib = TrainLibrary(libs[0], threads=1)
        self.assertEqual((lib.batch, lib.context), (BATCH, CTX))
        self.assertEqual(tuple(lib.state_shape), (BATCH, h, n, n))
        weights = self.checkpoint()
        # The window in every row: the mean over rows is its loss.
        x = np.tile(inputs, (BATCH, 1)).astype(np.int32)
        y = np.tile(targets, (BATCH, 1)).astype(np.int32)
        sd = self.tuned()
        states = [np.ascontiguousarray(np.broadcast_to(
            sd["blocks.%d.att.time_state" % l].numpy(), (BATCH, h, n, n)))
            for l in range(n_layer)]
        lib_tuned = lib.loss(x, y, weights, states)
        lib_zero = lib.loss(x, y, weights)

        msg = ("rwkv-run tuned %.8f zero %.8f; training library tuned %.8f "
               "zero %.8f" % (run_tuned, run_zero, lib_tuned, lib_zero))
        self.assertLess(abs(run_tuned - lib_tuned) / abs(lib_tuned), 1e-5, msg)
        self.assertLess(abs(run_zero - lib_zero) / abs(lib_zero), 1e-5, msg)
        # Step 1 of training saw this window with the zero state.
        step1 = self.logged_losses()[0]
        self.assertLess(abs(step1 - lib_zero) / abs(lib_zero), 1e-5, msg)
        # The state matters, and the tuned one fits the corpus better.
        self.assertGreater(abs(lib_tuned - lib_zero) / abs(lib_zero), 1e-3,
                           msg)
        self.assertLess(lib_tuned, lib_zero, msg)
        print(msg, file=sys.stderr)


if __name__ == "__main__":
    unittest.main()
