"""Linear mode connectivity: test error along the straight line between two trained networks.

Frankle, Dziugaite, Roy & Carbin 2020, "Linear Mode Connectivity and the Lottery Ticket Hypothesis"
(ICML). Two copies of a network are trained from the same weights with different SGD noise (here:
different `Segment.data_seed`, i.e. batch order and augmentation). They are *linearly mode connected*
when the error does not rise along W(alpha) = (1 - alpha) W_a + alpha W_b, alpha in [0, 1]. The rise is
the *error barrier height*: the highest error on the path minus the mean of the two endpoints' errors.
The paper calls a network's *instability* (to SGD noise) this barrier, averaged over pairs of copies,
and counts a network stable when the instability is below 2 percentage points.

BatchNorm: the interpolated running statistics are not the statistics of the interpolated network,
so at interior points they are recomputed from training batches (`recompute_batchnorm`). At the
endpoints the runs' own statistics are kept: alpha = 0 and 1 then reproduce each run's own test
accuracy exactly, and the barrier is measured from the numbers the runs report.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from lth.core.errors import LTHError
from lth.training.evaluation import evaluate

STABLE_BARRIER = 0.02  # Frankle et al. 2020: stable when the error barrier is below 2 percentage points


def interpolate(state_a: Mapping[str, torch.Tensor], state_b: Mapping[str, torch.Tensor],
                alpha: float) -> dict[str, torch.Tensor]:
    """(1 - alpha) * a + alpha * b for every floating tensor; integer buffers (num_batches_tracked) from a.

    Computed with `torch.lerp`, which is exact wherever a == b (shared pruned zeros stay 0, identical
    networks stay identical); alpha 0 and 1 return copies of a's and b's tensors, bit for bit.
    """
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha <= 1:
        raise LTHError(f"interpolation: alpha must be a number in [0, 1], got {alpha!r}")
    for key, a in state_a.items():
        b = state_b.get(key)
        if b is None:
            raise LTHError(f"interpolation: '{key}' is in the first state but not in the second")
        if a.shape != b.shape or a.dtype != b.dtype:
            raise LTHError(f"interpolation: '{key}' is {a.dtype} {tuple(a.shape)} in the first state, "
                           f"{b.dtype} {tuple(b.shape)} in the second")
    extra = [k for k in state_b if k not in state_a]
    if extra:
        raise LTHError(f"interpolation: '{extra[0]}' is in the second state but not in the first")
    out = {}
    for key, a in state_a.items():
        b = state_b[key]
        if not torch.is_floating_point(a) or alpha == 0:
            out[key] = a.detach().clone()
        elif alpha == 1:
            out[key] = b.detach().clone()
        else:
            out[key] = torch.lerp(a.detach(), b.detach(), float(alpha))
    return out


def batch_indices(n: int, batch_size: int, batches: int, generator: torch.Generator) -> list[torch.Tensor]:
    """`batches` index batches: consecutive slices of permutations of range(n) drawn from `generator`.

    A new permutation starts when one is used up (its remainder is dropped), as epochs of training.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= n:
        raise LTHError(f"batchnorm recomputation: batch_size must be an integer in [1, {n}], got {batch_size!r}")
    if isinstance(batches, bool) or not isinstance(batches, int) or batches < 1:
        raise LTHError(f"batchnorm recomputation: batches must be a positive integer, got {batches!r}")
    per_perm, out = n // batch_size, []
    while len(out) < batches:
        perm = torch.randperm(n, generator=generator)
        out += [perm[i * batch_size : (i + 1) * batch_size] for i in range(min(per_perm, batches - len(out)))]
    return out


@torch.no_grad()
def recompute_batchnorm(model: nn.Module, x: torch.Tensor, batch_size: int, batches: int,
                        generator: torch.Generator) -> nn.Module:
    """Reset every BatchNorm's running statistics to the plain average over `batches` batches of `x`.

    With momentum None PyTorch keeps a cumulative average, so each running mean is the mean of the
    batch means and each running variance the mean of the (unbiased) batch variances; every batch
    weighs the same, unlike the exponential average of training. Only the BatchNorm layers are put in
    train mode (anything else, e.g. dropout, stays deterministic). The model is returned in eval mode;
    a model without BatchNorm (with running statistics) is returned untouched.
    """
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
    if not norms:
        return model
    indices = batch_indices(len(x), batch_size, batches, generator)
    momenta = [m.momentum for m in norms]
    model.eval()
    try:
        for m in norms:
            m.reset_running_stats()
            m.momentum = None
            m.train()
        for idx in indices:
            model(x[idx.to(x.device)])
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        model.eval()
    return model


