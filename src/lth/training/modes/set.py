"""Sparse evolutionary training (SET): a random sparse network whose connections evolve while it trains,
at a fixed number of weights per layer from the first step to the last.

Source: D. C. Mocanu et al., "Scalable training of artificial neural networks with adaptive sparse
connectivity inspired by network science", Nature Communications 9, 2018: an Erdos-Renyi random
topology (layer density proportional to (n_in + n_out) / (n_in n_out), which `erk` extends to
convolutions), and every so often the fraction zeta of each layer's kept weights closest to zero
removed and as many grown at random. The drop-and-grow step follows the code of Evci et al. 2020,
which runs SET as RigL's baseline (google-research/rigl, sparse_optimizers.py: SparseSETOptimizer):

- Layer l keeps exactly its count c_l (lth.pruning.distribution.layer_counts: `erk` or `uniform`,
  at least `min_per_layer`), drawn at random (lth.pruning.scores.random.random_with_counts).
- An update after every `delta_t` optimiser steps (step n = t + 1 after the update of iteration t)
  drops int(zeta c_l) of the kept weights of smallest |w| (the code's floor), then grows as many among
  the positions not kept after the drop, so a weight just dropped may come back, keeping its value,
  as in the code. A grown weight starts at exactly 0.0 and with no optimiser state (the code's
  grow_init 'zeros' and reset_momentum): it moves only by the gradients it gets from then on.
  Ties keep the lower flat index (lth.training.modes.iht.top_k).
- Random draws come from CPU generators seeded by (the run's data seed, its density, t, the layer):
  the same on any device and a pure function of t, so nothing random is carried between steps and a
  resumed run draws what an uninterrupted one would; the mask itself is the mode's state
  (lth.training.modes.EvolvingMask). SET and RigL at the same seed, density and distribution start
  from the same random mask.

Mocanu et al. update at the end of every epoch and grow new weights at small random values; here
every `delta_t` steps and at zero, as in RigL's comparison. `Evolution` is shared with RigL
(lth.training.modes.rigl), which differs only in where it grows and how much it changes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from lth.core.seeding import derive_seed
from lth.pruning.distribution import layer_counts
from lth.pruning.scores.random import random_with_counts
from lth.training.modes import EvolvingMask, Setup
from lth.training.modes.iht import top_k


class Evolution(EvolvingMask):
    """Drop the smallest kept |w| of each layer and grow as many elsewhere, after every `delta_t` steps.

    keep: the starting mask (name -> bool tensor); zeta: the fraction of each layer's count changed
    per update; seed: of the random growth. Subclasses say where to grow (`grow_scores`, >= 0) and
    how much to change at step n (`fraction`).
    """

    def __init__(self, model: nn.Module, names: Sequence[str], keep: Mapping[str, torch.Tensor], delta_t: int,
                 zeta: float, seed: int):
        super().__init__(model, names, keep)
        self.counts = [int(keep[n].sum()) for n in self.names]  # fixed for the whole run
        self.delta_t, self.zeta, self.seed = delta_t, zeta, seed

    def fraction(self, n: int) -> float:
        """The fraction of each layer's count dropped and grown at step n (0: no update)."""
        return self.zeta if n % self.delta_t == 0 else 0.0

    def grow_scores(self, t: int, name: str, p: torch.Tensor) -> torch.Tensor:
        """SET: uniform random scores, drawn on the CPU from a generator seeded by (seed, t, layer)."""
        g = torch.Generator().manual_seed(derive_seed(self.seed, "grow", t, name))
        return torch.rand(p.numel(), generator=g, dtype=torch.float64).to(p.device)

    @torch.no_grad()
    def update(self, t: int) -> None:
        f = self.fraction(t + 1)
        if f <= 0.0:
            return
        new = {}
        for name, p, keep, count in zip(self.names, self.params, self._keep, self.counts):
            drop = int(f * count)
            flat = keep.flatten()
            if drop == 0:
                new[name] = keep
                continue
            survivors = top_k(torch.where(flat, p.detach().abs().flatten(), -1.0), count - drop)
            scores = self.grow_scores(t, name, p)
            grow = top_k(torch.where(survivors, torch.full_like(scores, -1.0), scores), drop)
            grown = (grow & ~flat).view_as(p)  # new connections: from 0.0, with no optimiser state
            p.masked_fill_(grown, 0.0)
            if self.optimizer is not None:
                self.optimizer.forget(p, grown)
            new[name] = (survivors | grow).view_as(p)
        self.replace(new)


def start_mask(start, key, plan, names) -> tuple[dict[str, torch.Tensor], int]:
    """(the random starting mask at the run's density, with the method's per-layer counts; the seed of
    the run's draws): shared by SET and RigL."""
    method = plan.method(key)
    seed = derive_seed(start.data_seed, "sparse training", key.level)
    params = dict(start.model.named_parameters())
    template = {n: torch.ones(params[n].shape, dtype=torch.bool) for n in names}
    counts = layer_counts(method.distribution, template, plan.target_density(key), method.min_per_layer)
    g = torch.Generator().manual_seed(derive_seed(seed, "start"))
    return random_with_counts(template, counts, g), seed


def setup(start, key, plan, names) -> Setup:
    """SET at the run's density from the start state's weights under a random mask; the run's mask is
    where it ends."""
    keep, seed = start_mask(start, key, plan, names)
    s = plan.method(key).set
    evolution = Evolution(start.model, names, keep, s.delta_t, s.zeta, seed)
    return Setup(start.model, keep, evolution, lambda: (start.model, evolution.mask))
