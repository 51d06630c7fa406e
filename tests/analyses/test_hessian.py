"""The `hessian` analysis (lth.analyses.hessian, lth.analyses.spectrum) against the explicit Hessian of
torch.autograd.functional.hessian on a small float64 network restricted to its unpruned weights: top
eigenvalues, the trace estimator, the quadrature's moments; the config checks; a tiny experiment's table."""

import json

import pytest
import torch
from torch import nn
from torch.func import functional_call

from lth.analyses import hessian, spectrum
from lth.core.errors import LTHError

SETTINGS = {"top_k": 3, "lanczos_steps": 200, "trace_samples": 50, "slq_runs": 3, "examples": 64,
            "subset_seed": 0, "dtype": "float64", "levels": None, "variants": None}


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def small_problem(seed=0):
    """A float64 MLP 5-6-3 (tanh: a curved loss), a mask pruning about half of its weights, a batch."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 3)).double()
    mask = {n: torch.rand(p.shape, generator=g) < 0.5 for n, p in model.named_parameters() if n.endswith("weight")}
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n in mask:
                p.mul_(mask[n])
    x = torch.randn(40, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (40,), generator=g)
    return model, mask, x, y


def explicit_hessian(model, mask, x, y):
    """The reference: torch.autograd.functional.hessian of the loss as a function of the kept entries only."""
    names = [n for n, _ in model.named_parameters()]
    base = {n: p.detach().clone() for n, p in model.named_parameters()}
    keep = {n: mask.get(n, torch.ones_like(base[n], dtype=torch.bool)) for n in names}
    sizes = [int(keep[n].sum()) for n in names]

    def loss(theta):
        params, at = {}, 0
        for n, k in zip(names, sizes):
            full = torch.zeros(base[n].numel(), dtype=theta.dtype)
            full = full.index_put((keep[n].reshape(-1).nonzero().squeeze(1),), theta[at:at + k])
            params[n] = full.reshape(base[n].shape)
            at += k
        return nn.functional.cross_entropy(functional_call(model, params, (x,)), y)

    theta = torch.cat([base[n].reshape(-1)[keep[n].reshape(-1)] for n in names])
    return torch.autograd.functional.hessian(loss, theta)


def test_products_equal_the_explicit_restricted_hessian():
    model, mask, x, y = small_problem()
    h = explicit_hessian(model, mask, x, y)
    hvp, n, _ = hessian.restricted_hvp(model, mask, x, y, "classification")
    assert n == h.shape[0] == 6 + 3 + sum(int(m.sum()) for m in mask.values())
    v = torch.randn(n, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    torch.testing.assert_close(hvp(v), h @ v, rtol=0, atol=1e-10)


def test_top_eigenvalues_equal_the_explicit_spectrum():
    model, mask, x, y = small_problem()
    h = explicit_hessian(model, mask, x, y)
    hvp, n, _ = hessian.restricted_hvp(model, mask, x, y, "classification")
    want = torch.linalg.eigvalsh(h).flip(0)[:4]
    got = spectrum.top_eigenvalues(hvp, n, 4, n, torch.Generator().manual_seed(0))
    assert got == pytest.approx(want.tolist(), abs=1e-6)
    # fewer steps than parameters: the largest eigenvalue converges first
    few = spectrum.top_eigenvalues(hvp, n, 1, n // 2, torch.Generator().manual_seed(1))
    assert few[0] == pytest.approx(float(want[0]), abs=1e-6)


def test_hutchinson_is_the_probes_mean_of_the_explicit_quadratic_form_and_near_the_trace():
    model, mask, x, y = small_problem()
    h = explicit_hessian(model, mask, x, y)
    hvp, n, _ = hessian.restricted_hvp(model, mask, x, y, "classification")
    trace, se = spectrum.hutchinson_trace(hvp, n, 400, torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)  # the same probes, through the explicit matrix
    probes = [torch.randint(0, 2, (n,), generator=g).double() * 2 - 1 for _ in range(400)]
    assert trace == pytest.approx(sum(float(v @ h @ v) for v in probes) / 400, abs=1e-6)
    assert abs(trace - float(torch.trace(h))) < 4 * se and se > 0


def test_slq_density_integrates_to_one_and_its_moments_match_the_spectrum():
    model, mask, x, y = small_problem()
    h = explicit_hessian(model, mask, x, y)
    hvp, n, _ = hessian.restricted_hvp(model, mask, x, y, "classification")
    eig = torch.linalg.eigvalsh(h)
    # one probe, m steps: Gauss quadrature is exact for v^T H^p v, p <= 2m - 1
    g = torch.Generator().manual_seed(2)
    v = torch.randn(n, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    nodes, weights = spectrum.slq_density(hvp, n, 1, 6, g)
    assert float(weights.sum()) == pytest.approx(1, abs=1e-12)
    u = v / v.norm()
    for p in range(1, 12):
        want = float(u @ torch.linalg.matrix_power(h, p) @ u)
        assert float((weights * nodes**p).sum()) == pytest.approx(want, abs=1e-6 * max(1.0, abs(want)))
    # n steps: the nodes are the eigenvalues; many probes: the moments approach tr(H^p) / n
    nodes, weights = spectrum.slq_density(hvp, n, 100, n, torch.Generator().manual_seed(4))
    for p in (1, 2):
        want = float((eig**p).mean())
        assert float((weights * nodes**p).sum()) == pytest.approx(want, rel=0.1)
    grid = torch.linspace(float(eig.min()) - 1, float(eig.max()) + 1, 2001)
    density = spectrum.smooth(nodes, weights, grid, sigma=0.05)
    assert float(torch.trapezoid(density, grid)) == pytest.approx(1, abs=1e-6)


def test_spectrum_row_and_its_dtype():
    model, mask, x, y = small_problem()
    row = hessian.spectrum(model, mask, x, y, "classification", SETTINGS)
    h = explicit_hessian(model, mask, x, y)
    assert row["top_eigenvalue"] == pytest.approx(float(torch.linalg.eigvalsh(h)[-1]), abs=1e-6)
    assert [row[f"eigenvalue_{i}"] for i in (1, 2, 3)] == sorted([row[f"eigenvalue_{i}"] for i in (1, 2, 3)],
                                                                 reverse=True)
    assert sum(w for _, w in json.loads(row["density"])) == pytest.approx(1, abs=1e-6)
    with pytest.raises(LTHError, match="top_k: 50 exceeds this network's"):
        hessian.spectrum(model, mask, x, y, "classification", {**SETTINGS, "top_k": 50})


HESSIAN = {"variants": ["ticket", "reinit"], "pruning": {"levels": 2}, "analyses": ["hessian"],
           "training": {"iterations": 20, "eval_every": 10}, "model": {"name": "mlp1d", "options": {"hidden": 8}},
           "hessian": {"top_k": 2, "lanczos_steps": 12, "trace_samples": 5, "slq_runs": 2, "examples": 200}}


@pytest.mark.parametrize("change, message", [
    ({"lanczos_steps": 0}, "hessian.lanczos_steps: 0 is less than the minimum of 1"),
    ({"top_k": 13}, "hessian.top_k: 13 exceeds lanczos_steps = 12"),
    ({"top_k": 2000, "lanczos_steps": 2000}, "hessian.top_k: 2000 exceeds the 1.* unpruned parameters planned at "
                                             "level 2"),
    ({"levels": [3]}, "hessian.levels: [3] beyond pruning.levels = 2"),
    ({"variants": ["lr_rewind"]}, "hessian.variants: ['lr_rewind'] not run by this experiment"),
])
def test_bad_hessian_settings_are_one_line_at_config_load(change, message):
    from conftest import tiny

    from lth.plan import plan_of

    settings = tiny({**HESSIAN, "hessian": {**HESSIAN["hessian"], **change}})
    with pytest.raises(LTHError, match=message.replace("[", r"\[").replace("]", r"\]")) as e:
        plan_of("x", settings, "/tmp/nowhere")
    assert "\n" not in str(e.value)


def test_planned_parameters_are_the_pruned_networks_own_count(context):
    """The check's count (from shapes and rates) equals the count of the masks the jobs make."""
    from lth.plan.layout import RunKey
    from lth.pruning import masks

    ctx = context(HESSIAN)
    for job in ctx.plan.jobs():
        ctx.run(job)
    model = ctx.new_model(0)
    mask = ctx.load(ctx.plan.layout.mask(RunKey(0, 2, "ticket")), "cpu")
    unprunable = sum(p.numel() for n, p in model.named_parameters() if n not in mask)
    planned = hessian.planned_parameters(ctx.plan.settings.thaw(), [2])
    assert planned == (2, unprunable + sum(masks.counts(mask).values()))


def test_a_tiny_experiment_s_table_and_figure(context):
    import pandas as pd

    from lth.analyses import run

    ctx = context(HESSIAN)
    for job in ctx.plan.jobs():
        ctx.run(job)
    table = pd.read_csv(run(ctx.plan, "hessian"))
    got = sorted(zip(table["level"], table["variant"]))
    assert got == sorted([(0, "dense"), *[(lv, v) for lv in (1, 2) for v in ("ticket", "reinit")]])
    assert (table["eigenvalue_1"] >= table["eigenvalue_2"]).all() and (table["parameters"] > 0).all()
    dense = table[table["level"] == 0].iloc[0]
    assert dense["parameters"] == sum(p.numel() for p in ctx.new_model(0).parameters())
    assert (table.loc[table["level"] == 2, "parameters"] < dense["parameters"]).all()
    fig = hessian.figure(table)
    assert len(fig.axes) == 3 and "Hessian" in hessian.caption(table)
    assert len(hessian.overview(table)) == len(table)
