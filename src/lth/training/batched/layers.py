"""Stacked layers: M models of one architecture as one module with a leading member dimension on
every parameter and buffer; the model's own forward code runs unchanged on the members' batches
laid end to end (lth.training.batched explains the kernels and why each is bitwise a single run's).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from lth.core.errors import LTHError

CONV_MODES = ("auto", "loop", "grouped")


class _Members:
    """Which members a stacked layer computes: all (`sel` None, training) or a subset (evaluation)."""

    def __init__(self, count: int):
        self.total = self.count = count
        self.sel: slice | torch.Tensor | None = None


def _pick(t: torch.Tensor | None, members: _Members) -> torch.Tensor | None:
    return t if t is None or members.sel is None else t[members.sel]


class _LinearFn(torch.autograd.Function):
    """y = x W^T + b per member: x (M, R, I), W (M, O, I), b (M, O) or None -> (M, R, O).

    The backward forms the products of `F.linear`'s backward for one run: dx = dy W,
    dW = dy^T x, db = sum of dy over rows, so each member's gradients are bitwise a single run's."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        if bias is None:
            return torch.bmm(x, weight.transpose(1, 2))
        return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        gx = torch.bmm(grad, weight) if ctx.needs_input_grad[0] else None
        gw = torch.bmm(grad.transpose(1, 2), x) if ctx.needs_input_grad[1] else None
        gb = grad.sum(1) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return gx, gw, gb


