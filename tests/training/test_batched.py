"""Batched training (lth.training.batched): each member trains bitwise as it would alone, on CPU at one thread."""

import pytest
import torch

from lth.core.errors import LTHError
from lth.core.parts import DATASETS
from lth.data.splits import Splits, load_splits
from lth.models import build_model
from lth.plan.settings import resolve
from lth.pruning.masks import full_mask
from lth.store import artifacts
from lth.training.batched import check_fits, estimate_bytes, train_batched
from lth.training.loop import Segment, train
from lth.training.schedule import lr_at


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def mnist1d(tmp_path_factory):
    from lth.data.fetch import fetch

    root = tmp_path_factory.mktemp("batched-data")
    fetch("mnist1d", root)
    return load_splits("mnist1d", root, val_size=500)


def settings(dataset="mnist1d", model="mlp1d", **training):
    return dict(resolve({"dataset": {"name": dataset}, "model": {"name": model},
                         "training": {"batch_size": 100, "iterations": 200, "eval_every": 50, **training}})["training"])


def random_mask(model, seed, density=0.6):
    g = torch.Generator().manual_seed(seed)
    return {n: torch.rand(m.shape, generator=g) < density for n, m in full_mask(model).items()}


def image_splits(shape=(3, 8, 8), n=(256, 100, 100)):
    g = torch.Generator().manual_seed(0)

    def part(k):
        return torch.randn(k, *shape, generator=g), torch.randint(0, 10, (k,), generator=g)

    (xt, yt), (xv, yv), (xs, ys) = part(n[0]), part(n[1]), part(n[2])
    return Splits(info=DATASETS["cifar10"], x_train=xt, y_train=yt, x_val=xv, y_val=yv, x_test=xs, y_test=ys)


def alone(name, shape, seed, mask_seed, splits, training, seg, augment=False, **options):
    """The member trained by itself with lth.training.loop.train: (state_dict, result)."""
    model = build_model(name, shape, 10, seed=seed, **options)
    result = train(model, random_mask(model, mask_seed), splits, training, seg, augment=augment)
    return model.state_dict(), result


def assert_same_run(state, result, model, member):
    """Bitwise the same weights, buffers, curves and summary (but for the time it took)."""
    own = model.state_dict()
    assert own.keys() == state.keys()
    for k, v in state.items():
        assert torch.equal(own[k], v), (k, (own[k].double() - v.double()).abs().max().item())
    assert member["curves"] == result["curves"]
    drop = lambda s: {k: v for k, v in s.items() if k != "train_seconds"}  # noqa: E731
    assert drop(member["summary"]) == drop(result["summary"])