def has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, _BatchNorm) and m.track_running_stats for m in model.modules())


def path(model: nn.Module, state_a: Mapping[str, torch.Tensor], state_b: Mapping[str, torch.Tensor], splits,
         points: int = 11, bn_batches: int = 50, batch_size: int = 128, seed: int = 0,
         mask: Mapping[str, torch.Tensor] | None = None, val: bool = False) -> list[dict[str, Any]]:
    """Test loss, accuracy and error at `points` evenly spaced alphas from state_a (0) to state_b (1).

    `model` is a network of the states' architecture; it is used as scratch and given back with its
    own state. Interior points recompute BatchNorm statistics from `bn_batches` batches of the
    (un-augmented) training set; every point draws the same batches (a CPU generator seeded with
    `seed`), so along the path only the weights change. Endpoints keep the runs' own statistics and
    so reproduce the runs' own test numbers exactly. `mask`: the endpoints' shared pruning mask, checked
    on both; the weights both endpoints hold at zero are checked to stay zero along the path.
    `val`: also evaluate the validation split (val_loss, val_accuracy, val_error).
    """
    if isinstance(points, bool) or not isinstance(points, int) or points < 3:
        raise LTHError(f"interpolation needs at least 3 points, got {points!r}")
    if mask is not None:
        for name, keep in mask.items():
            for label, state in (("first", state_a), ("second", state_b)):
                if name not in state:
                    raise LTHError(f"interpolation: mask names '{name}', which the {label} state does not have")
                if torch.any(state[name][~keep.to(state[name].device)] != 0):
                    raise LTHError(f"interpolation: the {label} state has nonzero pruned weights in '{name}'; "
                                   f"the endpoints do not share the mask")
    own = {k: v.detach().clone() for k, v in model.state_dict().items()}
    batchnorm = has_batchnorm(model)
    rows = []
    try:
        for i in range(points):
            alpha = i / (points - 1)  # exactly 0.0 and 1.0 at the ends
            state = interpolate(state_a, state_b, alpha)
            _check_shared_zeros(state_a, state_b, state)
            model.load_state_dict(state)
            if batchnorm and 0 < i < points - 1:
                recompute_batchnorm(model, splits.x_train, batch_size, bn_batches, torch.Generator().manual_seed(seed))
            row: dict[str, Any] = {"alpha": alpha}
            for split in ("test", "val") if val else ("test",):
                loss, acc = evaluate(model, getattr(splits, f"x_{split}"), getattr(splits, f"y_{split}"))
                row |= {f"{split}_loss": loss, f"{split}_accuracy": acc,
                        f"{split}_error": None if acc is None else 1.0 - acc}
            rows.append(row)
    finally:
        model.load_state_dict(own)
    return rows


def _check_shared_zeros(state_a, state_b, state) -> None:
    """Weights zero in both endpoints (a shared mask's pruned weights) are zero on the path: lerp(0, 0) = 0."""
    for key, w in state.items():
        if torch.is_floating_point(w):
            both = (state_a[key] == 0) & (state_b[key] == 0)
            assert not torch.any(w[both] != 0), f"{key}: a weight zero at both endpoints is nonzero on the path"


def barrier(errors: Sequence[float]) -> float:
    """Frankle et al. 2020's error barrier height: max error on the path minus the endpoints' mean error.

    `errors` run along the path, endpoints first and last (e.g. the `test_error` of `path`'s rows).
    Never negative, since the path includes its endpoints; 0 means linearly mode connected.
    """
    errors = [float(e) for e in errors]
    if len(errors) < 3:
        raise LTHError(f"interpolation needs at least 3 points, got {len(errors)}")
    if not all(math.isfinite(e) for e in errors):
        raise LTHError(f"error barrier: errors must be finite numbers, got {errors}")
    return max(errors) - (errors[0] + errors[-1]) / 2


def stable(barrier: float, threshold: float = STABLE_BARRIER) -> bool:
    """Frankle et al. 2020's rule: stable to SGD noise when the error barrier is below 2 points (0.02)."""
    return barrier < threshold
