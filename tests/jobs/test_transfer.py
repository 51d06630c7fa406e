"""Transfer of tickets to other datasets: what carries over, exactly, and what is refused."""

import pytest
import torch

from lth.core.errors import LTHError
from lth.data.adapt import adapt_inputs
from lth.jobs.start import start_state
from lth.jobs.transfer import load_source_weights, target_mask
from lth.models import build_model, output_layer_name
from lth.plan import settings
from lth.plan.checks import check_adaptable
from lth.plan.layout import RunKey
from lth.pruning import masks
from lth.store import artifacts

from conftest import TINY


def test_inputs_are_adapted_only_where_meaningful():
    gray = torch.rand(4, 1, 28, 28)
    colour = adapt_inputs(gray, (3, 32, 32))
    assert colour.shape == (4, 3, 32, 32) and torch.equal(colour[:, 0], colour[:, 2])
    back = adapt_inputs(torch.rand(4, 3, 8, 8), (1, 8, 8))
    assert back.shape == (4, 1, 8, 8)
    same = torch.rand(2, 40)
    assert adapt_inputs(same, (40,)) is same
    check_adaptable((3, 32, 32), (1, 28, 28), "x")
    for source, target in [((40,), (1, 8, 8)), ((3, 32, 32), (2, 32, 32)), ((40,), (50,))]:
        with pytest.raises(LTHError, match="cannot be adapted"):
            check_adaptable(source, target, "transfer.targets.t")


def test_a_new_head_replaces_the_source_head_and_everything_else_is_the_source():
    source = build_model("lenet_300_100", (1, 28, 28), 10, seed=1)
    target = build_model("lenet_300_100", (1, 28, 28), 100, seed=2)
    head = output_layer_name(target)
    fresh_head = target.state_dict()[f"{head}.weight"].clone()
    load_source_weights(target, source.state_dict(), head)
    for name, value in target.state_dict().items():
        if name.startswith(f"{head}."):
            assert value.shape[0] == 100
        else:
            assert torch.equal(value, source.state_dict()[name]), name
    assert torch.equal(target.state_dict()[f"{head}.weight"], fresh_head)
    g = torch.Generator().manual_seed(0)
    source_mask = {n: torch.rand(m.shape, generator=g) < 0.3 for n, m in masks.full_mask(source).items()}
    mask = target_mask(source_mask, target, head)
    assert all(torch.equal(mask[n], source_mask[n]) for n in mask if not n.startswith(f"{head}."))
    assert mask[f"{head}.weight"].shape == (100, 100) and bool(mask[f"{head}.weight"].all())


@pytest.fixture
def source_with_ticket(data_dir, context):
    from lth.data.fetch import fetch

    fetch("mnist1d", data_dir, options={"seed": 43})
    ctx = context({"rewind_iteration": 20, "variants": ["ticket"], "pruning": {"levels": 1},
                   "transfer": {"targets": {"draw43": {"dataset": {"name": "mnist1d", "options": {"seed": 43}}}}}})
    for job in ctx.plan.jobs()[:3]:  # dense, rewind, level 1
        ctx.run(job)
    return ctx


def start(ctx, level, variant):
    s = start_state(ctx, RunKey(0, level, variant, "draw43"))
    return s.model, s.mask


def test_transferred_ticket_starts_from_the_source_mask_and_rewound_weights(source_with_ticket):
    ctx = source_with_ticket
    layout = ctx.plan.layout
    rewind = artifacts.load_tensors(layout.rewind(0, 20))
    source_mask = artifacts.load_tensors(layout.mask(RunKey(0, 1, "ticket")))

    model, mask = start(ctx, 1, "ticket_transfer")
    assert mask.keys() == source_mask.keys()
    for name in mask:
        assert torch.equal(mask[name], source_mask[name]), name
    state = model.state_dict()
    for name, value in rewind.items():
        expected = value * source_mask[name] if name in source_mask else value
        assert torch.equal(state[name], expected), name

    model, mask = start(ctx, 1, "mask_transfer")
    assert all(torch.equal(mask[n], source_mask[n]) for n in mask)
    assert not torch.equal(model.state_dict()["linear1.weight"], rewind["linear1.weight"] * mask["linear1.weight"])

    model, mask = start(ctx, 1, "random_prune")
    assert masks.counts(mask) == masks.counts(source_mask)
    assert not torch.equal(mask["linear1.weight"], source_mask["linear1.weight"])

    model, mask = start(ctx, 0, "dense")
    assert masks.density(mask) == 1.0
    assert all(torch.equal(model.state_dict()[n], v) for n, v in rewind.items())

    jobs = [j for j in ctx.plan.jobs() if j.stage == "transfer"]
    assert [j.level for j in jobs] == [0, 1]  # the dense network's transfer, then level 1's: one job each
    assert ctx.plan.inputs(jobs[0])["runs"] == [ctx.plan.layout.metrics(RunKey(0, 0, "dense"))] + (
        [ctx.plan.layout.rewind(0, 20)])  # level 0 waits on no level job
    records = {(r["level"], r["variant"]): r for job in jobs for r in ctx.run(job)}
    assert sorted(records) == [(0, "dense"), (1, "mask_transfer"), (1, "random_prune"), (1, "ticket_transfer")]
    assert {r["target"] for r in records.values()} == {"draw43"}
    assert records[1, "ticket_transfer"]["curves"][0]["iteration"] == 20  # same budget: k..T
    assert all(ctx.plan.done(job).exists() for job in jobs)


def test_a_target_that_cannot_be_adapted_is_refused_at_validation():
    bad = {**TINY, "transfer": {"targets": {"digits": {"dataset": {"name": "digits"}}}}}
    with pytest.raises(LTHError, match=r"transfer.targets.digits: target inputs of shape \(1, 8, 8\)"):
        settings.resolve(bad)
    with pytest.raises(LTHError, match="transfer.levels"):
        settings.resolve({**TINY, "transfer": {"targets": {"t": {"dataset": {"name": "mnist1d"}}},
                                                       "levels": [7]}})
