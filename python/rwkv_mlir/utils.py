"""`PIPELINE` and `PIPELINE_ARGS`: the `rwkv` pip package's text helpers
(`rwkv.utils`, spec §5.3) over the runtime's tokenizers (C API
rwkvrt_tokenizer_*) and numpy sampling, so that `np.random.seed` makes a
generation reproducible as it does with pip.

    from rwkv_mlir.model import RWKV
    from rwkv_mlir.utils import PIPELINE, PIPELINE_ARGS
    pipeline = PIPELINE(model, "rwkv_vocab_v20230424")
    print(pipeline.generate("The Eiffel tower is in", token_count=50))
"""

import ctypes
import json
import os

import numpy as np

from . import _capi
from ._capi import RWKVError

VOCAB_DIR_ENV = "RWKV_MLIR_VOCAB_DIR"
WORLD_VOCAB = "rwkv_vocab_v20230424"

__all__ = ["PIPELINE", "PIPELINE_ARGS", "Tokenizer", "find_vocab"]


def _vocab_dirs():
    here = os.path.dirname(os.path.abspath(__file__))
    dirs = []
    if os.environ.get(VOCAB_DIR_ENV):
        dirs.append(os.environ[VOCAB_DIR_ENV])
    dirs.append(here)                                   # a packaged copy
    # A checkout with the read-only shared data beside it (as scripts/demo.sh
    # and the tests use it): <repo>/../shared/tokenizer.
    repo = os.path.normpath(os.path.join(here, "..", ".."))
    dirs += [os.path.join(repo, "..", "shared", "tokenizer"),
             os.path.join(repo, "shared", "tokenizer")]
    return [os.path.normpath(d) for d in dirs]


def find_vocab(name):
    """The vocabulary file for `name`: an existing path as given, else
    `name` (with '.txt' for the World vocabulary 'rwkv_vocab_v20230424')
    looked up in $RWKV_MLIR_VOCAB_DIR, the package folder, and
    ../shared/tokenizer beside this checkout. Never downloads."""
    name = os.fspath(name)
    if os.path.isfile(name):
        return os.path.abspath(name)
    base = os.path.basename(name)
    names = [base]
    if base == WORLD_VOCAB:
        names = [base + ".txt"]
    tried = [name]
    for d in _vocab_dirs():
        for n in names:
            p = os.path.join(d, n)
            tried.append(p)
            if os.path.isfile(p):
                return p
    raise FileNotFoundError(
        f"vocabulary '{name}' not found (tried {', '.join(tried)}); pass a "
        f"path, or set ${VOCAB_DIR_ENV} to the folder that holds it")


