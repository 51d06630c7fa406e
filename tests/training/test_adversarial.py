"""Adversarial examples: FGSM/PGD raise the loss, stay in the ball, match the analytic FGSM, leave the model alone."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lth.core.errors import LTHError
from lth.models import build_model
from lth.training.adversarial import attack_generator, check, fgsm, perturb, pgd, robust_accuracy
from lth.training.evaluation import evaluate

EPS = 0.2  # MNIST-1D inputs are standardised (std 1)


@pytest.fixture(scope="module")
def trained(data_dir):
    """A small MLP trained 300 Adam steps on MNIST-1D, and 500 test examples."""
    from lth.data.splits import load_splits

    torch.manual_seed(0)  # nothing below draws from it, but keep the test independent of order anyway
    s = load_splits("mnist1d", data_dir, val_size=500)
    model = build_model("mlp1d", (40,), 10, seed=0, hidden=32)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    g = torch.Generator().manual_seed(0)
    for _ in range(300):
        idx = torch.randint(len(s.y_train), (100,), generator=g)
        loss = F.cross_entropy(model(s.x_train[idx]), s.y_train[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.zero_grad(set_to_none=True)
    model.eval()
    return model, s.x_test[:500], s.y_test[:500]


def loss_of(model, x, y):
    with torch.no_grad():
        return F.cross_entropy(model(x), y).item()


def in_ball(x_adv, x, eps):
    return bool(((x_adv >= x - eps) & (x_adv <= x + eps)).all())


def test_attacks_raise_the_loss_and_pgd_beats_fgsm(trained):
    model, x, y = trained
    clean_loss, clean_acc = evaluate(model, x, y)
    assert clean_acc > 0.3  # well above chance (0.1): the model learned something to attack
    x_fgsm = fgsm(model, x, y, EPS)
    x_pgd = pgd(model, x, y, EPS, steps=20, generator=torch.Generator().manual_seed(0))
    fgsm_loss, pgd_loss = loss_of(model, x_fgsm, y), loss_of(model, x_pgd, y)
    assert fgsm_loss > clean_loss * 1.2
    assert pgd_loss >= fgsm_loss
    acc = {m: robust_accuracy(model, x, y, m, EPS, 20, torch.Generator().manual_seed(0))
           for m in ("none", "fgsm", "pgd")}
    assert acc["none"] == clean_acc
    assert acc["pgd"] <= acc["fgsm"] < acc["none"]


def test_perturbations_stay_within_epsilon(trained):
    model, x, y = trained
    x_fgsm = fgsm(model, x, y, EPS)
    assert in_ball(x_fgsm, x, EPS)
    moved = (x_fgsm != x)
    assert moved.float().mean() > 0.9  # FGSM moves (almost) every coordinate to a corner of the ball
    assert (x_fgsm - x).abs().max() <= EPS * (1 + 1e-6)
    for step_size in (None, 0.05, 10.0):  # 10: every step overshoots and is projected back
        x_pgd = pgd(model, x, y, EPS, steps=5, step_size=step_size, generator=torch.Generator().manual_seed(1))
        assert in_ball(x_pgd, x, EPS)
        assert (x_pgd - x).abs().max() <= EPS * (1 + 1e-6)
    bounded = pgd(model, x, y, 1.0, steps=5, generator=torch.Generator().manual_seed(2), bounds=(-0.5, 0.5))
    assert bounded.min() >= -0.5 and bounded.max() <= 0.5
    inside = (x >= -0.5) & (x <= 0.5)  # where x is in bounds, the ball holds too
    assert in_ball(bounded[inside], x[inside], 1.0)
    assert fgsm(model, x, y, 1.0, bounds=(-0.5, 0.5)).abs().max() <= 0.5


def test_fgsm_matches_the_analytic_gradient_of_a_linear_softmax_model():
    g = torch.Generator().manual_seed(0)
    model = nn.Linear(5, 3).double()
    with torch.no_grad():
        model.weight.copy_(torch.randn(3, 5, generator=g, dtype=torch.float64))
        model.bias.copy_(torch.randn(3, generator=g, dtype=torch.float64))
    x = torch.randn(7, 5, generator=g, dtype=torch.float64)
    y = torch.randint(3, (7,), generator=g)
    # d/dx CE(Wx + b, y) = W^T (softmax(Wx + b) - onehot(y)), per example
    p = torch.softmax(x @ model.weight.T + model.bias, dim=1)
    analytic = (p - F.one_hot(y, 3).double()) @ model.weight
    xr = x.clone().requires_grad_(True)
    (auto,) = torch.autograd.grad(F.cross_entropy(model(xr), y, reduction="sum"), xr)
    assert torch.allclose(analytic, auto, rtol=1e-12, atol=1e-12)
    assert analytic.abs().min() > 1e-6  # no sign is in doubt
    eps = 0.3
    assert torch.equal(fgsm(model, x, y, eps), x + eps * analytic.sign())
    # one PGD step of size epsilon from x (no random start) is FGSM
    assert torch.equal(pgd(model, x, y, eps, steps=1, step_size=eps), fgsm(model, x, y, eps))


def test_pgd_default_step_size_is_2_5_epsilon_over_steps(trained):
    model, x, y = trained
    a = pgd(model, x[:50], y[:50], EPS, 8, generator=torch.Generator().manual_seed(3))
    b = pgd(model, x[:50], y[:50], EPS, 8, step_size=2.5 * EPS / 8, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def state_of(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("model_mode", [True, False])
@pytest.mark.parametrize("train_mode", [False, True])
def test_the_model_is_left_bitwise_unchanged(model_mode, train_mode):
    model = build_model("resnet20", (3, 8, 8), 10, seed=0, width=4)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 3, 8, 8, generator=g)
    y = torch.randint(10, (16,), generator=g)
    with torch.no_grad():
        for _ in range(3):  # running statistics away from their initial (0, 1), so a change would show
            model(torch.randn(16, 3, 8, 8, generator=g) * 2 + 1)
    model.train(model_mode)
    before = state_of(model)
    assert all(p.grad is None for p in model.parameters())
    results = [
        fgsm(model, x, y, 0.1, train_mode=train_mode),
        pgd(model, x, y, 0.1, 3, generator=torch.Generator().manual_seed(0), train_mode=train_mode),
        perturb(model, x, y, "pgd", 0.1, 2, train_mode=train_mode),
    ]
    robust_accuracy(model, x, y, "pgd", 0.1, 2, torch.Generator().manual_seed(0), batch=5)
    after = state_of(model)
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)  # params and buffers, running stats included
    assert all(p.grad is None for p in model.parameters())
    assert model.training is model_mode and all(m.training is model_mode for m in model.modules())
    assert all(not r.requires_grad and r.grad_fn is None for r in results)

    # existing gradients are left as they were too
    for p in model.parameters():
        p.grad = torch.full_like(p, 0.5)
    fgsm(model, x, y, 0.1, train_mode=train_mode)
    assert all(torch.equal(p.grad, torch.full_like(p, 0.5)) for p in model.parameters())


def test_train_mode_attacks_the_batch_statistics_function():
    model = build_model("resnet20", (3, 8, 8), 10, seed=0, width=4)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 3, 8, 8, generator=g) * 3 + 2  # far from the initial running statistics
    y = torch.randint(10, (16,), generator=g)
    assert not torch.equal(fgsm(model, x, y, 0.1), fgsm(model, x, y, 0.1, train_mode=True))


def test_pgd_is_reproducible_from_the_generator_seed(trained):
    model, x, y = trained
    x, y = x[:100], y[:100]
    a = pgd(model, x, y, EPS, 3, generator=torch.Generator().manual_seed(5))
    b = pgd(model, x, y, EPS, 3, generator=torch.Generator().manual_seed(5))
    c = pgd(model, x, y, EPS, 3, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    d = pgd(model, x, y, EPS, 3, generator=attack_generator(0, 7))
    assert torch.equal(d, pgd(model, x, y, EPS, 3, generator=attack_generator(0, 7)))
    assert not torch.equal(d, pgd(model, x, y, EPS, 3, generator=attack_generator(0, 8)))


class Refuses(nn.Module):
    def forward(self, x):
        raise AssertionError("epsilon 0 must not run the model")


def test_epsilon_zero_returns_x_bitwise():
    x = torch.tensor([[-0.0, 0.0, 1.5, -2.25, float("inf")]])
    y = torch.tensor([0])
    for out in (fgsm(Refuses(), x, y, 0), pgd(Refuses(), x, y, 0.0, 4, generator=torch.Generator().manual_seed(0)),
                perturb(Refuses(), x, y, "pgd", 0.0, 1), perturb(Refuses(), x, y, "none", 0.5)):
        assert torch.equal(out.view(torch.int32), x.view(torch.int32))


def test_robust_accuracy_of_fgsm_does_not_depend_on_the_batch(trained):
    model, x, y = trained
    a = robust_accuracy(model, x, y, "fgsm", EPS, None, None)
    b = robust_accuracy(model, x, y, "fgsm", EPS, None, None, batch=77)
    assert abs(a - b) <= 2 / len(y)  # examples are independent in eval mode; only float rounding could differ
    assert robust_accuracy(model, x[:0], y[:0], "fgsm", EPS, None, None) is None


@pytest.mark.parametrize("args, message", [
    (("fgsm", -0.1), "adversarial epsilon must be >= 0, got -0.1"),
    (("pgd", 0.1, 0), "adversarial steps must be an integer >= 1 for pgd, got 0"),
    (("pgd", 0.1, None), "adversarial steps must be an integer >= 1 for pgd, got None"),
    (("cw", 0.1, 5), "unknown adversarial method 'cw'; known methods: none, fgsm, pgd"),
    (("fgsm", float("nan")), "adversarial epsilon must be a finite number, got nan"),
    (("none", "0.1"), "adversarial epsilon must be a finite number, got '0.1'"),
])
def test_check_errors(args, message):
    with pytest.raises(LTHError) as err:
        check(*args)
    assert str(err.value) == message and "\n" not in message


def test_check_accepts_the_valid():
    check("none", 0.0)
    check("fgsm", 0.3)
    check("pgd", 8 / 255, 7)


def test_attacks_reject_bad_arguments():
    model, x, y = nn.Linear(2, 2), torch.zeros(1, 2), torch.tensor([0])
    with pytest.raises(LTHError, match="adversarial epsilon must be >= 0, got -0.1"):
        fgsm(model, x, y, -0.1)
    with pytest.raises(LTHError, match="step_size"):
        pgd(model, x, y, 0.1, 2, step_size=-1.0)
    with pytest.raises(LTHError, match="bounds"):
        fgsm(model, x, y, 0.1, bounds=(1.0, 0.0))
    with pytest.raises(LTHError, match="batch"):
        robust_accuracy(model, x, y, "fgsm", 0.1, None, None, batch=0)
