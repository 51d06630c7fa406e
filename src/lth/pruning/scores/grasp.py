"""GraSP: Hessian-gradient product w * Hg (Wang, Zhang & Grosse 2020, "Picking Winning Tickets Before
Training by Preserving Gradient Flow").

On one batch of `pruning.batch` examples (default 256): L = cross-entropy(logits / T, labels),
g = dL/dw detached, Hg = d(g . dL/dw)/dw by double backward, score = w * Hg.
Sign: the paper scores S(-w) = -w * Hg and removes the largest (so does its code, alecwangcq/GraSP);
Synaptic-Flow scores w * Hg and removes the lowest, as here: the same weights go.
Temperature T: `pruning.grasp_temperature`, default 200, the value of the authors' code and of
Synaptic-Flow (the paper's formula has no T; T = 1 gives it as written).
w, g and H range over the parameters in the mask (the prunable weights, and biases when they are
pruned; BatchNorm is constant), as both codes do for weights. g is restricted to the alive ones
(the sparse network's gradient, as Synaptic-Flow's masked layers give; at a full mask it is the
paper's g). The authors' code sums g and Hg over two halves of a class-balanced sample, which
scales both by constants (same ranking as one batch, up to BatchNorm's per-batch statistics); here
the batch is `context.batch`'s. Its re-initialisation of Linear layers and its division by
|sum of scores| (a positive constant) are left out. Computed on a deep copy of the model in
training mode (BatchNorm uses the batch's statistics, as in the authors' code), in the model's dtype.
"""

from __future__ import annotations

import torch

from lth.core.errors import LTHError
from lth.pruning.masks import check_mask
from lth.pruning.scores.snip import as_score, train_copy_and_batch


def score(weights, mask, context) -> dict:
    temperature = context.options.get("grasp_temperature", 200.0)
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0:
        raise LTHError(f"grasp: pruning.grasp_temperature must be a positive number, got {temperature!r}")
    model, x, y = train_copy_and_batch(context, "grasp")
    check_mask(model, mask, "grasp")
    params = dict(model.named_parameters())
    ws = [params[name].requires_grad_(True) for name in mask]
    loss = torch.nn.functional.cross_entropy(model(x) / temperature, y)
    grads = torch.autograd.grad(loss, ws, create_graph=True)
    alive = [mask[name].to(device=w.device, dtype=w.dtype) for name, w in zip(mask, ws)]
    gnorm = sum((g.detach() * m * g).sum() for g, m in zip(grads, alive))
    hg = torch.autograd.grad(gnorm, ws, materialize_grads=True)
    return {name: as_score(w * h) for name, w, h in zip(mask, ws, hg)}
