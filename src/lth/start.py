"""The start state of a run: its model at the starting weights, its mask, and its schedule.

The one place that turns a variant's data (lth.variants) into tensors. Every random choice is
seeded from the run's key (seed, variant, target, level), never from which process or batch
trains it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from lth import artifacts, masks
from lth.layout import RunKey
from lth.pruning.random import random_with_counts
from lth.seeding import derive_seed
from lth.training import lr_at


@dataclass
class Start:
    model: torch.nn.Module
    mask: masks.Mask
    iteration: int  # the first iteration trained: 0 for the dense run, k for the others
    lr: Callable[[int], float]


def init_seed(key: RunKey, weights: str) -> int:
    """Seed of the run's model init (only "fresh" runs and a transfer's new head keep it)."""
    if key.target:
        return derive_seed(key.seed, "transfer", key.target, key.level, key.variant)
    return derive_seed(key.seed, key.variant, key.level) if weights == "fresh" else key.seed


def start_state(ctx, key: RunKey) -> Start:
    """Where run `key` starts (`ctx`: the job's lth.jobs.Context)."""
    plan, s = ctx.plan, ctx.plan.settings
    layout, variant = plan.layout, plan.variant(key)
    model = ctx.theta_0(key.seed) if variant.weights == "init" else ctx.new_model(init_seed(key, variant.weights),
                                                                                  key.target)
    head = ctx.head(model)
    if variant.weights == "rewind":
        theta_k = layout.rewind(key.seed, s.rewind_iteration)
        if key.target:
            from lth.transfer import load_source_weights

            load_source_weights(model, artifacts.load_tensors(theta_k), head)
        else:
            artifacts.load_weights(model, theta_k)
    elif variant.weights == "previous":
        artifacts.load_weights(model, layout.final(plan.previous(key)))

    if variant.mask == "full":
        mask = masks.full_mask(model, s.pruning.exclude, s.pruning.biases)
    else:
        path = layout.mask(plan.chain_mask(key))
        mask = artifacts.load_tensors(path)
        if key.target:
            from lth.transfer import target_mask

            mask = target_mask(mask, model, head)
        masks.check_mask(model, mask, str(path))
    if variant.mask == "random":
        g = torch.Generator().manual_seed(derive_seed(key.seed, key.variant, *([key.target] if key.target else []),
                                                      key.level))
        mask = random_with_counts(mask, masks.counts(mask), g)

    training = s.training
    if variant.schedule == "final":
        final_lr = lr_at(training, training.iterations - 1)
        schedule = lambda t: final_lr  # noqa: E731
    else:
        schedule = lambda t: lr_at(training, t)  # noqa: E731
    masks.apply_mask(model, mask)
    return Start(model, mask, 0 if variant.schedule == "full" else s.rewind_iteration, schedule)
