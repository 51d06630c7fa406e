"""Mask selections: which weights a round removes, given their scores (lowest first).

Ties are broken by position (the lower flat index goes first, via a stable sort), so masks never
depend on sort-algorithm internals. Counts are `round(rate * remaining)`, the rule of
torch.nn.utils.prune.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from lth.core.errors import LTHError
from lth.pruning.masks import Mask


def check_rate(rate: float, what: str) -> float:
    if not isinstance(rate, (int, float)) or not 0.0 < float(rate) < 1.0:
        raise LTHError(f"{what}: pruning rate must be in (0, 1), got {rate!r}")
    return float(rate)


def _remove_lowest(scores: torch.Tensor, alive: torch.Tensor, n_remove: int) -> torch.Tensor:
    """Flat bool mask: `alive` minus its `n_remove` lowest scores (ties: lower index first)."""
    idx = alive.nonzero().squeeze(1)
    order = torch.sort(scores[idx], stable=True).indices
    new = alive.clone()
    new[idx[order[:n_remove]]] = False
    return new


def remove_per_layer(scores: Mapping[str, torch.Tensor], mask: Mask, rates: Mapping[str, float]) -> Mask:
    """Remove `rates[name]` of each layer's remaining weights, lowest score first."""
    new: Mask = {}
    for name, m in mask.items():
        rate = check_rate(rates[name], f"rate for layer '{name}'")
        alive = m.reshape(-1).cpu()
        new[name] = _remove_lowest(scores[name].reshape(-1), alive, round(rate * int(alive.sum()))).reshape(m.shape)
    return new


def remove_globally(scores: Mapping[str, torch.Tensor], mask: Mask, rate: float) -> Mask:
    """One threshold over all prunable weights (OpenLTH's sparse_global)."""
    rate = check_rate(rate, "global pruning rate")
    names = list(mask)
    alive = torch.cat([mask[n].reshape(-1).cpu() for n in names])
    flat = _remove_lowest(torch.cat([scores[n].reshape(-1) for n in names]), alive, round(rate * int(alive.sum())))
    return _unflatten(flat, mask)


def _unflatten(flat: torch.Tensor, mask: Mask) -> Mask:
    """A flat bool mask over the layers of `mask` (in its order) back into per-layer tensors."""
    names = list(mask)
    return dict(zip(names, (part.reshape(mask[n].shape) for n, part in
                            zip(names, flat.split([mask[n].numel() for n in names])))))


def keep_counts(scores: Mapping[str, torch.Tensor], keep: Mapping[str, int]) -> Mask:
    """A given per-layer distribution: the `keep[name]` highest scores of each layer, pruned or not."""
    new: Mask = {}
    for name, s in scores.items():
        k = int(keep[name])
        if not 0 <= k <= s.numel():
            raise LTHError(f"random pruning: cannot keep {k} of {s.numel()} weights in '{name}'")
        everything = torch.ones(s.numel(), dtype=torch.bool)
        new[name] = _remove_lowest(s.reshape(-1), everything, s.numel() - k).reshape(s.shape)
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
    known = set(kinds.values()) | {"fc", "conv", "output", "bias"} | set(kinds) | {n.rsplit(".", 1)[0] for n in kinds}
    unknown = sorted(set(rates) - known)
    if unknown:
        raise LTHError(f"pruning.rates: unknown layer or kind {unknown}; layers: {sorted(kinds)}")
    return out


def layerwise(scores, mask: Mask, pruning: Mapping[str, Any], kinds: Mapping[str, str]) -> Mask:
    """`pruning.rates` per layer kind or layer name (Frankle & Carbin: fc 20%, output 10%, conv 10-15%)."""
    return remove_per_layer(scores, mask, layer_rates(kinds, pruning["rates"]))


def global_threshold(scores, mask: Mask, pruning: Mapping[str, Any], kinds: Mapping[str, str]) -> Mask:
    """`pruning.global_rate` of all remaining weights, one threshold across layers."""
    return remove_globally(scores, mask, pruning["global_rate"])


def _top_of_each_layer(scores: Mapping[str, torch.Tensor], mask: Mask, n: int) -> dict[str, torch.Tensor]:
    """Flat bool masks: each layer's `n` highest-scoring alive weights (all of them if fewer)."""
    out = {}
    for name, m in mask.items():
        alive = m.reshape(-1).cpu()
        out[name] = _remove_lowest(scores[name].reshape(-1), alive, max(0, int(alive.sum()) - n))
    return out


def keep_globally(scores: Mapping[str, torch.Tensor], mask: Mask, keep: int, min_per_layer: int = 1) -> Mask:
    """The `keep` highest scores across all layers, among the alive weights, with each layer keeping at
    least its `min_per_layer` best (when no layer would fall below that, this is the plain global top-k)."""
    names = list(mask)
    forced = _top_of_each_layer(scores, mask, min_per_layer)
    n_forced = sum(int(f.sum()) for f in forced.values())
    if keep < n_forced:
        raise LTHError(f"keeping {keep} weights leaves fewer than {min_per_layer} in some of the {len(names)} "
                       f"layers: raise the density, or set min_per_layer: 0 to let layers be pruned away")
    alive = torch.cat([mask[n].reshape(-1).cpu() & ~forced[n] for n in names])
    flat = _remove_lowest(torch.cat([scores[n].reshape(-1) for n in names]), alive,
                          int(alive.sum()) - (keep - n_forced))
    return {n: (part | forced[n]).reshape(mask[n].shape) for n, part in
            zip(names, flat.split([mask[n].numel() for n in names]))}


