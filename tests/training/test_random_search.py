"""Random search for sparse configurations (lth.training.modes.random_search): sampled per-layer counts
meet the density exactly, and a sweep's run keeps the candidate with the best validation accuracy."""

import pytest
import torch

from lth.core.errors import LTHError
from lth.training.modes.random_search import FILE, sample_counts


def test_samples_meet_the_count_exactly_within_every_layer_s_size():
    g = torch.Generator().manual_seed(0)
    for trial in range(200):
        sizes = {f"l{i}.weight": int(n) for i, n in enumerate(torch.randint(1, 500, (int(torch.randint(1, 6, ())),),
                                                                                generator=g))}
        total = sum(sizes.values())
        keep = int(torch.randint(len(sizes), total + 1, (), generator=g))
        counts = sample_counts(sizes, keep, g, min_per_layer=1)
        assert sum(counts.values()) == keep, (sizes, keep, counts)
        assert all(1 <= counts[n] <= sizes[n] for n in sizes)
    draws = {tuple(sample_counts({"a": 100, "b": 100, "c": 100}, 60, g).values()) for _ in range(20)}
    assert len(draws) > 10  # the densities do vary
    with pytest.raises(LTHError, match="cannot keep 2 weights"):
        sample_counts({"a": 3, "b": 3, "c": 3}, 2, g, min_per_layer=1)


SEARCH = {"kind": "oneshot", "training": {"iterations": 30, "eval_every": 10},
          "oneshot": {"densities": [0.2], "methods": {
              "rs": {"train": "random_search", "random_search": {"budget": 3, "iterations": 10}}}}}


def test_a_sweep_keeps_the_best_candidate_at_the_exact_density(context):
    from lth.core.files import read_json
    from lth.plan.layout import RunKey
    from lth.pruning import masks
    from lth.store import artifacts

    ctx = context(SEARCH)
    for job in ctx.plan.jobs():
        ctx.run(job)
    key = RunKey(0, 2000, "rs")
    mask = artifacts.load_tensors(ctx.plan.layout.mask(key))
    weights = artifacts.load_tensors(ctx.plan.layout.final(key))
    total = sum(m.numel() for m in mask.values())
    assert sum(masks.counts(mask).values()) == round(0.2 * total)
    log = read_json(ctx.plan.layout.metrics(key).parent / FILE)
    assert len(log["candidates"]) == 3 and log["keep"] == round(0.2 * total)
    best = max(log["candidates"], key=lambda c: (c["val_accuracy"], -c["candidate"]))
    assert log["best"] == best["candidate"] and masks.counts(mask) == best["counts"]
    assert all(sum(c["counts"].values()) == log["keep"] for c in log["candidates"])
    assert all((weights[n][~m] == 0).all() for n, m in mask.items())


def test_a_budget_of_zero_is_one_line_at_config_load():
    from conftest import tiny

    from lth.plan import plan_of

    bad = tiny({**SEARCH, "oneshot": {"densities": [0.2], "methods": {
        "rs": {"train": "random_search", "random_search": {"budget": 0}}}}})
    with pytest.raises(LTHError, match=r"random_search.budget: 0 is less than the minimum of 1") as e:
        plan_of("x", bad, "/tmp/nowhere")
    assert "\n" not in str(e.value)
