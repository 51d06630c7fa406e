"""The loop of a group of stacked runs (lth.training.batched): one step for every member still
running, evaluation at each member's own points, divergence stops a member, checkpoints at
evaluation points."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lth.core import preemption
from lth.core.errors import LTHError
from lth.data.augment import apply_augment
from lth.pruning.masks import Mask, MaskEnforcer, check_mask
from lth.store.artifacts import load_checkpoint, save_checkpoint
from lth.training.batched.layers import StackedModel
from lth.training.batched.member_eval import evaluate_members, step_losses
from lth.training.batched.memory import available_bytes, check_fits, eval_members
from lth.training.batched.optimizer import StackedOptimizer
from lth.training.evaluation import summary_of, task_of
from lth.training.features import unbatchable
from lth.training.loop import Segment
from lth.training.order import BatchOrder, draw, to_device
from lth.training.precision import autocast


def train_batched(models: Sequence[nn.Module], masks: Sequence[Mask], splits, training: dict[str, Any],
                  segments: Sequence[Segment], *, keys: Sequence[str] | None = None,
                  checkpoint: Path | None = None, fingerprint: str = "", augment: bool = False,
                  conv: str = "auto", bn: str = "auto", exact_losses: bool | None = None,
                  whole_steps: bool | None = None, memory_check: bool = True,
                  eval_budget: int | None = None,
                  callback: Callable[[int, StackedModel], None] | None = None) -> list[dict[str, Any]]:
    """Train members k = 0..M-1 (models[k] under masks[k] for segments[k]) together; one result each.

    Every model must be the same architecture on the same device. A segment gives the member's
    iterations [start, stop), learning-rate function and data seed (its `checkpoint` and
    `fingerprint` are not used: the group has one checkpoint, `checkpoint`, identified by
    `fingerprint` and the keys). Members step together: step s trains iteration start_k + s of
    every member still running; evaluation points are those of `train` (every
    training["eval_every"] steps and at the member's stop).

    Returns, per member: {"key", "curves", "summary", "diverged"}: curves and summary as `train`
    returns them (summary["train_seconds"]: the group's training time divided by M), or, for a
    member whose loss became NaN/inf, summary None and diverged {"iteration", "reason"} (its
    curves end at the evaluation that found it). The trained weights are loaded into `models`.

    conv, bn: "loop" | "grouped" | "auto", how Conv2d and BatchNorm2d layers are stacked (module
    docstring). exact_losses: compute each member's loss by `train`'s own call (default: on CPU).
    whole_steps: StackedOptimizer's `whole` (default: on CUDA). memory_check: refuse a group that
    cannot fit (`check_fits`). eval_budget: bytes of activations an evaluation chunk may take (default 512 MiB
    on CPU, a quarter of the free memory up to 8 GiB on CUDA). callback(s, stacked): called after
    step s with the StackedModel (tests interrupt a job with it, and look at members' weights).
    """
    keys = [str(k) for k in keys] if keys is not None else [str(k) for k in range(len(models))]
    check_members(models, masks, segments, keys, training)
    device = next(models[0].parameters()).device
    if memory_check:
        check_fits(models[0], len(models), training["batch_size"], training["optimizer"],
                   tuple(splits.x_train.shape[1:]), device)
    group = Group(models, masks, splits, training, segments, keys, conv=conv, bn=bn,
                  exact=device.type == "cpu" if exact_losses is None else exact_losses,
                  whole=device.type == "cuda" if whole_steps is None else whole_steps,
                  eval_budget=eval_budget)
    fp = f"{fingerprint}|{'|'.join(keys)}"
    group.start(checkpoint, fp)
    started = time.perf_counter()
    with preemption.polling():
        while group.going():
            group.train_step(augment)
            if callback is not None:
                callback(group.step, group.stacked)
            if group.evaluate_due():
                group.save_due(checkpoint, fp)
            if (signal_name := preemption.requested()) and group.going():
                group.stop_preempted(checkpoint, fp, signal_name)
    return group.results(models, time.perf_counter() - started)


def check_members(models, masks, segments, keys: list[str], training: dict[str, Any]) -> None:
    """One mask, segment and unique key per model, segments that do not end before they start, masks
    over the same layers that fit their models, and no training setting batching does not implement."""
    n = len(models)
    if not (len(masks) == len(segments) == len(keys) == n) or n == 0:
        raise LTHError(f"batched training: {n} models, {len(masks)} masks, {len(segments)} segments, "
                       f"{len(keys)} keys: give one of each per member")
    if len(set(keys)) != n:
        raise LTHError(f"batched training: member keys are not unique: {keys}")
    if setting := unbatchable(training):
        raise LTHError(f"{setting}: not supported by batched training; train these runs one at a time")
    for k, seg in enumerate(segments):
        if seg.stop < seg.start:
            raise LTHError(f"batched training: member {keys[k]}: segment stops ({seg.stop}) before it starts "
                           f"({seg.start})")
    mask_names = set(masks[0])
    for k, mask in enumerate(masks):
        if set(mask) != mask_names:
            raise LTHError(f"batched training: member {keys[k]}'s mask covers {sorted(mask)}, member {keys[0]}'s "
                           f"{sorted(mask_names)}: the members of a group need masks over the same layers")
        check_mask(models[k], mask, f"mask of member {keys[k]}")


def _finite(*values: float | None) -> bool:
    return all(v is None or math.isfinite(v) for v in values)


class Group:
    """A group of stacked runs in training: the stacked model, its optimiser, and each member's data
    order, tallies since its last evaluation, curves, and whether it stopped (`step`, `curves` and
    `diverged` are what a checkpoint holds besides the tensors)."""

    def __init__(self, models, masks, splits, training: dict[str, Any], segments: Sequence[Segment],
                 keys: list[str], *, conv: str, bn: str, exact: bool, whole: bool, eval_budget: int | None):
        n, device = len(models), next(models[0].parameters()).device
        self.n, self.keys, self.splits, self.segments, self.exact = n, keys, splits, segments, exact
        self.device, self.precision = device, training.get("precision", "fp32")
        self.batch, self.input_shape = training["batch_size"], tuple(splits.x_train.shape[1:])
        self.task, self.classifies = task_of(splits), task_of(splits) == "classification"
        if eval_budget is None:
            eval_budget = 2**29 if device.type != "cuda" else min(available_bytes(device) // 4, 2**33)
        self.chunk = eval_members(models[0], self.input_shape, eval_budget)
        self.stacked = StackedModel(models, conv=conv, bn=bn)
        # the members' masks stacked like their weights: pruned weights zero now and after every step
        self.keep_zero = MaskEnforcer(self.stacked.net, {name: torch.stack([m[name].to(device) for m in masks])
                                                         for name in sorted(masks[0])})
        self.keep_zero()
        self.params = list(self.stacked.net.parameters())
        self.optimizer = StackedOptimizer(self.params, n, training, whole=whole)
        self.bn_buffers = list(self.stacked.net.buffers())
        self.orders = [BatchOrder(len(splits.y_train), self.batch, seg.data_seed) for seg in segments]
        self.lengths = [seg.stop - seg.start for seg in segments]
        self.every, self.ckpt_every = training["eval_every"], training["checkpoint_every"]
        self.step, self.last_ckpt = 0, 0
        self.curves: list[list[dict]] = [[] for _ in range(n)]
        self.diverged: dict[int, dict[str, Any]] = {}
        self.last_lr: list[float | None] = [None] * n
        self.held: dict[int, list[torch.Tensor]] = {}  # BatchNorm statistics of stopped members, held
        self.loss_sum = torch.zeros(n, device=device)
        self.correct = torch.zeros(n, device=device, dtype=torch.long)
        self.seen = [0] * n

    # --- checkpoints --------------------------------------------------------------------------
    def state(self, fingerprint: str) -> dict[str, Any]:
        return {"fingerprint": fingerprint, "keys": self.keys, "step": self.step, "curves": self.curves,
                "diverged": {str(k): v for k, v in self.diverged.items()},
                "model": self.stacked.stacked_state(), "optimizer": self.optimizer.state_dict()}

    def stop_preempted(self, checkpoint: Path | None, fingerprint: str, signal_name: str) -> None:
        """Preempted between evaluations: the checkpoint at this step, with the tallies since the last
        evaluation, then `Preempted` (lth.core.preemption)."""
        where = "no resume checkpoint (this group keeps none)"
        if checkpoint is not None:
            save_checkpoint(checkpoint, {**self.state(fingerprint), "stopped": {"signal": signal_name,
                                                                                "step": self.step},
                                         "tally": {"loss_sum": self.loss_sum.clone(), "correct": self.correct.clone(),
                                                   "seen": list(self.seen), "last_lr": list(self.last_lr)}})
            where = f"resume checkpoint at step {self.step} of {max(self.lengths)} in {checkpoint}"
        raise preemption.Preempted(signal_name, f"group {', '.join(self.keys)}: {where}")

    @torch.no_grad()
    def load(self, state: dict[str, Any]) -> None:
        own = self.stacked.stacked_state()
        for name, t in state["model"].items():
            own[name].copy_(t)
        self.optimizer.load_state_dict(state["optimizer"])
        self.step, self.last_ckpt = state["step"], state["step"]
        self.curves = state["curves"]
        self.diverged = {int(k): v for k, v in state["diverged"].items()}
        if "tally" in state:  # stopped by a preemption between evaluations
            self.loss_sum.copy_(state["tally"]["loss_sum"]), self.correct.copy_(state["tally"]["correct"])
            self.seen, self.last_lr = list(state["tally"]["seen"]), list(state["tally"]["last_lr"])

    def start(self, checkpoint: Path | None, fingerprint: str) -> None:
        """Resume from `checkpoint` (refused if it belongs to another group), else evaluate every member
        at its start; then hold the statistics of members already stopped."""
        if checkpoint is not None and Path(checkpoint).exists():
            state = load_checkpoint(checkpoint)
            if state.get("fingerprint") != fingerprint:
                raise LTHError(f"{checkpoint}: resume checkpoint belongs to another job; delete it to restart")
            self.load(state)
        else:
            self.evaluate(list(range(self.n)), [None] * self.n, [None] * self.n)
        self.hold_stopped()

    def save_due(self, checkpoint: Path | None, fingerprint: str) -> None:
        """After an evaluation point: a checkpoint every checkpoint_every steps while members run."""
        if checkpoint is not None and self.going() and self.step - self.last_ckpt >= self.ckpt_every:
            save_checkpoint(checkpoint, self.state(fingerprint))
            self.last_ckpt = self.step

    # --- members ------------------------------------------------------------------------------
    def running(self, k: int) -> bool:
        return self.step < self.lengths[k] and k not in self.diverged

    def going(self) -> bool:
        return self.step < max(self.lengths) and any(self.running(k) for k in range(self.n))

    def hold_stopped(self) -> None:
        for k in range(self.n):
            if not self.running(k) and k not in self.held:
                self.held[k] = [b[k].clone() for b in self.bn_buffers]

    # --- a step -------------------------------------------------------------------------------
    def learning_rates(self) -> dict[float, list[int]]:
        """Learning rate -> the running members that step with it now (recorded for their curves)."""
        groups: dict[float, list[int]] = {}
        for k in range(self.n):
            if self.running(k):
                lr = self.segments[k].lr(self.segments[k].start + self.step)
                self.last_lr[k] = lr
                groups.setdefault(lr, []).append(k)
        return groups

    def batches(self, augment: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Every member's batch of this step, (M, B, ...) inputs and (M, B) labels: each drawn as its run
        would draw it alone (lth.training.order), all moved to the device in one copy."""
        drawn = to_device(torch.stack([draw(order, seg.start + self.step, seg.data_seed, augment)
                                       for order, seg in zip(self.orders, self.segments)]), self.device)
        idx = drawn[:, 0] if augment else drawn
        xb, yb = self.splits.x_train[idx], self.splits.y_train[idx]
        if augment:  # each example's own crop and flip: the same whether the members are laid end to end or not
            params = drawn[:, 1:].transpose(0, 1).reshape(3, -1)
            xb = apply_augment(xb.flatten(0, 1), params).view(xb.shape)
        return xb, yb

    def train_step(self, augment: bool) -> None:
        """One step of every running member; stopped members keep their weights and statistics."""
        n = self.n
        groups = self.learning_rates()
        xb, yb = self.batches(augment)
        with autocast(self.device, self.precision):
            out = self.stacked(xb.reshape(n * self.batch, *self.input_shape)).view(n, self.batch, -1)
            losses = step_losses(out, yb, self.task, self.exact)
        grads = torch.autograd.grad(losses.sum(), self.params)
        self.optimizer.step(grads, groups)
        self.keep_zero()
        with torch.no_grad():
            for k, saved in self.held.items():
                for b, v in zip(self.bn_buffers, saved):
                    b[k].copy_(v)
            self.loss_sum.add_(losses.detach() * self.batch)
            if self.classifies:
                self.correct.add_((out.detach().argmax(-1) == yb).sum(1))
        for k in range(n):
            if self.running(k):
                self.seen[k] += self.batch
        self.step += 1

    # --- evaluation ---------------------------------------------------------------------------
    def evaluate(self, members: list[int], train_loss: list, train_acc: list) -> None:
        """A point on the curves of `members` now."""
        with autocast(self.device, self.precision):
            val = evaluate_members(self.stacked, members, self.splits.x_val, self.splits.y_val, self.task,
                                   self.chunk, self.exact)
            test = evaluate_members(self.stacked, members, self.splits.x_test, self.splits.y_test, self.task,
                                    self.chunk, self.exact)
        for i, k in enumerate(members):
            t = self.segments[k].start + self.step
            lr = self.segments[k].lr(t) if self.step == 0 else self.last_lr[k]
            self.curves[k].append({"iteration": t, "lr": lr, "train_loss": train_loss[i],
                                   "train_accuracy": train_acc[i], "val_loss": val[i][0], "val_accuracy": val[i][1],
                                   "test_loss": test[i][0], "test_accuracy": test[i][1]})

    def evaluate_due(self) -> bool:
        """Evaluate the members at an evaluation point of theirs now (one host sync), stop those whose
        losses are not finite, hold the statistics of those that stopped. False if none was due."""
        s = self.step
        due = [k for k in range(self.n) if k not in self.diverged and s <= self.lengths[k]
               and (s % self.every == 0 or s == self.lengths[k])]
        if not due:
            return False
        sums, hits = self.loss_sum.tolist(), self.correct.tolist()
        self.evaluate(due, [sums[k] / self.seen[k] for k in due],
                      [hits[k] / self.seen[k] if self.classifies else None for k in due])
        with torch.no_grad():
            which = torch.tensor(due, device=self.loss_sum.device)
            self.loss_sum.index_fill_(0, which, 0.0)
            self.correct.index_fill_(0, which, 0)
        for k in due:
            self.seen[k] = 0
            self.stop_if_diverged(k)
        self.hold_stopped()
        return True

    def stop_if_diverged(self, k: int) -> None:
        c = self.curves[k][-1]
        if not _finite(c["train_loss"], c["val_loss"], c["test_loss"]):
            what = "train" if not _finite(c["train_loss"]) else "val" if not _finite(c["val_loss"]) else "test"
            self.diverged[k] = {"iteration": c["iteration"],
                                "reason": f"{what} loss is {c[what + '_loss']} at iteration {c['iteration']}"}
            print(f"batched training: member {self.keys[k]} diverged ({self.diverged[k]['reason']}); "
                  "stopped, the others go on", file=sys.stderr)

    def results(self, models: Sequence[nn.Module], seconds: float) -> list[dict[str, Any]]:
        """Each member's result (train's format, or how it diverged); its trained weights loaded into
        `models`."""
        ok = [k for k in range(self.n) if k not in self.diverged]
        with autocast(self.device, self.precision):
            accuracies = evaluate_members(self.stacked, ok, self.splits.x_train, self.splits.y_train, self.task,
                                          self.chunk, self.exact) if ok else []
        train_acc = {k: acc for k, (_, acc) in zip(ok, accuracies)}
        out = []
        with torch.no_grad():
            for k in range(self.n):
                models[k].load_state_dict(self.stacked.member_state(k))
                summary = (summary_of(self.curves[k], train_acc[k], self.task, seconds / self.n)
                           if k in train_acc else None)
                out.append({"key": self.keys[k], "curves": self.curves[k], "summary": summary,
                            "diverged": self.diverged.get(k)})
        return out
