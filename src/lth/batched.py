"""Batched training: M runs ("members") of one architecture trained together, one step for all.

`train_batched(models, masks, splits, training, segments, keys=...)` trains each member as
`lth.training.train` would train it alone (its own initial weights, mask, data order from its
data seed, learning-rate function, iteration range, BatchNorm statistics, optimiser state) and
returns one result per member in `train`'s format (curves + summary), so that each can be written
by `lth.results.write_run`. The trained weights are written back into `models`, as `train` does.

How the members share a step. The model is rebuilt once with its parametrised layers replaced by
stacked ones (a leading member dimension on every parameter and buffer); the model's own forward
code runs unchanged on the members' batches laid end to end, (M*B, ...), because every layer
other than these is per example:

- Linear: a batched matmul per layer (`torch.baddbmm`), with a backward written so that each
  member's gradients are computed by the same products `F.linear`'s backward computes for one
  run. (torch.func.vmap gets the weight gradient by a transposed product instead, which differs
  in the last bit for small output layers, and was a little slower: `benchmarks/batched_speed.py
  --kernels`.)
- Conv2d: "loop" (one convolution per member on its slice of the batch) or "grouped" (one
  convolution with groups = M over the batch laid out (B, M*C, H, W), which is what vmap does).
  On CPU the loop was faster (conv4, resnet20) and is bitwise a single run's; the grouped kernel
  is not bitwise (the 3-channel input layer, 1x1 stride-2 shortcuts differ in the last bits).
- BatchNorm2d: "loop" (one `F.batch_norm` per member on its slice, with its rows of the stacked
  running statistics) or "grouped" (one call over the (B, M*C, H, W) layout with the statistics
  flattened; views, so the updates land in each member's rows). Both are bitwise a single run's,
  in training and in eval mode; the loop was a little faster on CPU.

"auto" (the default for both): loop on CPU, grouped on CUDA (one launch instead of M per layer;
not measured here: run the benchmark's --kernels on a GPU to choose).

The loss is each member's own mean loss; their sum is differentiated (a member's gradient does not
depend on the others'). With `exact_losses` (the default on CPU) each member's loss is computed by
the very call `train` makes (`loss_of` per member), so the reported losses are bitwise a single
run's too; on CUDA one batched call per step (values equal to float rounding).

The optimiser is torch.optim's functional Adam / AdamW (fused) or SGD (foreach), as in
`lth.optim`, called on per-member views of the stacked tensors, one call per distinct learning
rate at that step: each member's update is the one `lth.optim.Optimizer` computes for it alone,
and members may follow different learning-rate functions. On CUDA, while every member is at the
same step with the same rate, one call on the whole stacked tensors instead (`StackedOptimizer`).
Masks are stacked and multiplied in after every step, so pruned weights stay exactly 0.0 for every
member.

Nothing in a step waits for the device (no `.item()`); the host syncs at evaluation points only.
There a member whose losses are not finite is reported by its key and stopped: it leaves the
optimiser's calls, its BatchNorm statistics are held, the others go on unchanged. A member whose
segment is shorter stops likewise at its end. Checkpoints (stacked state, optimiser state, step,
curves, who stopped) are written at evaluation points; a job killed and restarted resumes from the
last one and ends bitwise as an uninterrupted run (CPU).

On CPU, at one thread, a member trained in a group ends bitwise equal to the same run trained
alone by `lth.training.train`, whichever other members share its group (tests/test_batched.py).
"""

from __future__ import annotations

import copy
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.adam import adam
from torch.optim.adamw import adamw
from torch.optim.sgd import sgd

from lth.artifacts import load_checkpoint, save_checkpoint
from lth.errors import LTHError
from lth.masks import Mask, MaskEnforcer, check_mask
from lth.seeding import derive_seed
from lth.training import EVAL_BATCH, BatchOrder, Segment, loss_of, summary_of, task_of

__all__ = ["StackedModel", "available_bytes", "check_fits", "estimate_bytes", "train_batched"]

