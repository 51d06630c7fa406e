"""The pruning step of a level job: a chain's next mask from the weights the plan says it scores.

IMP prunes its previous level's trained weights once more by its rates; a one-shot method prunes the
weights it scores to its density (lth.pruning.prune / prune_to). A score may ask for the model under
a mask, a batch of training data or a seeded generator (lth.pruning.ScoreContext), or for what its
observer accumulated while the dense run trained (BINGO: `observe`).
"""

from __future__ import annotations

import torch

from lth.core.parts import SCORES
from lth.core.registry import load_target
from lth.core.seeding import derive_seed
from lth.core.lockfile import exclusive
from lth.jobs.replay import replay_dense
from lth.plan.facts import input_shape
from lth.plan.layout import RunKey
from lth.pruning import ScoreContext, masks, prune, prune_to
from lth.store import artifacts


def prune_level(ctx, seed: int, level: int, chain: str) -> masks.Mask:
    """Level `level`'s mask of `chain` for `seed`, by the plan's pruning rule; written beside its head run."""
    plan, head = ctx.plan, RunKey(seed, level, chain)
    weights_path, mask_path = plan.prune_inputs(head)
    weights = ctx.load(weights_path, "cpu")  # scores and selections rank on the CPU; the model gets its device's
    old = ctx.load(mask_path, "cpu")
    model = ctx.new_model(seed)
    masks.check_mask(model, old, str(mask_path))
    options = plan.method(head)
    observer = SCORES[options["score"]].info.get("observer")
    if observer:  # a score accumulated during training (BINGO)
        options = {**options, "significance": observe(ctx, head, observer, options)}
    context_for = score_contexts(ctx, head, model, weights_path, options)
    density = plan.target_density(head)
    if density is None:  # a round of IMP: its rates of what remains
        new = prune(options, weights, old, ctx.kinds(model), context_for(old))
    else:  # a one-shot method: to its density
        new = prune_to(options, density, weights, old, context_for)
    artifacts.save_tensors(plan.layout.mask(head), new)
    return new


def score_contexts(ctx, head: RunKey, model, weights_path, options):
    """mask -> the ScoreContext a score gets under that mask: a generator seeded by the head's key,
    `model` with the scored weights under the mask, a batch of training data drawn with the seed."""
    generator = lambda: torch.Generator().manual_seed(derive_seed(head.seed, "prune", head.variant,  # noqa: E731
                                                                  head.level))
    shape = input_shape(ctx.plan.settings.dataset)

    def batch(n: int):
        x, y = ctx.splits().x_train, ctx.splits().y_train
        idx = torch.randperm(len(y), generator=generator())[:n].to(x.device)
        return x[idx], y[idx]

    def context_for(mask: masks.Mask) -> ScoreContext:
        def masked_model():
            artifacts.load_weights(model, weights_path)
            masks.apply_mask(model, mask)
            return model

        return ScoreContext(generator=generator, model=masked_model, batch=batch, input_shape=shape, options=options)

    return context_for


def observe(ctx, head: RunKey, observer: str, options) -> dict:
    """Scores accumulated during training (BINGO): the dense run replayed from theta_0 over the same
    batches with the score's observer watching (it leaves the trajectory bitwise as it was), once per
    seed and method; the densities' jobs share the file, and a lock keeps it computed once."""
    path = ctx.plan.observed(head)
    with exclusive(ctx.plan.layout.lock(f"observe-{head.seed}-{path.stem}"), f"observe {head}"):
        if not path.exists():
            def watch(model, mask):
                init = {k: v.detach().clone() for k, v in model.state_dict().items()}
                return load_target(observer)(model, mask, seed=derive_seed(head.seed, "observe"), init=init,
                                             **options[options["score"]])

            _, found = replay_dense(ctx, head.seed, ctx.plan.settings.training.iterations, watch, f"observe {head}")
            artifacts.save_tensors(path, found.scores())
    return ctx.load(path, "cpu")
