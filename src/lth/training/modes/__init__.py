"""Training modes: how a run's mask is kept while it trains, each a part of
lth.core.parts.TRAINING_MODES (masked, iht, edgepopup, gmp, set, rigl, random_search).

A mode is a module with `setup(start, key, plan, names) -> Setup`: `start` the run's start state
(lth.jobs.start.Start: model and mask), `key` its RunKey, `plan` the experiment's plan (a mode that
finds its mask reads its method's settings, `plan.method(key)`, and its density,
`plan.target_density(key)`), `names` the prunable parameters; a mode registered with `data` also gets
`splits=` (the run's data: random_search trains candidate masks before the run). The job trains
`Setup.model` under `Setup.mask` with `Setup.enforce` after every step (None: the mask's pruned
weights are re-zeroed), then writes what `Setup.finish()` returns: the trained model and the mask
the run ends with. `rules` holds the modes' torch-free checks of a method's settings. A mode whose
mask changes as it trains and is not a function of the weights (gmp, set, rigl) keeps it in an
`EvolvingMask`, which the training loop saves with its resume checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from lth.pruning.masks import Mask, MaskEnforcer


@dataclass
class Setup:
    model: nn.Module  # what trains (edge-popup: a wrapper of the frozen network)
    mask: Mask  # the mask it trains under
    enforce: Callable[[int], None] | None  # after the optimiser step of iteration t; None: keep the mask's zeros
    finish: Callable[[], tuple[nn.Module, Mask]]  # the trained run's model and mask, to write


class EvolvingMask:
    """The `enforce` of a mode whose mask changes while it trains: after every optimiser step the
    pruned weights are re-zeroed, then `update(t)` may change the mask (`replace`).

    The mask is state: a pruned weight and a kept weight that happens to be zero (one just grown)
    look alike, so the mask cannot be read back from the weights. `state_dict` / `load_state_dict`
    put it in the training loop's resume checkpoint, so a resumed run goes on from the mask it had;
    whatever else an update draws must be a function of t (a generator seeded from t). `attach`
    gives the loop's optimiser, whose state a grown weight forgets (lth.training.optim.Optimizer.forget).
    """

    def __init__(self, model: nn.Module, names: Sequence[str], keep: Mapping[str, torch.Tensor]):
        params = dict(model.named_parameters())
        self.model, self.names = model, list(names)
        self.params = [params[n] for n in self.names]
        self.optimizer = None
        self.replace(keep)

    def replace(self, keep: Mapping[str, torch.Tensor]) -> None:
        """Train under `keep` (name -> bool tensor) from now on; its pruned weights set to 0.0 now."""
        self._keep = [keep[n].to(p.device) for n, p in zip(self.names, self.params)]
        self._zero = MaskEnforcer(self.model, dict(zip(self.names, self._keep)))
        self._zero()

    def attach(self, optimizer) -> None:
        self.optimizer = optimizer

    def update(self, t: int) -> None:
        """Change the mask after the step of iteration t, if the mode does then."""

    def __call__(self, t: int) -> None:
        self._zero()
        self.update(t)

    @property
    def mask(self) -> dict[str, torch.Tensor]:
        """The current mask, name -> bool tensor on the CPU."""
        return {n: k.cpu() for n, k in zip(self.names, self._keep)}

    def state_dict(self) -> dict:
        return {"mask": self.mask}

    def load_state_dict(self, state: Mapping) -> None:
        self.replace(state["mask"])
