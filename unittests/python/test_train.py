"""python/rwkv_mlir training: TrainLibrary and RWKV7 (ctypes on librwkvrt.so).

Environment (set by ctest, unittests/python/CMakeLists.txt):
  RWKV_MLIR_RUNTIME      librwkvrt.so
  RWKV_FAKE_TRAIN_MODEL  libRWKVFakeTrainModel.so (FakeTrainModel.cpp)
  RWKV_TRAIN_LIB         rwkv-compile golden/tiny/model.pth --train --batch 2
                         --ctx 64 (the Golden* tests are skipped without it)
  RWKV_GOLDEN_DIR        the shared golden folder

Run: python3 test_train.py [-v] [TestClass[.test]]
"""

import json
import os
import unittest

import numpy as np
import torch

import rwkv_mlir
from rwkv_mlir import RWKV7, RWKVError, TrainLibrary

FAKE = os.environ.get("RWKV_FAKE_TRAIN_MODEL")
TRAIN_LIB = os.environ.get("RWKV_TRAIN_LIB")
GOLDEN = os.environ.get("RWKV_GOLDEN_DIR", "/work/shared/golden")
REL_TOL = 1e-4  # golden/README.md: fp32 vs float64 gradients, per tensor


def rel_error(ours, ref):
    """max|ours - ref| / max|ref|."""
    ours = np.asarray(ours, np.float64)
    ref = np.asarray(ref, np.float64)
    scale = np.abs(ref).max()
    err = np.abs(ours - ref).max()
    return err / scale if scale > 0 else err


def fake_batch():
    inputs = np.arange(8, dtype=np.int32).reshape(2, 4)
    targets = np.array([[1, 2, 3, 4], [5, 6, 7, -100]], np.int32)
    return inputs, targets


def fake_weights():
    emb = np.ones((8, 3), np.float32)
    head = np.tile(np.arange(8, dtype=np.float32)[:, None], (1, 3))
    return {"emb.weight": emb, "head.weight": head}


@unittest.skipUnless(FAKE, "RWKV_FAKE_TRAIN_MODEL is not set")
class FakeTrainLibrary(unittest.TestCase):
    """FakeTrainModel.cpp: B = 2, T = 4, V = 8, C = 3; loss = mean over
    counted positions of emb[in] . head[tgt] + |state|^2 / 2."""

    def setUp(self):
        self.lib = TrainLibrary(FAKE, threads=1)

    def test_queries(self):
        lib = self.lib
        self.assertEqual((lib.batch, lib.context, lib.vocab_size,
                          lib.n_layer, lib.ignore_index), (2, 4, 8, 1, -100))
        self.assertEqual(lib.weight_names, ["emb.weight", "head.weight"])
        self.assertEqual(lib.weights[0].dtype, "bf16")
        self.assertEqual(lib.weights[1].shape, (8, 3))
        self.assertEqual(lib.state_shape, (2, 1, 2, 2))
        self.assertIn("rwkv_train_step", lib.info["entry_points"])

    def test_numpy_step(self):
        inputs, targets = fake_batch()
        w = fake_weights()
        loss, grads, sgrads = self.lib.step(inputs, targets, w)
        self.assertAlmostEqual(loss, 12.0, places=5)
        self.assertIsInstance(grads[0], np.ndarray)
        np.testing.assert_allclose(grads[0][2], [3 / 7] * 3, rtol=1e-6)
        np.testing.assert_array_equal(grads[0][7], [0, 0, 0])  # ignored
        np.testing.assert_allclose(grads[1][1], [1 / 7] * 3, rtol=1e-6)
        np.testing.assert_array_equal(sgrads[0], np.zeros((2, 1, 2, 2)))
        # Per-layer states or one [L, B, H, N, N] array.
        s = np.full((1, 2, 1, 2, 2), 2.0, np.float32)
        loss, _, sgrads = self.lib.step(inputs, targets, w, s)
        self.assertAlmostEqual(loss, 28.0, places=5)
        np.testing.assert_array_equal(sgrads[0], s[0])
        self.assertAlmostEqual(self.lib.loss(inputs, targets, w, [s[0]]),
                               28.0, places=5)

    def test_bf16_rounding(self):
        # Float weights of a bf16 argument are rounded to nearest even.
        inputs, targets = fake_batch()
        w = fake_weights()
        w["emb.weight"] = np.full((8, 3), 1.0 + 2**-9, np.float32)  # -> 1.0
        self.assertAlmostEqual(self.lib.loss(inputs, targets, w), 12.0, 5)
        w["emb.weight"] = np.full((8, 3), 1.0 + 3 * 2**-9, np.float32)
        self.assertAlmostEqual(self.lib.loss(inputs, targets, w),
                               12.0 * (1 + 2**-7), 4)
        bits = rwkv_mlir.float_to_bf16_bits(np.array([1.0, -2.5], np.float32))
        np.testing.assert_array_equal(bits, [0x3F80, 0xC020])

    def test_torch_step_and_out_buffers(self):
        inputs, targets = fake_batch()
        w = {k: torch.tensor(v) for k, v in fake_weights().items()}
        loss, grads, _ = self.lib.step(torch.tensor(inputs),
                                       torch.tensor(targets), w)
        self.assertIsInstance(grads[0], torch.Tensor)
        out = [torch.empty(8, 3), torch.empty(8, 3)]
        _, grads2, _ = self.lib.step(inputs, targets, w, weight_grads=out)
        self.assertIs(grads2[0], out[0])
        torch.testing.assert_close(out[1], grads[1], rtol=0, atol=0)

    def test_errors(self):
        inputs, targets = fake_batch()
        w = fake_weights()
        with self.assertRaisesRegex(ValueError, r"inputs have shape \[8\]"):
            self.lib.step(inputs.reshape(-1), targets, w)
        with self.assertRaisesRegex(KeyError, "head.weight"):
            self.lib.step(inputs, targets, {"emb.weight": w["emb.weight"]})
        with self.assertRaisesRegex(ValueError, "'head.weight' has shape"):
            self.lib.step(inputs, targets, [w["emb.weight"], np.zeros(5)])
        bad = inputs.copy()
        bad[1, 2] = 8
        with self.assertRaises(RWKVError) as cm:
            self.lib.step(bad, targets, w)
        self.assertEqual(cm.exception.status, 1)
        self.assertIn("row 1, position 2", str(cm.exception))
        with self.assertRaises(RWKVError) as cm:
            TrainLibrary("/nonexistent/lib-train.so")
        self.assertEqual(cm.exception.status, 2)
        self.assertIn("/nonexistent/lib-train.so", str(cm.exception))
        with self.assertRaisesRegex(ValueError, "contiguous"):
            self.lib.step(inputs, targets, w,
                          weight_grads=[np.empty((8, 3)), np.empty((8, 3))])
        # A training library is not a WKV7 kernel library.
        with self.assertRaisesRegex(RWKVError, "not a WKV7 kernel library"):
            rwkv_mlir.WKV7Library(self.lib.path)


