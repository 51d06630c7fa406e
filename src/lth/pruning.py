"""Pruning strategies: from trained weights and the current mask to the next, sparser mask.

Every strategy ranks only the weights still alive, so a rate is a fraction of the *remaining*
weights, as in iterative magnitude pruning. Ties in magnitude are broken by position (the lower
flat index goes first, via a stable sort), so masks never depend on sort-algorithm internals.
Counts are `round(rate * remaining)`, the same rule as torch.nn.utils.prune.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from lth.errors import LTHError
from lth.masks import Mask

STRATEGIES = ("layerwise", "global")


def check_rate(rate: float, what: str) -> float:
    if not isinstance(rate, (int, float)) or not 0.0 < float(rate) < 1.0:
        raise LTHError(f"{what}: pruning rate must be in (0, 1), got {rate!r}")
    return float(rate)


def _prune_smallest(scores: torch.Tensor, alive: torch.Tensor, n_remove: int) -> torch.Tensor:
    """Flat bool mask: `alive` minus its `n_remove` smallest scores (ties: lower index first)."""
    idx = alive.nonzero().squeeze(1)
    order = torch.sort(scores[idx], stable=True).indices
    new = alive.clone()
    new[idx[order[:n_remove]]] = False
    return new


def layerwise_magnitude(weights: Mapping[str, torch.Tensor], mask: Mask, rates: Mapping[str, float]) -> Mask:
    """Remove `rates[name]` of each layer's remaining weights, smallest magnitude first."""
    new: Mask = {}
    for name, m in mask.items():
        rate = check_rate(rates[name], f"rate for layer '{name}'")
        alive = m.reshape(-1)
        n_remove = round(rate * int(alive.sum()))
        scores = weights[name].detach().reshape(-1).abs().float().cpu()
        new[name] = _prune_smallest(scores, alive.cpu(), n_remove).reshape(m.shape)
    return new


def global_magnitude(weights: Mapping[str, torch.Tensor], mask: Mask, rate: float) -> Mask:
    """One magnitude threshold over all prunable weights (OpenLTH's sparse_global)."""
    rate = check_rate(rate, "global pruning rate")
    names = list(mask)
    alive = torch.cat([mask[n].reshape(-1).cpu() for n in names])
    scores = torch.cat([weights[n].detach().reshape(-1).abs().float().cpu() for n in names])
    flat = _prune_smallest(scores, alive, round(rate * int(alive.sum())))
    new, offset = {}, 0
    for n in names:
        size = mask[n].numel()
        new[n] = flat[offset : offset + size].reshape(mask[n].shape)
        offset += size
    return new


def random_with_counts(template: Mask, keep: Mapping[str, int], generator: torch.Generator) -> Mask:
    """Random mask with `keep[name]` weights alive in each layer (the random-pruning control)."""
    new: Mask = {}
    for name, m in template.items():
        k = int(keep[name])
        if not 0 <= k <= m.numel():
            raise LTHError(f"random pruning: cannot keep {k} of {m.numel()} weights in '{name}'")
        flat = torch.zeros(m.numel(), dtype=torch.bool)
        flat[torch.randperm(m.numel(), generator=generator)[:k]] = True
        new[name] = flat.reshape(m.shape)
    return new


def layer_rates(kinds: Mapping[str, str], rates: Mapping[str, float]) -> dict[str, float]:
    """Per-parameter rates from per-kind rates ("fc", "conv", "output") and per-layer overrides.

    A key of `rates` that is neither a kind nor a prunable layer/parameter name is an error.
    """
    out: dict[str, float] = {}
    for name, kind in kinds.items():
        layer = name.rsplit(".", 1)[0]
        for key in (name, layer, kind):
            if key in rates:
                out[name] = check_rate(rates[key], f"pruning.rates.{key}")
                break
        else:
            raise LTHError(f"pruning.rates has no rate for layer '{layer}' (kind '{kind}')")
    known = set(kinds.values()) | {"fc", "conv", "output"} | set(kinds) | {n.rsplit(".", 1)[0] for n in kinds}
    unknown = sorted(set(rates) - known)
    if unknown:
        raise LTHError(f"pruning.rates: unknown layer or kind {unknown}; layers: {sorted(kinds)}")
    return out


def prune(strategy: str, weights: Mapping[str, torch.Tensor], mask: Mask, kinds: Mapping[str, str],
          rates: Mapping[str, float], global_rate: float) -> Mask:
    """Next mask for one IMP round with the configured strategy."""
    if strategy == "layerwise":
        return layerwise_magnitude(weights, mask, layer_rates(kinds, rates))
    if strategy == "global":
        return global_magnitude(weights, mask, global_rate)
    raise LTHError(f"unknown pruning strategy '{strategy}'; known: {', '.join(STRATEGIES)}")
