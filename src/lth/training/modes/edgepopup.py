"""Strong lottery tickets by edge-popup: train which random weights to keep, never the weights.

Source: V. Ramanujan et al., "What's Hidden in a Randomly Weighted Neural Network?", CVPR 2020
(arXiv:1911.13299), and the authors' code (allenai/hidden-networks, utils/conv_type.py:
GetSubnet, SubnetConv).

What the sources fix, and what is checked here (tests/training/test_edgepopup.py):

- Every prunable weight w gets a score s. The forward pass uses w * m, where m keeps the
  weights of largest |s| in each layer (the code ranks `scores.abs()`), so the random weights
  themselves never change.
- GetSubnet's backward passes the gradient to the ranked tensor unchanged (straight-through),
  giving the paper's update d loss/d |s| = d loss/d(w m) * w for every edge, kept or not. The
  code applies it to |s| through autograd, so d loss/d s carries a further factor sign(s): |s|
  moves along the paper's formula whatever the sign of s. Done the same way here.
- Scores start Kaiming uniform with a = sqrt(5) (`kaiming_uniform_(scores, a=sqrt(5))`), i.e.
  U(-1/sqrt(fan_in), 1/sqrt(fan_in)); here drawn from the generator passed in, layer by layer
  in the order of `names`.

Choices made here:

1. Per layer the mask keeps exactly k = max(1, round(density * numel)) weights (Python's round:
   halves to even). The code keeps numel - int((1 - density) * numel), which can differ by one.
   Ties in |s| keep the lower flat index (lth.training.modes.iht.top_k), so the mask never depends on sort
   internals. The density must lie in (0, 1).
2. The wrapped model is left as it is: its parameters get requires_grad False and are never
   written (weights, biases, BatchNorm affine stay at their initial values; the paper's code
   uses no biases and non-affine BatchNorm, a model here may have both, frozen). The masked
   weights are passed to it by `torch.func.functional_call`, so no parametrization is
   registered and its state_dict keys are unchanged. Its buffers are its own: in train mode
   BatchNorm running statistics update as in any training run, and evaluation uses them.
3. `parameters()` / `named_parameters()` of the wrapper yield only the scores, so the
   training loop's optimiser (lth.training.optim, which needs a gradient for every parameter it holds)
   trains the scores alone; weight decay, if configured, decays scores, as in the paper's
   code. The frozen network is `wrapper.model`.
4. The wrapper's state_dict holds the wrapped model's entries ("model.*": frozen weights and
   BatchNorm buffers) and the scores ("scores.<i>", in the order of `names`), so the training
   loop's checkpoint/resume restores scores and running statistics bitwise.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator, Sequence

import torch
from torch import nn
from torch.func import functional_call
from torch.nn import init

from lth.core.errors import LTHError
from lth.core.seeding import derive_seed
from lth.training.modes import Setup
from lth.training.modes.iht import top_k


def check_density(density: float) -> None:
    """Refuse a density outside (0, 1): edge-popup needs something both kept and removed."""
    ok = isinstance(density, (int, float)) and not isinstance(density, bool) and 0.0 < density < 1.0
    if not ok:
        raise LTHError(f"edge-popup: density must be in (0, 1), got {density!r}")


def keep_count(numel: int, density: float) -> int:
    """Weights a layer of `numel` keeps: round(density * numel), at least 1."""
    return max(1, round(density * numel))


class _StraightThrough(torch.autograd.Function):
    """GetSubnet: forward the 0/1 top-k mask of the ranked tensor, backward the gradient unchanged."""

    @staticmethod
    def forward(ctx, ranked: torch.Tensor, k: int) -> torch.Tensor:
        return top_k(ranked.flatten(), k).view_as(ranked).to(ranked.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad, None


class EdgePopup(nn.Module):
    """`model` with frozen weights, each prunable one used as weight * top-k(|score|) mask.

    names: the prunable parameters (e.g. `list(lth.pruning.masks.layer_kinds(model))`); density in (0, 1),
    the same for every layer; g: the CPU generator the scores are drawn from (then moved to the
    weights' device, so a run's scores are the same on any device).
    """

    def __init__(self, model: nn.Module, names: Sequence[str], density: float, g: torch.Generator):
        super().__init__()
        check_density(density)
        params = dict(model.named_parameters())
        unknown = [n for n in names if n not in params]
        if unknown or not names:
            raise LTHError(f"edge-popup: no such parameters {unknown}; the model has {sorted(params)}")
        if len(set(names)) != len(names):
            raise LTHError(f"edge-popup: parameter named twice in {list(names)}")
        for p in model.parameters():
            p.requires_grad_(False)
        self.model = model
        self.names = list(names)
        self.counts = [keep_count(params[n].numel(), density) for n in self.names]
        scores = []
        for n in self.names:
            s = torch.empty(params[n].shape, dtype=params[n].dtype)  # drawn on the CPU: the same on any device
            init.kaiming_uniform_(s, a=math.sqrt(5), generator=g)
            scores.append(nn.Parameter(s.to(params[n].device)))
        self.scores = nn.ParameterList(scores)

    def named_parameters(self, prefix: str = "", recurse: bool = True,
                         remove_duplicate: bool = True) -> Iterator[tuple[str, nn.Parameter]]:
        """Only the scores: what an optimiser should train (the frozen network is `self.model`)."""
        pre = f"{prefix}." if prefix else ""
        for i, s in enumerate(self.scores):
            yield f"{pre}scores.{i}", s

    def effective_weights(self) -> dict[str, torch.Tensor]:
        """name -> weight * mask, differentiable w.r.t. the scores (straight-through)."""
        params = dict(self.model.named_parameters())
        return {n: params[n] * _StraightThrough.apply(s.abs(), k)
                for n, s, k in zip(self.names, self.scores, self.counts)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return functional_call(self.model, self.effective_weights(), (x,))

    @torch.no_grad()
    def mask(self) -> dict[str, torch.Tensor]:
        """name -> bool tensor (CPU) keeping exactly `counts` weights per layer: the largest |score|."""
        return {n: top_k(s.abs().flatten(), k).view_as(s).cpu()
                for n, s, k in zip(self.names, self.scores, self.counts)}

    def named_scores(self) -> dict[str, torch.Tensor]:
        """name of the weight -> its score tensor (the trainable parameter itself)."""
        return dict(zip(self.names, self.scores))

    @torch.no_grad()
    def ticket(self) -> nn.Module:
        """A copy of the wrapped model with the pruned weights set to 0.0: a plain model computing
        what the wrapper computes (same buffers), its parameters trainable again."""
        net = copy.deepcopy(self.model)
        params = dict(net.named_parameters())
        for n, m in self.mask().items():
            params[n].mul_(m.to(device=params[n].device, dtype=params[n].dtype))
        for p in net.parameters():
            p.requires_grad_(True)
        return net


def setup(start, key, plan, names) -> Setup:
    """Edge-popup at the run's density on the start state's weights (frozen); the scores drawn from a
    generator seeded by the run's key. The run's model is the found subnetwork (the frozen weights
    under the top scores) and its mask the top scores per layer."""
    g = torch.Generator().manual_seed(derive_seed(key.seed, "scores", key.variant, key.level))
    popup = EdgePopup(start.model, names, plan.target_density(key), g)
    return Setup(popup, {}, None, lambda: (popup.ticket(), popup.mask()))
