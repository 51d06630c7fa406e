"""Iterative hard thresholding (lth.training.modes.iht) and recovery of a planted sparse ReLU network
(lth.training.modes.planted)."""

import pytest
import torch
from torch import nn

from lth.core.errors import LTHError
from lth.training.modes.iht import Projector, density_at, top_k
from lth.training.modes.planted import covering_generators, fit_iht, make_planted, min_separation, recovery

from conftest import tiny


def test_density_schedule_is_dense_then_cubic_then_constant():
    assert [density_at(t, 0.1, 10, 20) for t in (0, 5, 9)] == [1.0, 1.0, 1.0]
    assert density_at(10, 0.1, 10, 20) == pytest.approx(0.1 + 0.9 * (19 / 20) ** 3)  # first projection prunes
    assert density_at(19, 0.1, 10, 20) == pytest.approx(0.1 + 0.9 * 0.5**3)  # half-way
    assert density_at(29, 0.1, 10, 20) == pytest.approx(0.1)  # reached after `ramp` projections
    assert density_at(10_000, 0.1, 10, 20) == pytest.approx(0.1)
    assert density_at(0, 0.3, 0, 0) == density_at(7, 0.3, 0, 0) == 0.3  # plain IHT: the budget from step 0
    ds = [density_at(t, 0.05, 3, 40) for t in range(60)]
    assert all(a >= b for a, b in zip(ds, ds[1:]))
    with pytest.raises(LTHError, match=r"^IHT: final density must be in \(0, 1\], got 0.0$"):
        density_at(0, 0.0, 0, 0)


def _model():
    return nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 4))


def test_projector_keeps_exactly_k_per_layer_and_zeroes_the_rest():
    torch.manual_seed(0)
    model = _model()
    names = ["0.weight", "2.weight"]
    project = Projector(model, names, final_density=0.3)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    project(0)
    params = dict(model.named_parameters())
    for name in names:
        k = round(0.3 * params[name].numel())
        kept = project.mask[name]
        assert int(kept.sum()) == k == int((params[name] != 0).sum())
        assert torch.equal(params[name][~kept], torch.zeros(params[name].numel() - k))
        assert torch.equal(params[name][kept], before[name][kept])  # kept weights untouched
        assert before[name].abs()[kept].min() >= before[name].abs()[~kept].max()  # the largest ones
    assert torch.equal(params["0.bias"], before["0.bias"])  # not named: not projected


def test_global_projection_keeps_k_over_all_named_weights():
    model = _model()
    with torch.no_grad():
        model[0].weight.mul_(100.0)  # the first layer dominates the global ranking
    project = Projector(model, ["0.weight", "2.weight"], final_density=0.4, scope="global")
    project(0)
    counts = {n: int(m.sum()) for n, m in project.mask.items()}
    assert sum(counts.values()) == round(0.4 * (30 + 20))
    assert counts == {"0.weight": 20, "2.weight": 0}


def test_ties_keep_the_lower_flat_index_and_warmup_changes_nothing():
    assert top_k(torch.tensor([1.0, 2.0, 1.0, 1.0, 0.5]), 3).tolist() == [True, True, True, False, False]
    assert top_k(torch.zeros(4), 2).tolist() == [True, True, False, False]
    assert top_k(torch.ones(3), 0).tolist() == [False] * 3 and top_k(torch.ones(3), 5).all()
    model = _model()
    with torch.no_grad():
        model[0].weight.fill_(1.0)
    project = Projector(model, ["0.weight"], final_density=0.5, warmup=3, ramp=0)
    for t in range(3):
        project(t)
        assert torch.all(model[0].weight == 1.0) and project.mask["0.weight"].all()
    project(3)
    assert project.mask["0.weight"].flatten().tolist() == [True] * 15 + [False] * 15


