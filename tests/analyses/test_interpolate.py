"""Linear mode connectivity (Frankle et al. 2020): interpolation, BatchNorm recomputation, the error barrier."""

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from lth.analyses.interpolate import barrier, batch_indices, interpolate, path, recompute_batchnorm, stable
from lth.core.errors import LTHError
from lth.data.splits import load_splits
from lth.models import build_model
from lth.pruning.masks import full_mask
from lth.training.evaluation import evaluate
from lth.training.loop import Segment, train

TRAINING = {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": False, "weight_decay": 0.0,
            "batch_size": 32, "eval_every": 10**6, "checkpoint_every": 0}


def images(n_train=192, n_test=64, seed=0):
    """Random 3x8x8 images with random labels: enough for BatchNorm to have statistics."""
    g = torch.Generator().manual_seed(seed)
    x = lambda n: torch.randn(n, 3, 8, 8, generator=g)  # noqa: E731
    y = lambda n: torch.randint(0, 10, (n,), generator=g)  # noqa: E731
    return SimpleNamespace(x_train=x(n_train), y_train=y(n_train), x_val=x(32), y_val=y(32),
                           x_test=x(n_test), y_test=y(n_test))


def setup(kind, data_dir):
    if kind == "mlp1d":
        splits = load_splits("mnist1d", data_dir, val_size=500)
        return build_model("mlp1d", (40,), 10, seed=0, hidden=16), splits
    return build_model("resnet20", (3, 8, 8), 10, seed=0, width=4), images()


def state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# ------------------------------------------------------------------------------------- interpolate


def test_interpolate_is_exact_at_the_ends_and_linear_between():
    a = {"w": torch.tensor([1.0, -2.0, 0.0, 0.1]), "n": torch.tensor(3)}
    b = {"w": torch.tensor([3.0, 2.0, 0.0, 0.7]), "n": torch.tensor(8)}
    assert torch.equal(interpolate(a, b, 0)["w"], a["w"]) and torch.equal(interpolate(a, b, 1.0)["w"], b["w"])
    assert torch.allclose(interpolate(a, b, 0.25)["w"], torch.tensor([1.5, -1.0, 0.0, 0.25]))
    assert torch.allclose(interpolate(a, b, 0.5)["w"], torch.tensor([2.0, 0.0, 0.0, 0.4]))
    for alpha in (0, 0.3, 1):  # integer buffers (num_batches_tracked) come from the first state
        assert interpolate(a, b, alpha)["n"].item() == 3
    assert interpolate(a, b, 0)["w"] is not a["w"]  # a copy, not the caller's tensor


def test_interpolate_keeps_shared_zeros_and_identical_weights_exact():
    g = torch.Generator().manual_seed(0)
    keep = torch.rand(50, 20, generator=g) < 0.3
    a, b = torch.randn(50, 20, generator=g) * keep, torch.randn(50, 20, generator=g) * keep
    for alpha in torch.linspace(0, 1, 13).tolist():
        w = interpolate({"w": a}, {"w": b}, alpha)["w"]
        assert torch.all(w[~keep] == 0)
        assert torch.equal(interpolate({"w": a}, {"w": a}, alpha)["w"], a)  # no rounding drift


def test_interpolate_refuses_states_that_do_not_match():
    a = {"x": torch.zeros(2), "y": torch.zeros(3)}
    with pytest.raises(LTHError, match="'y'.*second"):
        interpolate(a, {"x": torch.zeros(2)}, 0.5)
    with pytest.raises(LTHError, match="'y'.*\\(3,\\).*\\(4,\\)"):
        interpolate(a, {"x": torch.zeros(2), "y": torch.zeros(4)}, 0.5)
    with pytest.raises(LTHError, match="'z'.*second state but not in the first"):
        interpolate(a, {**a, "z": torch.zeros(1)}, 0.5)
    with pytest.raises(LTHError, match="alpha"):
        interpolate(a, a, 1.5)


# ------------------------------------------------------------------------------ batchnorm recompute


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)
        self.conv2, self.bn2 = nn.Conv2d(4, 5, 3), nn.BatchNorm2d(5)
        self.fc, self.bn3 = nn.Linear(5 * 4 * 4, 6), nn.BatchNorm1d(6)

    def forward(self, x):
        h = torch.relu(self.bn1(self.conv1(x)))
        h = torch.relu(self.bn2(self.conv2(h)))
        return self.bn3(self.fc(h.flatten(1)))


