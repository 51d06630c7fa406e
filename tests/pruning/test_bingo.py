"""BINGO's significance: a hand-computed reference, an untouched trajectory, determinism, resume, pruning."""

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lth.core.errors import LTHError
from lth.models import build_model
from lth.pruning import ScoreContext, masks
from lth.pruning.scores.bingo import MISSING, Significance, distinct, score
from lth.pruning.select import keep_counts, remove_per_layer
from lth.training.loop import Segment, train
from lth.training.schedule import lr_at


def tiny_net(seed=0):
    """Linear(4, 3), ReLU, Linear(3, 2) in float64, weights from a fixed generator."""
    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)).double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))
    return model


def by_hand(w, x):
    """The tiny net's forward, written out."""
    h = torch.clamp(x @ w["0.weight"].T + w["0.bias"], min=0)
    return h @ w["2.weight"].T + w["2.bias"]


@pytest.mark.parametrize("reset", ["init", "zero"])
@pytest.mark.parametrize("measure", ["loss", "accuracy"])
@pytest.mark.parametrize("average", ["halving", "mean"])
def test_scores_match_a_hand_computed_reference(reset, measure, average):
    model = tiny_net()
    mask = masks.full_mask(model)
    mask["0.weight"][1, 2] = mask["0.weight"][0, 0] = False  # two pruned weights: never sampled, scored -inf
    masks.apply_mask(model, mask)
    init = {n: p.detach().clone() for n, p in model.named_parameters()}
    sig = Significance(model, mask, seed=3, fraction=0.25, subsets=2, every=2, reset=reset,
                       init=init if reset == "init" else None, measure=measure, average=average)
    g = torch.Generator().manual_seed(1)
    value = {n: torch.full((m.numel(),), 0.5 if average == "halving" else 0.0, dtype=torch.float64)
             for n, m in mask.items()}
    count = {n: torch.zeros(m.numel(), dtype=torch.float64) for n, m in mask.items()}

    def metric(out, y):
        return F.cross_entropy(out, y).item() if measure == "loss" else (out.argmax(1) == y).double().mean().item()

    for t in range(9):
        x = torch.randn(16, 4, generator=g, dtype=torch.float64)
        y = torch.randint(2, (16,), generator=g)
        sig(t, x, y)
        if t >= 1 and t % 2 == 0:
            w = {n: p.detach().clone() for n, p in model.named_parameters()}
            base = metric(by_hand(w, x), y)
            tests = sig.sample(t)
            assert [n for n, _ in tests] == ["0.weight", "0.weight", "2.weight", "2.weight"]
            for name, idx in tests:
                changed = w[name].reshape(-1).clone()
                for i in idx.tolist():
                    changed[i] = init[name].reshape(-1)[i] if reset == "init" else 0.0
                r = abs(metric(by_hand({**w, name: changed.reshape(w[name].shape)}, x), y) - base)
                r /= base if base > 0 else 1.0
                for i in idx.tolist():
                    value[name][i] = (value[name][i] + r) / 2 if average == "halving" else value[name][i] + r
                    count[name][i] += 1
        with torch.no_grad():  # a stand-in for a training step
            for n, p in model.named_parameters():
                p.add_(0.3 * torch.randn(p.shape, generator=g, dtype=torch.float64))
                if n in mask:
                    p.mul_(mask[n])
    got = sig.scores()
    assert sig.observed == 4
    for name, m in mask.items():
        want = value[name] if average == "halving" else torch.where(
            count[name] > 0, value[name] / count[name].clamp(min=1), torch.tensor(0.5, dtype=torch.float64))
        want = want.reshape(m.shape).masked_fill(~m, -torch.inf)
        assert got[name].dtype == torch.float64 and got[name].device.type == "cpu"
        torch.testing.assert_close(got[name], want, rtol=1e-12, atol=1e-15)
    assert (count["2.weight"] > 0).any() and sig.coverage()["2.weight"] > 0


