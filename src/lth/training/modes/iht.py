"""Iterative hard thresholding (IHT): a dense gradient step, then keep the top-k weights by magnitude.

Blumensath & Davies 2009 for sparse vectors; Fridovich-Keil & Pilanci 2025, "A Recovery Guarantee
for Sparse Neural Networks" (arXiv:2509.20323) for two-layer ReLU networks (lth.training.modes.planted). Unlike a
lottery-ticket mask, the kept set is chosen anew after every step, so a pruned weight re-enters
when its gradient makes it large enough. `Projector` is the `enforce` hook of `lth.training.loop.train`;
`setup` makes it the training mode `iht` of a one-shot method (lth.training.modes).

The density may start at 1 and fall over training: dense warm-up iterations, then the cubic
gradual-pruning schedule of Zhu & Gupta 2017 ("To prune, or not to prune"), the usual recipe for
training sparse networks on real data. The planted recovery of lth.training.modes.planted uses the paper's
setting instead: the final budget from the first step (warmup = ramp = 0).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from lth.core.errors import LTHError
from lth.training.modes import Setup


def density_at(t: int, final_density: float, warmup: int, ramp: int) -> float:
    """Density that iteration t (0-based) projects to: 1.0 while t < warmup, then the cubic schedule.

    density = d_f + (1 - d_f) * (1 - p)^3 with p = (t - warmup + 1) / ramp clipped to [0, 1], so the
    first projection (t = warmup) already prunes a little, d_f is reached at t = warmup + ramp - 1
    and held from then on; ramp = 0 projects to d_f from t = warmup. The cubic (Zhu & Gupta 2017)
    prunes fast while many weights are redundant and slowly near the end, where each one counts.
    """
    if not 0.0 < final_density <= 1.0:
        raise LTHError(f"IHT: final density must be in (0, 1], got {final_density!r}")
    if warmup < 0 or ramp < 0:
        raise LTHError(f"IHT: warmup and ramp must be >= 0, got {warmup}, {ramp}")
    if t < warmup:
        return 1.0
    p = 1.0 if ramp == 0 else min(1.0, (t - warmup + 1) / ramp)
    return final_density + (1.0 - final_density) * (1.0 - p) ** 3


def top_k(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Bool mask of the k largest of a flat tensor; among equal scores the lower index is kept.

    A fixed tie rule, as in lth.pruning.select, so masks never depend on sort internals: everything
    above the k-th largest value, then the lowest-indexed of the values equal to it. The k-th largest
    value is found by `kthvalue` on the CPU (O(n)) and by a sort elsewhere (CUDA's kthvalue is not
    among its deterministic kernels in every torch version); both find the same value.
    """
    n = scores.numel()
    if k >= n:
        return torch.ones_like(scores, dtype=torch.bool)
    if k <= 0:
        return torch.zeros_like(scores, dtype=torch.bool)
    if scores.device.type == "cpu":
        kth = -torch.kthvalue(-scores, k).values
    else:
        kth = torch.sort(scores, descending=True).values[k - 1]
    keep = scores > kth
    ties = scores == kth
    return keep | (ties & (ties.cumsum(0) <= k - keep.sum()))


class Projector:
    """After the optimiser step of iteration t, zero all but the top-k |w| of the named weights.

    k = round(density_at(t) * n), per layer (scope "layer") or over all named weights at once
    ("global"); the others are set to exactly 0.0. Nothing happens during warm-up. The mask after a
    call depends only on the weights and t (no state is carried between calls), so a run resumed
    from a checkpoint at iteration t projects exactly as an uninterrupted one. `mask` (CPU bool
    tensors) is what the last call kept; all True before any projection.
    """

    def __init__(self, model: nn.Module, names: Sequence[str], final_density: float,
                 warmup: int = 0, ramp: int = 0, scope: str = "layer"):
        if scope not in ("layer", "global"):
            raise LTHError(f"IHT: scope must be 'layer' or 'global', got {scope!r}")
        params = dict(model.named_parameters())
        unknown = [n for n in names if n not in params]
        if unknown or not names:
            raise LTHError(f"IHT: no such parameters {unknown}; the model has {sorted(params)}")
        density_at(0, final_density, warmup, ramp)  # validates
        self.names, self.scope = list(names), scope
        self.params = [params[n] for n in self.names]
        self.final_density, self.warmup, self.ramp = final_density, warmup, ramp
        self._keep = [torch.ones_like(p, dtype=torch.bool) for p in self.params]

    @property
    def mask(self) -> dict[str, torch.Tensor]:
        return {n: k.cpu() for n, k in zip(self.names, self._keep)}

    @torch.no_grad()
    def __call__(self, t: int) -> None:
        if t < self.warmup:
            return
        d = density_at(t, self.final_density, self.warmup, self.ramp)
        if self.scope == "layer":
            self._keep = [top_k(p.detach().abs().flatten(), round(d * p.numel())).view_as(p) for p in self.params]
        else:
            flat = torch.cat([p.detach().abs().flatten() for p in self.params])
            keep = top_k(flat, round(d * flat.numel()))
            self._keep = [k.view_as(p) for k, p in zip(keep.split([p.numel() for p in self.params]), self.params)]
        for p, k in zip(self.params, self._keep):
            p.masked_fill_(~k, 0.0)


def setup(start, key, plan, names) -> Setup:
    """IHT to the run's density, globally or per layer as the method's distribution says, from the
    start state's full mask; the run's mask is the projector's last."""
    method = plan.method(key)
    p = Projector(start.model, names, plan.target_density(key), method.iht.warmup, method.iht.ramp,
                  scope="global" if method.distribution == "global" else "layer")
    return Setup(start.model, start.mask, p, lambda: (start.model, p.mask))
