"""Jobs composed of the pieces: the dense job, theta_k by replay, a level job, determinism."""

import pytest
import torch

import lth.training.schedule
from lth.core.errors import LTHError
from lth.core.files import read_json
from lth.jobs.prune import prune_level
from lth.plan import Job
from lth.plan.layout import RunKey
from lth.store import artifacts

DENSE = RunKey(0, 0, "dense")


def test_theta_k_of_the_rewind_job_is_the_dense_runs_own_weights_at_k(context, monkeypatch):
    """The rewind job replays the dense run to k; compare with the dense run's checkpoint at k."""
    ctx = context({"rewind_iteration": 30, "training": {"eval_every": 30}})
    real = lth.training.schedule.lr_at

    def interrupt_after_k(training, t):
        if t == 31:
            raise KeyboardInterrupt
        return real(training, t)

    monkeypatch.setattr("lth.jobs.start.lr_at", interrupt_after_k)
    with pytest.raises(KeyboardInterrupt):
        ctx.run(Job("dense", 0))
    monkeypatch.setattr("lth.jobs.start.lr_at", real)
    at_k = artifacts.load_checkpoint(ctx.plan.layout.checkpoint(DENSE))
    assert at_k["iteration"] == 30
    ctx.run(Job("rewind", 0, k=30))
    theta_k = artifacts.load_tensors(ctx.plan.layout.rewind(0, 30))
    init = ctx.new_model(0).state_dict()
    for k, v in at_k["model"].items():
        assert torch.equal(theta_k[k], v), k
        assert not torch.equal(init[k], v)
    trained = []

    def recording(training, t):
        trained.append(t)
        return real(training, t)

    monkeypatch.setattr("lth.jobs.start.lr_at", recording)
    record = ctx.run(Job("dense", 0))[0]  # resumes from the checkpoint at 30
    assert trained == list(range(30, 200))  # only the iterations after the checkpoint are trained
    assert [c["iteration"] for c in record["curves"]] == [0, 30, 60, 90, 120, 150, 180, 200]
    assert record["weights_remaining"] == 1.0


def test_a_level_job_prunes_and_trains_its_chain_and_a_controls_job_the_rest(context):
    ctx = context({"variants": ["ticket", "reinit"], "seeds": [0, 1]})
    for seed in (0, 1):
        ctx.run(Job("dense", seed))
    records = ctx.run(ctx.plan.job("level", level=1, chain="ticket"))
    assert [(r["seed"], r["variant"]) for r in records] == [(0, "ticket"), (1, "ticket")]
    marker = read_json(ctx.plan.level_done(1, "ticket", (0,)))
    assert set(marker) == {"seed 0 level 1 ticket", "seed 1 level 1 ticket"}
    assert not ctx.plan.layout.metrics(RunKey(0, 1, "reinit")).exists()  # the controls: not on the chain
    (controls,) = [j for j in ctx.plan.jobs() if j.stage == "controls"]
    with pytest.raises(LTHError, match="not found"):  # level 2's mask does not exist yet
        ctx.run(controls)
    for level in controls.levels[1:]:
        ctx.run(ctx.plan.job("level", level=level, chain="ticket"))
    done = ctx.run(controls)
    assert [(r["seed"], r["level"], r["variant"]) for r in done[:2]] == [(0, 1, "reinit"), (1, 1, "reinit")]
    assert ctx.plan.done(controls).exists()
    again = ctx.run(ctx.plan.job("level", level=1, chain="ticket"))  # finished runs are kept, not retrained
    assert again == records


def test_augmented_training_of_a_conv_net_is_deterministic(data_dir, context):
    from lth.data.fetch import fetch

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