class StackedLinear(nn.Module):
    def __init__(self, sources: Sequence[nn.Linear], members: _Members):
        super().__init__()
        self.members = members
        self.weight = nn.Parameter(torch.stack([m.weight.detach() for m in sources]))
        self.bias = (nn.Parameter(torch.stack([m.bias.detach() for m in sources]))
                     if sources[0].bias is not None else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.members.count
        w, b = _pick(self.weight, self.members), _pick(self.bias, self.members)
        if x.shape[0] == 1 and m > 1:  # one input shared by every example (a position table): one output per member
            out = _LinearFn.apply(x.reshape(1, -1, x.shape[-1]).expand(m, -1, -1), w, b)
            return out.reshape(m, *x.shape[1:-1], w.shape[1])
        out = _LinearFn.apply(x.reshape(m, -1, x.shape[-1]), w, b)
        return out.reshape(*x.shape[:-1], w.shape[1])


class StackedConv2d(nn.Module):
    def __init__(self, sources: Sequence[nn.Conv2d], members: _Members, mode: str):
        super().__init__()
        c = sources[0]
        if c.padding_mode != "zeros":
            raise LTHError(f"batched training: Conv2d padding_mode {c.padding_mode!r} is not supported")
        self.members, self.mode = members, mode
        self.stride, self.padding, self.dilation, self.groups = c.stride, c.padding, c.dilation, c.groups
        self.weight = nn.Parameter(torch.stack([m.weight.detach() for m in sources]))
        self.bias = (nn.Parameter(torch.stack([m.bias.detach() for m in sources]))
                     if c.bias is not None else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.members.count
        w, b = _pick(self.weight, self.members), _pick(self.bias, self.members)
        n = x.shape[0] // m
        if self.mode == "loop":
            xs = x.reshape(m, n, *x.shape[1:]).unbind(0)
            outs = [F.conv2d(xs[k], w[k], None if b is None else b[k], self.stride, self.padding, self.dilation,
                             self.groups) for k in range(m)]
            return torch.cat(outs)
        c, h, wd = x.shape[1:]
        xg = x.reshape(m, n, c, h, wd).transpose(0, 1).reshape(n, m * c, h, wd)
        out = F.conv2d(xg, w.reshape(-1, *w.shape[2:]), None if b is None else b.reshape(-1), self.stride,
                       self.padding, self.dilation, self.groups * m)
        o, ho, wo = w.shape[1], out.shape[2], out.shape[3]
        return out.view(n, m, o, ho, wo).transpose(0, 1).reshape(m * n, o, ho, wo)


class StackedBatchNorm2d(nn.Module):
    def __init__(self, sources: Sequence[nn.BatchNorm2d], members: _Members, mode: str):
        super().__init__()
        bn = sources[0]
        if not (bn.affine and bn.track_running_stats) or bn.momentum is None:
            raise LTHError("batched training: BatchNorm2d needs affine=True, track_running_stats=True and a momentum")
        self.members, self.mode, self.momentum, self.eps = members, mode, bn.momentum, bn.eps
        self.weight = nn.Parameter(torch.stack([m.weight.detach() for m in sources]))
        self.bias = nn.Parameter(torch.stack([m.bias.detach() for m in sources]))
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            self.register_buffer(name, torch.stack([getattr(m, name).detach() for m in sources]).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.members.count
        if self.training:
            if self.members.sel is not None:
                raise RuntimeError("a subset of members is selected in training mode")
            self.num_batches_tracked.add_(1)
        w, b = _pick(self.weight, self.members), _pick(self.bias, self.members)
        mean, var = _pick(self.running_mean, self.members), _pick(self.running_var, self.members)
        n, c, rest = x.shape[0] // m, x.shape[1], x.shape[2:]
        if self.mode == "loop":
            xs = x.reshape(m, n, c, *rest).unbind(0)
            return torch.cat([F.batch_norm(xs[k], mean[k], var[k], w[k], b[k], self.training, self.momentum, self.eps)
                              for k in range(m)])
        xg = x.reshape(m, n, c, *rest).transpose(0, 1).reshape(n, m * c, *rest)
        out = F.batch_norm(xg, mean.view(-1), var.view(-1), w.reshape(-1), b.reshape(-1), self.training,
                           self.momentum, self.eps)
        return out.view(n, m, c, *rest).transpose(0, 1).reshape(m * n, c, *rest)


class StackedModel(nn.Module):
    """M models of one architecture as one: `forward` takes the members' inputs laid end to end,
    (M*B, ...), and returns their outputs likewise. Parameters and buffers keep the models' names,
    with a leading member dimension."""

    def __init__(self, models: Sequence[nn.Module], conv: str = "auto", bn: str = "auto"):
        super().__init__()
        if not models:
            raise LTHError("batched training: no models given")
        if conv not in CONV_MODES:
            raise LTHError(f"batched training: conv mode {conv!r} is not one of {CONV_MODES}")
        _check_same_architecture(models)
        device = next(models[0].parameters()).device
        if bn not in CONV_MODES:
            raise LTHError(f"batched training: BatchNorm mode {bn!r} is not one of {CONV_MODES}")
        if conv == "auto":
            conv = "grouped" if device.type == "cuda" else "loop"
        if bn == "auto":
            bn = "grouped" if device.type == "cuda" else "loop"
        self.members = _Members(len(models))
        self.conv, self.bn = conv, bn
        net = copy.deepcopy(models[0])
        modules = [dict(m.named_modules()) for m in models]
        for name, module in list(net.named_modules()):
            kind = type(module)
            if kind is nn.Linear:
                new = StackedLinear([mods[name] for mods in modules], self.members)
            elif kind is nn.Conv2d:
                new = StackedConv2d([mods[name] for mods in modules], self.members, conv)
            elif kind is nn.BatchNorm2d:
                new = StackedBatchNorm2d([mods[name] for mods in modules], self.members, bn)
            else:
                own = [n for n, p in module._parameters.items() if p is not None]
                own += [n for n, b in module._buffers.items() if b is not None]
                if own:
                    raise LTHError(f"batched training: {type(models[0]).__name__}.{name or '<root>'} "
                                   f"({kind.__name__}) holds {own}; only Linear, Conv2d and BatchNorm2d "
                                   "layers can be stacked")
                continue
            parent, _, attr = name.rpartition(".")
            setattr(net.get_submodule(parent) if parent else net, attr, new)
        self.net = net

    @property
    def count(self) -> int:
        return self.members.total

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    @contextmanager
    def select(self, members: Sequence[int]):
        """Compute only these members (evaluation): inputs are then (len(members)*B, ...)."""
        idx = list(members)
        if idx == list(range(idx[0], idx[-1] + 1)):
            sel: slice | torch.Tensor = slice(idx[0], idx[-1] + 1)
        else:
            sel = torch.tensor(idx, device=next(self.parameters()).device)
        self.members.sel, self.members.count = sel, len(idx)
        try:
            yield
        finally:
            self.members.sel, self.members.count = None, self.members.total

    def stacked_state(self) -> dict[str, torch.Tensor]:
        return self.net.state_dict()

    def member_state(self, k: int) -> dict[str, torch.Tensor]:
        """Member k's state_dict, under the model's own names."""
        return {name: t[k] for name, t in self.net.state_dict().items()}


def _check_same_architecture(models: Sequence[nn.Module]) -> None:
    ref = {k: (v.shape, v.dtype, v.device) for k, v in models[0].state_dict().items()}
    for i, m in enumerate(models[1:], 1):
        own = {k: (v.shape, v.dtype, v.device) for k, v in m.state_dict().items()}
        if type(m) is not type(models[0]) or own != ref:
            raise LTHError(f"batched training: model {i} ({type(m).__name__}) is not the same architecture, "
                           f"dtype and device as model 0 ({type(models[0]).__name__})")
