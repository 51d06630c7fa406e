"""Gradual magnitude pruning (GMP): the network starts dense and prunes its smallest weights while it
trains, the density falling on a cubic schedule; a pruned weight never comes back.

Source: M. Zhu & S. Gupta, "To prune, or not to prune: exploring the efficacy of pruning for model
compression", 2017 (arXiv:1710.01878), eq. 1: s_t = s_f + (s_i - s_f)(1 - (t - t_0)/(n dt))^3 for
t in {t_0, t_0 + dt, ..., t_0 + n dt}, here with s_i = 0 (a dense start): at step t_0 nothing is
pruned, at t_0 + n dt the target is reached and then held. The cubic prunes fast while many weights
are redundant and slowly near the end, where each one counts; the network trains on in between, so
the weights left can make up for those just removed.

Here a step is counted in optimiser updates: the prune after the update of iteration t is step
n = t + 1, at n = start + i * frequency and at n = end. Its density is lth.training.modes.iht.density_at
(t, d_f, start, end - start), the same cubic IHT uses; unlike IHT, GMP ranks only the weights still
kept, so the mask only shrinks. Counts: `uniform` and `erk` keep round(d n) of each layer's n (at
least `min_per_layer`, lth.pruning.distribution.layer_counts), `global` round(d N) of all N at once
(the largest |w| across layers, as IHT's global projection). Ties keep the lower flat index
(lth.training.modes.iht.top_k). The mask is the mode's state (lth.training.modes.EvolvingMask).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from lth.pruning.distribution import layer_counts
from lth.training.modes import EvolvingMask, Setup
from lth.training.modes.iht import density_at, top_k


class Gradual(EvolvingMask):
    """After the update of iteration t, prune to the schedule's density if step t + 1 is a pruning step."""

    def __init__(self, model: nn.Module, names: Sequence[str], final_density: float, start: int, end: int,
                 frequency: int, distribution: str = "uniform", min_per_layer: int = 1):
        params = dict(model.named_parameters())
        super().__init__(model, names, {n: torch.ones_like(params[n], dtype=torch.bool) for n in names})
        self.final_density, self.start, self.end, self.frequency = final_density, start, end, frequency
        self.distribution, self.min_per_layer = distribution, min_per_layer

    def prunes_at(self, t: int) -> bool:
        n = t + 1
        return self.start < n <= self.end and ((n - self.start) % self.frequency == 0 or n == self.end)

    def density(self, t: int) -> float:
        """The density the prune after iteration t keeps (Zhu & Gupta's s_t, as a density)."""
        return density_at(t, self.final_density, self.start, self.end - self.start)

    @torch.no_grad()
    def update(self, t: int) -> None:
        if not self.prunes_at(t):
            return
        d, kept = self.density(t), self.mask
        scores = [torch.where(k, p.detach().abs(), -1.0).flatten() for p, k in zip(self.params, self._keep)]
        counts = layer_counts(self.distribution, kept, d, self.min_per_layer)
        if counts is None:  # global: one ranking of every layer's kept weights
            total = sum(p.numel() for p in self.params)
            keep = top_k(torch.cat(scores), min(round(d * total), sum(int(k.sum()) for k in kept.values())))
            parts = keep.split([p.numel() for p in self.params])
        else:  # never more than a layer keeps already: the mask only shrinks
            parts = [top_k(s, min(counts[n], int(kept[n].sum()))) for n, s in zip(self.names, scores)]
        self.replace({n: k.view_as(p) for n, k, p in zip(self.names, parts, self.params)})


def setup(start, key, plan, names) -> Setup:
    """GMP to the run's density from the start state's dense weights; the run's mask is where it ends."""
    method = plan.method(key)
    g = method.gmp
    gradual = Gradual(start.model, names, plan.target_density(key), g.start, g.end, g.frequency,
                      method.distribution, method.min_per_layer)
    return Setup(start.model, start.mask, gradual, lambda: (start.model, gradual.mask))
