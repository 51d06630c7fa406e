"""Pruning: from trained weights and the current mask to the next, sparser mask.

A method is a score (lth.core.parts.SCORES: one number per prunable weight, the lowest pruned
first; the modules of lth.pruning.scores) composed with a mask selection (lth.core.parts.SELECTIONS:
how many to remove, per layer or globally; lth.pruning.select, lth.pruning.distribution). Masks are
plain dicts of bool tensors (lth.pruning.masks). Scores see the weights and the mask, and a
`ScoreContext` that hands them, on request, what other
methods need: a seeded generator (random), the model with these weights under the mask, and a
batch of training data (what SNIP's |g * w| or GraSP's Hessian-gradient product would ask for).
Every selection ranks only the weights still alive, so a rate is a fraction of the *remaining*
weights, as in iterative magnitude pruning.

May import lth.core, lth.plan and lth.models.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from lth.core.errors import LTHError
from lth.core.parts import SCORES, SELECTIONS
from lth.pruning.masks import Mask


@dataclass(frozen=True)
class ScoreContext:
    """What a score may ask for beyond the weights, each built only when asked for.

    generator(): seeded from the run's key; model(): the model holding the weights, masked by the
    mask being scored (a score must not change it: copy it first); batch(n): n training examples
    (inputs, labels) on the model's device, drawn with the seed; input_shape: one example's shape
    (what a data-free score feeds); options: the pruning method's settings (e.g. `batch`, `rounds`).
    """

    generator: Callable[[], torch.Generator] = lambda: torch.Generator().manual_seed(0)
    model: Callable[[], torch.nn.Module] | None = None
    batch: Callable[[int], tuple[torch.Tensor, torch.Tensor]] | None = None
    input_shape: tuple[int, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)


def compute_scores(name: str, weights: Mapping[str, torch.Tensor], mask: Mask,
                   context: ScoreContext | None = None) -> dict:
    """The registered score `name` of each prunable weight (CPU tensors shaped like the mask)."""
    return SCORES[name].load()(weights, mask, context or ScoreContext())


def prune_to(method: Mapping[str, Any], density: float, weights: Mapping[str, torch.Tensor], mask: Mask,
             context_for: Callable[[Mask], ScoreContext]) -> Mask:
    """One-shot: `mask` pruned to `density` of all prunable weights by `method` (its score, distribution,
    min_per_layer and rounds). Over several rounds the density falls exponentially, to `density` at
    the last, and the score is computed anew under each round's mask (SynFlow's 100 rounds).
    `context_for(mask)` gives the score's Context under a mask. With `n_of_m: [N, M]` the mask is N:M in
    one step (its density is N/M, which the plan makes `density`); `distribution: channels` removes whole
    channels (lth.pruning.channels), the structure read from the context's model."""
    from lth.pruning.masks import density as density_of
    from lth.pruning.select import keep_density

    start = density_of(mask)
    if not 0.0 < density <= start:
        raise LTHError(f"cannot prune to density {density:g}: the mask keeps {start:g} of the weights already")
    if method.get("n_of_m"):  # N:M: one step, every group of M inputs keeps its N best (lth.pruning.select)
        from lth.pruning.select import keep_n_of_m

        n, m = method["n_of_m"]
        return keep_n_of_m(compute_scores(method["score"], weights, mask, context_for(mask)), mask, n, m)
    rounds, spaces = method["rounds"], None
    for r in range(1, rounds + 1):
        target = density if r == rounds else start * (density / start) ** (r / rounds)
        context = context_for(mask)
        scores = compute_scores(method["score"], weights, mask, context)
        if method["distribution"] == "channels":  # whole channels (lth.pruning.channels)
            from lth.pruning import channels

            spaces = spaces or channels.structure_of(context, mask)
            mask = channels.keep_channels(scores, mask, target, spaces)
        else:
            mask = keep_density(scores, mask, target, method["distribution"], method["min_per_layer"])
    return mask


def prune(pruning: Mapping[str, Any], weights: Mapping[str, torch.Tensor], mask: Mask, kinds: Mapping[str, str],
          context: ScoreContext | None = None) -> Mask:
    """The next mask of one pruning round, by the configured score and strategy (`pruning` settings). A
    strategy registered `structured` (channels) also gets the context: it reads the model's structure."""
    part = SELECTIONS[pruning["strategy"]]
    extra = {"context": context} if part.info.get("structured") else {}
    return part.load()(compute_scores(pruning["score"], weights, mask, context), mask, pruning, kinds, **extra)