def test_the_mask_overlap_analysis_against_a_direct_count(context):
    from lth import analyses
    from lth.analyses.mask_overlap import jaccard

    ctx = context({"variants": ["ticket"], "seeds": [0, 1], "pruning": {"levels": 1}, "analyses": ["mask_overlap"]})
    for job in ctx.plan.jobs():
        ctx.run(job)
    path = analyses.run(ctx.plan, "mask_overlap")
    rows = path.read_text().splitlines()
    assert rows[0] == ("experiment,variant,compare,seed_a,level_a,seed_b,level_b,weights_remaining_a,"
                       "weights_remaining_b,jaccard,jaccard_if_random")
    a, b = (artifacts.load_tensors(ctx.plan.layout.mask(RunKey(s, 1, "ticket"))) for s in (0, 1))
    flat_a, flat_b = (torch.cat([m[n].flatten() for n in sorted(m)]) for m in (a, b))
    direct = (flat_a & flat_b).sum().item() / (flat_a | flat_b).sum().item()
    assert rows[1].startswith("exp,ticket,seeds,0,1,1,1,")
    assert float(rows[1].split(",")[9]) == pytest.approx(direct) and jaccard(a, a) == 1.0


SEEN = {}


def recording_score(weights, mask, context):
    """A score that asks for what SNIP would: the masked model and a batch of data."""
    SEEN["model"], SEEN["batch"] = context.model(), context.batch(8)
    return {name: weights[name].abs().float() for name in mask}


def test_a_score_gets_the_masked_trained_model_and_a_batch_on_request(context, monkeypatch):
    from lth.core import parts
    from lth.core.registry import Part

    monkeypatch.setitem(parts.SCORES._parts, "magnitude", Part("magnitude", "test_jobs:recording_score"))
    ctx = context()
    ctx.run(Job("dense", 0))
    prune_level(ctx, 0, 1, "ticket")
    final = artifacts.load_tensors(ctx.plan.layout.final(DENSE))
    assert all(torch.equal(v, final[k]) for k, v in SEEN["model"].state_dict().items())
    x, y = SEEN["batch"]
    assert x.shape == (8, 40) and y.shape == (8,) and y.dtype == torch.int64


def test_the_same_job_started_twice_at_once_trains_once(context):
    """As after Snakemake was killed and rerun while its jobs ran on: the second waits, then keeps."""
    import subprocess
    import sys
    import time

    ctx = context({"training": {"iterations": 40000, "eval_every": 1000}, "model": {"options": {"hidden": 64}}})
    cmd = [sys.executable, "-m", "lth", "job", "dense", "--results", str(ctx.plan.layout.root), "--seed", "0",
           "--fingerprint", ctx.plan.fingerprint(Job("dense", 0)), "--threads", "1"]
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not ctx.plan.layout.checkpoint(DENSE).exists() and time.time() < deadline:  # 1/40 of the way
        time.sleep(0.05)
    second = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert first.wait(timeout=600) == 0, first.stderr.read()
    metrics = ctx.plan.layout.metrics(DENSE)
    stamp = metrics.stat().st_mtime_ns
    assert second.wait(timeout=600) == 0
    assert "is already running" in second.stderr.read()
    assert metrics.stat().st_mtime_ns == stamp  # the second kept the first's run


def test_mask_overlap_across_levels_of_nested_imp_masks_is_their_density_ratio(context):
    from lth import analyses

    ctx = context({"variants": ["ticket"], "seeds": [0], "pruning": {"levels": 2}, "analyses": ["mask_overlap"],
                   "training": {"iterations": 40, "eval_every": 20}})
    for job in ctx.plan.jobs():
        ctx.run(job)
    import csv

    rows = list(csv.DictReader(analyses.run(ctx.plan, "mask_overlap").open()))
    (row,) = [r for r in rows if r["compare"] == "levels"]
    p, q = float(row["weights_remaining_a"]), float(row["weights_remaining_b"])
    assert (row["level_a"], row["level_b"]) == ("1", "2")
    assert float(row["jaccard"]) == pytest.approx(q / p)  # IMP's level-2 mask lies inside level 1's
    assert float(row["jaccard_if_random"]) == pytest.approx(p * q / (p + q - p * q))
