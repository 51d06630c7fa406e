"""Config checks that need the built model (torch): excluded and named layers exist, layer-wise
rates cover every layer, a score that must see the model (lth.core.parts.SCORES
`checked_on_model`: SynFlow) is computed on it once, and structured methods (N:M, channels) fit it.
lth.plan.config calls `check_layers` when the workflow is parsed, only for settings that need it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lth.core.errors import LTHError
from lth.models import build_model
from lth.plan.facts import input_shape, num_classes
from lth.pruning import ScoreContext, compute_scores
from lth.pruning.masks import full_mask, layer_kinds
from lth.pruning.select import layer_rates


def check_layers(s, where: str, layerwise: bool, on_model: Sequence[Mapping[str, Any]],
                 structured: Mapping[str, Mapping[str, Any]] | None = None) -> None:
    """LTHError "<where>: ..." for a layer name the model lacks, a layer without a rate (`layerwise`),
    a model the scores of `on_model` refuse (no positive path from input to output), or a structured
    method (`structured`: config key -> method) the model cannot take: an N:M method whose M does not
    divide a layer's rows, channels on a model with none to remove or at a density below one channel
    per layer."""
    shape = input_shape(s.dataset)
    net = build_model(s.model.name, shape, num_classes(s.dataset), seed=0, **s.model.options)
    try:
        kinds = layer_kinds(net, s.pruning.exclude, s.pruning.biases)
        if layerwise:
            layer_rates(kinds, s.pruning.rates)
        if on_model:
            mask = full_mask(net, s.pruning.exclude, s.pruning.biases)
            for method in on_model:
                compute_scores(method["score"], net.state_dict(), mask,
                               ScoreContext(model=lambda: net, input_shape=shape))
    except LTHError as exc:
        raise LTHError(f"{where}: {exc}") from None
    for key, method in (structured or {}).items():
        check_structured(s, net, shape, method, f"{where}: {key}")


def check_structured(s, net, shape: tuple[int, ...], method: Mapping[str, Any], at: str) -> None:
    """An N:M method's M divides the rows of every prunable layer; a channels method finds channels to
    remove and, one-shot, a density it can reach (one channel per prunable layer keeps at most it)."""
    from lth.pruning import channels

    mask = full_mask(net, s.pruning.exclude, s.pruning.biases)
    if method.get("n_of_m"):
        n, m = method["n_of_m"]
        for name, w in mask.items():
            if w.dim() < 2 or w[0].numel() % m:
                rows = f"{w[0].numel()} inputs per row" if w.dim() >= 2 else "no rows"
                raise LTHError(f"{at}.n_of_m: [{n}, {m}]: M = {m} does not divide layer '{name.rsplit('.', 1)[0]}' "
                               f"({rows}, shape {tuple(w.shape)}): exclude it (pruning.exclude) or choose another M")
        return
    key = "distribution" if method.get("distribution") == "channels" else "strategy"
    try:
        spaces = channels.structure(net, shape, list(mask), label=repr(s.model.name))
    except LTHError as exc:
        raise LTHError(f"{at}.{key}: {exc}") from None
    if key == "distribution":
        lowest = channels.lowest_density(mask, spaces)
        below = [d for d in s.oneshot.densities if d < lowest]
        if below:
            raise LTHError(f"{at}.distribution: channels: oneshot.densities {below} are below {lowest:.4f}, what "
                           f"keeping one channel of every prunable layer of {s.model.name!r} keeps")
