"""The optimiser of a group of stacked runs: each member updated as lth.training.optim.Optimizer
would update it alone, on views of the stacked tensors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.optim.adam import adam
from torch.optim.adamw import adamw
from torch.optim.sgd import sgd

from lth.core.errors import LTHError


class StackedOptimizer:
    """`lth.training.optim.Optimizer`'s update for every member, on views of the stacked tensors.

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
