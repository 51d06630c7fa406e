"""The training loop: masked training for an iteration budget, evaluation, resumable checkpoints.

Everything random is a function of `data_seed` and the iteration number: epoch e's example order
is a permutation seeded by (data_seed, e) and iteration t's augmentation by (data_seed, t). So a
run resumed at iteration t sees exactly the batches an uninterrupted run would, and the
checkpoint need hold no RNG state: only weights, optimiser state and the curves so far.
Data stay as tensors on the device; a step is one indexing op, the model and the optimiser.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lth.artifacts import load_checkpoint, save_checkpoint
from lth.errors import LTHError
from lth.masks import Mask, MaskEnforcer, apply_mask
from lth.optim import Optimizer
from lth.seeding import derive_seed

EVAL_BATCH = 1000


def lr_at(training: dict[str, Any], t: int) -> float:
    """Learning rate of iteration t (0-based): linear warmup, then x gamma at each milestone passed."""
    lr = training["lr"]
    if t < training["warmup"]:
        lr *= (t + 1) / training["warmup"]
    return lr * training["gamma"] ** sum(1 for m in training["milestones"] if t >= m)


class BatchOrder:
    """Indices of iteration t's minibatch; epochs are seeded permutations, the last partial batch dropped."""

    def __init__(self, n: int, batch_size: int, data_seed: int, device: torch.device):
        if batch_size > n:
            raise LTHError(f"training.batch_size: {batch_size} exceeds the {n} training examples")
        self.n, self.batch_size, self.seed, self.device = n, batch_size, data_seed, device
        self.per_epoch = n // batch_size
        self._epoch, self._perm = -1, None

    def __call__(self, t: int) -> torch.Tensor:
        epoch, i = divmod(t, self.per_epoch)
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(derive_seed(self.seed, "order", epoch))
            self._perm, self._epoch = torch.randperm(self.n, generator=g).to(self.device), epoch
        return self._perm[i * self.batch_size : (i + 1) * self.batch_size]


def task_of(splits) -> str:
    """"classification" or "regression" (lth.datasets.Splits.task; a plain namespace of tensors classifies)."""
    return getattr(splits, "task", "classification")


def loss_of(out: torch.Tensor, y: torch.Tensor, task: str = "classification", reduction: str = "mean"):
    """Cross-entropy of class logits, or the squared error of a regression's one output."""
    if task == "regression":
        return F.mse_loss(out.squeeze(-1), y, reduction=reduction)
    return F.cross_entropy(out, y, reduction=reduction)


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
             task: str = "classification") -> tuple[float | None, float | None]:
    """Mean loss and accuracy over (x, y), in eval mode (BatchNorm uses running stats); None if empty,
    and no accuracy for a regression (its loss is the mean squared error)."""
    if len(y) == 0:
        return None, None
    was_training = model.training
    model.eval()
    loss = torch.zeros((), device=x.device)
    correct = torch.zeros((), device=x.device, dtype=torch.long)
    for i in range(0, len(y), EVAL_BATCH):
        out = model(x[i : i + EVAL_BATCH])
        loss += loss_of(out, y[i : i + EVAL_BATCH], task, reduction="sum")
        if task == "classification":
            correct += (out.argmax(1) == y[i : i + EVAL_BATCH]).sum()
    model.train(was_training)
    return loss.item() / len(y), (correct.item() / len(y) if task == "classification" else None)


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


