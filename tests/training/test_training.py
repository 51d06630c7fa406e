"""The training loop: masks hold, schedules, resume, determinism across processes."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from lth.plan import plan_of
from lth.plan.layout import RunKey
from lth.pruning import masks
from lth.store import artifacts
from lth.training.loop import Segment, train
from lth.training.schedule import lr_at

from conftest import tiny


def test_lr_schedule_warmup_and_step_decay():
    t = {"lr": 0.1, "warmup": 4, "milestones": [10, 20], "gamma": 0.1}
    assert [lr_at(t, i) for i in range(4)] == pytest.approx([0.025, 0.05, 0.075, 0.1])
    assert lr_at(t, 9) == pytest.approx(0.1)
    assert lr_at(t, 10) == pytest.approx(0.01)
    assert lr_at(t, 25) == pytest.approx(0.001)


@pytest.mark.parametrize("optimizer", [
    {"optimizer": "adam", "lr": 0.01},
    {"optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 1e-3},
    {"optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4, "warmup": 20},
    {"optimizer": "adamw", "lr": 0.01, "weight_decay": 1.0, "l1": 1e-4},
])
def test_pruned_weights_stay_exactly_zero_through_optimiser_steps(context, optimizer):
    ctx = context({"training": {**optimizer, "iterations": 120}})
    training = ctx.plan.settings.training
    model = ctx.new_model(0)
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    g = torch.Generator().manual_seed(0)
    mask = {n: torch.rand(m.shape, generator=g) < 0.3 for n, m in masks.full_mask(model).items()}
    seg = Segment(0, 120, lambda t: lr_at(training, t), data_seed=1)
    train(model, mask, ctx.splits(), training, seg)
    params = dict(model.named_parameters())
    for name, m in mask.items():
        assert torch.all(params[name][~m] == 0.0), name
        assert not torch.equal(params[name][m], before[name][m]), f"{name} did not train"


def test_interrupted_training_resumes_to_the_identical_result(tmp_path, context):
    ctx = context({"training": {"iterations": 300}})
    training = ctx.plan.settings.training

    steps = []  # the iterations a run trains (the loop asks the learning rate of each once)

    def run(checkpoint, interrupt_at=None):
        model = ctx.new_model(7)
        steps.clear()

        def lr(t):
            if t == interrupt_at:
                raise KeyboardInterrupt
            steps.append(t)
            return lr_at(training, t)
        seg = Segment(0, 300, lr, data_seed=5, checkpoint=checkpoint, fingerprint="job")
        return model, train(model, masks.full_mask(model), ctx.splits(), training, seg)

    ref_model, ref = run(None)
    ckpt = tmp_path / "resume.pt"
    with pytest.raises(KeyboardInterrupt):
        run(ckpt, interrupt_at=170)  # last checkpoint at 150: 20 steps are redone
    assert artifacts.load_checkpoint(ckpt)["iteration"] == 150
    model, result = run(ckpt)
    assert steps == list(range(150, 300))  # resumed: iterations before the checkpoint are not trained again
    for k, v in ref_model.state_dict().items():
        assert torch.equal(v, model.state_dict()[k]), k
    assert result["curves"] == ref["curves"]


def test_stale_checkpoint_of_another_job_is_refused(tmp_path, context):
    from lth.core.errors import LTHError

    ctx = context()
    model = ctx.new_model(0)
    ckpt = tmp_path / "resume.pt"
    artifacts.save_checkpoint(ckpt, {"fingerprint": "other", "iteration": 50})
    seg = Segment(0, 100, lambda t: 0.01, data_seed=0, checkpoint=ckpt, fingerprint="mine")
    with pytest.raises(LTHError, match="another job"):
        train(model, masks.full_mask(model), ctx.splits(), ctx.plan.settings.training, seg)


def _lth(*args, **kw):
    return subprocess.Popen([sys.executable, "-m", "lth", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def test_same_seed_is_bitwise_identical_across_processes_and_a_killed_job_resumes(tmp_path, data_dir, settings_file):
    changes = {"training": {"iterations": 3000, "eval_every": 100}, "model": {"options": {"hidden": 64}}}
    path = settings_file(changes)
    common = ["train", "--settings", path, "--seed", "0", "--data-dir", data_dir, "--threads", "1"]
    for name in ("a", "b"):
        proc = _lth(*common, "--results", tmp_path / name)
        assert proc.wait(timeout=300) == 0, proc.stderr.read()
    layouts = [plan_of(n, tiny(changes), tmp_path / n).layout for n in "abc"]
    dense = RunKey(0, 0, "dense")
    # c: killed as soon as it has written a resume checkpoint, then restarted
    proc = _lth(*common, "--results", tmp_path / "c")
    ckpt = layouts[2].checkpoint(dense)
    deadline = time.time() + 120
    while not ckpt.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "training finished before it could be interrupted"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert ckpt.exists() and not layouts[2].metrics(dense).exists()
    proc = _lth(*common, "--results", tmp_path / "c")
    assert proc.wait(timeout=300) == 0, proc.stderr.read()
    assert not ckpt.exists()

    finals = [layout.final(dense).read_bytes() for layout in layouts]
    assert finals[0] == finals[1] == finals[2]
    curves = [json.loads(layout.metrics(dense).read_text())["curves"] for layout in layouts]
    assert curves[0] == curves[1] == curves[2]


def test_a_preempted_run_saves_at_its_step_and_resumes_bitwise(tmp_path, context):
    """SIGTERM mid-training (between evaluations and checkpoints): the run writes its checkpoint at the
    iteration it reached, records why, stops with Preempted, and resumes to the uninterrupted result."""
    from lth.core import preemption

    ctx = context({"training": {"iterations": 300, "checkpoint_every": 100}})
    training = ctx.plan.settings.training

    def run(checkpoint, signal_at=None):
        model = ctx.new_model(7)

        def lr(t):
            if t == signal_at:
                os.kill(os.getpid(), signal.SIGTERM)
            return lr_at(training, t)
        seg = Segment(0, 300, lr, data_seed=5, checkpoint=checkpoint, fingerprint="job")
        return model, train(model, masks.full_mask(model), ctx.splits(), training, seg)

    ref_model, ref = run(None)
    ckpt = tmp_path / "resume.pt"
    previous = preemption.install()
    try:
        with pytest.raises(preemption.Preempted, match="SIGTERM.*iteration 171 of 300"):
            run(ckpt, signal_at=170)  # the step of iteration 170 finishes, then it stops
    finally:
        preemption.restore(previous)
    state = artifacts.load_checkpoint(ckpt)
    assert state["iteration"] == 171 and state["stopped"] == {"signal": "SIGTERM", "iteration": 171}
    model, result = run(ckpt)
    for k, v in ref_model.state_dict().items():
        assert torch.equal(v, model.state_dict()[k]), k
    assert result["curves"] == ref["curves"]


def test_a_job_preempted_by_sigterm_exits_for_a_retry_and_the_rerun_is_bitwise_the_uninterrupted(
        tmp_path, data_dir, settings_file):
    """`lth train` signalled as SLURM preempts: exit status 75, one line saying what it kept, and the rerun
    equals an uninterrupted run in every trained tensor and curve."""
    changes = {"training": {"iterations": 4000, "eval_every": 100, "checkpoint_every": 100000},
               "model": {"options": {"hidden": 64}}}
    path = settings_file(changes)
    common = ["train", "--settings", path, "--seed", "0", "--data-dir", data_dir, "--threads", "1"]
    proc = _lth(*common, "--results", tmp_path / "a")
    assert proc.wait(timeout=300) == 0, proc.stderr.read()
    layouts = [plan_of(n, tiny(changes), tmp_path / n).layout for n in "ab"]
    dense = RunKey(0, 0, "dense")
    proc = _lth(*common, "--results", tmp_path / "b")
    deadline = time.time() + 120
    while not layouts[1].init(0).exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    time.sleep(0.5)  # into training
    assert proc.poll() is None, "training finished before it could be preempted"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 75
    err = proc.stderr.read()
    assert "preempted by SIGTERM" in err and "rerun the job to resume" in err, err
    state = artifacts.load_checkpoint(layouts[1].checkpoint(dense))
    assert state["stopped"]["signal"] == "SIGTERM" and 0 < state["iteration"] < 4000
    assert not layouts[1].metrics(dense).exists()
    proc = _lth(*common, "--results", tmp_path / "b")
    assert proc.wait(timeout=300) == 0, proc.stderr.read()
    assert "stopped by SIGTERM" in proc.stderr.read()
    assert layouts[0].final(dense).read_bytes() == layouts[1].final(dense).read_bytes()
    curves = [json.loads(layout.metrics(dense).read_text())["curves"] for layout in layouts]
    assert curves[0] == curves[1]


def test_an_l1_penalty_shrinks_the_prunable_weights(context):
    norms = []
    for l1 in (0.0, 1e-3):
        ctx = context({"training": {"iterations": 100, "l1": l1}}, name=f"l1-{l1}")
        training = ctx.plan.settings.training
        model = ctx.new_model(0)
        mask = masks.full_mask(model)
        train(model, mask, ctx.splits(), training, Segment(0, 100, lambda t: lr_at(training, t), data_seed=1))
        params = dict(model.named_parameters())
        norms.append(sum(float(params[n].detach().abs().sum()) for n in mask))
    assert norms[1] < 0.9 * norms[0]
