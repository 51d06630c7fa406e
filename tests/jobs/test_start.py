"""Start states: each variant starts from the weights, mask and schedule its table entry claims."""

import pytest
import torch

from lth.jobs.prune import prune_level
from lth.jobs.runs import train_run
from lth.jobs.start import start_state
from lth.plan import Job
from lth.plan.layout import RunKey
from lth.pruning import masks
from lth.store import artifacts
from lth.training.schedule import lr_at

ALL = ["ticket", "reinit", "random_prune", "lr_rewind", "finetune"]


def test_variants_start_from_the_weights_and_masks_they_claim(context):
    ctx = context({"rewind_iteration": 20, "variants": ALL, "seeds": [3]})
    plan, layout = ctx.plan, ctx.plan.layout
    ctx.run(Job("dense", 3))
    ctx.run(Job("rewind", 3, k=20))
    for chain in ("ticket", "lr_rewind", "finetune"):
        prune_level(ctx, 3, 1, chain)
    rewind = artifacts.load_tensors(layout.rewind(3, 20))
    dense_final = artifacts.load_tensors(layout.final(RunKey(3, 0, "dense")))
    ticket_mask = artifacts.load_tensors(layout.mask(RunKey(3, 1, "ticket")))
    training = plan.settings.training

    def state(variant):
        s = start_state(ctx, RunKey(3, 1, variant))
        return {k: v.detach() for k, v in s.model.state_dict().items()}, s.mask, s.iteration, s.lr

    w, mask, start, lr = state("ticket")
    assert start == 20 and lr(20) == lr_at(training, 20)
    for n, m in mask.items():
        assert torch.equal(mask[n], ticket_mask[n])
        assert torch.equal(w[n], rewind[n] * m)
    assert torch.equal(w["linear1.bias"], rewind["linear1.bias"])

    w, mask, _, _ = state("reinit")
    assert all(torch.equal(mask[n], ticket_mask[n]) for n in mask)
    assert not torch.equal(w["linear1.weight"], rewind["linear1.weight"] * mask["linear1.weight"])

    w, mask, _, _ = state("random_prune")
    assert masks.counts(mask) == masks.counts(ticket_mask)
    assert not torch.equal(mask["linear1.weight"], ticket_mask["linear1.weight"])
    assert torch.equal(w["linear2.weight"], rewind["linear2.weight"] * mask["linear2.weight"])

    w, mask, start, lr = state("lr_rewind")
    assert start == 20
    assert torch.equal(w["linear1.weight"], dense_final["linear1.weight"] * mask["linear1.weight"])

    w, mask, start, lr = state("finetune")
    assert lr(20) == lr(199) == lr_at(training, 199)
    assert torch.equal(w["linear3.weight"], dense_final["linear3.weight"] * mask["linear3.weight"])

    record = train_run(ctx, Job("level", 3, 1, "ticket"), RunKey(3, 1, "ticket"))
    assert record["curves"][0]["iteration"] == 20 and record["curves"][-1]["iteration"] == 200
    assert record["weights_remaining"] == pytest.approx(masks.density(ticket_mask))


def test_the_dense_run_starts_from_theta_0_unpruned_with_the_whole_schedule(context):
    ctx = context({"rewind_iteration": 20})
    s = start_state(ctx, RunKey(0, 0, "dense"))
    fresh = ctx.new_model(0)
    assert s.iteration == 0 and masks.density(s.mask) == 1.0
    assert all(torch.equal(v, fresh.state_dict()[k]) for k, v in s.model.state_dict().items())
