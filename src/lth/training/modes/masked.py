"""The mode of lottery tickets and every pruning method with a pruning step: the run trains under the
mask that step made, its pruned weights kept at exactly zero (lth.pruning.masks.MaskEnforcer)."""

from __future__ import annotations

from lth.training.modes import Setup


def setup(start, key, plan, names) -> Setup:
    return Setup(start.model, start.mask, None, lambda: (start.model, start.mask))
