"""A training step never waits for the device: no value is read back (.item, .tolist, bool, float, int,
.cpu, .numpy) and at most one copy goes to the device (the step's indices and crops, lth.training.order),
counted by a TorchFunctionMode around training runs of two lengths: whatever the longer run does more
is what its extra steps do. On the CPU these calls cost nothing, but on a GPU each read is a wait."""

from types import SimpleNamespace

import pytest
import torch
from torch.overrides import TorchFunctionMode

from lth.core.registry import Part
from lth.models import build_model
from lth.plan.settings import resolve
from lth.pruning.masks import full_mask
from lth.training.batched import train_batched
from lth.training.loop import Segment, train
from lth.training.schedule import lr_at

SYNCS = {"item", "tolist", "__bool__", "__float__", "__int__", "__index__", "cpu", "numpy"}


class Counter(TorchFunctionMode):
    """Counts the calls that read a tensor's values on the host, and those that move one to a device."""

    def __init__(self):
        super().__init__()
        self.syncs, self.copies = [], []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name in SYNCS:
            self.syncs.append(name)
        if name == "cuda" or name == "to" and ("device" in kwargs or any(
                isinstance(a, (torch.device, str)) for a in args[1:])):
            self.copies.append(name)
        return func(*args, **kwargs)


def splits():
    """Images (augmentation on) of 4 classes, as tensors: what lth.data.splits.Splits holds."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(400, 1, 8, 8, generator=g), torch.randint(0, 4, (400,), generator=g)
    return SimpleNamespace(x_train=x[:300], y_train=y[:300], x_val=x[300:350], y_val=y[300:350],
                           x_test=x[350:], y_test=y[350:], info=Part("digits", "x:y"))


def training(iterations: int, **changes):
    t = resolve({"dataset": {"name": "digits", "val_size": 100}, "training": {
        "batch_size": 32, "iterations": iterations, "eval_every": iterations, **changes}})["training"]
    return t


def counted(run) -> Counter:
    with Counter() as counter:
        run()
    return counter


@pytest.mark.parametrize("optimizer", [{"optimizer": "adam"}, {"optimizer": "sgd", "momentum": 0.9}])
def test_a_training_step_reads_nothing_back_and_copies_once(optimizer):
    data = splits()

    def run(iterations):
        model = build_model("conv2", (1, 8, 8), 4, seed=0)
        mask = full_mask(model)
        t = training(iterations, **optimizer)
        seg = Segment(0, iterations, lambda i: lr_at(t, i), data_seed=1)
        return counted(lambda: train(model, mask, data, t, seg, augment=True))

    short, long = run(20), run(40)  # 9 steps an epoch: the longer run also starts more epochs
    assert len(long.syncs) == len(short.syncs), sorted(set(long.syncs))
    assert len(long.copies) - len(short.copies) <= 20


def test_a_batched_step_reads_nothing_back_and_copies_once():
    data = splits()

    def run(iterations):
        models = [build_model("conv2", (1, 8, 8), 4, seed=s) for s in (0, 1, 2)]
        t = training(iterations)
        segs = [Segment(0, iterations, lambda i: lr_at(t, i), data_seed=s) for s in (0, 1, 2)]
        return counted(lambda: train_batched(models, [full_mask(m) for m in models], data, t, segs, augment=True,
                                             memory_check=False))

    short, long = run(20), run(40)
    assert len(long.syncs) == len(short.syncs), sorted(set(long.syncs))
    assert len(long.copies) - len(short.copies) <= 20