@pytest.mark.parametrize("optimizer", [
    {"optimizer": "adam", "lr": 0.01},
    {"optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4, "warmup": 20},
    {"optimizer": "adamw", "lr": 0.01, "weight_decay": 0.1, "milestones": [120], "gamma": 0.1},
])
def test_every_member_of_a_group_of_8_trains_bitwise_as_alone(mnist1d, optimizer):
    training = settings(**optimizer)
    schedule = lambda t: lr_at(training, t)  # noqa: E731
    segments = [Segment(0, 200, schedule, data_seed=10 + k) for k in range(8)]
    segments[3] = Segment(0, 200, lambda t: 0.003, data_seed=13)  # finetuning at a constant rate beside the others
    segments[5] = Segment(50, 200, schedule, data_seed=15)  # resumed from iteration 50 (a rewound run)
    segments[6] = Segment(0, 130, schedule, data_seed=16)  # a shorter one: stops at 130, evaluated there
    models = [build_model("mlp1d", (40,), 10, seed=k, hidden=32) for k in range(8)]
    masks = [random_mask(m, 100 + k) for k, m in enumerate(models)]
    results = train_batched(models, masks, mnist1d, training, segments, keys=[f"run{k}" for k in range(8)])

    for k in range(8):
        state, result = alone("mlp1d", (40,), k, 100 + k, mnist1d, training, segments[k], hidden=32)
        assert_same_run(state, result, models[k], results[k])
        assert results[k]["key"] == f"run{k}" and results[k]["diverged"] is None
        params = dict(models[k].named_parameters())
        for name, m in masks[k].items():
            assert torch.all(params[name][~m] == 0.0), (k, name)
    assert results[6]["curves"][-1]["iteration"] == 130
    assert [c["lr"] for c in results[3]["curves"]] == [0.003] * 5


def test_a_member_does_not_depend_on_the_others_in_its_group(mnist1d):
    training = settings(model="lenet_300_100", optimizer="adam", lr=1e-3, iterations=60, eval_every=30)

    def group(members):
        models = [build_model("lenet_300_100", (40,), 10, seed=k) for k in members]
        segs = [Segment(0, 60, lambda t: lr_at(training, t), data_seed=k) for k in members]
        out = train_batched(models, [random_mask(m, k) for m, k in zip(models, members)], mnist1d, training, segs)
        return {k: (m.state_dict(), r["curves"]) for k, m, r in zip(members, models, out)}

    of_8, of_3 = group([0, 1, 2, 3, 4, 5, 6, 7]), group([9, 4, 11])
    state_8, curves_8 = of_8[4]
    state_3, curves_3 = of_3[4]
    assert all(torch.equal(state_8[k], state_3[k]) for k in state_8)
    assert curves_8 == curves_3


@pytest.mark.parametrize("bn", ["loop", "grouped"])
def test_batchnorm_statistics_are_each_members_own(bn):
    """resnet20 (BatchNorm after every conv): weights, running means/variances and counts bitwise,
    also for a member that stops 3 steps before the others."""
    splits = image_splits()
    training = settings("cifar10", "resnet20", optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=5e-4,
                        batch_size=32, iterations=8, eval_every=4)
    segs = [Segment(0, 8, lambda t: lr_at(training, t), data_seed=20 + k) for k in range(3)]
    segs[2] = Segment(0, 5, lambda t: lr_at(training, t), data_seed=22)  # stops early: its statistics are held
    models = [build_model("resnet20", (3, 8, 8), 10, seed=k, width=4) for k in range(3)]
    masks = [random_mask(m, 200 + k) for k, m in enumerate(models)]
    results = train_batched(models, masks, splits, training, segs, bn=bn)
    for k in range(3):
        state, result = alone("resnet20", (3, 8, 8), k, 200 + k, splits, training, segs[k], width=4)
        assert_same_run(state, result, models[k], results[k])
    running = [m.state_dict()["bn.running_var"] for m in models]
    assert not torch.equal(running[0], running[1])


def test_conv4_members_with_augmentation_train_as_alone():
    """conv4 has no BatchNorm: its convolutions, pooling and augmented batches, per member."""
    splits = image_splits()
    training = settings("cifar10", "conv4", optimizer="adam", lr=1e-3, batch_size=16, iterations=6, eval_every=3)
    segs = [Segment(0, 6, lambda t: lr_at(training, t), data_seed=30 + k) for k in range(2)]
    models = [build_model("conv4", (3, 8, 8), 10, seed=k) for k in range(2)]
    masks = [random_mask(m, 300 + k) for k, m in enumerate(models)]
    results = train_batched(models, masks, splits, training, segs, augment=True)
    for k in range(2):
        state, result = alone("conv4", (3, 8, 8), k, 300 + k, splits, training, segs[k], augment=True)
        assert_same_run(state, result, models[k], results[k])


@pytest.mark.parametrize("members", [2, 3])
@pytest.mark.parametrize("name, shape, options", [("mod_transformer", (46,), {"dim": 16, "heads": 2}),
                                                   ("encoder", (6, 8), {"dim": 16, "heads": 2})])
def test_transformer_members_each_keep_their_own_positions(members, name, shape, options):
    """The position table is one input shared by all examples: each member must get its own table (with 2
    members one used to see the other's table for position 1; with 3 it crashed)."""
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(300, *shape)
    x.view(300, -1)[torch.arange(300), torch.randint(0, x[0].numel(), (300,), generator=g)] = 1.0
    y = torch.randint(0, 10, (300,), generator=g)
    splits = Splits(info=DATASETS["mnist1d"], x_train=x[:200], y_train=y[:200], x_val=x[200:250], y_val=y[200:250],
                    x_test=x[250:], y_test=y[250:])
    training = settings(optimizer="adam", lr=1e-3, batch_size=20, iterations=6, eval_every=3)
    segs = [Segment(0, 6, lambda t: lr_at(training, t), data_seed=40 + k) for k in range(members)]
    models = [build_model(name, shape, 10, seed=k, **options) for k in range(members)]
    masks = [random_mask(m, 400 + k) for k, m in enumerate(models)]
    results = train_batched(models, masks, splits, training, segs)
    for k in range(members):
        state, result = alone(name, shape, k, 400 + k, splits, training, segs[k], **options)
        assert_same_run(state, result, models[k], results[k])


def test_grouped_convolutions_agree_to_float_rounding():
    """The grouped kernel (CUDA's default) is not bitwise a single run's on CPU (the 3-channel stem and
    the 1x1 stride-2 shortcuts differ in the last bits), but within float rounding: 2 steps here, max
    abs difference ~4e-7. (Over more steps such differences grow, as any kernel change would make
    them: 2e-3 in a BatchNorm weight after 4 steps of this tiny resnet.)"""
    splits = image_splits()
    training = settings("cifar10", "resnet20", optimizer="sgd", lr=0.05, momentum=0.9, batch_size=32,
                        iterations=2, eval_every=2)
    segs = [Segment(0, 2, lambda t: lr_at(training, t), data_seed=k) for k in range(2)]
    loop = [build_model("resnet20", (3, 8, 8), 10, seed=k, width=4) for k in range(2)]
    grouped = [build_model("resnet20", (3, 8, 8), 10, seed=k, width=4) for k in range(2)]
    masks = [full_mask(m) for m in loop]
    train_batched(loop, masks, splits, training, segs, conv="loop")
    train_batched(grouped, masks, splits, training, segs, conv="grouped")
    for a, b in zip(loop, grouped):
        for (name, x), y in zip(a.named_parameters(), b.parameters()):
            torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-5, msg=name)


