"""Masks: which weights are prunable, and exclusions."""

import pytest
from torch import nn

from lth.core.errors import LTHError
from lth.models import build_model
from lth.pruning import masks


def lenet():
    return build_model("lenet_300_100", (1, 28, 28), 10, seed=0)


def test_layer_kinds_of_lenet_mark_the_last_linear_as_output_and_skip_biases():
    kinds = masks.layer_kinds(lenet())
    assert list(kinds.values()) == ["fc", "fc", "output"]
    assert all(name.endswith(".weight") for name in kinds)


def test_conv_layers_are_conv_and_batchnorm_never_prunable():
    model = build_model("resnet20", (3, 32, 32), 10, seed=0)
    kinds = masks.layer_kinds(model)
    assert set(kinds.values()) == {"conv", "output"}
    params = dict(model.named_parameters())
    bn = [n for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)]
    assert bn and not any(n.startswith(b + ".") for n in kinds for b in bn)
    assert all(params[n].dim() in (2, 4) for n in kinds)


def test_excluded_layers_are_never_masked_and_unknown_exclusions_refused():
    model = lenet()
    first = next(iter(masks.layer_kinds(model))).rsplit(".", 1)[0]
    assert f"{first}.weight" not in masks.full_mask(model, exclude=[first])
    with pytest.raises(LTHError, match="exclude"):
        masks.layer_kinds(model, exclude=["not_a_layer"])
