"""Training modes that find the mask during one run (lth.training.modes.gmp, .set, .rigl): against
schedules, selections and gradients computed here by hand, resumed bitwise, and in a one-shot sweep."""

import math
import types

import pytest
import torch
from torch import nn

from lth.core.errors import LTHError
from lth.plan import plan_of
from lth.plan.layout import RunKey
from lth.plan.settings import resolve
from lth.pruning import masks
from lth.pruning.scores.random import random_with_counts
from lth.store import artifacts
from lth.training.loop import Segment, train
from lth.training.modes.gmp import Gradual
from lth.training.modes.rigl import RigL
from lth.training.modes.set import Evolution
from lth.training.optim import Optimizer

from conftest import tiny

NAMES = ["0.weight", "2.weight"]


def _model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 20), nn.ReLU(), nn.Linear(20, 4))


def _training(**changes):
    return resolve(tiny({"training": {"batch_size": 50, "eval_every": 10, **changes}})).training


def _data(n=200, seed=0):
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(n, 6, generator=g), torch.randint(0, 4, (n,), generator=g)
    return types.SimpleNamespace(x_train=x, y_train=y, x_val=x[:50], y_val=y[:50], x_test=x[:50], y_test=y[:50])


def _random_keep(model, density, seed=0):
    params = dict(model.named_parameters())
    template = {n: torch.ones_like(params[n], dtype=torch.bool) for n in NAMES}
    counts = {n: round(density * m.numel()) for n, m in template.items()}
    return random_with_counts(template, counts, torch.Generator().manual_seed(seed))


def _steps(model, enforce, stop, seen):
    """Adam steps on a fixed batch, enforce(t) after each, then seen(t)."""
    data = _data()
    optimizer = Optimizer(model.parameters(), _training())
    enforce.attach(optimizer)
    for t in range(stop):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(data.x_train[:50]), data.y_train[:50]).backward()
        optimizer.step(0.01)
        enforce(t)
        seen(t)


def _pruned_are_zero(model, mask):
    params = dict(model.named_parameters())
    return all(torch.equal(params[n][~m], torch.zeros(int((~m).sum()))) for n, m in mask.items())


def _watched(cls, before):
    """`cls` that keeps the weights it sees (after the step, re-zeroed) before each update in `before`."""

    class Watched(cls):
        def update(self, t):
            before.clear()
            before.update({n: p.detach().clone() for n, p in zip(self.names, self.params)})
            super().update(t)

    return Watched


@pytest.mark.parametrize("distribution", ["uniform", "global"])
def test_gmp_density_is_zhu_and_gupta_s_cubic_at_every_step_and_the_mask_only_shrinks(distribution):
    """s_t = s_f + (s_i - s_f)(1 - (t - t0)/(n dt))^3 (Zhu & Gupta 2017, eq. 1) with s_i = 0, s_f = 0.9,
    t0 = 4, pruning every 6 steps and at the end step 24 (steps counted in updates: t + 1)."""
    model, before = _model(), {}
    gmp = _watched(Gradual, before)(model, NAMES, 0.1, start=4, end=24, frequency=6, distribution=distribution)
    sizes = {n: p.numel() for n, p in model.named_parameters() if n in NAMES}
    events = [10, 16, 22, 24]
    history = [gmp.mask]

    def seen(t):
        n, mask = t + 1, gmp.mask
        done = [e for e in events if e <= n]
        density = 1.0 if not done else 1 - (0.9 + (0.0 - 0.9) * (1 - (done[-1] - 4) / 20) ** 3)
        if distribution == "uniform":
            assert masks.counts(mask) == {k: max(1, round(density * s)) for k, s in sizes.items()}, n
        else:
            assert sum(masks.counts(mask).values()) == round(density * sum(sizes.values())), n
        assert all(not (mask[k] & ~history[-1][k]).any() for k in mask)  # nothing grows back
        assert _pruned_are_zero(model, mask)
        if n in events:  # a prune removes the smallest |w| of the kept, per layer or over all layers
            for group in [[k] for k in mask] if distribution == "uniform" else [list(mask)]:
                kept = torch.cat([before[k].abs()[mask[k]] for k in group])
                lost = torch.cat([before[k].abs()[history[-1][k] & ~mask[k]] for k in group])
                assert lost.numel() == 0 or lost.max() <= kept.min(), n
        history.append(mask)

    _steps(model, gmp, 30, seen=seen)
    assert len({sum(masks.counts(m).values()) for m in history}) == 4  # dense, then 3 prunes (at 24: 0.1009)
    assert [t + 1 for t in range(30) if gmp.prunes_at(t)] == events
    assert gmp.density(23) == pytest.approx(0.1) and gmp.density(3) == 1.0