class Tokenizer:
    """A World (rwkv_vocab_v20230424.txt) or Hugging Face tokenizer.json
    (20B) vocabulary, opened by the runtime. `encode(str) -> [int]`,
    `decode([int]) -> str` as pip decodes: World returns '\\ufffd' when the
    bytes are not valid UTF-8; tokenizer.json decodes lossily and skips
    special tokens (the `tokenizers` default). `decode_bytes` gives the
    raw bytes."""

    def __init__(self, path, runtime=None):
        self._handle = None
        self.path = find_vocab(path)
        self._rt = _capi.load_runtime(runtime)
        _capi.require(self._rt, "rwkvrt_tokenizer_open",
                      "rwkvrt_tokenizer_encode", "rwkvrt_tokenizer_decode")
        h = ctypes.c_void_p()
        _capi.check(self._rt, self._rt.rwkvrt_tokenizer_open(
            self.path.encode(), ctypes.byref(h)), self.path)
        self._handle = h
        n = ctypes.c_size_t()
        _capi.check(self._rt, self._rt.rwkvrt_tokenizer_vocab_size(
            h, ctypes.byref(n)), self.path)
        self.vocab_size = n.value
        self.kind = "world"
        self._skip = frozenset()
        with open(self.path, "rb") as f:
            head = f.read(64).lstrip()
        if head.startswith(b"{"):
            self.kind = "hf"
            # tokenizers' decode() skips special tokens by default.
            with open(self.path, encoding="utf-8") as f:
                spec = json.load(f)
            self._skip = frozenset(
                int(t["id"]) for t in spec.get("added_tokens", [])
                if t.get("special"))

    def __del__(self):
        h = getattr(self, "_handle", None)
        if h is not None and h.value:
            self._rt.rwkvrt_tokenizer_close(h)
            self._handle = None

    def __repr__(self):
        return f"Tokenizer({self.path!r}, {self.kind}, {self.vocab_size} ids)"

    def encode(self, text):
        data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        n = ctypes.c_size_t()
        _capi.check(self._rt, self._rt.rwkvrt_tokenizer_encode(
            self._handle, data, len(data), None, 0, ctypes.byref(n)),
            "encode")
        ids = (ctypes.c_int32 * max(n.value, 1))()
        _capi.check(self._rt, self._rt.rwkvrt_tokenizer_encode(
            self._handle, data, len(data), ids, n.value, ctypes.byref(n)),
            "encode")
        return list(ids[:n.value])

    def decode_bytes(self, ids):
        if self._skip:
            ids = [i for i in ids if int(i) not in self._skip]
        arr = (ctypes.c_int32 * max(len(ids), 1))()
        for i, t in enumerate(ids):
            t = int(t)
            if not -2**31 <= t < 2**31:
                raise RWKVError(1, f"decode: token id {t} at position {i} "
                                   f"is not in the vocabulary")
            arr[i] = t
        n = ctypes.c_size_t()
        _capi.check(self._rt, self._rt.rwkvrt_tokenizer_decode(
            self._handle, arr, len(ids), None, 0, ctypes.byref(n)),
            "decode")
        buf = ctypes.create_string_buffer(max(n.value, 1))
        _capi.check(self._rt, self._rt.rwkvrt_tokenizer_decode(
            self._handle, arr, len(ids), buf, n.value, ctypes.byref(n)),
            "decode")
        return buf.raw[:n.value]

    def decode(self, ids):
        b = self.decode_bytes(ids)
        if self.kind == "hf":
            return b.decode("utf-8", errors="replace")
        try:
            return b.decode("utf-8")
        except UnicodeDecodeError:
            return "\ufffd"  # pip's TRIE_TOKENIZER: bad UTF-8


class PIPELINE_ARGS:
    """Sampling and generation options of PIPELINE.generate, with pip's
    defaults."""

    def __init__(self, temperature=1.0, top_p=0.85, top_k=0,
                 alpha_frequency=0.2, alpha_presence=0.2, alpha_decay=0.996,
                 token_ban=[], token_stop=[], chunk_len=256):
        self.temperature = temperature
        self.top_p = top_p
        self.top_k = top_k
        # Frequency Penalty (as in GPT-3)
        self.alpha_frequency = alpha_frequency
        # Presence Penalty (as in GPT-3)
        self.alpha_presence = alpha_presence
        # gradually decay the penalty
        self.alpha_decay = alpha_decay
        self.token_ban = token_ban  # ban the generation of some tokens
        self.token_stop = token_stop  # stop generation whenever you see any
        # split input into chunks to save VRAM (shorter -> slower)
        self.chunk_len = chunk_len

    def __repr__(self):
        return "PIPELINE_ARGS(" + ", ".join(
            f"{k}={v!r}" for k, v in vars(self).items()) + ")"


