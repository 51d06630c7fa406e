"""Random: every weight equally likely to go, drawn from the context's seeded generator.

The score of a layer is the rank of each weight in one random permutation (`torch.randperm`), so
keeping the k highest scores keeps exactly the first k weights of that permutation. Ranks are
divided by the layer's size, so that one threshold across layers (a global selection) keeps the
same fraction of every layer, as random pruning should.
"""

from __future__ import annotations

import torch

from lth.pruning import ScoreContext
from lth.pruning.select import keep_counts


def score(weights, mask, context) -> dict:
    g = context.generator()
    out = {}
    for name, m in mask.items():
        n = m.numel()
        ranks = torch.empty(n, dtype=torch.float64)
        ranks[torch.randperm(n, generator=g)] = torch.arange(n, 0, -1, dtype=torch.float64) / n
        out[name] = ranks.reshape(m.shape)
    return out


def random_with_counts(template, keep, generator: torch.Generator) -> dict:
    """Random mask with `keep[name]` weights alive in each layer (the random-pruning control)."""
    return keep_counts(score(None, template, ScoreContext(generator=lambda: generator)), keep)
