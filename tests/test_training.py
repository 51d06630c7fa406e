"""The training loop and the variants: masks hold, schedules, resume, determinism, rewinding."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from lth import artifacts, masks, settings
from lth.layout import Layout
from lth.runs import Experiment
from lth.seeding import derive_seed
from lth.training import Segment, lr_at, train


@pytest.fixture
def experiment(tmp_path, data_dir, settings_file):
    """An Experiment on the tiny settings with `changes`, results under tmp_path/exp."""
    def make(changes=None):
        return Experiment(settings.load(settings_file(changes)), Layout(tmp_path / "exp"), data_dir)
    return make


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
])
def test_pruned_weights_stay_exactly_zero_through_optimiser_steps(experiment, optimizer):
    exp = experiment({"training": {**optimizer, "iterations": 120}})
    model = exp.new_model(0)
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    g = torch.Generator().manual_seed(0)
    mask = {n: torch.rand(m.shape, generator=g) < 0.3 for n, m in masks.full_mask(model).items()}
    seg = Segment(0, 120, lambda t: lr_at(exp.settings["training"], t), data_seed=1)
    train(model, mask, exp.splits, exp.settings["training"], seg)
    params = dict(model.named_parameters())
    for name, m in mask.items():
        assert torch.all(params[name][~m] == 0.0), name
        assert not torch.equal(params[name][m], before[name][m]), f"{name} did not train"


def test_interrupted_training_resumes_to_the_identical_result(tmp_path, experiment):
    exp = experiment({"training": {"iterations": 300}})
    training = exp.settings["training"]

    def run(checkpoint, interrupt_at=None):
        model = exp.new_model(7)
        def lr(t):
            if t == interrupt_at:
                raise KeyboardInterrupt
            return lr_at(training, t)
        seg = Segment(0, 300, lr, data_seed=5, checkpoint=checkpoint, fingerprint="job")
        return model, train(model, masks.full_mask(model), exp.splits, training, seg)

    ref_model, ref = run(None)
    ckpt = tmp_path / "resume.pt"
    with pytest.raises(KeyboardInterrupt):
        run(ckpt, interrupt_at=170)  # last checkpoint at 150: 20 steps are redone
    assert artifacts.load_checkpoint(ckpt)["iteration"] == 150
    model, result = run(ckpt)
    for k, v in ref_model.state_dict().items():
        assert torch.equal(v, model.state_dict()[k]), k
    assert result["curves"] == ref["curves"]


def test_stale_checkpoint_of_another_job_is_refused(tmp_path, experiment):
    from lth.errors import LTHError

    exp = experiment()
    model = exp.new_model(0)
    ckpt = tmp_path / "resume.pt"
    artifacts.save_checkpoint(ckpt, {"fingerprint": "other", "iteration": 50})
    seg = Segment(0, 100, lambda t: 0.01, data_seed=0, checkpoint=ckpt, fingerprint="mine")
    with pytest.raises(LTHError, match="another job"):
        train(model, masks.full_mask(model), exp.splits, exp.settings["training"], seg)


def test_dense_run_saves_theta_k_equal_to_training_stopped_at_k(experiment):
    exp = experiment({"rewind_iteration": 30})
    record = exp.train_dense(0)
    rewind = artifacts.load_tensors(exp.layout.rewind(0))
    init = artifacts.load_tensors(exp.layout.init(0))
    model = exp.new_model(0)
    seg = Segment(0, 30, lambda t: lr_at(exp.settings["training"], t), data_seed=derive_seed(0, "data"))
    train(model, masks.full_mask(model), exp.splits, exp.settings["training"], seg)
    for k, v in model.state_dict().items():
        assert torch.equal(rewind[k], v), k
        assert not torch.equal(init[k], v)
    assert [c["iteration"] for c in record["curves"]] == [0, 50, 100, 150, 200]
    assert record["weights_remaining"] == 1.0


def test_variants_start_from_the_weights_and_masks_they_claim(experiment):
    exp = experiment({"rewind_iteration": 20,
                                          "variants": ["ticket", "reinit", "random_prune", "lr_rewind", "finetune"]})
    exp.train_dense(3)
    for chain in ("ticket", "lr_rewind", "finetune"):
        exp.prune_level(3, 1, chain)
    rewind = artifacts.load_tensors(exp.layout.rewind(3))
    dense_final = artifacts.load_tensors(exp.layout.final(3, 0, "dense"))
    ticket_mask = artifacts.load_tensors(exp.layout.mask(3, 1, "ticket"))
    training = exp.settings["training"]

    def state(variant):
        model, mask, start, lr = exp.start_state(3, 1, variant)
        return {k: v.detach() for k, v in model.state_dict().items()}, mask, start, lr

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

    record = exp.train_variant(3, 1, "ticket")
    assert record["curves"][0]["iteration"] == 20 and record["curves"][-1]["iteration"] == 200
    assert record["weights_remaining"] == pytest.approx(masks.density(ticket_mask))


def test_changed_settings_for_an_existing_results_folder_are_refused(experiment):
    from lth.errors import LTHError

    experiment()
    experiment({"seeds": [0, 1, 2]})  # more seeds: same runs, accepted
    with pytest.raises(LTHError, match="other settings"):
        experiment({"training": {"lr": 0.5}})


def _lth(*args, **kw):
    return subprocess.Popen([sys.executable, "-m", "lth.cli", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def test_same_seed_is_bitwise_identical_across_processes_and_a_killed_job_resumes(tmp_path, data_dir, settings_file):
    path = settings_file({"training": {"iterations": 3000, "eval_every": 100}, "model": {"options": {"hidden": 64}}})
    common = ["train", "--settings", path, "--seed", "0", "--data-dir", data_dir, "--threads", "1"]
    for name in ("a", "b"):
        proc = _lth(*common, "--results", tmp_path / name)
        assert proc.wait(timeout=300) == 0, proc.stderr.read()
    # c: killed as soon as it has written a resume checkpoint, then restarted
    proc = _lth(*common, "--results", tmp_path / "c")
    ckpt = Layout(tmp_path / "c").checkpoint(0, 0, "dense")
    deadline = time.time() + 120
    while not ckpt.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "training finished before it could be interrupted"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert ckpt.exists() and not Layout(tmp_path / "c").metrics(0, 0, "dense").exists()
    proc = _lth(*common, "--results", tmp_path / "c")
    assert proc.wait(timeout=300) == 0, proc.stderr.read()
    assert not ckpt.exists()

    runs = [Layout(tmp_path / n) for n in "abc"]
    finals = [r.final(0, 0, "dense").read_bytes() for r in runs]
    assert finals[0] == finals[1] == finals[2]
    curves = [json.loads(r.metrics(0, 0, "dense").read_text())["curves"] for r in runs]
    assert curves[0] == curves[1] == curves[2]


def test_dense_job_killed_after_the_rewind_point_restores_theta_k_on_resume(experiment, monkeypatch):
    """Snakemake deletes an interrupted job's outputs, theta_k among them: the checkpoint carries it."""
    import lth.runs

    exp = experiment({"rewind_iteration": 30})
    reference = experiment({"rewind_iteration": 30})
    reference.layout = Layout(exp.layout.root.parent / "reference")
    reference.train_dense(0)

    real_lr_at = lth.runs.lr_at

    def interrupting(training, t):
        if t == 170:
            raise KeyboardInterrupt
        return real_lr_at(training, t)

    monkeypatch.setattr(lth.runs, "lr_at", interrupting)
    with pytest.raises(KeyboardInterrupt):
        exp.train_dense(0)
    monkeypatch.setattr(lth.runs, "lr_at", real_lr_at)
    exp.layout.rewind(0).unlink()
    exp.train_dense(0)
    assert exp.layout.rewind(0).read_bytes() == reference.layout.rewind(0).read_bytes()
    assert exp.layout.final(0, 0, "dense").read_bytes() == reference.layout.final(0, 0, "dense").read_bytes()


def test_augmented_training_of_a_conv_net_is_deterministic(data_dir, experiment):
    from lth.datasets import fetch

    fetch("digits", data_dir)
    changes = {"dataset": {"name": "digits", "val_size": 200}, "model": {"name": "conv2", "options": {}},
               "training": {"iterations": 20, "eval_every": 10, "batch_size": 32, "augment": True},
               "pruning": {"rates": {"conv": 0.1, "fc": 0.2, "output": 0.1}}}
    finals = []
    for name in ("a", "b"):
        exp = experiment(changes)
        exp.layout = Layout(exp.layout.root.parent / name)
        assert exp.augment
        exp.train_dense(0)
        finals.append(exp.layout.final(0, 0, "dense").read_bytes())
    assert finals[0] == finals[1]
