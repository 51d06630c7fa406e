"""Masks and pruning strategies: exact counts, the published ladder, agreement with torch.nn.utils.prune."""

import pytest
import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from lth import masks
from lth.errors import LTHError
from lth.models import build_model
from lth.pruning import global_magnitude, layer_rates, layerwise_magnitude, prune, random_with_counts

FC_RATES = {"fc": 0.2, "output": 0.1, "conv": 0.1}


def lenet():
    return build_model("lenet_300_100", (1, 28, 28), 10, seed=0)


def weights(model):
    return {k: v.detach().clone() for k, v in model.named_parameters()}


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


@pytest.mark.parametrize("rounds, expected_percent", [(3, 51.3), (7, 21.1), (9, 13.5), (15, 3.6), (18, 1.9)])
def test_frankle_carbin_ladder(rounds, expected_percent):
    model = lenet()
    kinds = masks.layer_kinds(model)
    mask = masks.full_mask(model)
    g = torch.Generator().manual_seed(1)
    for _ in range(rounds):
        # fresh "trained" weights each round: counts must not depend on the values
        w = {n: torch.randn(mask[n].shape, generator=g) for n in mask}
        mask = prune("layerwise", w, mask, kinds, FC_RATES, 0.2)
    formula = (265200 * 0.8**rounds + 1000 * 0.9**rounds) / 266200
    assert masks.density(mask) == pytest.approx(formula, abs=1e-5)
    assert round(100 * masks.density(mask), 1) == expected_percent


def test_layerwise_removes_smallest_remaining_and_keeps_old_pruned_pruned():
    w = {"a": torch.tensor([[0.5, -0.1, 0.3, 0.0, 2.0]])}
    mask = {"a": torch.tensor([[True, True, True, False, True]])}
    new = layerwise_magnitude(w, mask, {"a": 0.5})  # 4 alive -> remove 2 smallest alive: -0.1, 0.3
    assert new["a"].tolist() == [[True, False, False, False, True]]


def test_ties_are_broken_by_position_deterministically():
    w = {"a": torch.ones(10)}
    new = layerwise_magnitude(w, {"a": torch.ones(10, dtype=torch.bool)}, {"a": 0.3})
    assert new["a"].tolist() == [False] * 3 + [True] * 7


def test_global_magnitude_equals_torch_global_unstructured_over_rounds():
    model = lenet()
    mask = masks.full_mask(model)
    ref = lenet()
    pairs = [(m, "weight") for m in ref.modules() if isinstance(m, nn.Linear)]
    g = torch.Generator().manual_seed(3)
    for _ in range(4):
        new_w = {n: torch.randn(mask[n].shape, generator=g) for n in mask}
        mask = global_magnitude(new_w, mask, 0.2)
        # torch ranks the same "trained" weights, keeping its own masks between rounds
        scores = {pair: new_w[name] for pair, name in zip(pairs, mask)}
        torch_prune.global_unstructured(pairs, pruning_method=torch_prune.L1Unstructured, amount=0.2,
                                        importance_scores=scores)
        for (module, _), name in zip(pairs, mask):
            assert torch.equal(module.weight_mask.bool(), mask[name]), name
    assert masks.density(mask) == pytest.approx(0.8**4, abs=1e-5)


def test_global_differs_from_layerwise_per_layer():
    model = lenet()
    mask = masks.full_mask(model)
    w = weights(model)
    _, big, _ = mask  # fc2 (30,000 weights) made tiny: one global threshold removes all of it first
    w[big] *= 0.01
    new = global_magnitude(w, mask, 0.2)
    assert masks.layer_density(new)[big] == 0.0
    assert masks.density(new) == pytest.approx(0.8, abs=1e-6)


def test_random_with_counts_keeps_exact_counts_and_depends_on_seed():
    template = {"a": torch.ones(20, 30, dtype=torch.bool), "b": torch.ones(7, dtype=torch.bool)}
    keep = {"a": 123, "b": 2}
    one = random_with_counts(template, keep, torch.Generator().manual_seed(0))
    two = random_with_counts(template, keep, torch.Generator().manual_seed(0))
    other = random_with_counts(template, keep, torch.Generator().manual_seed(1))
    assert masks.counts(one) == keep
    assert all(torch.equal(one[k], two[k]) for k in one)
    assert not torch.equal(one["a"], other["a"])


@pytest.mark.parametrize("rate", [0.0, 1.0, -0.2, 1.5])
def test_rates_outside_open_unit_interval_are_refused(rate):
    with pytest.raises(LTHError, match="must be in \\(0, 1\\)"):
        global_magnitude({"a": torch.ones(4)}, {"a": torch.ones(4, dtype=torch.bool)}, rate)


def test_layer_rates_overrides_and_unknown_keys():
    kinds = masks.layer_kinds(lenet())
    first = next(iter(kinds)).rsplit(".", 1)[0]
    rates = layer_rates(kinds, {**FC_RATES, first: 0.5})
    assert rates[f"{first}.weight"] == 0.5
    with pytest.raises(LTHError, match="nolayer"):
        layer_rates(kinds, {**FC_RATES, "nolayer": 0.5})


def test_unknown_strategy_is_refused():
    m = lenet()
    with pytest.raises(LTHError, match="unknown pruning strategy 'magic'"):
        prune("magic", weights(m), masks.full_mask(m), masks.layer_kinds(m), FC_RATES, 0.2)


def test_excluded_layers_are_never_masked_and_unknown_exclusions_refused():
    model = lenet()
    first = next(iter(masks.layer_kinds(model))).rsplit(".", 1)[0]
    assert f"{first}.weight" not in masks.full_mask(model, exclude=[first])
    with pytest.raises(LTHError, match="exclude"):
        masks.layer_kinds(model, exclude=["not_a_layer"])
