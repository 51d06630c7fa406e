"""Losses and evaluation of stacked members: each member's own loss (by `lth.training.evaluation`'s
call when exact), and `evaluate` for each member in chunks, with one host sync at the end."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from lth.training.batched.layers import StackedModel
from lth.training.evaluation import EVAL_BATCH, loss_of


def step_losses(out: torch.Tensor, y: torch.Tensor, task: str, exact: bool) -> torch.Tensor:
    """Each member's mean loss, (M,), differentiable. out (M, B, ...), y (M, B)."""
    if exact:
        return torch.stack([loss_of(out[k], y[k], task) for k in range(out.shape[0])])
    m, b = y.shape
    if task == "regression":
        return F.mse_loss(out.squeeze(-1), y, reduction="none").mean(1)
    return F.cross_entropy(out.reshape(m * b, -1), y.reshape(-1), reduction="none").view(m, b).mean(1)


def sum_losses(out: torch.Tensor, y: torch.Tensor, task: str, exact: bool) -> torch.Tensor:
    """Each member's summed loss over a shared chunk: out (M, N, ...), y (N,) -> (M,)."""
    if exact:
        return torch.stack([loss_of(out[k], y, task, reduction="sum") for k in range(out.shape[0])])
    m, n = out.shape[0], y.shape[0]
    if task == "regression":
        return F.mse_loss(out.squeeze(-1), y.expand(m, n), reduction="none").sum(1)
    return F.cross_entropy(out.reshape(m * n, -1), y.repeat(m), reduction="none").view(m, n).sum(1)


@torch.no_grad()
def evaluate_members(stacked: StackedModel, members: Sequence[int], x: torch.Tensor, y: torch.Tensor, task: str,
                     chunk: int, exact: bool) -> list[tuple[float | None, float | None]]:
    """`lth.training.evaluation.evaluate` for each member: (mean loss, accuracy) over (x, y), in eval mode;
    computed in chunks of `chunk` members x EVAL_BATCH examples, one host sync at the end."""
    members = list(members)
    if len(y) == 0:
        return [(None, None)] * len(members)
    was_training = stacked.training
    stacked.eval()
    device = x.device
    losses, corrects = [], []
    for a in range(0, len(members), chunk):
        part = members[a : a + chunk]
        c = len(part)
        loss = torch.zeros(c, device=device)
        correct = torch.zeros(c, device=device, dtype=torch.long)
        with stacked.select(part):
            for i in range(0, len(y), EVAL_BATCH):
                xb, yb = x[i : i + EVAL_BATCH], y[i : i + EVAL_BATCH]
                xin = xb.unsqueeze(0).expand(c, *xb.shape).reshape(c * len(xb), *xb.shape[1:])
                out = stacked(xin).view(c, len(xb), -1)
                loss += sum_losses(out, yb, task, exact)
                if task == "classification":
                    correct += (out.argmax(-1) == yb).sum(1)
        losses.append(loss)
        corrects.append(correct)
    stacked.train(was_training)
    loss_values = torch.cat(losses).tolist()
    correct_values = torch.cat(corrects).tolist()
    n = len(y)
    return [(lv / n, cv / n if task == "classification" else None) for lv, cv in zip(loss_values, correct_values)]
