"""Training modes: how a run's mask is kept while it trains, each a part of
lth.core.parts.TRAINING_MODES (masked, iht, edgepopup).

A mode is a module with `setup(start, key, plan, names) -> Setup`: `start` the run's start state
(lth.jobs.start.Start: model and mask), `key` its RunKey, `plan` the experiment's plan (a mode that
finds its mask reads its method's settings, `plan.method(key)`, and its density,
`plan.target_density(key)`), `names` the prunable parameters. The job trains `Setup.model` under `Setup.mask`
with `Setup.enforce` after every step (None: the mask's pruned weights are re-zeroed), then writes
what `Setup.finish()` returns: the trained model and the mask the run ends with. `rules` holds the
modes' torch-free checks of a method's settings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from lth.pruning.masks import Mask


@dataclass
class Setup:
    model: nn.Module  # what trains (edge-popup: a wrapper of the frozen network)
    mask: Mask  # the mask it trains under
    enforce: Callable[[int], None] | None  # after the optimiser step of iteration t; None: keep the mask's zeros
    finish: Callable[[], tuple[nn.Module, Mask]]  # the trained run's model and mask, to write
