"""The `inference` analysis (lth.analyses.inference): FLOPs and parameters against hand counts, the sparse
CSR model against the masked one, its memory against the CSR layout by hand, and the table, figure and
caption of a tiny trained experiment."""

import pandas as pd
import pytest
import torch

from lth.analyses import inference
from lth.models import build_model
from lth.plan.layout import RunKey
from lth.pruning import masks


def _random_mask(model, density, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {n: torch.rand(m.shape, generator=g) < density for n, m in masks.full_mask(model).items()}


def test_flops_count_each_kept_weight_once_per_output_position():
    model = build_model("conv2", (1, 8, 8), 10, seed=0)  # conv 1->64, 64->64 on 8x8, pool to 4x4, fc 1024-256-256-10
    mask = _random_mask(model, 0.3)
    got = inference.counts(model, mask, (1, 8, 8))
    kept = {n: int(m.sum()) for n, m in mask.items()}
    positions = {"features.0.weight": 64, "features.2.weight": 64, "fc1.weight": 1, "fc2.weight": 1, "fc3.weight": 1}
    sizes = {"features.0.weight": 64 * 9, "features.2.weight": 64 * 64 * 9, "fc1.weight": 256 * 1024,
             "fc2.weight": 256 * 256, "fc3.weight": 10 * 256}
    assert got["flops"] == sum(sizes[n] * positions[n] for n in sizes)
    assert got["flops_kept"] == sum(kept[n] * positions[n] for n in sizes)
    params = sum(p.numel() for p in model.parameters())
    assert got["params"] == params and got["params_kept"] == params - sum(sizes[n] - kept[n] for n in sizes)


def test_the_sparse_model_computes_the_masked_model_s_logits_and_stores_the_csr_layout():
    model = build_model("lenet_300_100", (40,), 10, seed=0)
    mask = _random_mask(model, 0.1)
    masks.apply_mask(model, mask)
    sparse = inference.sparse_model(model, mask)
    assert all(isinstance(getattr(sparse, n), inference.SparseLinear) for n in ("fc1", "fc2", "fc3"))
    x = torch.randn(32, 40, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(sparse(x), model(x), rtol=1e-5, atol=1e-5)
    dense_bytes = sum(p.numel() * 4 for p in model.parameters())
    # CSR: a value (4 bytes) and a column (8) per kept weight, a row pointer (8) per row, instead of 4 per weight
    csr = sum(12 * int(mask[f"{n}.weight"].sum()) + 8 * (getattr(model, n).out_features + 1)
              - 4 * mask[f"{n}.weight"].numel() for n in ("fc1", "fc2", "fc3"))
    assert inference.nbytes(sparse) == dense_bytes + csr and inference.nbytes(model) == dense_bytes


def test_a_tiny_experiment_s_table_covers_dense_and_every_ticket_with_ratios_to_dense(context):
    ctx = context({"training": {"iterations": 20, "eval_every": 10}, "variants": ["ticket"], "seeds": [0, 1],
                   "analyses": ["inference"], "inference": {"repeats": 2, "warmup": 0, "batches": [1, 8]}})
    for job in ctx.plan.jobs():
        ctx.run(job)
    rows = inference.compute(ctx.plan)
    table = pd.DataFrame(rows)
    assert set(table["seed"]) == {0}  # the first seed only
    got = sorted(zip(table["level"], table["implementation"], table["batch"]))
    assert got == sorted([(0, "dense", b) for b in (1, 8)] + [(lv, impl, b) for lv in (1, 2)
                                                              for impl in ("masked", "sparse_csr") for b in (1, 8)])
    assert (table["latency_ms"] > 0).all() and (table["repeats"] == 2).all() and (table["threads"] >= 1).all()
    dense = table[table["implementation"] == "dense"]
    assert (dense["latency_ratio"] == 1).all() and (dense["weights_remaining"] == 1).all()
    for r in table.itertuples():
        base = dense[dense["batch"] == r.batch].iloc[0]
        assert r.latency_ratio == pytest.approx(r.latency_ms / base.latency_ms)
        assert r.memory_ratio == pytest.approx(r.memory_bytes / base.memory_bytes)
    masked = table[table["implementation"] == "masked"]
    assert (masked["memory_ratio"] == 1).all()  # the zeros are stored: what masking buys at inference
    assert (table.loc[table["implementation"] == "sparse_csr", "max_abs_logit_diff"] < 1e-4).all()
    ticket = table[(table["level"] == 2)].iloc[0]
    mask = ctx.load(ctx.plan.layout.mask(RunKey(0, 2, "ticket")), "cpu")
    assert ticket["weights_remaining"] == pytest.approx(masks.density(mask))
    assert ticket["flops_kept"] == sum(int(m.sum()) for m in mask.values())  # an MLP: each weight once
    fig = inference.figure(table)
    assert len(fig.axes) == 2 and "sparse CSR" in inference.caption(table)
    assert len(inference.overview(table)) == len(table)