@pytest.mark.parametrize("mode", ["set", "rigl"])
def test_set_and_rigl_keep_every_count_drop_the_smallest_and_grow_as_many_from_zero(mode):
    model, before = _model(1), {}
    keep = _random_keep(model, 0.3)
    counts = masks.counts(keep)
    if mode == "set":
        evolve = _watched(Evolution, before)(model, NAMES, keep, delta_t=3, zeta=0.4, seed=7)
    else:
        evolve = _watched(RigL, before)(model, NAMES, keep, delta_t=3, zeta=0.4, seed=7, t_end=25)
    params = dict(model.named_parameters())
    history, fresh_total = [evolve.mask], []

    def seen(t):
        n, old, new = t + 1, history[-1], evolve.mask
        assert masks.counts(new) == counts, n
        assert _pruned_are_zero(model, new), n
        f = 0.4 if mode == "set" else 0.4 / 2 * (1 + math.cos(math.pi * n / 25))
        if n % 3 or (mode == "rigl" and n > 25):
            assert all(torch.equal(old[k], new[k]) for k in NAMES), n
        else:
            for k in NAMES:
                c, drop = counts[k], int(f * counts[k])
                w = before[k].abs().flatten()
                order = torch.sort(torch.where(old[k].flatten(), -w, math.inf), stable=True).indices
                survivors = torch.zeros(w.numel(), dtype=torch.bool)
                survivors[order[:c - drop]] = True  # the largest |w| of the kept, ties: the lower index
                assert not (survivors & ~new[k].flatten()).any(), n
                grown = new[k].flatten() & ~survivors
                assert int(grown.sum()) == drop, n  # as many grown as dropped
                fresh = (grown & ~old[k].flatten()).view_as(new[k])
                assert (params[k][fresh] == 0).all()  # grown from exactly zero
                moments = evolve.optimizer.exp_avg[list(params).index(k)]
                assert (moments[fresh] == 0).all()  # with no optimiser state
                fresh_total.append(int(fresh.sum()))
        history.append(new)

    _steps(model, evolve, 30, seen=seen)
    assert sum(fresh_total) > 0


def test_rigl_grows_where_the_dense_gradient_of_the_step_is_largest_computed_by_hand():
    """A 2-layer linear regression on fixed data, one full-batch SGD step through the training loop:
    the gradient by hand, dL/dW2 = sum_i r_i h_i^T and dL/dW1 = sum_i (r_i W2)^T x_i with
    r_i = 2 (out_i - y_i) / N; RigL drops the smallest |w - lr g| of the kept and grows the largest
    |g| elsewhere, the fraction zeta / 2 (1 + cos(pi / t_end)) at step 1."""
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(32, 5, generator=g), torch.randn(32, generator=g)
    splits = types.SimpleNamespace(x_train=x, y_train=y, x_val=x, y_val=y, x_test=x, y_test=y, task="regression")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.Linear(8, 1))
    names = ["0.weight", "1.weight"]
    params = dict(model.named_parameters())
    template = {n: torch.ones_like(params[n], dtype=torch.bool) for n in names}
    keep = random_with_counts(template, {"0.weight": 20, "1.weight": 4}, torch.Generator().manual_seed(1))
    rigl = RigL(model, names, keep, delta_t=1, zeta=0.8, seed=0, t_end=10)
    W1, b1 = params["0.weight"].detach().double().clone(), params["0.bias"].detach().double().clone()
    W2, b2 = params["1.weight"].detach().double().clone(), params["1.bias"].detach().double().clone()
    training = _training(optimizer="sgd", lr=0.1, momentum=0.0, weight_decay=0.0, batch_size=32)
    train(model, keep, splits, training, Segment(0, 1, lambda t: 0.1, data_seed=0), enforce=rigl)

    X, Y = x.double(), y.double()
    h = X @ W1.T + b1
    r = 2 * ((h @ W2.T + b2).squeeze(1) - Y) / len(Y)
    grads = {"0.weight": (r[:, None] * W2) .T @ X, "1.weight": (r @ h)[None, :]}
    after = {"0.weight": W1 - 0.1 * grads["0.weight"], "1.weight": W2 - 0.1 * grads["1.weight"]}
    f = 0.8 / 2 * (1 + math.cos(math.pi / 10))
    new = rigl.mask
    grew_a_pruned_one = False
    for n in names:
        c, drop = int(keep[n].sum()), int(f * int(keep[n].sum()))
        kept_w = after[n].abs().flatten()[keep[n].flatten()]
        kept_idx = keep[n].flatten().nonzero().squeeze(1)
        survivors = set(kept_idx[torch.argsort(kept_w, descending=True)[:c - drop]].tolist())
        others = [i for i in range(keep[n].numel()) if i not in survivors]
        gabs = grads[n].abs().flatten()
        grown = set(sorted(others, key=lambda i: -gabs[i].item())[:drop])
        assert set(new[n].flatten().nonzero().squeeze(1).tolist()) == survivors | grown, n
        grew_a_pruned_one |= any(not keep[n].flatten()[i] for i in grown)
        assert (params[n][~new[n]] == 0).all() and int(new[n].sum()) == c
    assert grew_a_pruned_one