def test_subsets_are_disjoint_alive_sized_and_seeded():
    model = tiny_net()
    mask = masks.full_mask(model)
    mask["0.weight"][0] = False  # 4 of 12 pruned
    sig = Significance(model, mask, seed=0, fraction=0.25, subsets=3, reset="zero")
    alive = set(mask["0.weight"].reshape(-1).nonzero().squeeze(1).tolist())
    tests = sig.sample(5)
    first = [idx for n, idx in tests if n == "0.weight"]
    assert [len(i) for i in first] == [2, 2, 2]  # k = floor(0.25 * 8) = 2, three subsets fit
    picked = torch.cat(first).tolist()
    assert len(set(picked)) == 6 and set(picked) <= alive
    assert [len(i) for n, i in tests if n == "2.weight"] == [1, 1, 1]  # k = max(1, floor(0.25 * 6))
    again = Significance(model, mask, seed=0, fraction=0.25, subsets=3, reset="zero").sample(5)
    assert all(a[0] == b[0] and torch.equal(a[1], b[1]) for a, b in zip(tests, again))
    assert any(not torch.equal(a[1], b[1]) for a, b in zip(tests, sig.sample(6)))


def test_distinct_draws_are_distinct_and_uniform():
    counts = torch.zeros(50)
    for s in range(2000):
        d = distinct(50, 5, torch.Generator().manual_seed(s))  # 4 * 5 <= 50: the draw-until-distinct path
        assert len(set(d.tolist())) == 5
        counts[d] += 1
    assert counts.min() > 140 and counts.max() < 260  # 200 expected for each value
    assert sorted(distinct(10, 10, torch.Generator().manual_seed(0)).tolist()) == list(range(10))


def test_a_weight_whose_removal_hurts_most_is_the_most_significant():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 4, generator=g, dtype=torch.float64)
    y = (x[:, 0] > 0).long()  # only input 0 carries the label
    with torch.random.fork_rng(devices=[]):
        model = nn.Linear(4, 2, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[-2.0, 0.3, -0.2, 0.1], [0.5, 0.2, 0.1, -0.3]], dtype=torch.float64))
    base = F.cross_entropy(model(x), y)
    harm = []
    for i in range(8):
        w = model.weight.detach().clone().reshape(-1)
        w[i] = 0.0
        harm.append((F.cross_entropy(x @ w.reshape(2, 4).T, y) - base).item())
    sig = Significance(model, {"weight": torch.ones(2, 4, dtype=torch.bool)}, seed=0, fraction=1 / 8, subsets=8,
                       reset="zero")
    for t in range(4):
        sig(t, x, y)  # every weight tested alone at t = 1, 2, 3
    s = sig.scores()["weight"].reshape(-1)
    assert max(harm) > 0 and int(s.argmax()) == max(range(8), key=lambda i: harm[i]) == 0
    assert torch.equal(s.argsort(), torch.tensor(harm).abs().argsort())


def test_an_observed_step_leaves_the_model_and_the_global_rng_untouched():
    model = build_model("resnet20", (3, 8, 8), 10, seed=0, width=2)
    model.train()
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(8, 3, 8, 8, generator=g), torch.randint(10, (8,), generator=g)
    F.cross_entropy(model(x), y).backward()  # grads present, BatchNorm running stats moved once
    state = {k: v.clone() for k, v in model.state_dict().items()}
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    rng = torch.get_rng_state()
    init = {n: torch.randn(p.shape, generator=g) for n, p in model.named_parameters()}
    sig = Significance(model, masks.full_mask(model), seed=0, fraction=0.1, init=init)
    sig(1, x, y)
    assert sig.observed == 1
    assert model.training and torch.equal(torch.get_rng_state(), rng)
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k
    for n, p in model.named_parameters():
        assert torch.equal(p.grad, grads[n]), n
    # the fake passes normalise with the batch's statistics, as the training step does
    twin = build_model("resnet20", (3, 8, 8), 10, seed=0, width=2)
    twin.load_state_dict(state)
    buffers = {n: b.clone() for n, b in model.named_buffers()}
    assert sig._measure(buffers, {}, x, y).item() == F.cross_entropy(twin.train()(x), y).double().item()


