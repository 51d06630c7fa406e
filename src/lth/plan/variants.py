"""Variants as data: where a run's weights and mask come from, its schedule, its chain. Free of torch.

Every variant of level L >= 1 trains T-k iterations from iteration k (the retraining stage), so the
baselines have the ticket's budget. `lth.jobs.start` turns these fields into a run's start state; no
other code branches on a variant's name. A new variant is one entry in a table below.

weights  "init"      theta_0 (the dense run)
         "rewind"    theta_k of the dense run (a transfer keeps a new output head)
         "previous"  the trained weights of the chain's previous level
         "fresh"     a new initialisation, seeded from (seed, variant, [target,] level)
mask     "chain"     the chain's level-L mask (a transfer: the source ticket's)
         "random"    random, with the chain mask's per-layer counts, seeded like "fresh"
         "full"      nothing pruned
schedule "full"      the whole learning-rate schedule, from iteration 0 (the dense run)
         "rewound"   the learning-rate schedule from iteration k
         "final"     constant at the schedule's final learning rate (fine-tuning)
train    "masked"    under a fixed mask, pruned weights kept at zero
         "iht"       iterative hard thresholding: the mask is chosen anew after every step (lth.training.modes.iht)

The one-shot sweep (lth.plan.oneshot) builds its variants from its methods with the same fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DENSE = "dense"


@dataclass(frozen=True)
class Variant:
    name: str
    weights: str
    mask: str
    schedule: str = "rewound"
    chain: str = ""  # source variants: the mask chain whose level jobs train it
    train: str = "masked"
    about: str = field(default="", compare=False)  # one line for the configuration reference

    @property
    def heads_chain(self) -> bool:
        """Its trained weights are what the chain's next level prunes."""
        return self.name == self.chain


def _table(*variants: Variant) -> dict[str, Variant]:
    return {v.name: v for v in variants}


# Level 0: the dense network, trained from its seeded init for the whole budget T.
DENSE_RUN = Variant(DENSE, weights="init", mask="full", schedule="full")

# The source dataset's variants, in table order. Each chain keeps its own masks across levels;
# reinit and random_prune branch off the ticket chain at each level.
SOURCE = _table(
    Variant("ticket", weights="rewind", mask="chain", chain="ticket",
            about="the lottery ticket: theta_k (the rewind point) under the level's IMP mask"),
    Variant("reinit", weights="fresh", mask="chain", chain="ticket",
            about="the ticket's mask on a fresh random init (Frankle & Carbin 2019's control)"),
    Variant("random_prune", weights="rewind", mask="random", chain="ticket",
            about="a random mask of the ticket's per-layer densities on theta_k (the other control)"),
    Variant("lr_rewind", weights="previous", mask="chain", chain="lr_rewind",
            about="learning-rate rewinding: the previous level's trained weights, pruned, the schedule replayed "
                  "from k (Renda et al. 2020)"),
    Variant("finetune", weights="previous", mask="chain", schedule="final", chain="finetune",
            about="fine-tuning: the previous level's trained weights, pruned, at the final learning rate for T - k"),
)

# Transfer (stage 5): the source's level-L ticket on a target dataset; `dense` runs at level 0.
TRANSFER = _table(
    Variant("ticket_transfer", weights="rewind", mask="chain",
            about="the source's level-L ticket (mask and theta_k) trained on the target dataset"),
    Variant("mask_transfer", weights="fresh", mask="chain",
            about="the source ticket's mask on a fresh init, on the target dataset"),
    Variant("random_prune", weights="rewind", mask="random",
            about="a random mask of the ticket's per-layer densities on theta_k, on the target dataset"),
    Variant(DENSE, weights="rewind", mask="full", about="the whole network from theta_k, on the target dataset"),
)


def chains(variants) -> dict[str, list[str]]:
    """Chain -> the configured variants its level jobs train, in table order. A chain always
    trains its head (the ticket chain trains `ticket` when only its baselines are asked for)."""
    out: dict[str, list[str]] = {}
    for v in SOURCE.values():
        if v.name in variants or (v.heads_chain and any(SOURCE[x].chain == v.chain for x in variants)):
            out.setdefault(v.chain, []).append(v.name)
    return out
