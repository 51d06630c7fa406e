"""Pruning scores SNIP, GraSP and SynFlow, each checked element by element against its paper's formula
computed by another route: backprop written out by hand (SNIP), the full Hessian times g (GraSP),
SynFlow's closed form for networks that its absolute values make linear; then every registered model,
data-freeness, masks, and the one-line errors."""

import pytest
import torch
from torch import nn
from torch.autograd.functional import hessian, jacobian

from lth.core.errors import LTHError
from lth.models import build_model
from lth.pruning import ScoreContext, masks
from lth.pruning.scores import grasp, snip, synflow

F64 = torch.float64


def seeded(module: nn.Module, seed: int, dtype=F64) -> nn.Module:
    """`module` in `dtype` with every parameter drawn from N(0, 1) of its own generator."""
    g = torch.Generator().manual_seed(seed)
    module = module.to(dtype)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=dtype))
    return module


def mlp(sizes=(6, 5, 3), act=nn.ReLU, bias=True, seed=0, dtype=F64) -> nn.Sequential:
    layers = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        layers += [nn.Linear(a, b, bias=bias)] + ([act()] if i < len(sizes) - 2 else [])
    with torch.random.fork_rng(devices=[]):
        return seeded(nn.Sequential(*layers), seed, dtype)


def data(n, shape, classes, seed=1, dtype=F64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, *shape, generator=g, dtype=dtype), torch.randint(0, classes, (n,), generator=g)


def context(model, x=None, y=None, **options):
    batch = None if x is None else (lambda n: (x[:n], y[:n]))
    return ScoreContext(model=lambda: model, batch=batch, input_shape=tuple(x.shape[1:]) if x is not None else (),
                   options=options)


def random_mask(model, seed=2, keep=0.6, biases=False):
    g = torch.Generator().manual_seed(seed)
    return {n: torch.rand(m.shape, generator=g) < keep for n, m in masks.full_mask(model, biases=biases).items()}


def state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# ----------------------------------------------------------------------------------------- SNIP


@pytest.mark.parametrize("pruned", [False, True])
def test_snip_is_abs_gradient_times_weight_with_backprop_written_out(pruned):
    m = mlp()
    x, y = data(64, (6,), 3)
    mask = random_mask(m) if pruned else masks.full_mask(m)
    masks.apply_mask(m, mask)
    asked = []
    ctx = ScoreContext(model=lambda: m, batch=lambda n: asked.append(n) or (x[:n], y[:n]), input_shape=(6,),
                  options={"batch": 40})
    got = snip.score(state(m), mask, ctx)
    assert asked == [40]
    with torch.no_grad():  # softmax cross-entropy backprop by matrix algebra
        xb, yb = x[:40], y[:40]
        w1, b1, w2, b2 = m[0].weight, m[0].bias, m[2].weight, m[2].bias
        a1 = xb @ w1.T + b1
        h = a1.clamp(min=0)
        z = h @ w2.T + b2
        p = torch.exp(z - z.max(1, keepdim=True).values)
        p = p / p.sum(1, keepdim=True)
        d2 = (p - torch.eye(3, dtype=F64)[yb]) / len(yb)
        d1 = (d2 @ w2) * (a1 > 0)
        want = {"0.weight": (d1.T @ xb * w1).abs(), "2.weight": (d2.T @ h * w2).abs()}
    for name in mask:
        assert got[name].dtype == F64
        torch.testing.assert_close(got[name], want[name], rtol=1e-10, atol=1e-12)
        assert (got[name][~mask[name]] == 0).all()


# ---------------------------------------------------------------------------------------- GraSP


@pytest.mark.parametrize("act, temperature, pruned", [(nn.Tanh, 1.0, False), (nn.ReLU, 200.0, False),
                                                      (nn.Tanh, 3.0, True)])
