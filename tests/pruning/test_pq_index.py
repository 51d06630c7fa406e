"""The PQ Index and SAP (lth.pruning.sap, lth.pruning.select.sap, lth.analyses.pq_index) against the
formulas of Diao et al. 2023 written out here with numpy, on hand-made vectors and a fixed index sequence."""

import math

import numpy as np
import pytest
import torch

from lth.core.errors import LTHError
from lth.pruning import select
from lth.pruning.sap import pq_index, sap_keep_bound, sap_remove


def reference_index(w, p, q):
    w = np.abs(np.asarray(w, dtype=float))
    d = len(w)
    return 1 - d ** (1 / q - 1 / p) * (w**p).sum() ** (1 / p) / (w**q).sum() ** (1 / q)


@pytest.mark.parametrize("p, q", [(0.5, 1.0), (1.0, 2.0), (0.25, 3.0)])
def test_the_index_of_hand_made_vectors(p, q):
    assert pq_index(torch.full((7,), -0.3), p, q) == pytest.approx(0, abs=1e-12)  # equal entries
    one_hot = torch.zeros(10)
    one_hot[3] = 2.5
    top = 1 - 10 ** (1 / q - 1 / p)
    assert pq_index(one_hot, p, q) == pytest.approx(top, abs=1e-12)  # the largest value for d = 10
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        w = torch.randn(10, generator=g) * torch.rand(10, generator=g) ** 3
        got = pq_index(w, p, q)
        assert got == pytest.approx(reference_index(w.numpy(), p, q), abs=1e-12)
        assert -1e-12 <= got <= top + 1e-12
    # by hand, p = 0.5, q = 1, w = (1, 4): ||w||_0.5 = (1 + 2)^2 = 9, ||w||_1 = 5, d^(1 - 2) = 1/2
    assert pq_index(torch.tensor([1.0, -4.0]), 0.5, 1.0) == pytest.approx(1 - 0.5 * 9 / 5)


def test_sap_amounts_follow_the_formula_on_a_fixed_index_sequence():
    p, q, eta, gamma, beta = 0.5, 1.0, 0.001, 1.2, 0.9
    d = 10000
    for index in (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.8, 0.99):
        r = math.ceil(d * (1 + eta) ** (q / (p - q)) * (1 - index) ** (q * p / (q - p)))
        want = math.floor(d * min(max(gamma * (1 - r / d), 0), beta))
        assert sap_keep_bound(index, d, p, q, eta) == r
        assert sap_remove(index, d, p, q, eta, gamma, beta) == want
        d -= want
    assert sap_remove(0.99, 1000, p, q, eta, gamma, beta) == 900  # capped at beta
    assert sap_remove(0.0, 1000, p, q, 0.0, gamma, beta) == 0  # equal magnitudes, eta 0: nothing to remove


SAP = {"p": 0.5, "q": 1.0, "eta_r": 0.001, "gamma": 1.2, "beta": 0.9}


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_the_sap_selection_removes_that_many_lowest_scores(scope):
    g = torch.Generator().manual_seed(1)
    scores = {"a.weight": torch.rand(20, 30, generator=g) ** 4, "b.weight": torch.rand(10, 20, generator=g)}
    mask = {n: torch.rand(s.shape, generator=g) < 0.8 for n, s in scores.items()}
    new = select.sap(scores, mask, {"sap": {**SAP, "scope": scope}}, {"a.weight": "fc", "b.weight": "output"})
    groups = [list(mask)] if scope == "global" else [[n] for n in mask]
    for names in groups:
        alive = torch.cat([scores[n][mask[n]] for n in names])
        removed = sum(int(mask[n].sum() - new[n].sum()) for n in names)
        assert removed == sap_remove(pq_index(alive, 0.5, 1.0), alive.numel(), **SAP) > 0
        kept = torch.cat([scores[n][new[n]] for n in names])
        gone = torch.cat([scores[n][mask[n] & ~new[n]] for n in names])
        assert gone.max() <= kept.min()
    assert all(not (new[n] & ~mask[n]).any() for n in mask)  # nothing pruned comes back


def test_p_not_below_q_is_one_line_at_config_load():
    from conftest import tiny

    from lth.plan import plan_of

    bad = tiny({"pruning": {"strategy": "sap", "levels": 2, "sap": {"p": 1.0, "q": 1.0}}})
    with pytest.raises(LTHError, match=r"pruning.sap: p = 1.0 must be below q = 1.0"):
        plan_of("x", bad, "/tmp/nowhere")
    bad = tiny({"analyses": ["pq_index"], "pq_index": {"p": 2.0, "q": 1.0}})
    with pytest.raises(LTHError, match=r"pq_index: p = 2.0 must be below q = 1.0"):
        plan_of("x", bad, "/tmp/nowhere")


def test_imp_with_sap_and_the_pq_index_table(context):
    import pandas as pd

    from lth.analyses import pq_index as analysis
    from lth.analyses import run
    from lth.plan.layout import RunKey
    from lth.pruning import masks

    ctx = context({"pruning": {"strategy": "sap", "levels": 2}, "variants": ["ticket"], "analyses": ["pq_index"],
                   "training": {"iterations": 20, "eval_every": 10}})
    for job in ctx.plan.jobs():
        ctx.run(job)
    table = pd.read_csv(run(ctx.plan, "pq_index"))
    whole = table[table["layer"] == "all"].sort_values("level")
    assert list(whole["level"]) == [0, 1, 2]
    # each round removed what SAP's formula gives for the previous level's trained weights
    for level in (1, 2):
        before = whole[whole["level"] == level - 1].iloc[0]
        d = int(before["d"])
        mask = ctx.load(ctx.plan.layout.mask(RunKey(0, level, "ticket")), "cpu")
        assert d - sum(masks.counts(mask).values()) == sap_remove(before["pq_index"], d, **SAP)
    weights = ctx.load(ctx.plan.layout.final(RunKey(0, 1, "ticket")), "cpu")
    mask = ctx.load(ctx.plan.layout.mask(RunKey(0, 1, "ticket")), "cpu")
    row = table[(table["level"] == 1) & (table["layer"] == "all")].iloc[0]
    kept = np.concatenate([weights[n][m].numpy() for n, m in mask.items()])
    assert row["pq_index"] == pytest.approx(reference_index(kept, 0.5, 1.0), abs=1e-9)
    assert len(analysis.figure(table).axes) == 2 and "PQ Index" in analysis.caption(table)
