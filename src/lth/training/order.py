"""Which training examples iteration t trains on, and how they reach the device.

Epochs are seeded permutations (seeded by the run's data seed and the epoch), so a run resumed at
iteration t sees exactly the batches an uninterrupted run would, and a checkpoint need hold no RNG
state. A step's batch is drawn on the CPU, its indices and (with augmentation) its crops and flips
together, and moved to the device in one copy (`to_device`: pinned and asynchronous on CUDA): a
training step never waits for the device.
"""

from __future__ import annotations

import torch

from lth.core.errors import LTHError
from lth.core.seeding import derive_seed
from lth.data.augment import apply_augment, draw_augment

ORDERS = ("shuffled", "sequential")


class BatchOrder:
    """Indices (CPU) of iteration t's minibatch. "shuffled": epochs are seeded permutations, the last
    partial batch dropped. "sequential": the training set in its order, batch t from example
    (t x batch_size) mod n on, up to batch_size of them (a shorter last batch where the set ends), the
    same in every run whatever its data seed: Greydanus 2020's `x_train[(t * 100) % 4000:][:100]`."""

    def __init__(self, n: int, batch_size: int, data_seed: int, order: str = "shuffled"):
        if batch_size > n:
            raise LTHError(f"training.batch_size: {batch_size} exceeds the {n} training examples")
        if order not in ORDERS:
            raise LTHError(f"training.data_order: {order!r} is not one of {', '.join(ORDERS)}")
        self.n, self.batch_size, self.seed, self.order = n, batch_size, data_seed, order
        self.per_epoch = n // batch_size
        self._epoch, self._perm = -1, None

    def __call__(self, t: int) -> torch.Tensor:
        if self.order == "sequential":
            start = (t * self.batch_size) % self.n
            return torch.arange(start, min(start + self.batch_size, self.n))
        epoch, i = divmod(t, self.per_epoch)
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(derive_seed(self.seed, "order", epoch))
            self._perm, self._epoch = torch.randperm(self.n, generator=g), epoch
        return self._perm[i * self.batch_size : (i + 1) * self.batch_size]


def draw(order: BatchOrder, t: int, data_seed: int, augment: bool) -> torch.Tensor:
    """Iteration t's batch as the CPU draws it: its indices (B,), or with augmentation (4, B): the
    indices, then each example's row offset, column offset and flip (lth.data.augment)."""
    idx = order(t)
    if not augment:
        return idx
    return torch.cat([idx.unsqueeze(0), draw_augment(len(idx), torch.Generator().manual_seed(
        derive_seed(data_seed, "aug", t)))])


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """The one copy of a step's draws to the device: pinned and asynchronous on CUDA (no wait), none on the CPU."""
    if device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


def gather(splits, drawn: torch.Tensor, augment: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The inputs and labels a batch's draws (on the device; from `draw`) select, augmented."""
    idx = drawn[0] if augment else drawn
    xb, yb = splits.x_train[idx], splits.y_train[idx]
    return (apply_augment(xb, drawn[1:]) if augment else xb), yb