def test_a_killed_job_resumes_to_the_identical_result(tmp_path, mnist1d):
    training = settings(optimizer="sgd", lr=0.1, momentum=0.9, iterations=300, checkpoint_every=0)
    keys = ["a", "b", "c"]

    steps = []

    def run(checkpoint, kill_at=None):
        models = [build_model("mlp1d", (40,), 10, seed=k, hidden=32) for k in range(3)]
        segs = [Segment(0, 300, lambda t: lr_at(training, t), data_seed=k) for k in range(3)]
        steps.clear()

        def callback(step, _stacked):
            if step == kill_at:
                raise KeyboardInterrupt
            steps.append(step)
        out = train_batched(models, [random_mask(m, k) for k, m in enumerate(models)], mnist1d, training, segs,
                            keys=keys, checkpoint=checkpoint, fingerprint="job", callback=callback)
        return models, out

    ref_models, ref = run(None)
    ckpt = tmp_path / "group.pt"
    with pytest.raises(KeyboardInterrupt):
        run(ckpt, kill_at=170)  # last checkpoint at 150: 20 steps are redone
    assert artifacts.load_checkpoint(ckpt)["step"] == 150
    models, out = run(ckpt)
    assert steps == list(range(151, 301))  # only the steps after the checkpoint
    for a, b, r, s in zip(ref_models, models, ref, out):
        assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
        assert r["curves"] == s["curves"]

    artifacts.save_checkpoint(ckpt, {**artifacts.load_checkpoint(ckpt), "fingerprint": "other"})
    with pytest.raises(LTHError, match="another job"):
        run(ckpt)


