"""The learning-rate schedule: linear warmup, then a step decay at milestones."""

from __future__ import annotations

from typing import Any


def lr_at(training: dict[str, Any], t: int) -> float:
    """Learning rate of iteration t (0-based): linear warmup, then x gamma at each milestone passed."""
    lr = training["lr"]
    if t < training["warmup"]:
        lr *= (t + 1) / training["warmup"]
    return lr * training["gamma"] ** sum(1 for m in training["milestones"] if t >= m)
