"""The start state of a run: its model at the starting weights, its mask, and its schedule.

The one place that turns a variant's data (lth.plan.variants) into tensors. Every random choice is
seeded from the run's key (seed, variant, target, level), never from which process or batch
trains it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from lth.core.seeding import derive_seed
from lth.jobs.transfer import load_source_weights, target_mask
from lth.models import output_layer_name
from lth.plan.layout import RunKey
from lth.plan.variants import Variant
from lth.pruning import masks
from lth.pruning.scores.random import random_with_counts
from lth.store import artifacts
from lth.training.schedule import lr_at


@dataclass
class Start:
    model: torch.nn.Module
    mask: masks.Mask
    iteration: int  # the first iteration trained: 0 for the dense run, k for the others
    lr: Callable[[int], float]
    data_seed: int  # seeds the run's data order and augmentation
    train: str = "masked"  # its training mode (lth.core.parts.TRAINING_MODES)


def init_seed(key: RunKey, weights: str) -> int:
    """Seed of the run's model init (only "fresh" runs and a transfer's new head keep it)."""
    if key.target:
        return derive_seed(key.seed, "transfer", key.target, key.level, key.variant)
    return derive_seed(key.seed, key.variant, key.level) if weights == "fresh" else key.seed


def data_seed(key: RunKey) -> int:
    """The seed of a run's data order: the seed's, the same for every variant (a target's its own)."""
    return derive_seed(key.seed, "data", *([key.target] if key.target else []))


def start_state(ctx, key: RunKey) -> Start:
    """Where run `key` starts (`ctx`: the job's lth.jobs.context.Context)."""
    plan, s = ctx.plan, ctx.plan.settings
    variant = plan.variant(key)
    model = ctx.theta_0(key.seed) if variant.weights == "init" else ctx.new_model(init_seed(key, variant.weights),
                                                                                  key.target)
    load_start_weights(ctx, key, variant, model)
    mask = start_mask(ctx, key, variant, model)
    masks.apply_mask(model, mask)
    return Start(model, mask, 0 if variant.schedule == "full" else s.rewind_iteration,
                 schedule(s.training, variant.schedule), data_seed(key), variant.train)


def load_start_weights(ctx, key: RunKey, variant: Variant, model: torch.nn.Module) -> None:
    """theta_k (a transfer keeps its new output head) or the chain's previous trained weights; the
    model's own initialisation for "init" and "fresh"."""
    layout = ctx.plan.layout
    if variant.weights == "rewind":
        theta_k = layout.rewind(key.seed, ctx.plan.settings.rewind_iteration)
        if key.target:
            load_source_weights(model, ctx.load(theta_k), output_layer_name(model))
        else:
            artifacts.load_weights(model, theta_k)
    elif variant.weights == "previous":
        artifacts.load_weights(model, layout.final(ctx.plan.previous(key)))


def start_mask(ctx, key: RunKey, variant: Variant, model: torch.nn.Module) -> masks.Mask:
    """Nothing pruned, the chain's mask (a transfer: the source ticket's, on the target's head), or a
    random mask with the chain mask's per-layer counts."""
    if variant.mask == "full":
        return ctx.full_mask(model)
    path = ctx.plan.layout.mask(ctx.plan.chain_mask(key))
    mask = ctx.load(path)
    if key.target:
        mask = target_mask(mask, model, output_layer_name(model))
    masks.check_mask(model, mask, str(path))
    if variant.mask == "random":
        mask = {n: m.to(ctx.device) for n, m in random_mask(mask, key).items()}
    return mask


def random_mask(template: masks.Mask, key: RunKey) -> masks.Mask:
    """A random mask with `template`'s per-layer counts, drawn on the CPU from a seed of the run's key
    (the same on any device)."""
    g = torch.Generator().manual_seed(derive_seed(key.seed, key.variant, *([key.target] if key.target else []),
                                                  key.level))
    return random_with_counts(template, masks.counts(template), g)


def schedule(training, which: str) -> Callable[[int], float]:
    """The learning rate of iteration t: the schedule's ("full", "rewound": it is the iteration that
    starts later), or constant at its final rate ("final": fine-tuning)."""
    if which == "final":
        final_lr = lr_at(training, training.iterations - 1)
        return lambda t: final_lr
    return lambda t: lr_at(training, t)