def test_projection_is_a_function_of_the_weights_and_t_so_resume_is_exact():
    """A run resumed from a copy of its weights at step 12, with a fresh Projector, ends identically."""
    x, y = torch.randn(64, 6, generator=torch.Generator().manual_seed(1)), torch.randn(64, 4)

    def run(model, project, start, stop):
        for t in range(start, stop):
            model.zero_grad()
            nn.functional.mse_loss(model(x), y).backward()
            with torch.no_grad():
                for p in model.parameters():
                    p -= 0.1 * p.grad
            project(t)

    def fresh(model):
        return Projector(model, ["0.weight", "2.weight"], 0.2, warmup=5, ramp=15)

    torch.manual_seed(0)
    ref = _model()
    project = fresh(ref)
    run(ref, project, 0, 12)
    resumed = _model()
    resumed.load_state_dict(ref.state_dict())
    run(ref, project, 12, 30)
    other = fresh(resumed)
    run(resumed, other, 12, 30)
    for (name, a), b in zip(ref.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    assert all(torch.equal(project.mask[n], other.mask[n]) for n in project.mask)


def test_planted_generator_has_the_requested_support_and_is_deterministic():
    a = make_planted(3, 100, 50, dim=20, hidden=10, density=0.1)
    b = make_planted(3, 100, 50, dim=20, hidden=10, density=0.1)
    c = make_planted(4, 100, 50, dim=20, hidden=10, density=0.1)
    assert int(a["support"].sum()) == int((a["W"] != 0).sum()) == 20
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["support"], c["support"])
    assert a["W"][a["support"]].abs().min() >= 0.5
    assert min_separation(a["W"]) >= 0.25
    assert torch.allclose(a["y_train"], torch.relu(a["x_train"] @ a["W"].T) @ a["v"])
    assert a["x_train"].shape == (100, 20) and a["y_test"].shape == (50,)


def test_iht_recovers_a_planted_network_exactly():
    """The theorem's setting (arXiv:2509.20323): Gaussian inputs, scalar output, noiseless, the planted
    activation patterns well separated and covered by the generators (plus as many random decoys), and
    n = 1000 samples for s = 20 of p d = 400 weights: far into the n >> s log(p d / s) ~ 60 regime of
    sparse recovery (the theorem's constants are not checked). Support exact, every weight within 1e-4."""
    data = make_planted(0, n_train=1000, n_test=500, dim=20, hidden=10, density=0.1)
    fit = fit_iht(data, density=0.1, steps=3000, generators=covering_generators(data, decoys=10, seed=0))
    r = recovery(fit["W"], fit["mask"], data["W"])
    assert r["support_recovered"] and r["support_overlap"] == 1.0
    assert r["weight_error"] < 1e-4 and fit["test_rmse"] < 1e-4
    assert int((fit["W"] != 0).sum()) == 20  # 20 units wide, only the 20 planted weights nonzero


def test_recovery_matches_permuted_units_and_reports_errors():
    W = torch.tensor([[1.0, 0.0, -2.0], [0.0, 3.0, 0.0]])
    student = torch.stack([torch.zeros(3), W[1], W[0] + torch.tensor([0.0, 0.0, 0.5])])
    r = recovery(student, student != 0, W)
    assert r["support_recovered"] and r["weight_error"] == pytest.approx(0.5)
    assert r["permutation"][:2] == [2, 1]
    wrong = student.clone()
    wrong[0, 0] = 0.1  # an extra weight in an unmatched unit
    r = recovery(wrong, wrong != 0, W)
    assert not r["support_recovered"] and r["support_overlap"] == pytest.approx(3 / 4)


def test_iht_in_the_training_loop_leaves_exactly_k_weights_per_layer(data_dir):
    from lth.data.splits import load_splits
    from lth.models import build_model
    from lth.plan.settings import resolve
    from lth.pruning.masks import full_mask, layer_kinds
    from lth.training.loop import Segment, train

    training = resolve(tiny()).training
    splits = load_splits("mnist1d", data_dir, val_size=500)
    model = build_model("mlp1d", (40,), 10, seed=0, hidden=32)
    names = list(layer_kinds(model))
    project = Projector(model, names, final_density=0.2, warmup=50, ramp=100)
    masks = []

    def enforce(t):
        project(t)
        masks.append(project.mask)

    train(model, full_mask(model), splits, training, Segment(0, 200, lambda t: 0.01, data_seed=0), enforce=enforce)
    params = dict(model.named_parameters())
    for name in names:
        k = round(0.2 * params[name].numel())
        assert int((params[name] != 0).sum()) == int(project.mask[name].sum()) == k, name
    total = sum(params[n].numel() for n in names)
    assert sum(int(project.mask[n].sum()) for n in names) / total == pytest.approx(0.2, abs=1e-3)
    # IHT, not a fixed mask: weights pruned at the end of the ramp came back later
    end_of_ramp = masks[149]["linear2.weight"]
    assert (~end_of_ramp & masks[-1]["linear2.weight"]).any()