@unittest.skipUnless(FAKE, "RWKV_FAKE_TRAIN_MODEL is not set")
class FakeModule(unittest.TestCase):

    def model(self, **kw):
        w = {k: torch.tensor(v) for k, v in fake_weights().items()}
        w["emb.weight"] = w["emb.weight"].bfloat16()
        return RWKV7(TrainLibrary(FAKE, threads=1), w, **kw)

    def test_parameters_and_grads(self):
        m = self.model()
        names = [n for n, _ in m.named_parameters()]
        self.assertEqual(names, ["emb.weight", "head.weight"])
        self.assertEqual(m.emb.weight.dtype, torch.float32)
        inputs, targets = (torch.tensor(x) for x in fake_batch())
        loss = m(inputs, targets)
        (3 * loss).backward()  # backward scales by grad_output
        self.assertAlmostEqual(loss.item(), 12.0, places=5)
        torch.testing.assert_close(m.emb.weight.grad[2],
                                   torch.full((3,), 9 / 7))
        sd = m.checkpoint_state_dict()
        self.assertEqual(sd["emb.weight"].dtype, torch.bfloat16)
        with torch.no_grad():
            self.assertAlmostEqual(m(inputs, targets).item(), 12.0, 5)

    def test_state_tuning(self):
        m = self.model(state_tuning=True)
        self.assertEqual(tuple(m.wkv_state.shape), (1, 1, 2, 2))
        with torch.no_grad():
            m.wkv_state.fill_(0.5)
        inputs, targets = (torch.tensor(x) for x in fake_batch())
        loss = m(inputs, targets)
        loss.backward()
        self.assertAlmostEqual(loss.item(), 12.0 + 0.5 * 0.25 * 8, places=5)
        # Shared by both rows: the gradient is the sum of theirs.
        torch.testing.assert_close(m.wkv_state.grad,
                                   torch.full((1, 1, 2, 2), 1.0))
        # A per-row state passed explicitly gets per-row gradients.
        s = torch.full((1, 2, 1, 2, 2), 0.25, requires_grad=True)
        m(inputs, targets, s).backward()
        torch.testing.assert_close(s.grad, torch.full_like(s, 0.25))

    def test_optimizer_moves_weights(self):
        m = self.model()
        opt = torch.optim.AdamW(m.parameters(), lr=0.1)
        inputs, targets = (torch.tensor(x) for x in fake_batch())
        first = m(inputs, targets)
        for _ in range(3):
            opt.zero_grad()
            m(inputs, targets).backward()
            opt.step()
        self.assertLess(m(inputs, targets).item(), first.item())