@pytest.mark.parametrize("mode", ["gmp", "set", "rigl"])
def test_a_resumed_run_ends_bitwise_as_an_uninterrupted_one(tmp_path, mode):
    training = _training(optimizer="adam", lr=0.01, checkpoint_every=10)
    data = _data()
    steps = []

    def run(checkpoint, interrupt_at=None):
        model = _model(2)
        if mode == "gmp":
            enforce = Gradual(model, NAMES, 0.2, start=5, end=35, frequency=5)
        elif mode == "set":
            enforce = Evolution(model, NAMES, _random_keep(model, 0.3), delta_t=5, zeta=0.3, seed=1)
        else:
            enforce = RigL(model, NAMES, _random_keep(model, 0.3), delta_t=5, zeta=0.3, seed=1, t_end=35)
        steps.clear()

        def lr(t):
            if t == interrupt_at:
                raise KeyboardInterrupt
            steps.append(t)
            return 0.01
        result = train(model, enforce.mask, data, training, Segment(0, 40, lr, data_seed=2, checkpoint=checkpoint,
                                                                      fingerprint=mode), enforce=enforce)
        return model, enforce, result

    ref, ref_mode, ref_result = run(None)
    ckpt = tmp_path / "resume.pt"
    with pytest.raises(KeyboardInterrupt):
        run(ckpt, interrupt_at=27)
    assert artifacts.load_checkpoint(ckpt)["iteration"] == 20
    model, resumed, result = run(ckpt)
    assert steps == list(range(20, 40))  # only what it had not trained
    for (k, a), b in zip(ref.state_dict().items(), model.state_dict().values()):
        assert torch.equal(a, b), k
    assert all(torch.equal(ref_mode.mask[n], resumed.mask[n]) for n in NAMES)
    assert result["curves"] == ref_result["curves"]
    assert any(not torch.equal(ref_mode.mask[n], _random_keep(ref, 0.3)[n]) for n in NAMES)  # it evolved


SWEEP = {"kind": "oneshot", "oneshot": {"densities": [0.2], "controls": ["shuffle", "reinit"], "methods": {
    "gmp": {"train": "gmp", "distribution": "uniform", "gmp": {"start": 5, "end": 30, "frequency": 5}},
    "set": {"train": "set", "distribution": "uniform", "set": {"delta_t": 10, "zeta": 0.3}},
    "rigl": {"train": "rigl", "distribution": "erk", "rigl": {"delta_t": 10, "zeta": 0.3}}}}}