def train(model: nn.Module, mask: Mask, splits, training: dict[str, Any], seg: Segment,
          augment: bool = False, enforce: Callable[[int], None] | None = None,
          observe: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None) -> dict[str, Any]:
    """Train `model` (already on the device) under `mask` for the segment; return curves and summary.

    enforce(t): called after the optimiser step of iteration t instead of re-zeroing `mask`'s pruned
    weights (iterative hard thresholding chooses its mask anew at every step: lth.iht).
    observe(t, x, y): sees iteration t's batch before the step and must leave the model as it was
    (a score accumulated during training: lth.pruning.bingo).
    """
    from lth.datasets import augment_batch

    device = next(model.parameters()).device
    mask = {k: v.to(device) for k, v in mask.items()}
    apply_mask(model, mask)
    optimizer = Optimizer(model.parameters(), training)
    keep_zero = MaskEnforcer(model, mask)
    task = task_of(splits)
    adversarial = training.get("adversarial") or {}
    adversarial = adversarial if adversarial.get("method", "none") != "none" else None
    bn_l1, l1 = training.get("bn_l1", 0.0), training.get("l1", 0.0)
    if l1:
        l1_params = [dict(model.named_parameters())[n] for n in mask]
    if adversarial:
        from lth.adversarial import attack_generator, perturb
    if bn_l1:
        from lth.earlybird import slimming_penalty
    if enforce is None:
        enforce = lambda t: keep_zero()  # noqa: E731
    order = BatchOrder(len(splits.y_train), training["batch_size"], seg.data_seed, device)
    every, ckpt_every = training["eval_every"], training["checkpoint_every"]

    t, curves, last_ckpt = seg.start, [], seg.start
    if seg.checkpoint is not None and seg.checkpoint.exists():
        state = load_checkpoint(seg.checkpoint)
        if state.get("fingerprint") != seg.fingerprint:
            raise LTHError(f"{seg.checkpoint}: resume checkpoint belongs to another job; delete it to restart")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        t, curves, last_ckpt = state["iteration"], state["curves"], state["iteration"]
    else:
        curves.append(_evaluation(model, splits, t, seg.lr(t), None, None))

    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    bar = _progress(seg, t)
    started = time.perf_counter()
    model.train()
    while t < seg.stop:
        lr = seg.lr(t)
        idx = order(t)
        xb, yb = splits.x_train[idx], splits.y_train[idx]
        if augment:
            # a CPU generator: the same crops and flips whatever the device
            xb = augment_batch(xb, torch.Generator().manual_seed(derive_seed(seg.data_seed, "aug", t)))
        if observe is not None:
            observe(t, xb, yb)
        if adversarial:
            xb = perturb(model, xb, yb, adversarial["method"], adversarial["epsilon"], adversarial["steps"],
                         attack_generator(seg.data_seed, t))
        out = model(xb)
        loss = loss_of(out, yb, task)
        if bn_l1:
            loss = loss + bn_l1 * slimming_penalty(model)
        if l1:
            loss = loss + l1 * sum(p.abs().sum() for p in l1_params)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step(lr)
        enforce(t)
        loss_sum += loss.detach() * len(yb)
        if task == "classification":
            correct += (out.detach().argmax(1) == yb).sum()
        seen += len(yb)
        t += 1
        if (t - seg.start) % every == 0 or t == seg.stop:
            curves.append(_evaluation(model, splits, t, lr, loss_sum.item() / seen,
                                      correct.item() / seen if task == "classification" else None))
            loss_sum.zero_(), correct.zero_()
            seen = 0
            if bar is not None:
                bar.update(t - bar.n)
                bar.set_postfix(test_acc=f"{curves[-1]['test_accuracy']:.3f}")
            if seg.checkpoint is not None and t < seg.stop and t - last_ckpt >= ckpt_every:
                save_checkpoint(seg.checkpoint, {"fingerprint": seg.fingerprint, "iteration": t, "curves": curves,
                                                 "model": model.state_dict(), "optimizer": optimizer.state_dict()})
                last_ckpt = t
    if bar is not None:
        bar.close()
    seconds = time.perf_counter() - started
    return {"curves": curves, "summary": summarise(model, splits, curves, seconds)}


def _evaluation(model, splits, t, lr, train_loss, train_acc) -> dict[str, float]:
    task = task_of(splits)
    val_loss, val_acc = evaluate(model, splits.x_val, splits.y_val, task)
    test_loss, test_acc = evaluate(model, splits.x_test, splits.y_test, task)
    return {"iteration": t, "lr": lr, "train_loss": train_loss, "train_accuracy": train_acc,
            "val_loss": val_loss, "val_accuracy": val_acc, "test_loss": test_loss, "test_accuracy": test_acc}


def summarise(model, splits, curves, train_seconds: float) -> dict[str, Any]:
    """End-of-run numbers: final test accuracy, early stopping by minimum validation loss, train accuracy."""
    task = task_of(splits)
    _, train_acc = evaluate(model, splits.x_train, splits.y_train, task)
    return summary_of(curves, train_acc, task, train_seconds)


def summary_of(curves: list[dict], train_acc: float | None, task: str, train_seconds: float) -> dict[str, Any]:
    """`summarise` given the training-set accuracy (the batched trainer evaluates it for every member)."""
    trained = curves[1:] or curves
    with_val = [c for c in trained if c["val_loss"] is not None]
    best = min(with_val, key=lambda c: c["val_loss"]) if with_val else None
    classifies = task == "classification"
    return {
        "test_accuracy": curves[-1]["test_accuracy"],
        "test_loss": curves[-1]["test_loss"],
        "train_accuracy": train_acc,
        "best_val_accuracy": max(c["val_accuracy"] for c in with_val) if with_val and classifies else None,
        "early_stop_iteration": best["iteration"] if best else None,
        "early_stop_test_accuracy": best["test_accuracy"] if best else None,
        "train_seconds": train_seconds,
    }


def _progress(seg: Segment, t: int):
    """A progress bar in a terminal; nothing in logs."""
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    bar = tqdm(total=seg.stop, initial=t, desc=seg.label, unit="it", leave=False)
    return bar