def read_tokens(case):
    with open(os.path.join(case, "tokens.json")) as f:
        tok = json.load(f)
    return (np.array(tok["inputs"], np.int32),
            np.array(tok["targets"], np.int32))


def golden_grad_errors(case, name, g):
    """rel error(s) of gradient `g` against golden `case`/grads/<name>."""
    base = os.path.join(case, "grads", name)
    g = np.asarray(g, np.float64).reshape(-1)
    if os.path.exists(base + ".npy"):
        ref = np.load(base + ".npy").reshape(-1)
        return {name: rel_error(g, ref)}
    rows = np.load(base + ".rows.npy")
    idx = np.load(base + ".rowidx.npy")
    g = g.reshape(-1, rows.shape[1])
    scale = np.abs(rows).max()
    out = {name + " rows": rel_error(g[idx], rows)}
    out[name + " row sums"] = np.abs(
        g.sum(1) - np.load(base + ".rowsum.npy")).max() / (
            scale * np.sqrt(g.shape[1]))
    out[name + " column sums"] = np.abs(
        g.sum(0) - np.load(base + ".colsum.npy")).max() / (
            scale * np.sqrt(g.shape[0]))
    return out


@unittest.skipUnless(TRAIN_LIB, "RWKV_TRAIN_LIB is not set")
class GoldenTiny(unittest.TestCase):
    """golden/tiny/train_b2t64 through RWKV7 (float32 master weights, bf16
    copies per step) against the library called on the checkpoint's own bf16
    tensors, and against the float64 gradients."""

    @classmethod
    def setUpClass(cls):
        cls.case = os.path.join(GOLDEN, "tiny", "train_b2t64")
        cls.pth = os.path.join(GOLDEN, "tiny", "model.pth")
        cls.lib = TrainLibrary(TRAIN_LIB)
        with open(os.path.join(cls.case, "manifest.json")) as f:
            cls.manifest = json.load(f)
        cls.inputs, cls.targets = read_tokens(cls.case)

    def test_module_matches_library_and_float64(self):
        m = RWKV7.from_pth(self.pth, self.lib)
        loss = m(torch.from_numpy(self.inputs), torch.from_numpy(self.targets))
        loss.backward()
        # The library on the checkpoint tensors as stored (bf16).
        sd = torch.load(self.pth, map_location="cpu")
        ref_loss, ref_grads, _ = self.lib.step(
            self.inputs, self.targets, [sd[n] for n in self.lib.weight_names])
        self.assertEqual(loss.item(), ref_loss)
        params = dict(m.named_parameters())
        worst = {}
        for name, g in zip(self.lib.weight_names, ref_grads):
            ours = params[name].grad
            self.assertEqual(tuple(ours.shape), tuple(sd[name].shape), name)
            # bf16 -> f32 -> bf16 is exact, so the step is the same call.
            torch.testing.assert_close(ours.reshape(-1), g.reshape(-1),
                                       rtol=0, atol=0, msg=name)
            worst.update(golden_grad_errors(self.case, name, ours.numpy()))
        ref = self.manifest["loss"]["loss_ce"]
        self.assertLess(abs(loss.item() - ref), 2e-5 * ref)
        bad = {k: v for k, v in worst.items() if not v < REL_TOL}
        self.assertFalse(bad, f"gradients off the float64 ones: {bad}")
        name = max(worst, key=worst.get)
        print(f"\n[ info ] loss {loss.item():.7f} (ref {ref:.7f}), worst "
              f"gradient rel {worst[name]:.2e} ({name})")

    def test_state_tuning(self):
        m = RWKV7.from_pth(self.pth, self.lib, state_tuning=True)
        state0 = np.load(os.path.join(self.case, "state0.npy"))
        with torch.no_grad():
            m.wkv_state.copy_(torch.from_numpy(state0))
        loss = m(torch.from_numpy(self.inputs), torch.from_numpy(self.targets))
        loss.backward()
        ref = self.manifest["state_tuning"]["loss_ce"]
        self.assertLess(abs(loss.item() - ref), 2e-5 * ref)
        dstate0 = np.load(os.path.join(self.case, "dstate0.npy"))
        self.assertLess(rel_error(m.wkv_state.grad.numpy(), dstate0), REL_TOL)


if __name__ == "__main__":
    unittest.main()
