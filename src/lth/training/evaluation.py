"""Evaluation: the loss and accuracy of a model on a split, and the summary of a finished run
(final test accuracy, early stopping by minimum validation loss, train accuracy).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

EVAL_BATCH = 1000  # examples per forward pass when evaluating


def task_of(splits) -> str:
    """"classification" or "regression" (lth.data.splits.Splits.task; a plain namespace of tensors classifies)."""
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


def evaluation_point(model, splits, t, lr, train_loss, train_acc) -> dict[str, float]:
    """One point of a run's curves: iteration t, its learning rate, the training loss and accuracy
    since the last point, and the validation and test loss and accuracy now."""
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
