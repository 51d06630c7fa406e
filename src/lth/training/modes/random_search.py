"""Random search for a sparse configuration (a neutral baseline of sparsity search, as the seed papers
describe it: random per-layer densities under a budget, each trained briefly, the best kept).

At the run's density d, with N prunable weights, the network keeps K = round(d N) of them. The search
draws `random_search.budget` per-layer count vectors summing to exactly K (`sample_counts`: each layer's
share proportional to u_l n_l, u_l uniform in (0, 1), capped at the layer's size n_l, at least
`min_per_layer`, rounded by largest remainder), each with a random mask of those counts
(lth.pruning.scores.random.random_with_counts). Each candidate trains `random_search.iterations` steps
from the run's start weights (theta_k, its learning-rate schedule and data order); the one with the best
validation accuracy after them (ties: the first drawn) is the run's mask, trained from theta_k for the
full budget like any other run. The candidates and their accuracies are written beside the run
(random_search.json). All draws come from a CPU generator seeded by the run's data seed and density.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

import torch

from lth.training.modes import Setup

FILE = "random_search.json"


def sample_counts(sizes: Mapping[str, int], keep: int, generator: torch.Generator, min_per_layer: int = 1) -> dict:
    """Per-layer counts summing to exactly `keep`, each in [min(min_per_layer, n_l), n_l]: shares of the
    rest proportional to u_l (n_l - floor_l), u_l ~ U(0, 1), water-filled under the caps."""
    from lth.core.errors import LTHError

    names = list(sizes)
    floor = {n: min(min_per_layer, sizes[n]) for n in names}
    rest = keep - sum(floor.values())
    room = {n: sizes[n] - floor[n] for n in names}
    if rest < 0 or rest > sum(room.values()):
        raise LTHError(f"random_search: cannot keep {keep} weights in layers of sizes {list(sizes.values())} with "
                       f"min_per_layer = {min_per_layer}")
    u = torch.rand(len(names), generator=generator, dtype=torch.float64)
    share = {n: float(u[i]) * room[n] for i, n in enumerate(names)}
    alloc = {n: 0.0 for n in names}
    left, open_ = float(rest), [n for n in names if room[n] > 0]
    while left > 1e-9 and open_:
        total = sum(share[n] for n in open_) or float(len(open_))
        give = {n: left * share[n] / total for n in open_}
        full = [n for n in open_ if alloc[n] + give[n] >= room[n]]
        if not full:
            for n in open_:
                alloc[n] += give[n]
            break
        for n in full:
            left -= room[n] - alloc[n]
            alloc[n] = room[n]
        open_ = [n for n in open_ if n not in full]
    counts = {n: int(alloc[n]) for n in names}
    short = rest - sum(counts.values())
    order = sorted((n for n in names if counts[n] < room[n]), key=lambda n: (-(alloc[n] - counts[n]), names.index(n)))
    for n in order[:short]:
        counts[n] += 1
    return {n: floor[n] + counts[n] for n in names}


def setup(start, key, plan, names, splits) -> Setup:
    from lth.core.files import write_json
    from lth.core.seeding import derive_seed
    from lth.pruning.scores.random import random_with_counts
    from lth.training.loop import Segment, train

    m = plan.method(key)
    o = m["random_search"]
    template = {n: start.mask[n] for n in names}
    sizes = {n: t.numel() for n, t in template.items()}
    keep = round(plan.target_density(key) * sum(sizes.values()))
    g = torch.Generator().manual_seed(derive_seed(start.data_seed, "random_search", key.level))
    training = plan.settings.training
    stop = min(start.iteration + o["iterations"], training.iterations)
    found = []
    for i in range(o["budget"]):
        counts = sample_counts(sizes, keep, g, m["min_per_layer"])
        mask = random_with_counts(template, counts, g)
        model = copy.deepcopy(start.model)
        trained = train(model, mask, splits, training, Segment(start=start.iteration, stop=stop, lr=start.lr,
                                                              data_seed=start.data_seed, label=f"{key} candidate {i}"))
        accuracy = trained["curves"][-1]["val_accuracy"]  # the loop evaluates at its last step
        found.append({"candidate": i, "counts": counts, "val_accuracy": accuracy, "mask": mask})
    best = max(found, key=lambda c: (c["val_accuracy"], -c["candidate"]))
    path = plan.layout.metrics(key).parent / FILE
    write_json(path, {"keep": keep, "iterations": stop - start.iteration, "best": best["candidate"],
                      "candidates": [{k: c[k] for k in ("candidate", "counts", "val_accuracy")} for c in found]})
    device = next(start.model.parameters()).device
    mask = {n: t.to(device) for n, t in best["mask"].items()}
    return Setup(start.model, mask, None, lambda: (start.model, mask))
