"""Strong lottery tickets by subset sum (lth.analyses.subset_sum_theory) and the edge-popup
initialisers (lth.models.init)."""

import itertools
import math

import pytest
import torch
from torch import nn

from lth.analyses.subset_sum_theory import (
    approximation_curve,
    best_subsets,
    make_target,
    prune_random,
    relu_net,
    unit_ball,
)
from lth.core.errors import LTHError
from lth.models.init import kaiming_normal_weights, signed_kaiming_constant


def test_the_approximation_error_falls_with_n():
    target = make_target((4, 8, 2), seed=0)
    rows = approximation_curve(target, ns=(2, 4, 6, 8, 10, 12), seed=0)
    out = [r["max_output_error"] for r in rows]
    weight = [r["mean_weight_error"] for r in rows]
    assert all(a > b for a, b in itertools.pairwise(out)), out
    assert all(a > b for a, b in itertools.pairwise(weight)), weight
    assert out[-1] < 0.02 and out[-1] < out[0] / 20
    # the random network grows linearly in n: 2 n d_in (d_in + d_out) per target layer
    assert [r["random_params"] for r in rows] == [2 * n * (4 * (4 + 8) + 8 * (8 + 2)) for n in (2, 4, 6, 8, 10, 12)]
    assert rows[0]["overparameterisation"] == rows[0]["random_params"] / (4 * 8 + 8 * 2)


def test_the_ticket_is_a_real_prune_of_the_random_network():
    target = make_target((3, 5, 2), seed=1)
    net = prune_random(target, 6, seed=1)
    assert len(net["random"]) == len(net["masks"]) == len(net["pruned"]) == 4
    for r, m, p in zip(net["random"], net["masks"], net["pruned"]):
        assert m.dtype == torch.bool and m.shape == r.shape
        assert torch.equal(p, r * m) and torch.all(p[~m] == 0.0) and torch.equal(p[m], r[m])
        assert (r != 0).all()  # the zeros are the prune's, not the draw's
    for layer in (0, 2):  # each first-layer neuron keeps at most its one edge, from its own input
        assert (net["masks"][layer].sum(dim=1) <= 1).all()
    # the pruned pair computes W+ relu(x) - W- relu(-x) exactly (the ReLU trick)
    x = unit_ball(50, 3, seed=0)
    a, b = net["pruned"][:2]
    pair = torch.relu(x @ a.T) @ b.T
    expected = torch.relu(x) @ net["w_plus"][0].T - torch.relu(-x) @ net["w_minus"][0].T
    assert torch.allclose(pair, expected, atol=1e-12)
    assert (relu_net(net["pruned"], x) - relu_net(target, x)).abs().max() < 1.0


def test_networks_of_growing_n_are_nested():
    small, large = prune_random(make_target(seed=2), 4, seed=3), prune_random(make_target(seed=2), 5, seed=3)
    a4, a5 = small["random"][0], large["random"][0]
    for j in range(4):  # block j: n positive then n negative neurons
        for side in range(2):
            assert torch.equal(a4[8 * j + 4 * side:8 * j + 4 * side + 4], a5[10 * j + 5 * side:10 * j + 5 * side + 4])


def test_subset_sum_solvers_are_exact():
    g = torch.Generator().manual_seed(0)
    values, targets = torch.randn(20, 6, generator=g, dtype=torch.float64), torch.randn(20, generator=g)
    chosen = best_subsets(values, targets)
    for p in range(20):
        best = min(abs(sum(c) - targets[p].item()) for k in range(7)
                   for c in itertools.combinations(values[p].tolist(), k))
        assert abs((values[p] * chosen[p]).sum().item() - targets[p].item()) == pytest.approx(best, abs=1e-12)
    values, targets = torch.rand(30, 14, generator=g, dtype=torch.float64) - 0.5, torch.rand(30, generator=g)
    err = {m: ((values * best_subsets(values, targets, m)).sum(1) - targets).abs() for m in ("enumerate", "meet")}
    assert torch.allclose(err["enumerate"], err["meet"], atol=1e-12, rtol=0)
    with pytest.raises(LTHError, match="n must be"):
        prune_random(make_target(), 0)


def test_signed_kaiming_constant_is_plus_minus_sigma():
    g = torch.Generator().manual_seed(0)
    for layer in (nn.Linear(50, 30), nn.Conv2d(3, 8, 3)):
        bias = layer.bias.detach().clone()
        signed_kaiming_constant(layer, g)
        fan_in = layer.weight[0].numel()
        sigma = math.sqrt(2) / math.sqrt(fan_in)
        w = layer.weight.detach()
        assert torch.allclose(w.abs(), torch.full_like(w, sigma), rtol=0, atol=0)
        assert (w > 0).any() and (w < 0).any()
        assert abs((w > 0).float().mean().item() - 0.5) < 0.1
        assert torch.equal(layer.bias, bias)
    scaled = nn.Linear(50, 30)
    signed_kaiming_constant(scaled, g, density=0.25)
    assert torch.allclose(scaled.weight.abs(), torch.full_like(scaled.weight, math.sqrt(2 / (50 * 0.25))))
    bn = nn.BatchNorm2d(4)
    signed_kaiming_constant(bn, g)
    assert torch.equal(bn.weight, torch.ones(4))  # not a Linear/Conv2d: untouched


def test_kaiming_normal_has_the_relu_fan_in_std():
    g = torch.Generator().manual_seed(0)
    for layer in (nn.Linear(400, 300), nn.Conv2d(16, 64, 3)):
        bias = layer.bias.detach().clone()
        kaiming_normal_weights(layer, g)
        w = layer.weight.detach()
        std = math.sqrt(2 / w[0].numel())
        assert w.std().item() == pytest.approx(std, rel=0.03)
        assert abs(w.mean().item()) < 0.05 * std
        assert torch.equal(layer.bias, bias)
    a, b = nn.Linear(8, 8), nn.Linear(8, 8)
    kaiming_normal_weights(a, torch.Generator().manual_seed(3))
    kaiming_normal_weights(b, torch.Generator().manual_seed(3))
    assert torch.equal(a.weight, b.weight)