def test_grasp_is_weight_times_full_hessian_times_gradient(act, temperature, pruned):
    m = mlp(act=act, seed=3)
    x, y = data(32, (6,), 3, seed=4)
    mask = random_mask(m, seed=5) if pruned else masks.full_mask(m)
    masks.apply_mask(m, mask)
    got = grasp.score(state(m), mask, context(m, x, y, batch=32, grasp_temperature=temperature))

    shapes = [m[0].weight.shape, m[2].weight.shape]
    sizes = [s.numel() for s in shapes]
    theta = torch.cat([m[0].weight.detach().flatten(), m[2].weight.detach().flatten()])
    alive = torch.cat([mask["0.weight"].flatten(), mask["2.weight"].flatten()]).to(F64)
    b1, b2 = m[0].bias.detach(), m[2].bias.detach()

    def loss(t):
        w1, w2 = (part.reshape(s) for part, s in zip(t.split(sizes), shapes))
        z = (act()(x @ w1.T + b1) @ w2.T + b2) / temperature
        return -(z.log_softmax(1)[torch.arange(len(y)), y]).mean()

    hg = hessian(loss, theta, vectorize=True) @ (jacobian(loss, theta) * alive)  # H (m * g), H over prunable weights
    want = dict(zip(mask, (part.reshape(s) for part, s in zip((theta * hg).split(sizes), shapes))))
    for name in mask:
        torch.testing.assert_close(got[name], want[name], rtol=1e-8, atol=1e-14)
    assert any((v < 0).any() for v in got.values()) and any((v > 0).any() for v in got.values())


def test_grasp_temperature_defaults_to_200():
    m = mlp(seed=6)
    x, y = data(16, (6,), 3)
    mask = masks.full_mask(m)
    default = grasp.score(state(m), mask, context(m, x, y, batch=16))
    explicit = grasp.score(state(m), mask, context(m, x, y, batch=16, grasp_temperature=200))
    other = grasp.score(state(m), mask, context(m, x, y, batch=16, grasp_temperature=1))
    for name in mask:
        assert torch.equal(default[name], explicit[name])
        assert not torch.allclose(default[name], other[name])


def bn_net(seed=10):
    """1x1 conv + BatchNorm (mixed-sign affine, running statistics) + ReLU + Linear, input (3, 1, 1)."""
    with torch.random.fork_rng(devices=[]):
        m = nn.Sequential(nn.Conv2d(3, 4, 1, bias=False), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                          nn.Linear(4, 2, bias=False))
    seeded(m, seed)
    with torch.no_grad():
        bn = m[1]
        values = ([0.5, -1.2, 0.8, -0.3], [0.1, -0.4, 0.0, 0.7], [2.0, -1.5, 0.3, 4.0], [0.6, 1.0, 2.5, 0.9])
        for t, v in zip((bn.weight, bn.bias, bn.running_mean, bn.running_var), values):
            t.copy_(torch.tensor(v, dtype=F64))
    return m


@pytest.mark.parametrize("method", [snip, grasp])
def test_data_scores_use_batch_statistics_whatever_the_modules_mode(method):
    m = bn_net()
    x, y = data(16, (3, 1, 1), 2)
    mask = masks.full_mask(m)
    train = method.score(state(m), mask, context(m.train(), x, y, batch=16))
    evaluating = method.score(state(m), mask, context(m.eval(), x, y, batch=16))
    assert all(torch.equal(train[n], evaluating[n]) for n in mask)


# -------------------------------------------------------------------------------------- SynFlow


def synflow_closed_form(a1, a2, a3, c1=None, c2=None):
    """|w| dR/d|w| / R for R = 1'(A3 (A2 (A1 1 + c1) + c2) + c3), all entries >= 0."""
    c1 = torch.zeros(a1.shape[0], dtype=F64) if c1 is None else c1
    c2 = torch.zeros(a2.shape[0], dtype=F64) if c2 is None else c2
    h1 = a1 @ torch.ones(a1.shape[1], dtype=F64) + c1
    h2 = a2 @ h1 + c2
    back3 = torch.ones(a3.shape[0], dtype=F64)  # dR/dh3
    back2 = a3.T @ back3  # dR/dh2
    back1 = a2.T @ back2  # dR/dh1
    return [a1 * torch.outer(back1, torch.ones(a1.shape[1], dtype=F64)), a2 * torch.outer(back2, h1),
            a3 * torch.outer(back3, h2)]


