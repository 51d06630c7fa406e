"""SynFlow: synaptic flow |w * dR/dw| (Tanaka, Kunin, Yamins & Ganguli 2020, "Pruning neural networks
without any data by iteratively conserving synaptic flow").

Data-free (never asks for a batch): on a deep copy of the model in float64 and eval mode, every
parameter and buffer is replaced by its absolute value (BatchNorm folded first, below), the mask is
applied, one all-ones input of shape (1, *input_shape) is fed, R = sum of the outputs, and
score = |w * dR/dw| / R.
- float64: R is a product over the layers of sums of |w| and overflows float32 in deep nets.
- BatchNorm: in eval mode it is the affine map x -> (gamma / sd) x + (beta - gamma mean / sd).
  Its offset is folded into the bias before the absolute values are taken, so the map becomes
  (|gamma| / sd) x + |beta - gamma mean / sd| and every activation stays positive (each ReLU is
  the identity). Synaptic-Flow takes |.| of each entry of the state dict instead; the two agree
  while the running mean is 0 (at initialisation), but |mean| subtracted from a positive
  activation could make it negative and cut paths once BatchNorm has run statistics.
- / R: the ranking is unchanged, and a layer's scores then sum to the fraction of R on paths through
  it (at most 1; exactly 1 in a chain without biases or skips), values that do not grow with depth.
Iterating (Synaptic-Flow's 100 rounds, exponential schedule) is the caller's: one call is one round.
Raises LTHError when R is 0 or not finite, or when dR/dw is 0 at every alive weight of a layer: no
positive path from input to output runs through that layer (e.g. a later layer fully pruned). An
alive weight that is exactly 0 (a zero-initialised bias) scores 0 without being an error.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from lth.core.errors import LTHError
from lth.pruning.masks import check_mask

BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


@torch.no_grad()
def _linearize(model: nn.Module, mask) -> None:
    for module in model.modules():
        if isinstance(module, BATCHNORMS) and module.affine and module.running_mean is not None:
            sd = (module.running_var + module.eps).sqrt()
            module.bias.sub_(module.weight * module.running_mean / sd)
            module.running_mean.zero_()
    for t in [*model.parameters(), *model.buffers()]:
        if t.is_floating_point():
            t.abs_()
    params = dict(model.named_parameters())
    for name, m in mask.items():
        params[name].mul_(m.to(params[name].device))


def score(weights, mask, context) -> dict:
    if context.model is None:
        raise LTHError("synflow: needs the model being pruned (context.model)")
    if not context.input_shape:
        raise LTHError("synflow: needs the shape of one input example (context.input_shape)")
    model = copy.deepcopy(context.model()).double().eval()
    check_mask(model, mask, "synflow")
    _linearize(model, mask)
    params = dict(model.named_parameters())
    ws = [params[name].requires_grad_(True) for name in mask]
    ones = torch.ones((1, *context.input_shape), dtype=torch.float64, device=ws[0].device)
    r = model(ones).sum()
    grads = torch.autograd.grad(r, ws, materialize_grads=True)
    flow = {name: (w * g).detach().abs().cpu() for name, w, g in zip(mask, ws, grads)}
    dead = [name for name, g in zip(mask, grads) if mask[name].any() and not (g.cpu()[mask[name].cpu()] > 0).any()]
    if not 0 < r.item() < float("inf") or dead:
        where = dead[0] if dead else next(iter(mask))
        cut = [name for name, m in mask.items() if not m.any()]
        raise LTHError(f"synflow: model has no positive path from input to output through layer '{where}' "
                       f"(R = {r.item():.3g}{'; fully pruned: ' + ', '.join(cut) if cut else ''})")
    return {name: f / r.item() for name, f in flow.items()}
