"""How much the tickets of different seeds share: the Jaccard overlap of their masks per level.

For two random masks of the same density p the expected overlap is about p / (2 - p); the table
gives it beside the measured one, so that "the seeds found the same ticket" can be told apart
from "both kept a lot of weights".
"""

from __future__ import annotations

from itertools import combinations

from lth import artifacts, masks
from lth.layout import RunKey


def jaccard(a: dict, b: dict) -> float:
    inter = sum(int((a[n] & b[n]).sum()) for n in a)
    union = sum(int((a[n] | b[n]).sum()) for n in a)
    return inter / union if union else 1.0


def compute(plan) -> list[dict]:
    s, rows = plan.settings, []
    for level in range(1, s.pruning.levels + 1):
        found = {seed: artifacts.load_tensors(plan.layout.mask(RunKey(seed, level, "ticket"))) for seed in s.seeds}
        for a, b in combinations(s.seeds, 2):
            p = (masks.density(found[a]) + masks.density(found[b])) / 2
            rows.append({"experiment": plan.experiment, "level": level, "seed_a": a, "seed_b": b,
                         "weights_remaining": p, "jaccard": jaccard(found[a], found[b]),
                         "jaccard_if_random": p / (2 - p)})
    return rows

