"""RWKV7: an nn.Module whose loss and gradients come from a compiled
training library, so any torch optimizer, gradient clipping or DDP drives
it like a native module. The parameters are float32 master weights named by
checkpoint key (`emb.weight`, `blocks.0.att.w0`, ...); each step passes
copies in the library's dtype (bf16 for a bf16 library)."""

import torch
from torch import nn

from .train import TrainLibrary


class _TrainStep(torch.autograd.Function):
    """loss = library(inputs, targets, state, *weights). The library computes
    the gradients together with the loss; backward scales them."""

    @staticmethod
    def forward(ctx, lib, inputs, targets, state, *weights):
        wants = ctx.needs_input_grad
        ctx.shapes = [w.shape for w in weights]
        if not any(wants):
            # No gradient wanted (torch.no_grad, frozen model): loss only.
            if state is not None and state.dim() == len(lib.state_shape):
                state = state.unsqueeze(1).expand(-1, lib.batch, -1, -1, -1)
            loss = lib.loss(inputs, targets, weights, state)
            ctx.grads = None
            return torch.tensor(loss, dtype=torch.float32)
        per_row = state
        if state is not None and state.dim() == len(lib.state_shape):
            # One state for every row: the library takes [L, B, H, N, N].
            per_row = state.unsqueeze(1).expand(-1, lib.batch, -1, -1, -1)
        loss, grads, sgrads = lib.step(inputs, targets, weights, per_row)
        ctx.weight_grads = [
            g.view(shape) if wanted else None
            for g, shape, wanted in zip(grads, ctx.shapes, wants[4:])
        ]
        ctx.state_grad = None
        if state is not None and wants[3]:
            # [L, B, H, N, N]; the caller's state may be shared by the rows
            # ([L, H, N, N]): then its gradient is the sum over rows.
            sg = torch.stack(sgrads)
            ctx.state_grad = sg.sum(1) if per_row is not state else sg
        return torch.tensor(loss, dtype=torch.float32)

    @staticmethod
    def backward(ctx, grad_out):
        def scale(g):
            return None if g is None else g * grad_out

        return (None, None, None, scale(ctx.state_grad),
                *[scale(g) for g in ctx.weight_grads])


class RWKV7(nn.Module):
    """The weights the training library takes, as float32 parameters.

    `forward(inputs, targets, state=None)` returns the mean cross-entropy of a
    [B, T] batch (B, T of the library). `state` is the initial WKV state:
    [L, H, N, N] shared by every row or [L, B, H, N, N]; by default the
    module's `wkv_state` parameter when built with `state_tuning=True`, else
    zeros."""

    def __init__(self, train_library, tensors, state_tuning=False,
                 source="weights"):
        super().__init__()
        if not isinstance(train_library, TrainLibrary):
            train_library = TrainLibrary(train_library)
        self.library = train_library
        self._names = list(train_library.weight_names)
        self._pth_meta = {}
        for spec in train_library.weights:
            if spec.name not in tensors:
                raise KeyError(f"{source}: missing tensor '{spec.name}' that "
                               f"{train_library.path} takes")
            t = tensors[spec.name]
            if not isinstance(t, torch.Tensor):
                t = torch.as_tensor(t)
            if t.numel() != spec.numel:
                raise ValueError(
                    f"{source}: tensor '{spec.name}' has shape "
                    f"{list(t.shape)} ({t.numel()} elements), "
                    f"{train_library.path} takes {list(spec.shape)} "
                    f"({spec.numel})")
            self._pth_meta[spec.name] = t.dtype
            p = nn.Parameter(t.detach().to(torch.float32).clone())
            self._register_nested(spec.name, p)
        if state_tuning:
            b, h, n, m = train_library.state_shape
            self.wkv_state = nn.Parameter(
                torch.zeros(train_library.n_layer, h, n, m))
        else:
            self.wkv_state = None

    def _register_nested(self, name, param):
        # Nested modules, so named_parameters() / state_dict() use the
        # checkpoint keys ("blocks.0.att.w0").
        *path, leaf = name.split(".")
        mod = self
        for part in path:
            child = mod._modules.get(part)
            if child is None:
                child = nn.Module()
                mod.add_module(part, child)
            mod = child
        mod.register_parameter(leaf, param)

    @classmethod
    def from_pth(cls, model_pth, train_library, threads=0,
                 state_tuning=False):
        """Loads `model_pth` (a torch.save'd RWKV-7 checkpoint) for the
        training library `train_library` (a TrainLibrary or a path)."""
        if not isinstance(train_library, TrainLibrary):
            train_library = TrainLibrary(train_library, threads=threads)
        sd = torch.load(str(model_pth), map_location="cpu")
        return cls(train_library, sd, state_tuning=state_tuning,
                   source=str(model_pth))

    def weights(self):
        """The parameters in the library's weight order."""
        params = dict(self.named_parameters())
        return [params[n] for n in self._names]

    def checkpoint_state_dict(self, dtype=None):
        """The weights as a checkpoint dict (keys, shapes as loaded), in the
        checkpoint's dtypes or `dtype`."""
        params = dict(self.named_parameters())
        return {n: params[n].detach().to(dtype or self._pth_meta[n]).clone()
                for n in self._names}

    def forward(self, inputs, targets, state=None):
        if state is None:
            state = self.wkv_state
        return _TrainStep.apply(self.library, inputs, targets, state,
                                *self.weights())