CONV_MODES = ("auto", "loop", "grouped")
UNSUPPORTED = ("l1", "bn_l1")  # training keys batched training does not implement (nonzero: refused)


def unsupported(training: dict[str, Any]) -> str | None:
    """The training setting batched training does not implement, if `training` has one."""
    adversarial = (training.get("adversarial") or {}).get("method", "none")
    return next((f"training.{k}" for k in UNSUPPORTED if training.get(k)),
                "training.adversarial" if adversarial != "none" else None)


# ------------------------------------------------------------------------------------ layers


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


# --------------------------------------------------------------------------------- optimiser


class StackedOptimizer:
    """`lth.optim.Optimizer`'s update for every member, on views of the stacked tensors.

    step(grads, groups): `groups` maps a learning rate to the members updated with it at this step;
    members in no group (stopped) are left exactly as they are, state included.

    whole: when every member is in one group at the same optimiser step, update the stacked tensors
    in one call instead of one view per member (CUDA's default: far fewer tensors for the host to
    walk through). Not used on CPU by default: there the fused Adam/AdamW kernel computes the last
    few elements of a tensor by a scalar path that can differ in the last bit from its vector path
    (seen for AdamW), so only per-member views reproduce a single run bitwise."""

    def __init__(self, params: Sequence[torch.Tensor], members: int, training: dict[str, Any],
                 whole: bool = False):
        self.kind = training["optimizer"]
        self.weight_decay = training["weight_decay"]
        self.members, self.whole = members, whole
        self.params = [p.detach() for p in params]
        self._param_views = [p.unbind(0) for p in self.params]
        self.counts = [0] * members  # optimiser steps taken, per member (host side)
        if self.kind in ("adam", "adamw"):
            self.exp_avg = [torch.zeros_like(p) for p in self.params]
            self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]
            self.steps = torch.zeros(members, len(self.params), dtype=torch.float32, device=self.params[0].device)
            self._ea = [t.unbind(0) for t in self.exp_avg]
            self._eas = [t.unbind(0) for t in self.exp_avg_sq]
            self._steps = [self.steps[:, j].unbind(0) for j in range(len(self.params))]
        elif self.kind == "sgd":
            self.momentum, self.nesterov = training["momentum"], training["nesterov"]
            self.buffers = [torch.zeros_like(p) for p in self.params] if self.momentum else []
            self._bufs = [t.unbind(0) for t in self.buffers]
        else:
            raise LTHError(f"training.optimizer: unknown optimizer '{self.kind}'")

    def _lists(self, views, members):
        return [v[k] for v in views for k in members]

    def _adam(self, params, grads, exp_avg, exp_avg_sq, steps, lr) -> None:
        fn = adamw if self.kind == "adamw" else adam
        fn(params, grads, exp_avg, exp_avg_sq, [], steps, foreach=False, capturable=False, differentiable=False,
           fused=True, grad_scale=None, found_inf=None, has_complex=False, amsgrad=False, beta1=0.9,
           beta2=0.999, lr=lr, weight_decay=self.weight_decay, eps=1e-8, maximize=False)

    def _sgd(self, params, grads, bufs, lr) -> None:
        sgd(params, grads, bufs, foreach=True, weight_decay=self.weight_decay, momentum=self.momentum, lr=lr,
            dampening=0.0, nesterov=self.nesterov, maximize=False)

    @torch.no_grad()
    def step(self, grads: Sequence[torch.Tensor], groups: dict[float, list[int]]) -> None:
        if (self.whole and len(groups) == 1 and len(next(iter(groups.values()))) == self.members
                and len(set(self.counts)) == 1):
            self._step_whole(list(grads), next(iter(groups)))
            return
        grad_views = [g.unbind(0) for g in grads]
        for lr, members in groups.items():
            params, gs = self._lists(self._param_views, members), self._lists(grad_views, members)
            if self.kind in ("adam", "adamw"):
                self._adam(params, gs, self._lists(self._ea, members), self._lists(self._eas, members),
                           self._lists(self._steps, members), lr)
            elif self.momentum:
                fresh = [k for k in members if not self.counts[k]]
                bufs: list[torch.Tensor | None] = [self._bufs[j][k] if self.counts[k] else None
                                                   for j in range(len(self.params)) for k in members]
                self._sgd(params, gs, bufs, lr)
                if fresh:  # the first step made new buffers (a copy of the gradient): keep them in the stack
                    i = 0
                    for j in range(len(self.params)):
                        for k in members:
                            if not self.counts[k]:
                                self._bufs[j][k].copy_(bufs[i])
                            i += 1
            else:
                self._sgd(params, gs, [None] * len(params), lr)
            for k in members:
                self.counts[k] += 1

    def _step_whole(self, grads: list[torch.Tensor], lr: float) -> None:
        if self.kind in ("adam", "adamw"):
            self._adam(self.params, grads, self.exp_avg, self.exp_avg_sq, list(self.steps[0].unbind(0)), lr)
            self.steps[1:] = self.steps[0]
        elif self.momentum:
            bufs: list[torch.Tensor | None] = list(self.buffers) if self.counts[0] else [None] * len(self.params)
            self._sgd(self.params, grads, bufs, lr)
            if not self.counts[0]:
                for own, new in zip(self.buffers, bufs):
                    own.copy_(new)
        else:
            self._sgd(self.params, grads, [None] * len(self.params), lr)
        self.counts = [c + 1 for c in self.counts]

    def state_dict(self) -> dict[str, Any]:
        if self.kind in ("adam", "adamw"):
            return {"kind": self.kind, "exp_avg": self.exp_avg, "exp_avg_sq": self.exp_avg_sq, "steps": self.steps}
        return {"kind": "sgd", "buffers": self.buffers, "counts": list(self.counts)}

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("kind") != self.kind:
            raise LTHError(f"resume checkpoint holds {state.get('kind')} state, the settings use {self.kind}")
        if self.kind in ("adam", "adamw"):
            for own, saved in zip(self.exp_avg + self.exp_avg_sq + [self.steps],
                                  list(state["exp_avg"]) + list(state["exp_avg_sq"]) + [state["steps"]]):
                own.copy_(saved)
            self.counts = [int(c) for c in self.steps[:, 0].tolist()]
        else:
            for own, saved in zip(self.buffers, state["buffers"]):
                own.copy_(saved)
            self.counts = list(state["counts"])


