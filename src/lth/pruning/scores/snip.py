"""SNIP: connection sensitivity |g * w| (Lee, Ajanthan & Torr 2019, "SNIP: Single-shot Network Pruning").

g = dL/dw of the mean cross-entropy on one batch of `pruning.batch` examples (default 256), taken
at the masked weights; the weights with the smallest |g * w| go first. This is SNIP's |dL/dc| for
mask variables c at c = 1. Pruned weights have w = 0, so their score is 0.
The gradient is taken on a deep copy of the model in training mode (BatchNorm normalises with the
batch's statistics, as when the loss is minimised; the copy's running statistics are dropped), in
the model's dtype. SNIP's division by the sum of all scores is left out: a positive constant
changes no ranking.
"""

from __future__ import annotations

import copy

import torch

from lth.core.errors import LTHError
from lth.pruning.masks import check_mask


def train_copy_and_batch(context, who: str):
    """(deep copy of the context's model in training mode, inputs, labels) of `pruning.batch` examples."""
    if context.model is None:
        raise LTHError(f"{who}: needs the model being pruned (context.model)")
    if context.batch is None:
        raise LTHError(f"{who}: needs a batch of training data (pruning.batch)")
    n = context.options.get("batch", 256)
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise LTHError(f"{who}: pruning.batch must be a positive integer, got {n!r}")
    model = copy.deepcopy(context.model()).train()
    x, y = context.batch(n)
    return model, x, y


def as_score(t: torch.Tensor) -> torch.Tensor:
    """Detached CPU copy, float64 kept, anything else as float32."""
    return t.detach().to("cpu", torch.float64 if t.dtype == torch.float64 else torch.float32)


def score(weights, mask, context) -> dict:
    model, x, y = train_copy_and_batch(context, "snip")
    check_mask(model, mask, "snip")
    params = dict(model.named_parameters())
    ws = [params[name].requires_grad_(True) for name in mask]
    loss = torch.nn.functional.cross_entropy(model(x), y)
    grads = torch.autograd.grad(loss, ws)
    return {name: as_score((g * w).abs()) for name, w, g in zip(mask, ws, grads)}
