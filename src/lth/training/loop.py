"""The training loop: training under a mask for an iteration budget, evaluation, resumable checkpoints.

Everything random is a function of `data_seed` and the iteration number: epoch e's example order
is a permutation seeded by (data_seed, e) (lth.training.order) and iteration t's augmentation by
(data_seed, t). So a run resumed at iteration t sees exactly the batches an uninterrupted run
would, and the checkpoint need hold no RNG state: only weights, optimiser state and the curves so
far (and, when a preemption stops it between evaluations, the tallies since the last one: a
preempted run saves at the step it reached, lth.core.preemption). Data stay as tensors on the
device; a step is one indexing op, the model and the optimiser. What a step adds beyond that (an
adversarial batch, penalties) are loop features (lth.training.features); how the mask is kept is
the training mode's `enforce`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lth.core import preemption
from lth.core.errors import LTHError
from lth.pruning.masks import Mask, MaskEnforcer, apply_mask
from lth.store.artifacts import load_checkpoint, save_checkpoint, save_tensors
from lth.training.evaluation import evaluation_point, loss_of, summarise, task_of
from lth.training.features import active_features
from lth.training.optim import Optimizer
from lth.training.order import BatchOrder, draw, gather, to_device
from lth.training.precision import autocast


@dataclass
class Segment:
    """What to train: iterations [start, stop) of the schedule, with this learning-rate function."""

    start: int
    stop: int
    lr: Callable[[int], float]
    data_seed: int
    checkpoint: Path | None = None
    fingerprint: str = ""  # identifies the run, so a stale checkpoint is never resumed into another
    label: str = "train"
    snapshots: dict[int, Path] = field(default_factory=dict)  # iteration -> where to keep the weights it has


def train(model: nn.Module, mask: Mask, splits, training: dict[str, Any], seg: Segment,
          augment: bool = False, enforce: Callable[[int], None] | None = None,
          observe: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None,
          features: Sequence[str] | None = None) -> dict[str, Any]:
    """Train `model` (already on the device) under `mask` for the segment; return curves and summary.

    enforce(t): called after the optimiser step of iteration t instead of re-zeroing `mask`'s pruned
    weights (a training mode that chooses its mask anew at every step: lth.training.modes.iht). An
    enforce whose mask is state (lth.training.modes.EvolvingMask) has `state_dict`/`load_state_dict`,
    kept in the resume checkpoint, and `attach(optimizer)`, called once the optimiser exists.
    observe(t, x, y): sees iteration t's batch before the step and must leave the model as it was
    (a score accumulated during training: lth.pruning.scores.bingo). features: the loop features the
    training mode takes (default: every one the settings switch on).
    """
    device = next(model.parameters()).device
    mask = {k: v.to(device) for k, v in mask.items()}
    apply_mask(model, mask)
    optimizer = Optimizer(model.parameters(), training)
    if enforce is None:
        keep_zero = MaskEnforcer(model, mask)
        enforce = lambda t: keep_zero()  # noqa: E731
    elif hasattr(enforce, "attach"):
        enforce.attach(optimizer)
    step = Step(model, optimizer, splits, training, seg.data_seed, augment, enforce, observe,
                active_features(model, mask, training, features))
    in_precision = lambda: autocast(device, training.get("precision", "fp32"))  # noqa: E731
    with in_precision():
        t, curves, state = resume(model, optimizer, splits, seg, enforce)
    last_ckpt, tally = t, Tally(device, task_of(splits))
    if "tally" in state:
        tally.load_state_dict(state["tally"])
    every, ckpt_every = training["eval_every"], training["checkpoint_every"]
    bar = _progress(seg, t)
    started = time.perf_counter()

    def save(t: int, **extra) -> None:
        mode = {"mode": enforce.state_dict()} if hasattr(enforce, "state_dict") else {}
        save_checkpoint(seg.checkpoint, {"fingerprint": seg.fingerprint, "iteration": t, "curves": curves,
                                         "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                         **mode, **extra})

    model.train()
    with preemption.polling():
        while t < seg.stop:
            lr = seg.lr(t)
            tally.add(*step(t, lr))
            t += 1
            if t in seg.snapshots:
                save_tensors(seg.snapshots[t], model.state_dict())
            if (t - seg.start) % every == 0 or t == seg.stop:
                with in_precision():
                    curves.append(evaluation_point(model, splits, t, lr, *tally.take()))
                if bar is not None:
                    bar.update(t - bar.n)
                    bar.set_postfix(test_acc=f"{curves[-1]['test_accuracy']:.3f}")
                if seg.checkpoint is not None and t < seg.stop and t - last_ckpt >= ckpt_every:
                    save(t)
                    last_ckpt = t
            if (signal_name := preemption.requested()) and t < seg.stop:
                where = "no resume checkpoint (this run keeps none)"
                if seg.checkpoint is not None:
                    save(t, tally=tally.state_dict(), stopped={"signal": signal_name, "iteration": t})
                    where = f"resume checkpoint at iteration {t} of {seg.stop} in {seg.checkpoint}"
                raise preemption.Preempted(signal_name, f"{seg.label}: {where}")
    if bar is not None:
        bar.close()
    seconds = time.perf_counter() - started
    with in_precision():
        return {"curves": curves, "summary": summarise(model, splits, curves, seconds)}


def resume(model: nn.Module, optimizer: Optimizer, splits, seg: Segment,
           enforce: Callable[[int], None] | None = None) -> tuple[int, list[dict], dict[str, Any]]:
    """(the iteration to train from, the curves so far, the checkpoint): the segment's resume checkpoint
    loaded into `model`, `optimizer` and a stateful `enforce` if there is one (refused if it belongs to
    another run), else the segment's start, its first evaluation and {}."""
    if seg.checkpoint is not None and seg.checkpoint.exists():
        state = load_checkpoint(seg.checkpoint)
        if state.get("fingerprint") != seg.fingerprint:
            raise LTHError(f"{seg.checkpoint}: resume checkpoint belongs to another job; delete it to restart")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if hasattr(enforce, "load_state_dict"):
            if "mode" not in state:
                raise LTHError(f"{seg.checkpoint}: resume checkpoint holds no training-mode state; delete it to "
                               f"restart")
            enforce.load_state_dict(state["mode"])
        if "stopped" in state:
            print(f"{seg.label}: resuming at iteration {state['iteration']} (stopped by {state['stopped']['signal']})",
                  file=sys.stderr, flush=True)
        return state["iteration"], state["curves"], state
    return seg.start, [evaluation_point(model, splits, seg.start, seg.lr(seg.start), None, None)], {}