def image_splits(n=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    empty = torch.empty(0, 3, 8, 8), torch.empty(0, dtype=torch.long)
    return SimpleNamespace(x_train=torch.randn(n, 3, 8, 8, generator=g), y_train=torch.randint(10, (n,), generator=g),
                           x_val=empty[0], y_val=empty[1], x_test=empty[0], y_test=empty[1])


@pytest.mark.parametrize("which", ["mlp1d", "resnet20"])
def test_training_while_observing_is_bitwise_the_plain_run(context, which):
    ctx = context()
    training = dict(ctx.plan.settings.training)
    if which == "mlp1d":
        splits, build, steps = ctx.splits(), (lambda: ctx.new_model(0)), 24
    else:  # BatchNorm: its running statistics must come out as without the observer
        training["batch_size"] = 16
        splits, steps = image_splits(), 6
        build = lambda: build_model("resnet20", (3, 8, 8), 10, seed=0, width=2)  # noqa: E731

    def run(observe):
        model = build()
        mask = masks.full_mask(model)
        sig = Significance(model, mask, seed=1, fraction=0.05, subsets=2,
                           init={n: p.detach().clone() for n, p in model.named_parameters()}) if observe else None
        result = train(model, mask, splits, training, Segment(0, steps, lambda t: lr_at(training, t), data_seed=2),
                       observe=sig)
        return model, result, sig

    plain, plain_result, _ = run(False)
    watched, watched_result, sig = run(True)
    for k, v in plain.state_dict().items():
        assert torch.equal(v, watched.state_dict()[k]), k
    assert watched_result["curves"] == plain_result["curves"]
    assert sig.observed == steps - 1
    assert all(not torch.equal(s, torch.full_like(s, 0.5)) for s in sig.scores().values())


def observed(seed, steps=6, state=None, start=0):
    """Significance of an mlp1d over `steps` batches (weights nudged between them), optionally resumed."""
    model = build_model("mlp1d", (40,), 10, seed=0, hidden=32)
    mask = masks.full_mask(model)
    sig = Significance(model, mask, seed=seed, fraction=0.1, subsets=2, reset="zero", average="mean")
    if state is not None:
        sig.load_state_dict(state)
    g = torch.Generator().manual_seed(9)
    for t in range(steps):
        x, y = torch.randn(32, 40, generator=g), torch.randint(10, (32,), generator=g)
        if t >= start:
            sig(t, x, y)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.05 * torch.randn(p.shape, generator=g))
    return sig


def test_same_seed_same_scores_other_seed_other_scores():
    a, b, c = observed(0).scores(), observed(0).scores(), observed(1).scores()
    assert all(torch.equal(a[n], b[n]) for n in a)
    assert any(not torch.equal(a[n], c[n]) for n in a)


def test_a_resumed_replay_continues_to_the_same_scores():
    whole = observed(0, steps=10).scores()
    half = observed(0, steps=7).state_dict()  # saved after iteration 6; training resumed at 4 redoes 4..6
    resumed = observed(0, steps=10, state=half, start=4)
    assert all(torch.equal(whole[n], resumed.scores()[n]) for n in whole)
    with pytest.raises(LTHError, match="older than the training checkpoint"):
        observed(0, steps=10, state=half, start=8)
    other = observed(1, steps=1)
    with pytest.raises(LTHError, match="settings"):
        other.load_state_dict(half)


def test_pruning_by_significance_keeps_the_requested_counts():
    sig = observed(0)
    mask = masks.full_mask(sig.model)
    scores = score(dict(sig.model.named_parameters()), mask, ScoreContext(options={"significance": sig.scores()}))
    keep = {n: m.numel() // 3 for n, m in mask.items()}
    assert {n: int(m.sum()) for n, m in keep_counts(scores, keep).items()} == keep
    rates = {n: 0.2 for n in mask}
    kept = remove_per_layer(scores, mask, rates)
    want = {n: m.numel() - round(0.2 * m.numel()) for n, m in mask.items()}
    assert {n: int(m.sum()) for n, m in kept.items()} == want
    s = scores["linear1.weight"].reshape(-1)
    dropped = ~kept["linear1.weight"].reshape(-1)
    assert s[dropped].max() <= s[~dropped].min()  # the least significant went


def test_missing_or_mismatched_scores_are_one_line_errors():
    model = tiny_net()
    mask = masks.full_mask(model)
    weights = dict(model.named_parameters())
    with pytest.raises(LTHError) as e:
        score(weights, mask, ScoreContext())
    assert str(e.value) == MISSING == ("bingo: no significance scores: they are accumulated during the dense "
                                       "run's replay (job bingo)")
    with pytest.raises(LTHError, match="no layer '2.weight'"):
        score(weights, mask, ScoreContext(options={"significance": {"0.weight": torch.zeros(3, 4)}}))
    with pytest.raises(LTHError, match="initial weights"):
        Significance(model, mask, seed=0)
    with pytest.raises(LTHError, match="fraction"):
        Significance(model, mask, seed=0, fraction=0.0, reset="zero")
    with pytest.raises(LTHError, match="measure"):
        Significance(model, mask, seed=0, reset="zero", measure="accuracy_drop")
