"""Pruning: scores composed with mask selections; exact counts, the published ladder, agreement with
torch.nn.utils.prune, and the random score against the randperm reference."""

import pytest
import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from lth.core.errors import LTHError
from lth.models import build_model
from lth.plan.settings import resolve
from lth.pruning import ScoreContext, compute_scores, masks, prune
from lth.pruning.scores.random import random_with_counts
from lth.pruning.select import layer_rates, remove_globally, remove_per_layer

FC_RATES = {"fc": 0.2, "output": 0.1, "conv": 0.1}


def pruning(**changes):
    """The resolved `pruning` settings, FC_RATES layer-wise by default."""
    return resolve({"pruning": {"rates": FC_RATES, **changes}}).pruning


def lenet():
    return build_model("lenet_300_100", (1, 28, 28), 10, seed=0)


def weights(model):
    return {k: v.detach().clone() for k, v in model.named_parameters()}


@pytest.mark.parametrize("rounds, expected_percent", [(3, 51.3), (7, 21.1), (9, 13.5), (15, 3.6), (18, 1.9)])
def test_frankle_carbin_ladder(rounds, expected_percent):
    model = lenet()
    kinds = masks.layer_kinds(model)
    mask = masks.full_mask(model)
    g = torch.Generator().manual_seed(1)
    for _ in range(rounds):
        # fresh "trained" weights each round: counts must not depend on the values
        w = {n: torch.randn(mask[n].shape, generator=g) for n in mask}
        mask = prune(pruning(), w, mask, kinds)
    formula = (265200 * 0.8**rounds + 1000 * 0.9**rounds) / 266200
    assert masks.density(mask) == pytest.approx(formula, abs=1e-5)
    assert round(100 * masks.density(mask), 1) == expected_percent


def test_layerwise_removes_smallest_remaining_and_keeps_old_pruned_pruned():
    w = {"a": torch.tensor([[0.5, -0.1, 0.3, 0.0, 2.0]])}
    mask = {"a": torch.tensor([[True, True, True, False, True]])}
    new = remove_per_layer(compute_scores("magnitude", w, mask), mask, {"a": 0.5})  # 4 alive -> remove 2 smallest alive: -0.1, 0.3
    assert new["a"].tolist() == [[True, False, False, False, True]]


def test_ties_are_broken_by_position_deterministically():
    w = {"a": torch.ones(10)}
    alive = {"a": torch.ones(10, dtype=torch.bool)}
    new = remove_per_layer(compute_scores("magnitude", w, alive), alive, {"a": 0.3})
    assert new["a"].tolist() == [False] * 3 + [True] * 7


def test_global_magnitude_equals_torch_global_unstructured_over_rounds():
    model = lenet()
    mask = masks.full_mask(model)
    ref = lenet()
    pairs = [(m, "weight") for m in ref.modules() if isinstance(m, nn.Linear)]
    g = torch.Generator().manual_seed(3)
    for _ in range(4):
        new_w = {n: torch.randn(mask[n].shape, generator=g) for n in mask}
        mask = prune(pruning(strategy="global", global_rate=0.2), new_w, mask, masks.layer_kinds(model))
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
    new = remove_globally(compute_scores("magnitude", w, mask), mask, 0.2)
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
        remove_globally({"a": torch.ones(4)}, {"a": torch.ones(4, dtype=torch.bool)}, rate)


def test_layer_rates_overrides_and_unknown_keys():
    kinds = masks.layer_kinds(lenet())
    first = next(iter(kinds)).rsplit(".", 1)[0]
    rates = layer_rates(kinds, {**FC_RATES, first: 0.5})
    assert rates[f"{first}.weight"] == 0.5
    with pytest.raises(LTHError, match="nolayer"):
        layer_rates(kinds, {**FC_RATES, "nolayer": 0.5})


def test_unknown_strategy_or_score_is_refused_naming_the_key():
    with pytest.raises(LTHError, match="pruning.strategy: 'magic' is not one of"):
        pruning(strategy="magic")
    with pytest.raises(LTHError, match="pruning.score: 'snap' is not one of"):
        pruning(score="snap")
    m = lenet()
    with pytest.raises(LTHError, match="unknown pruning strategy 'magic'"):
        prune({"strategy": "magic", "score": "magnitude"}, weights(m), masks.full_mask(m), masks.layer_kinds(m))


def reference_random_with_counts(template, keep, generator):
    """The random-pruning control as written first (before scores): randperm, keep the first k."""
    out = {}
    for name, m in template.items():
        flat = torch.zeros(m.numel(), dtype=torch.bool)
        flat[torch.randperm(m.numel(), generator=generator)[: keep[name]]] = True
        out[name] = flat.reshape(m.shape)
    return out


def test_random_with_counts_is_the_randperm_reference_exactly():
    template = masks.full_mask(lenet())
    keep = {name: k for name, k in zip(template, (12345, 678, 9))}
    ours = random_with_counts(template, keep, torch.Generator().manual_seed(7))
    ref = reference_random_with_counts(template, keep, torch.Generator().manual_seed(7))
    assert all(torch.equal(ours[n], ref[n]) for n in template)


def test_random_score_prunes_remaining_weights_at_the_configured_rates_regardless_of_magnitude():
    model = lenet()
    kinds, mask = masks.layer_kinds(model), masks.full_mask(model)
    w = weights(model)
    by_magnitude = prune(pruning(), w, mask, kinds)
    runs = [prune(pruning(score="random"), w, mask, kinds, ScoreContext(generator=lambda s=s: torch.Generator().manual_seed(s)))
            for s in (0, 0, 1)]
    assert all(torch.equal(runs[0][n], runs[1][n]) for n in mask)  # seeded
    assert not torch.equal(runs[0]["fc1.weight"], runs[2]["fc1.weight"])
    assert masks.counts(runs[0]) == masks.counts(by_magnitude)  # the same counts as magnitude pruning
    assert not torch.equal(runs[0]["fc1.weight"], by_magnitude["fc1.weight"])
    # a second round removes only weights still alive
    again = prune(pruning(score="random"), w, runs[0], kinds, ScoreContext(generator=lambda: torch.Generator().manual_seed(5)))
    assert all(not (again[n] & ~runs[0][n]).any() for n in mask)
    # the kept large weights are no more likely than chance: about 80% of the 1000 largest survive
    top = w["fc1.weight"].abs().flatten().topk(1000).indices
    assert 0.72 < runs[0]["fc1.weight"].flatten()[top].float().mean() < 0.88