class Step:
    """One training iteration t: its batch (augmented, seen by the observer, replaced by a feature's
    inputs), the forward pass, the loss with the features' penalties, the backward pass, the optimiser
    step at the learning rate, then `enforce(t)`. Returns the loss, the outputs and the labels."""

    def __init__(self, model: nn.Module, optimizer: Optimizer, splits, training: dict[str, Any], data_seed: int,
                 augment: bool, enforce: Callable[[int], None], observe, features: list):
        device = next(model.parameters()).device
        self.model, self.optimizer, self.splits, self.data_seed = model, optimizer, splits, data_seed
        self.augment, self.enforce, self.observe, self.task = augment, enforce, observe, task_of(splits)
        self.device, self.precision = device, training.get("precision", "fp32")
        self.order = BatchOrder(len(splits.y_train), training["batch_size"], data_seed,
                                training.get("data_order", "shuffled"))
        self.batch_features = [f for f in features if hasattr(f, "inputs")]
        self.loss_features = [f for f in features if hasattr(f, "penalty")]

    def __call__(self, t: int, lr: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        xb, yb = gather(self.splits, to_device(draw(self.order, t, self.data_seed, self.augment), self.device),
                        self.augment)
        if self.observe is not None:
            self.observe(t, xb, yb)
        for feature in self.batch_features:
            xb = feature.inputs(self.model, xb, yb, self.data_seed, t)
        with autocast(self.device, self.precision):
            out = self.model(xb)
            loss = loss_of(out, yb, self.task)
            for feature in self.loss_features:
                loss = loss + feature.penalty(self.model)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step(lr)
        self.enforce(t)
        return loss, out, yb


class Tally:
    """The training loss and accuracy since the last evaluation, summed on the device: the host reads
    them only at evaluation points."""

    def __init__(self, device: torch.device, task: str):
        self.classifies = task == "classification"
        self.loss_sum = torch.zeros((), device=device)
        self.correct = torch.zeros((), device=device, dtype=torch.long)
        self.seen = 0

    def add(self, loss: torch.Tensor, out: torch.Tensor, y: torch.Tensor) -> None:
        self.loss_sum += loss.detach() * len(y)
        if self.classifies:
            self.correct += (out.detach().argmax(1) == y).sum()
        self.seen += len(y)

    def state_dict(self) -> dict[str, Any]:
        """The sums since the last evaluation (a checkpoint between evaluations keeps them)."""
        return {"loss_sum": self.loss_sum.clone(), "correct": self.correct.clone(), "seen": self.seen}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.loss_sum.copy_(state["loss_sum"]), self.correct.copy_(state["correct"])
        self.seen = state["seen"]

    def take(self) -> tuple[float, float | None]:
        """(mean training loss, training accuracy) since the last take; then starts again."""
        loss = self.loss_sum.item() / self.seen
        accuracy = self.correct.item() / self.seen if self.classifies else None
        self.loss_sum.zero_(), self.correct.zero_()
        self.seen = 0
        return loss, accuracy


def _progress(seg: Segment, t: int):
    """A progress bar in a terminal; nothing in logs."""
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    bar = tqdm(total=seg.stop, initial=t, desc=seg.label, unit="it", leave=False)
    return bar