def test_a_diverging_member_is_stopped_by_its_key_and_the_others_are_unchanged(mnist1d, capsys):
    training = settings(optimizer="sgd", lr=0.1, momentum=0.9, iterations=150)

    def group(members, lrs):
        models = [build_model("mlp1d", (40,), 10, seed=k, hidden=32) for k in members]
        segs = [Segment(0, 150, (lambda t, lr=lr: lr), data_seed=k) for k, lr in zip(members, lrs)]
        out = train_batched(models, [full_mask(m) for m in models], mnist1d, training, segs,
                            keys=[f"seed{k}" for k in members])
        return models, out

    models, out = group([0, 1, 2], [0.1, 1e6, 0.05])
    assert out[1]["diverged"] is not None and out[1]["summary"] is None
    assert out[1]["curves"][-1]["iteration"] == out[1]["diverged"]["iteration"] == 50
    assert "seed1" in capsys.readouterr().err
    clean, clean_out = group([0, 2], [0.1, 0.05])
    for a, b, r, s in zip([models[0], models[2]], clean, [out[0], out[2]], clean_out):
        assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
        assert r["curves"] == s["curves"] and r["summary"]["test_accuracy"] == s["summary"]["test_accuracy"]
        assert r["diverged"] is None and len(r["curves"]) == 4


def test_unsupported_settings_and_mismatched_members_are_refused(mnist1d):
    models = [build_model("mlp1d", (40,), 10, seed=k, hidden=32) for k in range(2)]
    masks = [full_mask(m) for m in models]
    segs = [Segment(0, 10, lambda t: 0.01, data_seed=k) for k in range(2)]
    with pytest.raises(LTHError, match="training.l1"):
        train_batched(models, masks, mnist1d, settings(l1=1e-4), segs)
    other = build_model("mlp1d", (40,), 10, seed=0, hidden=16)
    with pytest.raises(LTHError, match="same architecture"):
        train_batched([models[0], other], [masks[0], full_mask(other)], mnist1d, settings(), segs)
    with pytest.raises(LTHError, match="unique"):
        train_batched(models, masks, mnist1d, settings(), segs, keys=["x", "x"])


def test_memory_estimate_grows_with_the_group_and_refuses_one_that_cannot_fit():
    model = build_model("lenet_300_100", (1, 28, 28), 10, seed=0)
    one = estimate_bytes(model, 1, 60, "adam", (1, 28, 28))
    params = sum(p.numel() for p in model.parameters())
    assert one > 4 * params * 4  # weights, gradients, two moments at least
    assert estimate_bytes(model, 8, 60, "adam", (1, 28, 28)) == 8 * one
    assert estimate_bytes(model, 1, 60, "sgd", (1, 28, 28)) < one
    assert check_fits(model, 2, 60, "adam", (1, 28, 28)) == 2 * one
    with pytest.raises(LTHError, match=r"batching: a group of 10000000 runs .* needs about .* GiB"):
        check_fits(model, 10_000_000, 60, "adam", (1, 28, 28))


@pytest.mark.parametrize("optimizer", [{"optimizer": "adamw", "lr": 0.01, "weight_decay": 0.1},
                                       {"optimizer": "sgd", "lr": 0.1, "momentum": 0.9}])
def test_whole_tensor_steps_agree_with_per_member_steps_and_resume(tmp_path, mnist1d, optimizer):
    """CUDA's default: one optimiser call on the stacked tensors. On CPU SGD's is bitwise the
    per-member calls'; AdamW's fused kernel computes a tensor's last elements by a scalar path
    that differs in the last bit from its vector body, so there within 1e-5 after 20 steps (such
    differences grow chaotically over longer runs). A killed job resumes to the same result."""
    training = settings(**optimizer, iterations=20, eval_every=10)

    def run(whole, checkpoint=None, kill_at=None):
        models = [build_model("mlp1d", (40,), 10, seed=k, hidden=32) for k in range(4)]
        segs = [Segment(0, 20, lambda t: lr_at(training, t), data_seed=k) for k in range(4)]

        def callback(step, _stacked):
            if step == kill_at:
                raise KeyboardInterrupt
        train_batched(models, [random_mask(m, k) for k, m in enumerate(models)], mnist1d, training, segs,
                      whole_steps=whole, checkpoint=checkpoint, callback=callback)
        return [m.state_dict() for m in models]

    members, whole = run(False), run(True)
    for a, b in zip(members, whole):
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-5 if optimizer["optimizer"] == "adamw" else 0)
    ckpt = tmp_path / "whole.pt"
    with pytest.raises(KeyboardInterrupt):
        run(True, ckpt, kill_at=15)
    for a, b in zip(whole, run(True, ckpt)):
        assert all(torch.equal(a[k], b[k]) for k in a)


