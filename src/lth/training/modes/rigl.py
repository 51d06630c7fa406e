"""RigL: sparse training that grows the connections whose gradient is largest, at a fixed number of
weights per layer from the first step to the last.

Source: U. Evci, T. Gale, J. Menick, P. S. Castro, E. Elsen, "Rigging the Lottery: Making All Tickets
Winners", ICML 2020 (arXiv:1911.11134), Algorithm 1, and the authors' code (google-research/rigl,
sparse_optimizers.py: SparseRigLOptimizer). As SET (lth.training.modes.set: the same random start,
drop and bookkeeping), except:

- Growth: among the positions not kept after the drop, those of largest |dL/dw|, the dense gradient
  of the step's own loss with respect to every weight, pruned ones included (the paper's
  ArgTopK over i not in theta \\ I_drop). The training loop computes it anyway: the loss is
  differentiated with respect to the full weights, whose pruned entries are exactly zero, and it
  masks no gradient (pruned weights are re-zeroed after the step instead), so `p.grad` still holds
  it when `enforce` runs after the optimiser step. No extra forward or backward pass.
- The fraction changed decays: zeta_n = zeta / 2 (1 + cos(pi n / t_end)) at step n = t + 1 (the
  code's cosine_decay of the drop fraction), and nothing changes after step `t_end` (the paper
  stops at 75 % of training).
- The start distribution is the method's `distribution`: `erk` in the paper.

Grown weights start at 0.0 with no optimiser state, as the code does, so they do not change what
the network computes until they are trained. The gradient is a function of the weights and the
step's batch, so a resumed run grows exactly what an uninterrupted one would.
"""

from __future__ import annotations

import math

import torch

from lth.training.modes import Setup
from lth.training.modes.set import Evolution, start_mask


class RigL(Evolution):
    """Evolution growing where the dense gradient of the step's loss is largest, on a cosine schedule."""

    def __init__(self, *args, t_end: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.t_end = t_end

    def fraction(self, n: int) -> float:
        if n % self.delta_t or n > self.t_end:
            return 0.0
        return self.zeta / 2 * (1 + math.cos(math.pi * n / self.t_end))

    def grow_scores(self, t: int, name: str, p: torch.Tensor) -> torch.Tensor:
        return torch.zeros(p.numel(), device=p.device) if p.grad is None else p.grad.detach().abs().flatten()


def setup(start, key, plan, names) -> Setup:
    """RigL at the run's density from the start state's weights under a random mask; the run's mask is
    where it ends."""
    keep, seed = start_mask(start, key, plan, names)
    r = plan.method(key).rigl
    rigl = RigL(start.model, names, keep, r.delta_t, r.zeta, seed, t_end=r.t_end)
    return Setup(start.model, keep, rigl, lambda: (start.model, rigl.mask))