def assert_per_layer(got, mask, want, r):
    for name, w in zip(mask, want):
        assert got[name].dtype == F64 and got[name].shape == mask[name].shape
        torch.testing.assert_close(got[name], w / r, rtol=1e-12, atol=0)


@pytest.mark.parametrize("bias", [False, True])
def test_synflow_matches_closed_form_of_three_layer_mlp(bias):
    m = mlp(sizes=(4, 5, 6, 3), bias=bias, seed=7, dtype=torch.float32)
    mask = masks.full_mask(m)
    got = synflow.score(state(m), mask, ScoreContext(model=lambda: m, input_shape=(4,)))
    a1, a2, a3 = (m[i].weight.detach().double().abs() for i in (0, 2, 4))
    c1, c2, c3 = (m[i].bias.detach().double().abs() if bias else torch.zeros(1, dtype=F64) for i in (0, 2, 4))
    want = synflow_closed_form(a1, a2, a3, c1 if bias else None, c2 if bias else None)
    r = (a3 @ (a2 @ (a1 @ torch.ones(4, dtype=F64) + (c1 if bias else 0)) + (c2 if bias else 0))).sum()
    r = r + (c3.sum() if bias else 0)
    assert_per_layer(got, mask, want, r)
    if not bias:  # conservation: R is linear in each layer's |w|, so each layer's scores sum to 1
        for name in mask:
            assert float(got[name].sum()) == pytest.approx(1.0, rel=1e-12)


def test_synflow_respects_the_mask_as_the_closed_form_says():
    m = mlp(sizes=(4, 5, 6, 3), bias=False, seed=8)
    full = synflow.score(state(m), masks.full_mask(m), ScoreContext(model=lambda: m, input_shape=(4,)))
    mask = random_mask(m, seed=9, keep=0.7)
    mask["0.weight"][1] = False  # hidden unit 1 of layer 1 receives nothing: its outgoing weights carry no flow
    mask["2.weight"][:, 1] = True
    masks.apply_mask(m, mask)
    got = synflow.score(state(m), mask, ScoreContext(model=lambda: m, input_shape=(4,)))
    a = [m[i].weight.detach().abs() for i in (0, 2, 4)]
    r = (a[2] @ a[1] @ a[0] @ torch.ones(4, dtype=F64)).sum()
    assert_per_layer(got, mask, synflow_closed_form(*a), r)
    for name in mask:
        assert (got[name][~mask[name]] == 0).all()
        assert not torch.allclose(got[name][mask[name]], full[name][mask[name]])
    assert (got["2.weight"][:, 1] == 0).all() and (full["2.weight"][:, 1] > 0).all()


def test_synflow_folds_batchnorm_into_a_positive_affine_map():
    m = bn_net()
    bn = m[1]
    assert (bn.weight < 0).any() and (bn.bias < 0).any()
    mask = masks.full_mask(m)
    got = synflow.score(state(m), mask, ScoreContext(model=lambda: m, input_shape=(3, 1, 1)))
    with torch.no_grad():
        sd = (bn.running_var + bn.eps).sqrt()
        scale, offset = bn.weight.abs() / sd, (bn.bias - bn.weight * bn.running_mean / sd).abs()
        a1, a2 = m[0].weight.reshape(4, 3).abs(), m[4].weight.abs()
        h = scale * (a1 @ torch.ones(3, dtype=F64)) + offset
        back = scale * (a2.T @ torch.ones(2, dtype=F64))  # dR/d(A1 1)
        want = [(a1 * torch.outer(back, torch.ones(3, dtype=F64))).reshape(4, 3, 1, 1),
                a2 * torch.outer(torch.ones(2, dtype=F64), h)]
        assert_per_layer(got, mask, want, (a2 @ h).sum())


def test_synflow_never_asks_for_data():
    m = build_model("mlp1d", (40,), 10, seed=0, hidden=16)
    mask = random_mask(m)
    masks.apply_mask(m, mask)

    def refuse(n):
        raise AssertionError("synflow asked for data")

    x, y = data(8, (40,), 10, dtype=torch.float32)
    a = synflow.score(state(m), mask, ScoreContext(model=lambda: m, batch=refuse, input_shape=(40,)))
    b = synflow.score(state(m), mask, context(m, x, y, batch=8))
    assert all(torch.equal(a[n], b[n]) for n in mask)


