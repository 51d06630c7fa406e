"""Jobs composed of the pieces: the dense job, theta_k by replay, a level job, determinism."""

import pytest
import torch

import lth.training
from lth import artifacts
from lth.files import read_json
from lth.layout import RunKey
from lth.plan import Job

DENSE = RunKey(0, 0, "dense")


def test_theta_k_of_the_rewind_job_is_the_dense_runs_own_weights_at_k(context, monkeypatch):
    """The rewind job replays the dense run to k; compare with the dense run's checkpoint at k."""
    ctx = context({"rewind_iteration": 30, "training": {"eval_every": 30}})
    real = lth.training.lr_at

    def interrupt_after_k(training, t):
        if t == 31:
            raise KeyboardInterrupt
        return real(training, t)

    monkeypatch.setattr("lth.start.lr_at", interrupt_after_k)
    with pytest.raises(KeyboardInterrupt):
        ctx.run(Job("dense", 0))
    monkeypatch.setattr("lth.start.lr_at", real)
    at_k = artifacts.load_checkpoint(ctx.plan.layout.checkpoint(DENSE))
    assert at_k["iteration"] == 30
    ctx.run(Job("rewind", 0, k=30))
    theta_k = artifacts.load_tensors(ctx.plan.layout.rewind(0, 30))
    init = ctx.new_model(0).state_dict()
    for k, v in at_k["model"].items():
        assert torch.equal(theta_k[k], v), k
        assert not torch.equal(init[k], v)
    record = ctx.run(Job("dense", 0))[0]  # resumes from the checkpoint at 30
    assert [c["iteration"] for c in record["curves"]] == [0, 30, 60, 90, 120, 150, 180, 200]
    assert record["weights_remaining"] == 1.0


def test_a_level_job_prunes_trains_its_variants_and_records_them(context):
    ctx = context({"variants": ["ticket", "reinit"]})
    ctx.run(Job("dense", 0))
    records = ctx.run(Job("level", 0, 1, "ticket"))
    assert [r["variant"] for r in records] == ["ticket", "reinit"]
    marker = read_json(ctx.plan.layout.level_record(0, 1, "ticket"))
    assert set(marker) == {"ticket", "reinit"}
    again = ctx.run(Job("level", 0, 1, "ticket"))  # finished runs are kept, not retrained
    assert again == records


def test_augmented_training_of_a_conv_net_is_deterministic(data_dir, context):
    from lth.datasets import fetch

    fetch("digits", data_dir)
    changes = {"dataset": {"name": "digits", "val_size": 200}, "model": {"name": "conv2", "options": {}},
               "training": {"iterations": 20, "eval_every": 10, "batch_size": 32, "augment": True},
               "pruning": {"rates": {"conv": 0.1, "fc": 0.2, "output": 0.1}}}
    finals = []
    for name in ("a", "b"):
        ctx = context(changes, name=name)
        assert ctx.augment(ctx.splits().info)
        ctx.run(Job("dense", 0))
        finals.append(ctx.plan.layout.final(DENSE).read_bytes())
    assert finals[0] == finals[1]
