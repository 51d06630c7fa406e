"""Sparse linear problems with a known support and their lasso / dense references (lth.data.sparse_linear)."""

import re

import pytest
import torch

from lth.analyses.lasso import dense_reference, lasso_reference, support_metrics
from lth.core.errors import LTHError
from lth.data.sparse_linear import DEFAULTS, check_options, facts, ground_truth, make_sparse_linear


def _data(**options):
    return make_sparse_linear("sparse_linear", None, False, options)


def _split(d):
    return d["x_train"], d["y_train"], d["x_test"], d["y_test"]


def test_ground_truth_has_exactly_the_asked_support_bounded_away_from_zero_and_is_seeded():
    for dim, support in ((100, 10), (7, 7), (50, 1)):
        beta = ground_truth({"dim": dim, "support": support, "seed": 3})
        assert beta.dtype == torch.float64 and beta.shape == (dim,)
        assert int((beta != 0).sum()) == support
        assert bool(((beta.abs() >= 1) & (beta.abs() <= 2))[beta != 0].all())
    assert torch.equal(ground_truth({"seed": 1}), ground_truth({"seed": 1}))
    assert not torch.equal(ground_truth({"seed": 1}), ground_truth({"seed": 2}))
    assert not torch.equal(ground_truth({}) != 0, ground_truth({"seed": 2}) != 0)  # positions are seeded too
    assert torch.equal(ground_truth({"n_train": 50}), ground_truth({}))  # beta* depends on seed, dim, support only


def test_generator_shapes_dtypes_noise_and_determinism():
    d = _data(n_train=30, n_test=20, dim=8, support=3)
    assert d["x_train"].shape == (30, 8) and d["x_test"].shape == (20, 8) and d["x_train"].dtype == torch.float32
    assert d["y_train"].shape == (30,) and d["y_train"].dtype == torch.float32
    again = _data(n_train=30, n_test=20, dim=8, support=3)
    assert all(torch.equal(d[k], again[k]) for k in d)
    assert not torch.equal(d["x_train"], _data(n_train=30, n_test=20, dim=8, support=3, seed=1)["x_train"])
    assert not torch.equal(d["x_train"][:20], d["x_test"])  # train and test are separate draws
    assert torch.equal(_data(n_train=30, n_test=5, dim=8, support=3)["x_train"], d["x_train"])  # own streams
    beta = ground_truth({"dim": 8, "support": 3})
    clean = _data(n_train=30, n_test=20, dim=8, support=3, noise=0.0)
    assert torch.equal(clean["y_train"], (clean["x_train"].double() @ beta).float())
    big = _data(n_train=4000, n_test=1, dim=8, support=3, noise=0.5)
    residual = big["y_train"].double() - big["x_train"].double() @ beta
    assert residual.std().item() == pytest.approx(0.5, rel=0.05)


def test_logistic_labels_are_binary_balanced_deterministic_and_noiseless_at_zero_noise():
    d = _data(task="logistic", n_train=2000, n_test=500)
    assert d["y_train"].dtype == torch.int64 and set(d["y_train"].tolist()) == {0, 1}
    assert 0.45 < d["y_train"].float().mean().item() < 0.55 and 0.4 < d["y_test"].float().mean().item() < 0.6
    assert torch.equal(d["y_train"], _data(task="logistic", n_train=2000, n_test=500)["y_train"])
    beta = ground_truth({})
    clean = _data(task="logistic", noise=0.0, n_train=200, n_test=10)
    assert torch.equal(clean["y_train"], (clean["x_train"].double() @ beta > 0).long())
    noisy = _data(task="logistic", noise=1.0, n_train=200, n_test=10)  # Bernoulli(sigmoid(x . beta))
    flipped = (noisy["y_train"] != (noisy["x_train"].double() @ beta > 0).long()).float().mean().item()
    assert 0.02 < flipped < 0.25


@pytest.mark.parametrize("options, message", [
    ({"support": 200}, "support 200 is larger than the dimension 100"),
    ({"support": 0}, "support must be an integer >= 1, got 0"),
    ({"dim": 0, "support": 1}, "dim must be an integer >= 1, got 0"),
    ({"n_train": 0}, "n_train must be an integer >= 1, got 0"),
    ({"n_test": 2.5}, "n_test must be an integer >= 1, got 2.5"),
    ({"noise": -0.1}, "noise must be a finite number >= 0, got -0.1"),
    ({"noise": float("nan")}, "noise must be a finite number >= 0"),
    ({"task": "poisson"}, "task must be one of 'regression', 'logistic', got 'poisson'"),
    ({"seed": True}, "seed must be an integer, got True"),
    ({"rank": 3}, "unknown option(s) ['rank']"),
])
def test_bad_options_are_refused_in_one_line(options, message):
    with pytest.raises(LTHError) as e:
        check_options(options, "dataset 'sparse_linear'")
    assert message in str(e.value) and "\n" not in str(e.value) and str(e.value).startswith("dataset 'sparse_linear'")
    with pytest.raises(LTHError, match=re.escape(message)):
        _data(**options)