def test_batch_indices_are_slices_of_seeded_permutations():
    perms = torch.Generator().manual_seed(5)
    p1, p2 = torch.randperm(10, generator=perms), torch.randperm(10, generator=perms)
    got = batch_indices(10, 4, 3, torch.Generator().manual_seed(5))  # 2 per permutation, 2 left over
    assert [b.tolist() for b in got] == [p1[:4].tolist(), p1[4:8].tolist(), p2[:4].tolist()]


def test_recompute_batchnorm_is_the_plain_average_of_batch_statistics():
    """Reference by hand: each layer's running mean is the mean over batches of its batch means, its
    running variance the mean of its unbiased batch variances (what PyTorch's BatchNorm stores), where
    the layers above normalise with the batch's own (biased) statistics, as in train mode."""
    torch.manual_seed(0)
    model, x = Tiny(), torch.randn(40, 3, 8, 8)
    with torch.no_grad():
        for m in (model.bn1, model.bn2, model.bn3):
            m.running_mean.fill_(7.0), m.running_var.fill_(9.0)  # stale statistics, to be discarded
            m.weight.uniform_(0.5, 1.5), m.bias.uniform_(-0.5, 0.5)
    model.train()
    batches = batch_indices(len(x), 16, 3, torch.Generator().manual_seed(1))  # 2 per permutation of 40

    def norm(h, bn, dims):
        mean, var = h.mean(dims, keepdim=True), h.var(dims, unbiased=False, keepdim=True)
        shape = mean.shape
        return (h - mean) / torch.sqrt(var + bn.eps) * bn.weight.view(shape) + bn.bias.view(shape)

    stats = {name: ([], []) for name in ("bn1", "bn2", "bn3")}
    with torch.no_grad():
        for idx in batches:
            h = model.conv1(x[idx])
            stats["bn1"][0].append(h.mean((0, 2, 3))), stats["bn1"][1].append(h.var((0, 2, 3)))
            h = model.conv2(torch.relu(norm(h, model.bn1, (0, 2, 3))))
            stats["bn2"][0].append(h.mean((0, 2, 3))), stats["bn2"][1].append(h.var((0, 2, 3)))
            h = model.fc(torch.relu(norm(h, model.bn2, (0, 2, 3))).flatten(1))
            stats["bn3"][0].append(h.mean(0)), stats["bn3"][1].append(h.var(0))

    returned = recompute_batchnorm(model, x, 16, 3, torch.Generator().manual_seed(1))
    assert returned is model and not model.training
    for name, (means, variances) in stats.items():
        bn = getattr(model, name)
        assert torch.allclose(bn.running_mean, torch.stack(means).mean(0), atol=1e-6), name
        assert torch.allclose(bn.running_var, torch.stack(variances).mean(0), atol=1e-5), name
        assert bn.momentum == 0.1 and bn.num_batches_tracked.item() == 3, name


def test_recompute_batchnorm_leaves_a_model_without_batchnorm_untouched():
    model = build_model("mlp1d", (40,), 10, seed=0, hidden=8).train()
    before = state(model)
    recompute_batchnorm(model, torch.randn(64, 40), 16, 2, torch.Generator().manual_seed(0))
    assert model.training
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


# -------------------------------------------------------------------------------------------- path


@pytest.mark.parametrize("kind", ["mlp1d", "resnet20"])
def test_identical_copies_have_a_barrier_of_exactly_zero(kind, data_dir):
    model, splits = setup(kind, data_dir)
    if kind == "resnet20":
        # the endpoint's own statistics are those path recomputes at interior points from the same batches
        recompute_batchnorm(model, splits.x_train, 32, 4, torch.Generator().manual_seed(3))
    a = state(model)
    rows = path(model, a, a, splits, points=5, bn_batches=4, batch_size=32, seed=3)
    assert [r["alpha"] for r in rows] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert all(r["test_error"] == rows[0]["test_error"] and r["test_loss"] == rows[0]["test_loss"] for r in rows)
    assert barrier([r["test_error"] for r in rows]) == 0.0
    assert stable(0.0)


def test_interior_points_recompute_batchnorm_from_the_same_batches(data_dir):
    model, splits = setup("resnet20", data_dir)  # running statistics of a fresh model: mean 0, variance 1
    a = state(model)
    rows = path(model, a, a, splits, points=4, bn_batches=3, batch_size=32, seed=7)
    own = evaluate(model, splits.x_test, splits.y_test)
    recompute_batchnorm(model, splits.x_train, 32, 3, torch.Generator().manual_seed(7))
    recomputed = evaluate(model, splits.x_test, splits.y_test)
    assert own != recomputed
    assert [(r["test_loss"], r["test_accuracy"]) for r in rows] == [own, recomputed, recomputed, own]