class PIPELINE:
    """pip's `rwkv.utils.PIPELINE(model, WORD_NAME)`: `WORD_NAME` is
    'rwkv_vocab_v20230424' (the World vocabulary, found locally, see
    find_vocab), a path to a World vocabulary .txt or to a Hugging Face
    tokenizer.json such as '20B_tokenizer.json', or 'cl100k_base'
    (through tiktoken, if installed, as pip does)."""

    def __init__(self, model, WORD_NAME):
        self.model = model
        if WORD_NAME == "cl100k_base":
            try:
                import tiktoken
            except ImportError:
                raise ImportError("PIPELINE(model, 'cl100k_base') needs the "
                                  "tiktoken package, as in pip") from None
            self.tokenizer = tiktoken.get_encoding(WORD_NAME)
        else:
            self.tokenizer = Tokenizer(WORD_NAME)

    def refine_context(self, context):
        context = context.strip().split("\n")
        for c in range(len(context)):
            context[c] = context[c].strip().strip("\u3000").strip("\r")
        context = list(filter(lambda c: c != "", context))
        context = "\n" + ("\n".join(context)).strip()
        if context == "":
            context = "\n"
        return context

    def encode(self, x):
        return self.tokenizer.encode(x)

    def decode(self, x):
        return self.tokenizer.decode(x)

    def np_softmax(self, x, axis):
        x = x - x.max(axis=axis, keepdims=True)
        e = np.exp(x)
        return e / e.sum(axis=axis, keepdims=True)

    def sample_logits(self, logits, temperature=1.0, top_p=0.85, top_k=0):
        """pip's sampler (spec §5.3): top-p, then top-k, then temperature
        on the probabilities; numpy.random.choice draws the token."""
        if temperature == 0:
            temperature = 1.0
            top_p = 0
        if type(logits) == list:
            logits = np.array(logits)
        np_logits = type(logits) == np.ndarray
        if np_logits:
            probs = self.np_softmax(logits, axis=-1)
        else:
            import torch.nn.functional as F
            probs = F.softmax(logits.float(), dim=-1).cpu().numpy()
        top_k = int(top_k)
        sorted_ids = np.argsort(probs)
        sorted_probs = probs[sorted_ids][::-1]
        cumulative_probs = np.cumsum(sorted_probs)
        cutoff = float(sorted_probs[np.argmax(cumulative_probs >= top_p)])
        probs[probs < cutoff] = 0
        if top_k < len(probs) and top_k > 0:
            probs[sorted_ids[:-top_k]] = 0
        if temperature != 1.0:
            probs = probs ** (1.0 / temperature)
        probs = probs / np.sum(probs)
        out = np.random.choice(a=len(probs), p=probs)
        return int(out)

    def generate(self, ctx, token_count=100, args=PIPELINE_ARGS(),
                 callback=None, state=None):
        """pip's generate: feeds `ctx` in chunks of args.chunk_len, then
        samples `token_count` tokens with the presence/frequency penalties;
        `callback(text)` gets each piece of text as soon as its bytes are
        valid UTF-8. Returns the generated text."""
        all_tokens = []
        out_last = 0
        out_str = ""
        occurrence = {}
        token = None
        for i in range(token_count):
            # forward & adjust prob.
            tokens = self.encode(ctx) if i == 0 else [token]
            while len(tokens) > 0:
                out, state = self.model.forward(tokens[:args.chunk_len],
                                                state)
                tokens = tokens[args.chunk_len:]

            for n in args.token_ban:
                out[n] = -float("inf")
            for n in occurrence:
                out[n] -= (args.alpha_presence +
                           occurrence[n] * args.alpha_frequency)

            # sampler
            token = self.sample_logits(out, temperature=args.temperature,
                                       top_p=args.top_p, top_k=args.top_k)
            if token in args.token_stop:
                break
            all_tokens += [token]
            for xxx in occurrence:
                occurrence[xxx] *= args.alpha_decay

            ttt = self.decode([token])
            www = 1
            if ttt in " \t0123456789":
                www = 0
            if token not in occurrence:
                occurrence[token] = www
            else:
                occurrence[token] += www

            # output
            tmp = self.decode(all_tokens[out_last:])
            if "\ufffd" not in tmp:  # is valid utf-8 string?
                if callback:
                    callback(tmp)
                out_str += tmp
                out_last = i + 1
        return out_str
