"""Config checks that need the built model (torch): excluded and named layers exist, layer-wise
rates cover every layer, and a score that must see the model (lth.core.parts.SCORES
`checked_on_model`: SynFlow) is computed on it once. lth.plan.config calls `check_layers` when
the workflow is parsed, only for settings that need it.
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


def check_layers(s, where: str, layerwise: bool, on_model: Sequence[Mapping[str, Any]]) -> None:
    """LTHError "<where>: ..." for a layer name the model lacks, a layer without a rate (`layerwise`),
    or a model the scores of `on_model` refuse (no positive path from input to output)."""
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
