"""Which training examples iteration t trains on: epochs are seeded permutations (seeded by the
run's data seed and the epoch), so a run resumed at iteration t sees exactly the batches an
uninterrupted run would, and a checkpoint need hold no RNG state.
"""

from __future__ import annotations

import torch

from lth.core.errors import LTHError
from lth.core.seeding import derive_seed


class BatchOrder:
    """Indices of iteration t's minibatch; epochs are seeded permutations, the last partial batch dropped."""

    def __init__(self, n: int, batch_size: int, data_seed: int, device: torch.device):
        if batch_size > n:
            raise LTHError(f"training.batch_size: {batch_size} exceeds the {n} training examples")
        self.n, self.batch_size, self.seed, self.device = n, batch_size, data_seed, device
        self.per_epoch = n // batch_size
        self._epoch, self._perm = -1, None

    def __call__(self, t: int) -> torch.Tensor:
        epoch, i = divmod(t, self.per_epoch)
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(derive_seed(self.seed, "order", epoch))
            self._perm, self._epoch = torch.randperm(self.n, generator=g).to(self.device), epoch
        return self._perm[i * self.batch_size : (i + 1) * self.batch_size]
