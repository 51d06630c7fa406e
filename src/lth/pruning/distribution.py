"""How many weights each layer keeps when a one-shot method prunes to a target density.

uniform  every layer keeps the same fraction d of its weights
erk      Erdos-Renyi-Kernel (Evci et al. 2020, RigL): layer l keeps a fraction proportional to
         sum(shape) / prod(shape), scaled so that the whole network keeps d; a layer that would
         keep more than all of its weights stays dense and the others are scaled again
global   no per-layer counts: one ranking of the score across layers (lth.pruning.select)
module   each module's weight and bias ranked together (as one vector), keeping n - int((1 - d) n) of
         its n parameters: Greydanus 2020's notebook (`get_mask` over cat(weight, bias), which drops
         int(sparsity x n)); with biases not pruned, a module is its weight alone
channels whole output channels and the inputs that read them, the same fraction of every prunable layer's
         channels (lth.pruning.channels; lth.pruning.prune_to calls it: it needs the model's structure)

Counts are of a layer's weights, pruned or not: d is the density of the network, not a rate of
what remains. `min_per_layer` keeps a layer from being pruned to nothing (layer collapse, the
failure SynFlow was designed against) unless the settings set it to 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from lth.core.errors import LTHError

DISTRIBUTIONS = ("global", "uniform", "erk", "module", "channels")


def erk_densities(shapes: Mapping[str, tuple[int, ...]], density: float) -> dict[str, float]:
    """Per-layer densities whose weighted mean is `density`, proportional to sum(shape)/prod(shape)."""
    sizes = {n: math.prod(s) for n, s in shapes.items()}
    raw = {n: sum(s) / sizes[n] for n, s in shapes.items()}
    dense: set[str] = set()
    while True:
        budget = density * sum(sizes.values()) - sum(sizes[n] for n in dense)
        free = [n for n in shapes if n not in dense]
        scale = budget / sum(raw[n] * sizes[n] for n in free)
        over = [n for n in free if scale * raw[n] > 1.0]
        if not over:
            return {n: 1.0 if n in dense else scale * raw[n] for n in shapes}
        dense.update(over)


def layer_counts(distribution: str, mask: Mapping[str, torch.Tensor], density: float,
                 min_per_layer: int = 1) -> dict[str, int] | None:
    """Weights each layer keeps (None for `global` and `module`, which rank across layers: see
    lth.pruning.select.keep_density)."""
    if distribution in ("global", "module"):
        return None
    if distribution == "uniform":
        fractions = {n: density for n in mask}
    elif distribution == "erk":
        fractions = erk_densities({n: tuple(m.shape) for n, m in mask.items()}, density)
    elif distribution == "channels":
        raise LTHError("distribution channels removes whole channels: its counts come from the model's structure "
                       "(lth.pruning.channels.keep_channels, through lth.pruning.prune_to)")
    else:
        raise LTHError(f"unknown pruning distribution {distribution!r}; known: {', '.join(DISTRIBUTIONS)}")
    return {n: max(min(min_per_layer, m.numel()), round(fractions[n] * m.numel())) for n, m in mask.items()}


def modules_of(mask: Mapping[str, torch.Tensor]) -> dict[str, list[str]]:
    """Module -> its prunable parameters (e.g. "linear1" -> ["linear1.weight", "linear1.bias"]), in order."""
    out: dict[str, list[str]] = {}
    for name in mask:
        out.setdefault(name.rsplit(".", 1)[0], []).append(name)
    return out


def module_count(n: int, density: float, min_per_layer: int = 1) -> int:
    """What a module of n parameters keeps at `density` under `module`: n - int(s n) for the sparsity
    s = 1 - d, at least the floor. (1 - d) n is rounded to 6 places first: 1 - 0.9 is 0.0999..., and the
    notebook's int(0.1 n) must not lose a weight to that."""
    return max(min(min_per_layer, n), n - int(round((1.0 - density) * n, 6)))