# ----------------------------------------------------------------------------- in the workflow's jobs


def _run_plan(tmp_path, data_dir, name, batching, changes):
    from lth.jobs import Context
    from lth.plan import plan_of

    from conftest import tiny

    plan = plan_of(name, tiny(changes), tmp_path / name, {"data_dir": str(data_dir), "batching": batching})
    plan.write()
    ctx = Context(plan, torch.device("cpu"))
    for job in plan.jobs():
        ctx.run(job)
    return plan


def test_a_batched_workflow_writes_bitwise_the_runs_of_one_at_a_time(tmp_path, data_dir):
    """`batching` groups a level job's ticket and controls, and a transfer job's variants; on CPU every
    run's mask, weights and curves are those the job writes one run at a time."""
    from lth.store import artifacts
    from lth.store.results import read_record

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        changes = {"variants": ["ticket", "reinit", "random_prune"],
                   "transfer": {"targets": {"again": {"dataset": {"name": "mnist1d", "val_size": 400}}}}}
        alone = _run_plan(tmp_path, data_dir, "alone", 1, changes)
        grouped = _run_plan(tmp_path, data_dir, "grouped", 8, changes)
    finally:
        torch.set_num_threads(threads)
    keys = alone.runs()
    assert keys == grouped.runs() and any(k.target for k in keys) and any(k.variant == "reinit" for k in keys)
    batched = 0
    for key in keys:
        a, g = read_record(alone.layout.metrics(key)), read_record(grouped.layout.metrics(key))
        assert a["curves"] == g["curves"], key
        batched += g["provenance"].get("batched", 1) > 1
        for path in ("final", "mask"):
            ta = artifacts.load_tensors(getattr(alone.layout, path)(key))
            tg = artifacts.load_tensors(getattr(grouped.layout, path)(key))
            assert ta.keys() == tg.keys() and all(torch.equal(ta[n], tg[n]) for n in ta), (key, path)
    assert batched >= 6  # 2 levels x 3 variants, plus the transfer's variants
    assert not list(grouped.layout.root.rglob("groups/*.pt"))  # group checkpoints removed


def test_a_preempted_group_saves_at_its_step_and_resumes_bitwise(tmp_path, mnist1d):
    """SIGUSR1 (SLURM's --signal warning) between evaluations: the group writes its checkpoint at the step
    it reached, with the tallies since the last evaluation, stops with Preempted, and resumes to the
    uninterrupted weights and curves."""
    import os
    import signal

    from lth.core import preemption

    training = settings(iterations=40, eval_every=10)

    def run(checkpoint=None, signal_at=None):
        models = [build_model("mlp1d", (40,), 10, seed=k, hidden=32) for k in range(3)]
        segs = [Segment(0, 40 - 10 * (k == 2), lambda t: lr_at(training, t), data_seed=k) for k in range(3)]

        def callback(step, _stacked):
            if step == signal_at:
                os.kill(os.getpid(), signal.SIGUSR1)
        results = train_batched(models, [random_mask(m, k) for k, m in enumerate(models)], mnist1d, training, segs,
                                checkpoint=checkpoint, callback=callback)
        return [m.state_dict() for m in models], [r["curves"] for r in results]

    ref, ref_curves = run()
    ckpt = tmp_path / "group.pt"
    previous = preemption.install()
    try:
        with pytest.raises(preemption.Preempted, match="SIGUSR1.*step 33 of 40"):
            run(ckpt, signal_at=33)  # after the third member stopped (at 30), between evaluations
    finally:
        preemption.restore(previous)
    assert artifacts.load_checkpoint(ckpt)["stopped"] == {"signal": "SIGUSR1", "step": 33}
    states, curves = run(ckpt)
    assert curves == ref_curves
    for a, b in zip(ref, states):
        assert all(torch.equal(a[k], b[k]) for k in a)