def keep_density(scores: Mapping[str, torch.Tensor], mask: Mask, density: float, distribution: str,
                 min_per_layer: int = 1) -> Mask:
    """A mask keeping `density` of all prunable weights, distributed across layers by `distribution`
    (lth.pruning.distribution); weights already pruned stay pruned."""
    from lth.pruning.distribution import layer_counts

    if distribution == "module":
        return keep_per_module(scores, mask, density, min_per_layer)
    counts = layer_counts(distribution, mask, density, min_per_layer)
    if counts is None:
        return keep_globally(scores, mask, round(density * sum(m.numel() for m in mask.values())), min_per_layer)
    new: Mask = {}
    for name, m in mask.items():
        alive = m.reshape(-1).cpu()
        n_alive = int(alive.sum())
        if counts[name] > n_alive:
            raise LTHError(f"layer '{name}' should keep {counts[name]} weights at density {density:g} "
                           f"({distribution}), but only {n_alive} remain")
        new[name] = _remove_lowest(scores[name].reshape(-1), alive, n_alive - counts[name]).reshape(m.shape)
    return new


def keep_per_module(scores: Mapping[str, torch.Tensor], mask: Mask, density: float, min_per_layer: int = 1) -> Mask:
    """The `module` distribution (lth.pruning.distribution): each module's parameters ranked as one
    vector, its lowest scores removed down to `module_count`; weights already pruned stay pruned."""
    from lth.pruning.distribution import module_count, modules_of

    new: Mask = {}
    for module, names in modules_of(mask).items():
        alive = torch.cat([mask[n].reshape(-1).cpu() for n in names])
        keep = module_count(alive.numel(), density, min_per_layer)
        if keep > int(alive.sum()):
            raise LTHError(f"module '{module}' should keep {keep} parameters at density {density:g} (module), "
                           f"but only {int(alive.sum())} remain")
        flat = _remove_lowest(torch.cat([scores[n].reshape(-1) for n in names]), alive, int(alive.sum()) - keep)
        new.update({n: part.reshape(mask[n].shape) for n, part in
                    zip(names, flat.split([mask[n].numel() for n in names]))})
    return new


def keep_n_of_m(scores: Mapping[str, torch.Tensor], mask: Mask, n: int, m: int) -> Mask:
    """N:M sparsity: in every group of `m` consecutive inputs of a row (a Linear's in_features; a Conv2d's
    in_channels x kh x kw of one output channel, flattened in that order) the `n` highest scores among
    the alive weights are kept, ties broken by position as everywhere (the lower index goes first), so
    an unpruned layer keeps exactly n/m of its weights. A layer whose rows are not a multiple of `m`
    long is an LTHError naming it (the config check refuses it before training)."""
    if not 0 < n < m:
        raise LTHError(f"n_of_m: [{n}, {m}]: N must be at least 1 and below M")
    new: Mask = {}
    for name, alive in mask.items():
        if alive.dim() < 2 or alive[0].numel() % m:
            size = alive[0].numel() if alive.dim() >= 2 else "no"
            raise LTHError(f"n_of_m: [{n}, {m}]: M = {m} does not divide the {size} inputs per row of '{name}' "
                           f"{tuple(alive.shape)}")
        groups = alive.reshape(-1, m).cpu()
        s = scores[name].reshape(-1, m).to(torch.float64).masked_fill(~groups, -torch.inf)
        order = torch.sort(s, dim=1, stable=True).indices  # ascending: the first m - n of each group go
        keep = torch.zeros_like(groups)
        keep.scatter_(1, order[:, m - n:], True)
        new[name] = (keep & groups).reshape(alive.shape)
    return new


def channels(scores, mask: Mask, pruning: Mapping[str, Any], kinds: Mapping[str, str], context=None) -> Mask:
    """`pruning.channel_rate` of each prunable channel space's alive channels removed per round, whole
    channels with their readers' inputs (lth.pruning.channels; the structure from the context's model)."""
    from lth.pruning import channels as structured

    spaces = structured.structure_of(context, mask)
    return structured.remove_channel_rate(scores, mask, check_rate(pruning["channel_rate"], "pruning.channel_rate"),
                                          spaces)


def sap(scores, mask: Mask, pruning: Mapping[str, Any], kinds: Mapping[str, str]) -> Mask:
    """Sparsity-informed Adaptive Pruning (lth.pruning.sap): each round removes as many as the PQ Index
    of the remaining weights' scores says (their magnitudes with score: magnitude, the paper's), over all
    prunable weights (`sap.scope: global`) or per layer (`layer`), lowest score first."""
    from lth.pruning.sap import pq_index, sap_remove

    o = pruning["sap"]
    knobs = {k: o[k] for k in ("p", "q", "eta_r", "gamma", "beta")}

    def count(values: torch.Tensor) -> int:
        return sap_remove(pq_index(values, o["p"], o["q"]), values.numel(), **knobs)

    if o["scope"] == "layer":
        new: Mask = {}
        for name, m in mask.items():
            alive = m.reshape(-1).cpu()
            flat = scores[name].reshape(-1)
            new[name] = _remove_lowest(flat, alive, count(flat[alive])).reshape(m.shape)
        return new
    names = list(mask)
    alive = torch.cat([mask[n].reshape(-1).cpu() for n in names])
    flat_scores = torch.cat([scores[n].reshape(-1) for n in names])
    return _unflatten(_remove_lowest(flat_scores, alive, count(flat_scores[alive])), mask)