def test_a_sweep_trains_gmp_set_and_rigl_and_their_controls_train_on_their_masks(context):
    ctx = context({**SWEEP, "training": {"iterations": 40, "eval_every": 20}})
    assert ctx.plan.settings.oneshot.methods.rigl.rigl.t_end == 30  # null: 3/4 of the budget
    for job in ctx.plan.jobs():
        ctx.run(job)
    L = ctx.plan.layout
    for method in ("gmp", "set", "rigl"):
        head = artifacts.load_tensors(L.mask(RunKey(0, 2000, method)))
        weights = artifacts.load_tensors(L.final(RunKey(0, 2000, method)))
        if method == "rigl":  # ERK, no layer dense here: layer l keeps 20 % of all N in proportion to n_in + n_out
            total, sides = sum(m.numel() for m in head.values()), {n: sum(m.shape) for n, m in head.items()}
            assert masks.counts(head) == {n: round(0.2 * total * sides[n] / sum(sides.values())) for n in head}
        else:
            assert masks.counts(head) == {n: round(0.2 * m.numel()) for n, m in head.items()}
        for n, m in head.items():
            assert (weights[n][~m] == 0).all()
        shuffled = artifacts.load_tensors(L.mask(RunKey(0, 2000, f"{method}-shuffle")))
        reinit = artifacts.load_tensors(L.mask(RunKey(0, 2000, f"{method}-reinit")))
        assert masks.counts(shuffled) == masks.counts(head) and any(not torch.equal(shuffled[n], head[n])
                                                                    for n in head)
        assert all(torch.equal(reinit[n], head[n]) for n in head)


def _settings(method, iterations=40, **changes):
    return tiny({"kind": "oneshot", "oneshot": {"densities": [0.2], "methods": {"m": method}},
                 "training": {"iterations": iterations}, **changes})


@pytest.mark.parametrize("method, changes, message", [
    ({"train": "set", "distribution": "erk", "set": {"zeta": 1.0}}, {},
     r"oneshot\.methods\.m\.set\.zeta: 1\.0 is greater than or equal to the maximum of 1"),
    ({"train": "rigl", "distribution": "erk", "rigl": {"zeta": 0}}, {},
     r"oneshot\.methods\.m\.rigl\.zeta: 0 is less than or equal to the minimum of 0"),
    ({"train": "set", "distribution": "erk", "set": {"delta_t": 0}}, {},
     r"oneshot\.methods\.m\.set\.delta_t: 0 is less than the minimum of 1"),
    ({"train": "set", "distribution": "uniform", "set": {"delta_t": 41}}, {},
     r"oneshot\.methods\.m\.set\.delta_t: 41 leaves no update of the connections in steps 1 to 40"),
    ({"train": "rigl", "distribution": "erk", "rigl": {"t_end": 41}}, {},
     r"oneshot\.methods\.m\.rigl\.t_end: 41 is beyond training\.iterations = 40"),
    ({"train": "rigl"}, {},
     r"oneshot\.methods\.m: train: rigl starts from a random mask .* distribution erk \(the paper's\) or uniform, "
     r"got 'global'"),
    ({"train": "gmp", "gmp": {"end": 41, "frequency": 5}}, {},
     r"oneshot\.methods\.m\.gmp\.end: 41 is beyond training\.iterations = 40"),
    ({"train": "gmp", "gmp": {"start": 20, "end": 20}}, {},
     r"oneshot\.methods\.m\.gmp\.start: 20 is not before gmp\.end = 20"),
    ({"train": "gmp", "gmp": {"end": 30}}, {},
     r"oneshot\.methods\.m\.gmp\.frequency: 100 is more than gmp\.end - gmp\.start = 30"),
    ({"train": "gmp", "gmp": {"start": 3, "frequency": 5}}, {"rewind_iteration": 5},
     r"oneshot\.methods\.m\.gmp\.start: 3 is before the runs' first step"),
    ({"train": "rigl", "distribution": "erk", "score": "snip", "batch": 10}, {},
     r"oneshot\.methods\.m: train: rigl removes the weights of smallest magnitude: it takes score: magnitude"),
])
def test_bad_settings_are_one_line_naming_the_key_and_value(method, changes, message):
    with pytest.raises(LTHError, match=message) as e:
        plan_of("exp", _settings(method, **changes), "/tmp/nowhere")
    assert "\n" not in str(e.value)