def test_synflow_refuses_a_model_without_a_positive_path():
    m = build_model("mlp1d", (40,), 10, seed=0, hidden=16)  # nonzero biases: R > 0 through linear3's bias
    mask = masks.full_mask(m)
    mask["linear3.weight"][:] = False
    masks.apply_mask(m, mask)
    with pytest.raises(LTHError, match=r"^synflow: model has no positive path .*layer 'linear1.weight'.*"
                                       r"fully pruned: linear3.weight\)$"):
        synflow.score(state(m), mask, ScoreContext(model=lambda: m, input_shape=(40,)))
    m = mlp(bias=False)  # no biases: R = 0
    mask = masks.full_mask(m)
    mask["2.weight"][:] = False
    masks.apply_mask(m, mask)
    with pytest.raises(LTHError, match=r"no positive path .*'0.weight' \(R = 0;"):
        synflow.score(state(m), mask, ScoreContext(model=lambda: m, input_shape=(6,)))


# ---------------------------------------------------------------------------------- all models

MODELS = [("mlp1d", (40,), True), ("lenet_300_100", (1, 28, 28), True), ("conv4", (3, 32, 32), True),
          ("resnet20", (3, 32, 32), True), ("resnet20", (3, 32, 32), False)]


@pytest.mark.parametrize("name, shape, training", MODELS)
def test_every_score_runs_on_every_model_and_leaves_it_unchanged(name, shape, training):
    m = build_model(name, shape, 10, seed=0).train(training)
    for module in m.modules():  # running statistics as after training, so a BN update would show
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2)
    mask = random_mask(m, keep=0.8, biases=name != "conv4")  # pruned biases (pruning.biases) are scored alike
    masks.apply_mask(m, mask)
    before = state(m)
    x, y = data(8, shape, 10, dtype=torch.float32)
    ctx = context(m, x, y, batch=8)
    for method in (snip, grasp, synflow):
        got = method.score(before, mask, ctx)
        assert list(got) == list(mask)
        for n, s in got.items():
            assert s.shape == mask[n].shape and s.device.type == "cpu", (method.__name__, n)
            assert s.dtype in (torch.float32, F64) and torch.isfinite(s).all(), (method.__name__, n)
            assert (s[~mask[n]] == 0).all() and ((s[mask[n]] != 0).any() or not before[n].any()), (method.__name__, n)
        after = m.state_dict()
        assert all(torch.equal(before[k], after[k]) for k in before), method.__name__
        assert m.training == training and all(mod.training == training for mod in m.modules())
        assert all(p.grad is None for p in m.parameters())


# ---------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("method, who", [(snip, "snip"), (grasp, "grasp")])
def test_data_scores_name_what_they_miss(method, who):
    m = mlp()
    mask = masks.full_mask(m)
    x, y = data(8, (6,), 3)
    with pytest.raises(LTHError, match=rf"^{who}: needs a batch of training data \(pruning.batch\)$"):
        method.score(state(m), mask, ScoreContext(model=lambda: m, input_shape=(6,)))
    with pytest.raises(LTHError, match=rf"^{who}: needs the model being pruned"):
        method.score(state(m), mask, ScoreContext(batch=lambda n: (x, y)))
    with pytest.raises(LTHError, match=rf"^{who}: pruning.batch must be a positive integer, got 0$"):
        method.score(state(m), mask, context(m, x, y, batch=0))


def test_synflow_and_grasp_name_their_own_settings():
    m = mlp()
    mask = masks.full_mask(m)
    with pytest.raises(LTHError, match=r"^synflow: needs the model being pruned"):
        synflow.score(state(m), mask, ScoreContext(input_shape=(6,)))
    with pytest.raises(LTHError, match=r"^synflow: needs the shape of one input example"):
        synflow.score(state(m), mask, ScoreContext(model=lambda: m))
    x, y = data(8, (6,), 3)
    with pytest.raises(LTHError, match=r"^grasp: pruning.grasp_temperature must be a positive number, got -1$"):
        grasp.score(state(m), mask, context(m, x, y, grasp_temperature=-1))