def test_defaults_are_valid_and_facts_follow_the_options():
    check_options({})
    assert facts({}) == {"input_shape": (DEFAULTS["dim"],), "num_classes": 1, "train_size": DEFAULTS["n_train"]}
    assert facts({"dim": 7, "task": "logistic", "n_train": 9}) == {"input_shape": (7,), "num_classes": 2,
                                                                     "train_size": 9}


def test_support_metrics_on_hand_examples():
    beta = torch.tensor([0.0, 1.5, 0.0, -2.0])
    assert support_metrics(torch.tensor([0.0, 0.1, 0.0, -3.0]), beta) == {
        "exact": True, "precision": 1.0, "recall": 1.0, "support_size": 2, "true_positives": 2}
    m = support_metrics([1.0, 1.0, 0.0, 0.0], beta)  # one right, one wrong, one missed
    assert (m["exact"], m["precision"], m["recall"], m["support_size"]) == (False, 0.5, 0.5, 2)
    m = support_metrics(torch.zeros(4), beta)
    assert (m["exact"], m["precision"], m["recall"], m["support_size"]) == (False, 0.0, 0.0, 0)
    m = support_metrics(torch.ones(4), beta)
    assert (m["precision"], m["recall"], m["support_size"]) == (0.5, 1.0, 4)
    assert support_metrics([0.0, 1e-9, 0.0, 1.0], beta, tol=1e-6)["exact"] is False  # 1e-9 counts as zero
    with pytest.raises(LTHError, match=r"^support_metrics: w has 3 entries, beta 4$"):
        support_metrics(torch.ones(3), beta)


def test_lasso_at_k_equal_support_recovers_the_true_support_regression():
    options = {"n_train": 300, "dim": 60, "support": 5, "noise": 0.5}  # n >> s log d ~ 20
    beta = ground_truth(options)
    r = lasso_reference(*_split(_data(**options)), k=5)
    assert r["exact_k"] and r["nonzeros"] == 5 and r["weights"].shape == (60,)
    assert support_metrics(r["weights"], beta)["exact"]
    assert r["refit_test_error"] <= r["test_error"]  # no shrinkage once the support is right
    assert r["refit_test_error"] == pytest.approx(0.25, rel=0.3)
    assert support_metrics(r["refit_weights"], beta)["exact"]
    sparser = lasso_reference(*_split(_data(**options)), k=2)
    assert sparser["nonzeros"] == 2 and support_metrics(sparser["weights"], beta)["precision"] == 1.0
    assert lasso_reference(*_split(_data(**options)), k=0)["nonzeros"] == 0
    with pytest.raises(LTHError, match=r"^lasso_reference: k must be an integer in 0..60, got 61$"):
        lasso_reference(*_split(_data(**options)), k=61)


def test_lasso_at_k_equal_support_recovers_the_true_support_logistic():
    options = {"task": "logistic", "n_train": 400, "dim": 40, "support": 4, "noise": 1.0}
    beta = ground_truth(options)
    r = lasso_reference(*_split(_data(**options)), k=4, task="logistic")
    assert r["nonzeros"] == 4 and support_metrics(r["weights"], beta)["exact"]
    assert 0 <= r["refit_test_error"] < 0.25 and "C" in r


def test_dense_reference_reaches_the_noise_floor_when_n_is_much_larger_than_dim():
    d = _data(n_train=2000, n_test=2000, dim=20, support=4, noise=0.5)
    r = dense_reference(*_split(d))
    # E[test MSE] = noise^2 (1 + dim / (n - dim - 1)) ~ 0.255
    assert r["nonzeros"] == 20 and r["test_error"] == pytest.approx(0.25, rel=0.1)
    assert (r["weights"] - ground_truth({"dim": 20, "support": 4})).abs().max() < 0.1


def test_dense_reference_is_the_minimum_norm_interpolator_when_dim_exceeds_n():
    d = _data(n_train=20, n_test=50, dim=60, support=3)
    r = dense_reference(*_split(d))
    x, y = d["x_train"].double(), d["y_train"].double()
    assert r["train_error"] < 1e-10
    assert torch.allclose(r["weights"], torch.linalg.pinv(x) @ y, atol=1e-8)


def test_dense_logistic_reference_classifies_well():
    d = _data(task="logistic", n_train=1000, n_test=1000, dim=20, support=4)
    r = dense_reference(*_split(d), task="logistic")
    assert r["test_error"] < 0.1 and r["weights"].shape == (20,)
