"""Loop features: what a training step adds when the training settings switch it on, each a part of
lth.core.parts.LOOP_FEATURES (registered in the order the loop applies them: the order of the terms
added to the loss is part of a run's bits). A feature class has `active(training)`, is built from
(model, mask, training), and has `inputs(model, x, y, data_seed, t)` (the batch it trains on instead)
or `penalty(model)` (a term added to the loss), or both.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from lth.core.parts import LOOP_FEATURES


def active_features(model: nn.Module, mask, training: Mapping[str, Any], allowed=None) -> list:
    """The features `training` switches on (of `allowed`, the names a training mode takes; default: all),
    built for `model` under `mask`, in registration order."""
    out = []
    for name, part in LOOP_FEATURES.items():
        cls = part.load()
        if (allowed is None or name in allowed) and cls.active(training):
            out.append(cls(model, mask, training))
    return out


def unbatchable(training: Mapping[str, Any]) -> str | None:
    """The training setting ("training.<key>") the batched trainer does not implement, if one is on: a
    loop feature it lacks, or the sequential data order (whose last batch of an epoch may be short)."""
    if training.get("data_order", "shuffled") != "shuffled":
        return "training.data_order"
    return next((f"training.{name}" for name, part in LOOP_FEATURES.items()
                 if not part.batchable and part.load().active(training)), None)


class Adversarial:
    """Adversarial training: each batch replaced by its adversarial examples (lth.training.adversarial),
    the attack's random start seeded by the run's data seed and the iteration."""

    @staticmethod
    def active(training: Mapping[str, Any]) -> bool:
        return (training.get("adversarial") or {}).get("method", "none") != "none"

    def __init__(self, model: nn.Module, mask, training: Mapping[str, Any]):
        self.settings = training["adversarial"]

    def inputs(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, data_seed: int, t: int) -> torch.Tensor:
        from lth.training.adversarial import attack_generator, perturb

        a = self.settings
        return perturb(model, x, y, a["method"], a["epsilon"], a["steps"], attack_generator(data_seed, t))


class SlimmingPenalty:
    """Network slimming's L1 penalty on BatchNorm scales, times `training.bn_l1`."""

    @staticmethod
    def active(training: Mapping[str, Any]) -> bool:
        return bool(training.get("bn_l1", 0.0))

    def __init__(self, model: nn.Module, mask, training: Mapping[str, Any]):
        self.weight = training["bn_l1"]

    def penalty(self, model: nn.Module) -> torch.Tensor:
        return self.weight * slimming_penalty(model)


class L1Penalty:
    """The L1 norm of the prunable weights, times `training.l1` (sparse double descent)."""

    @staticmethod
    def active(training: Mapping[str, Any]) -> bool:
        return bool(training.get("l1", 0.0))

    def __init__(self, model: nn.Module, mask, training: Mapping[str, Any]):
        params = dict(model.named_parameters())
        self.weight, self.params = training["l1"], [params[n] for n in mask]

    def penalty(self, model: nn.Module) -> torch.Tensor:
        return self.weight * sum(p.abs().sum() for p in self.params)


def slimming_penalty(model: nn.Module) -> torch.Tensor:
    """sum |gamma| over the BatchNorm layers: network slimming's L1 term (Liu et al. 2017), to be added to
    the loss times a coefficient the caller chooses (1e-4 in the early-bird code). 0 with no BatchNorm."""
    gammas = [m.weight.abs().sum() for m in model.modules()
              if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.weight is not None]
    if not gammas:
        return torch.zeros((), device=next(model.parameters()).device)
    return torch.stack(gammas).sum()