# ------------------------------------------------------------------------------------ memory


def _activation_elements(model: nn.Module, input_shape: Sequence[int]) -> int:
    """Elements of every leaf module's output (and the input) for one example, in eval mode."""
    total = [math.prod(input_shape)]

    def hook(_module, _inputs, out):
        if isinstance(out, torch.Tensor):
            total[0] += out[:1].numel()

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    was_training = model.training
    device = next(model.parameters()).device
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(2, *input_shape, device=device))  # 2: BatchNorm refuses one example in training
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return total[0]


def estimate_bytes(model: nn.Module, members: int, batch_size: int, optimizer: str,
                   input_shape: Sequence[int]) -> int:
    """Bytes a group of `members` runs of `model` needs to train at `batch_size` with `optimizer`.

    Per member: parameters, gradients, optimiser state (Adam/AdamW: 2 copies; SGD with or without
    momentum: 1, an upper bound), the float mask factors and the bool masks, the buffers; plus the
    activations of a step, counted as 3 x (every layer's output for one example) x batch_size
    (forward outputs kept for the backward, their gradients, the per-member copies the stacked
    layers make). Evaluation runs in chunks of members sized by `eval_members`, not counted here.
    Data splits already on the device are not counted. float32 throughout."""
    params = sum(p.numel() for p in model.parameters())
    buffers = sum(b.numel() * b.element_size() for b in model.buffers())
    states = 2 if optimizer in ("adam", "adamw") else 1
    per_member = 4 * params * (2 + states + 1) + params + buffers
    activations = 3 * 4 * batch_size * _activation_elements(model, input_shape)
    return members * (per_member + activations)