@pytest.mark.parametrize("kind", ["mlp1d", "resnet20"])
def test_endpoints_reproduce_each_runs_own_test_numbers(kind, data_dir):
    init, splits = setup(kind, data_dir)
    g = torch.Generator().manual_seed(0)
    mask = {n: torch.rand(m.shape, generator=g) < 0.5 for n, m in full_mask(init).items()}
    runs = []
    for data_seed in (1, 2):  # same init and mask, different SGD noise
        model, _ = setup(kind, data_dir)
        train(model, mask, splits, TRAINING, Segment(0, 20, lambda t: 0.05, data_seed=data_seed))
        runs.append(model)
    a, b = state(runs[0]), state(runs[1])
    assert not torch.equal(a[next(iter(mask))], b[next(iter(mask))])
    rows = path(init, a, b, splits, points=3, bn_batches=3, batch_size=32, mask=mask, val=True)
    for row, run in ((rows[0], runs[0]), (rows[-1], runs[1])):
        loss, acc = evaluate(run, splits.x_test, splits.y_test)
        assert (row["test_loss"], row["test_accuracy"], row["test_error"]) == (loss, acc, 1 - acc)
        assert row["val_accuracy"] == evaluate(run, splits.x_val, splits.y_val)[1]
    assert all(torch.equal(v, state(init)[k]) for k, v in setup(kind, data_dir)[0].state_dict().items())


def test_interior_points_are_the_networks_between_the_ends(data_dir):
    """Two different ends: every interior point is the network (1 - alpha) a + alpha b, evaluated here by
    hand (with plain arithmetic, not lerp: the same up to float rounding), not either end."""
    model, splits = setup("mlp1d", data_dir)
    a = state(model)
    train(model, full_mask(model), splits, TRAINING, Segment(0, 40, lambda t: 0.05, data_seed=1))
    b = state(model)
    rows = path(model, a, b, splits, points=5)
    ends = {evaluate(model, splits.x_test, splits.y_test)[0]}
    model.load_state_dict(a)
    ends.add(evaluate(model, splits.x_test, splits.y_test)[0])
    for row in rows[1:-1]:
        alpha = row["alpha"]
        model.load_state_dict({k: (1 - alpha) * a[k] + alpha * b[k] for k in a})
        loss, acc = evaluate(model, splits.x_test, splits.y_test)
        assert row["test_loss"] == pytest.approx(loss, rel=1e-5)
        assert row["test_accuracy"] == pytest.approx(acc, abs=2e-3)
        assert min(abs(row["test_loss"] - e) for e in ends) > 1e-3  # not an end
    assert barrier([r["test_error"] for r in rows]) == max(r["test_error"] for r in rows) - (
        rows[0]["test_error"] + rows[-1]["test_error"]) / 2


def test_path_refuses_endpoints_that_do_not_share_the_mask(data_dir):
    model, splits = setup("mlp1d", data_dir)
    a = state(model)
    mask = {"linear2.weight": torch.rand(a["linear2.weight"].shape, generator=torch.Generator().manual_seed(0)) < 0.5}
    b = {**a, "linear2.weight": a["linear2.weight"] * mask["linear2.weight"]}
    with pytest.raises(LTHError, match="first state has nonzero pruned weights in 'linear2.weight'"):
        path(model, a, b, splits, points=3, mask=mask)


def test_path_refuses_fewer_than_three_points(data_dir):
    model, splits = setup("mlp1d", data_dir)
    with pytest.raises(LTHError, match=r"^interpolation needs at least 3 points, got 2$"):
        path(model, state(model), state(model), splits, points=2)


# ----------------------------------------------------------------------------------------- barrier


def test_barrier_is_the_peak_error_over_the_mean_of_the_endpoints():
    errors = [0.10, 0.12, 0.30, 0.15, 0.20]
    assert barrier(errors) == pytest.approx(0.30 - 0.15)
    assert barrier([0.1, 0.05, 0.2]) == pytest.approx(0.2 - 0.15)  # the peak may be an endpoint
    assert stable(0.0199) and not stable(0.02) and not stable(0.15)
    with pytest.raises(LTHError, match="at least 3 points, got 2"):
        barrier([0.1, 0.2])