def available_bytes(device: torch.device) -> int:
    """Free memory of the device: CUDA's free memory, or the host's MemAvailable (/proc/meminfo)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


def check_fits(model: nn.Module, members: int, batch_size: int, optimizer: str, input_shape: Sequence[int],
               device: torch.device | str | None = None) -> int:
    """Refuse (LTHError naming `batching`) a group whose estimate exceeds the device's free memory;
    return the estimate."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    need = estimate_bytes(model, members, batch_size, optimizer, input_shape)
    have = available_bytes(device)
    if need > have:
        per = need / members
        raise LTHError(f"batching: a group of {members} runs of {type(model).__name__} (batch {batch_size}, "
                       f"{optimizer}) needs about {_gib(need)} ({_gib(per)} per run), but {device} has "
                       f"{_gib(have)} free; put at most {max(1, int(have // per))} runs in a group")
    return need


def eval_members(model: nn.Module, input_shape: Sequence[int], budget: int) -> int:
    """How many members to evaluate at once so that one chunk of EVAL_BATCH examples stays within
    `budget` bytes of activations (at least 1)."""
    per = 4 * EVAL_BATCH * _activation_elements(model, input_shape)
    return max(1, budget // per)


# ------------------------------------------------------------------------------------ losses


def _step_losses(out: torch.Tensor, y: torch.Tensor, task: str, exact: bool) -> torch.Tensor:
    """Each member's mean loss, (M,), differentiable. out (M, B, ...), y (M, B)."""
    if exact:
        return torch.stack([loss_of(out[k], y[k], task) for k in range(out.shape[0])])
    m, b = y.shape
    if task == "regression":
        return F.mse_loss(out.squeeze(-1), y, reduction="none").mean(1)
    return F.cross_entropy(out.reshape(m * b, -1), y.reshape(-1), reduction="none").view(m, b).mean(1)


def _sum_losses(out: torch.Tensor, y: torch.Tensor, task: str, exact: bool) -> torch.Tensor:
    """Each member's summed loss over a shared chunk: out (M, N, ...), y (N,) -> (M,)."""
    if exact:
        return torch.stack([loss_of(out[k], y, task, reduction="sum") for k in range(out.shape[0])])
    m, n = out.shape[0], y.shape[0]
    if task == "regression":
        return F.mse_loss(out.squeeze(-1), y.expand(m, n), reduction="none").sum(1)
    return F.cross_entropy(out.reshape(m * n, -1), y.repeat(m), reduction="none").view(m, n).sum(1)


# --------------------------------------------------------------------------------- evaluation


@torch.no_grad()
def evaluate_members(stacked: StackedModel, members: Sequence[int], x: torch.Tensor, y: torch.Tensor, task: str,
                     chunk: int, exact: bool) -> list[tuple[float | None, float | None]]:
    """`lth.training.evaluate` for each member: (mean loss, accuracy) over (x, y), in eval mode;
    computed in chunks of `chunk` members x EVAL_BATCH examples, one host sync at the end."""
    members = list(members)
    if len(y) == 0:
        return [(None, None)] * len(members)
    was_training = stacked.training
    stacked.eval()
    device = x.device
    losses, corrects = [], []
    for a in range(0, len(members), chunk):
        part = members[a : a + chunk]
        c = len(part)
        loss = torch.zeros(c, device=device)
        correct = torch.zeros(c, device=device, dtype=torch.long)
        with stacked.select(part):
            for i in range(0, len(y), EVAL_BATCH):
                xb, yb = x[i : i + EVAL_BATCH], y[i : i + EVAL_BATCH]
                xin = xb.unsqueeze(0).expand(c, *xb.shape).reshape(c * len(xb), *xb.shape[1:])
                out = stacked(xin).view(c, len(xb), -1)
                loss += _sum_losses(out, yb, task, exact)
                if task == "classification":
                    correct += (out.argmax(-1) == yb).sum(1)
        losses.append(loss)
        corrects.append(correct)
    stacked.train(was_training)
    loss_values = torch.cat(losses).tolist()
    correct_values = torch.cat(corrects).tolist()
    n = len(y)
    return [(lv / n, cv / n if task == "classification" else None) for lv, cv in zip(loss_values, correct_values)]


# ---------------------------------------------------------------------------------- training


def _finite(*values: float | None) -> bool:
    return all(v is None or math.isfinite(v) for v in values)


class _Group:
    """The state of a batched job between steps (what a checkpoint holds)."""

    def __init__(self, stacked: StackedModel, optimizer: StackedOptimizer, n: int):
        self.stacked, self.optimizer = stacked, optimizer
        self.step = 0
        self.curves: list[list[dict]] = [[] for _ in range(n)]
        self.diverged: dict[int, dict[str, Any]] = {}
        self.last_ckpt = 0

    def state(self, fingerprint: str, keys: list[str]) -> dict[str, Any]:
        return {"fingerprint": fingerprint, "keys": keys, "step": self.step, "curves": self.curves,
                "diverged": {str(k): v for k, v in self.diverged.items()},
                "model": self.stacked.stacked_state(), "optimizer": self.optimizer.state_dict()}

    @torch.no_grad()
    def load(self, state: dict[str, Any]) -> None:
        own = self.stacked.stacked_state()
        for name, t in state["model"].items():
            own[name].copy_(t)
        self.optimizer.load_state_dict(state["optimizer"])
        self.step, self.last_ckpt = state["step"], state["step"]
        self.curves = state["curves"]
        self.diverged = {int(k): v for k, v in state["diverged"].items()}


def train_batched(models: Sequence[nn.Module], masks: Sequence[Mask], splits, training: dict[str, Any],
                  segments: Sequence[Segment], *, keys: Sequence[str] | None = None,
                  checkpoint: Path | None = None, fingerprint: str = "", augment: bool = False,
                  conv: str = "auto", bn: str = "auto", exact_losses: bool | None = None,
                  whole_steps: bool | None = None, memory_check: bool = True,
                  eval_budget: int | None = None,
                  callback: Callable[[int, StackedModel], None] | None = None) -> list[dict[str, Any]]:
    """Train members k = 0..M-1 (models[k] under masks[k] for segments[k]) together; one result each.

    Every model must be the same architecture on the same device. A segment gives the member's
    iterations [start, stop), learning-rate function and data seed (its `checkpoint` and
    `fingerprint` are not used: the group has one checkpoint, `checkpoint`, identified by
    `fingerprint` and the keys). Members step together: step s trains iteration start_k + s of
    every member still running; evaluation points are those of `train` (every
    training["eval_every"] steps and at the member's stop).

    Returns, per member: {"key", "curves", "summary", "diverged"}: curves and summary as `train`
    returns them (summary["train_seconds"]: the group's training time divided by M), or, for a
    member whose loss became NaN/inf, summary None and diverged {"iteration", "reason"} (its
    curves end at the evaluation that found it). The trained weights are loaded into `models`.

    conv, bn: "loop" | "grouped" | "auto", how Conv2d and BatchNorm2d layers are stacked (module
    docstring). exact_losses: compute each member's loss by `train`'s own call (default: on CPU).
    whole_steps: StackedOptimizer's `whole` (default: on CUDA). memory_check: refuse a group that
    cannot fit (`check_fits`). eval_budget: bytes of activations an evaluation chunk may take (default 512 MiB
    on CPU, a quarter of the free memory up to 8 GiB on CUDA). callback(s, stacked): called after
    step s with the StackedModel (tests interrupt a job with it, and look at members' weights).
    """
    from lth.datasets import augment_batch

    n = len(models)
    keys = [str(k) for k in keys] if keys is not None else [str(k) for k in range(n)]
    if not (len(masks) == len(segments) == len(keys) == n) or n == 0:
        raise LTHError(f"batched training: {n} models, {len(masks)} masks, {len(segments)} segments, "
                       f"{len(keys)} keys: give one of each per member")
    if len(set(keys)) != n:
        raise LTHError(f"batched training: member keys are not unique: {keys}")
    if setting := unsupported(training):
        raise LTHError(f"{setting}: not supported by batched training; train these runs one at a time")
    for k, seg in enumerate(segments):
        if seg.stop < seg.start:
            raise LTHError(f"batched training: member {keys[k]}: segment stops ({seg.stop}) before it starts "
                           f"({seg.start})")
    mask_names = set(masks[0])
    for k, mask in enumerate(masks):
        if set(mask) != mask_names:
            raise LTHError(f"batched training: member {keys[k]}'s mask covers {sorted(mask)}, member {keys[0]}'s "
                           f"{sorted(mask_names)}: the members of a group need masks over the same layers")
        check_mask(models[k], mask, f"mask of member {keys[k]}")

    device = next(models[0].parameters()).device
    input_shape = tuple(splits.x_train.shape[1:])
    batch = training["batch_size"]
    if memory_check:
        check_fits(models[0], n, batch, training["optimizer"], input_shape, device)
    if exact_losses is None:
        exact_losses = device.type == "cpu"
    if eval_budget is None:
        eval_budget = 2**29 if device.type != "cuda" else min(available_bytes(device) // 4, 2**33)
    chunk = eval_members(models[0], input_shape, eval_budget)
    task = task_of(splits)
    classifies = task == "classification"

    stacked = StackedModel(models, conv=conv, bn=bn)
    params = dict(stacked.net.named_parameters())
    # the members' masks stacked like their weights: pruned weights zero now and after every step
    keep_zero = MaskEnforcer(stacked.net, {name: torch.stack([m[name].to(device) for m in masks])
                                           for name in sorted(mask_names)})
    keep_zero()
    param_list = list(params.values())
    if whole_steps is None:
        whole_steps = device.type == "cuda"
    optimizer = StackedOptimizer(param_list, n, training, whole=whole_steps)
    bn_buffers = [b for name, b in stacked.net.named_buffers()]

    group = _Group(stacked, optimizer, n)
    lengths = [seg.stop - seg.start for seg in segments]
    total = max(lengths)
    every, ckpt_every = training["eval_every"], training["checkpoint_every"]
    fp = f"{fingerprint}|{'|'.join(keys)}"

    def evaluation(members: list[int], train_loss: list, train_acc: list) -> None:
        val = evaluate_members(stacked, members, splits.x_val, splits.y_val, task, chunk, exact_losses)
        test = evaluate_members(stacked, members, splits.x_test, splits.y_test, task, chunk, exact_losses)
        for i, k in enumerate(members):
            t = segments[k].start + group.step
            lr = segments[k].lr(t) if group.step == 0 else last_lr[k]
            group.curves[k].append({"iteration": t, "lr": lr, "train_loss": train_loss[i],
                                    "train_accuracy": train_acc[i], "val_loss": val[i][0], "val_accuracy": val[i][1],
                                    "test_loss": test[i][0], "test_accuracy": test[i][1]})

    last_lr: list[float | None] = [None] * n
    if checkpoint is not None and Path(checkpoint).exists():
        state = load_checkpoint(checkpoint)
        if state.get("fingerprint") != fp:
            raise LTHError(f"{checkpoint}: resume checkpoint belongs to another job; delete it to restart")
        group.load(state)
    else:
        evaluation(list(range(n)), [None] * n, [None] * n)

    def running(k: int) -> bool:
        return group.step < lengths[k] and k not in group.diverged

    # BatchNorm statistics of stopped members are held at their values (restored after each step)
    held: dict[int, list[torch.Tensor]] = {}

    def hold_stopped() -> None:
        for k in range(n):
            if not running(k) and k not in held:
                held[k] = [b[k].clone() for b in bn_buffers]

    hold_stopped()
    orders = [BatchOrder(len(splits.y_train), batch, seg.data_seed, device) for seg in segments]
    loss_sum = torch.zeros(n, device=device)
    correct = torch.zeros(n, device=device, dtype=torch.long)
    seen = [0] * n
    started = time.perf_counter()
    stacked.train()
    while group.step < total and any(running(k) for k in range(n)):
        s = group.step
        ts = [seg.start + s for seg in segments]
        groups: dict[float, list[int]] = {}
        for k in range(n):
            if running(k):
                lr = segments[k].lr(ts[k])
                last_lr[k] = lr
                groups.setdefault(lr, []).append(k)
        idx = torch.stack([order(t) for order, t in zip(orders, ts)])
        xb, yb = splits.x_train[idx], splits.y_train[idx]
        if augment:
            xb = torch.stack([augment_batch(xb[k], torch.Generator().manual_seed(
                derive_seed(segments[k].data_seed, "aug", ts[k]))) for k in range(n)])
        out = stacked(xb.reshape(n * batch, *input_shape)).view(n, batch, -1)
        losses = _step_losses(out, yb, task, exact_losses)
        grads = torch.autograd.grad(losses.sum(), param_list)
        optimizer.step(grads, groups)
        keep_zero()
        with torch.no_grad():
            for k, saved in held.items():
                for b, v in zip(bn_buffers, saved):
                    b[k].copy_(v)
            loss_sum.add_(losses.detach() * batch)
            if classifies:
                correct.add_((out.detach().argmax(-1) == yb).sum(1))
        for k in range(n):
            if running(k):
                seen[k] += batch
        group.step = s = s + 1
        if callback is not None:
            callback(s, stacked)
        due = [k for k in range(n) if k not in group.diverged and s <= lengths[k]
               and (s % every == 0 or s == lengths[k])]
        if due:
            sums, hits = loss_sum.tolist(), correct.tolist()
            train_loss = [sums[k] / seen[k] for k in due]
            train_acc = [hits[k] / seen[k] if classifies else None for k in due]
            evaluation(due, train_loss, train_acc)
            with torch.no_grad():
                which = torch.tensor(due, device=device)
                loss_sum.index_fill_(0, which, 0.0)
                correct.index_fill_(0, which, 0)
            for k in due:
                seen[k] = 0
                c = group.curves[k][-1]
                if not _finite(c["train_loss"], c["val_loss"], c["test_loss"]):
                    what = "train" if not _finite(c["train_loss"]) else "val" if not _finite(c["val_loss"]) else "test"
                    group.diverged[k] = {"iteration": c["iteration"],
                                         "reason": f"{what} loss is {c[what + '_loss']} at iteration {c['iteration']}"}
                    print(f"batched training: member {keys[k]} diverged ({group.diverged[k]['reason']}); "
                          "stopped, the others go on", file=sys.stderr)
            hold_stopped()
            if (checkpoint is not None and s < total and any(running(k) for k in range(n))
                    and s - group.last_ckpt >= ckpt_every):
                save_checkpoint(checkpoint, group.state(fp, keys))
                group.last_ckpt = s
    seconds = time.perf_counter() - started

    ok = [k for k in range(n) if k not in group.diverged]
    train_acc = {k: acc for k, (_, acc) in zip(ok, evaluate_members(
        stacked, ok, splits.x_train, splits.y_train, task, chunk, exact_losses))} if ok else {}
    results = []
    with torch.no_grad():
        for k in range(n):
            models[k].load_state_dict(stacked.member_state(k))
            results.append({"key": keys[k], "curves": group.curves[k],
                            "summary": summary_of(group.curves[k], train_acc[k], task, seconds / n) if k in train_acc
                            else None,
                            "diverged": group.diverged.get(k)})
    return results
