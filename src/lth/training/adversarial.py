"""L-infinity adversarial examples (FGSM, PGD) and robust accuracy, for adversarial training and evaluation.

FGSM: Goodfellow, Shlens & Szegedy 2015, "Explaining and harnessing adversarial examples" (ICLR):
x + epsilon * sign(grad_x loss). PGD: Madry, Makelov, Schmidt, Tsipras & Vladu 2018, "Towards deep
learning models resistant to adversarial attacks" (ICLR): from a uniform random point of the
epsilon-ball, repeated signed-gradient ascent steps, each projected back onto the ball.

Choices, and why:
- Loss: cross-entropy summed over the batch (the loss `lth.training` trains on, not its mean): the sign
  of the gradient is the same, but a sum keeps each example's input gradient its own, free of the
  1/batch factor that could underflow to 0 (a zero gradient component means no move: sign(0) = 0).
- Mode: attacks run in eval mode by default, whatever the model's mode, which is restored afterwards:
  the examples are then per-example (BatchNorm uses running statistics, so examples of a batch do not
  interact) and the attack's forward passes leave the running statistics alone. The Madry lab's
  `robustness` library generates its training attacks the same way. `train_mode=True` attacks the
  train-mode function instead (batch statistics, as Madry et al.'s original code did), useful in the
  first iterations, when running statistics still lag; every buffer is then restored, so BatchNorm's
  running statistics and counters are left as they were (the training step's own forward updates them).
- Nothing of the model changes: input gradients come from torch.autograd.grad, so no .grad appears on
  (or is added to) a parameter; buffers changed by the attack are restored; results are detached.
- No clamping to an input range by default (MNIST-1D inputs are standardised, not images in [0, 1]);
  `bounds=(lo, hi)` clamps after each projection. Clamping a point of the epsilon-box to the bounds'
  box is the exact projection onto their intersection; where x itself is out of bounds, bounds win.
- The ball is the box [x - epsilon, x + epsilon] as computed in x's dtype, and results lie in it
  exactly; epsilon = 0 returns a copy of x, bitwise, without running the model.
- PGD's default step size is 2.5 * epsilon / steps, so that the iterate can travel 2.5 epsilon in all:
  more than the ball's diameter (2 epsilon), so any point of it stays reachable from the random start.
  The rule is the Madry lab's (stated in their `robustness` library, Engstrom et al. 2019, for its
  evaluations); Madry et al. 2018 themselves fixed step sizes per dataset (MNIST: epsilon 0.3, 40
  steps of 0.01 in training; CIFAR-10: epsilon 8/255, 7 steps of 2/255).
- PGD returns its last iterate (as Madry et al.), not the best one seen.
- PGD's random start is drawn on the generator's device (a CPU generator: the same start on any
  device) in float32, then cast to x's dtype; generator=None means no random start (PGD then starts
  at x; one step of size epsilon is FGSM). For adversarial training, `attack_generator(data_seed, t)`
  seeds iteration t's start as `lth.training` seeds its augmentation, so a resumed run sees the same.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from lth.core.errors import LTHError
from lth.core.seeding import derive_seed

METHODS = ("none", "fgsm", "pgd")
EVAL_BATCH = 1000

Bounds = tuple[float, float] | None


def check(method: str, epsilon: float, steps: int | None = None) -> None:
    """Raise a one-line LTHError for an unknown method, a bad epsilon, or (pgd) a bad number of steps."""
    if method not in METHODS:
        raise LTHError(f"unknown adversarial method {method!r}; known methods: {', '.join(METHODS)}")
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not math.isfinite(epsilon):
        raise LTHError(f"adversarial epsilon must be a finite number, got {epsilon!r}")
    if epsilon < 0:
        raise LTHError(f"adversarial epsilon must be >= 0, got {epsilon!r}")
    if method == "pgd" and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
        raise LTHError(f"adversarial steps must be an integer >= 1 for pgd, got {steps!r}")


def attack_generator(data_seed: int, t: int) -> torch.Generator:
    """The CPU generator of iteration t's PGD random start: a function of (data_seed, t) only."""
    return torch.Generator().manual_seed(derive_seed(data_seed, "adversarial", t))


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epsilon: float, *,
         bounds: Bounds = None, train_mode: bool = False) -> torch.Tensor:
    """x + epsilon * sign(grad_x CE(model(x), y)) (Goodfellow et al. 2015); the model is left unchanged."""
    check("fgsm", epsilon)
    _check_bounds(bounds)
    x = x.detach()
    if epsilon == 0:
        return x.clone()
    with _attacking(model, train_mode):
        grad = _input_grad(model, x, y)
    return _clamp(x + epsilon * grad.sign(), bounds)


def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epsilon: float, steps: int,
        step_size: float | None = None, generator: torch.Generator | None = None, *,
        bounds: Bounds = None, train_mode: bool = False) -> torch.Tensor:
    """L-infinity PGD (Madry et al. 2018): random start, `steps` signed steps, each projected on the ball.

    step_size defaults to 2.5 * epsilon / steps; generator=None: no random start (see the module notes).
    """
    check("pgd", epsilon, steps)
    _check_bounds(bounds)
    if step_size is None:
        step_size = 2.5 * epsilon / steps
    elif (isinstance(step_size, bool) or not isinstance(step_size, (int, float))
          or not math.isfinite(step_size) or step_size < 0):
        raise LTHError(f"adversarial step_size must be a finite number >= 0, got {step_size!r}")
    x = x.detach()
    if epsilon == 0:
        return x.clone()
    lo, hi = x - epsilon, x + epsilon
    x_adv = x
    if generator is not None:
        u = torch.rand(x.shape, generator=generator, device=generator.device, dtype=torch.float32)
        x_adv = _project(x + (2 * u - 1).to(device=x.device, dtype=x.dtype) * epsilon, lo, hi, bounds)
    with _attacking(model, train_mode):
        for _ in range(steps):
            grad = _input_grad(model, x_adv, y)
            x_adv = _project(x_adv + step_size * grad.sign(), lo, hi, bounds)
    return x_adv


def perturb(model: nn.Module, x: torch.Tensor, y: torch.Tensor, method: str, epsilon: float,
            steps: int | None = None, generator: torch.Generator | None = None, *,
            step_size: float | None = None, bounds: Bounds = None, train_mode: bool = False) -> torch.Tensor:
    """The adversarial examples of `method` (none: x itself, detached); one entry point for training."""
    check(method, epsilon, steps)
    if method == "fgsm":
        return fgsm(model, x, y, epsilon, bounds=bounds, train_mode=train_mode)
    if method == "pgd":
        return pgd(model, x, y, epsilon, steps, step_size, generator, bounds=bounds, train_mode=train_mode)
    return x.detach()


def robust_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, method: str, epsilon: float,
                    steps: int | None, generator: torch.Generator | None, batch: int = EVAL_BATCH, *,
                    step_size: float | None = None, bounds: Bounds = None) -> float | None:
    """Accuracy on the adversarial examples of (x, y), attacked and scored in eval mode; None if empty.

    Attacks go batch by batch, `batch` examples at a time; a PGD generator is drawn from in that order,
    so with a random start the result depends on `batch` as well as on the generator's seed.
    """
    check(method, epsilon, steps)
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise LTHError(f"robust accuracy batch must be an integer >= 1, got {batch!r}")
    if len(y) == 0:
        return None
    was_training = model.training
    model.eval()
    try:
        correct = torch.zeros((), device=y.device, dtype=torch.long)
        for i in range(0, len(y), batch):
            xb, yb = x[i : i + batch], y[i : i + batch]
            x_adv = perturb(model, xb, yb, method, epsilon, steps, generator, step_size=step_size, bounds=bounds)
            with torch.no_grad():
                correct += (model(x_adv).argmax(1) == yb).sum()
    finally:
        model.train(was_training)
    return correct.item() / len(y)


def _input_grad(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """grad_x of the summed cross-entropy, computed for x alone (no parameter's .grad is touched)."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():  # also inside a caller's no_grad (evaluation)
        loss = F.cross_entropy(model(x), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x)
    return grad


def _project(v: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, bounds: Bounds) -> torch.Tensor:
    """Onto the box [lo, hi] (the epsilon-ball), then into `bounds`."""
    return _clamp(torch.minimum(torch.maximum(v, lo), hi), bounds)


def _clamp(v: torch.Tensor, bounds: Bounds) -> torch.Tensor:
    return v if bounds is None else v.clamp(bounds[0], bounds[1])


def _check_bounds(bounds: Bounds) -> None:
    if bounds is None:
        return
    ok = isinstance(bounds, (tuple, list)) and len(bounds) == 2 and all(
        isinstance(b, (int, float)) and not isinstance(b, bool) and not math.isnan(b) for b in bounds)
    if not ok or bounds[0] > bounds[1]:
        raise LTHError(f"adversarial bounds must be (lo, hi) with lo <= hi, got {bounds!r}")


@contextmanager
def _attacking(model: nn.Module, train_mode: bool) -> Iterator[None]:
    """Run the body in the attack's mode; afterwards restore the mode and any buffer the body changed."""
    was_training = model.training
    saved = [(b, b.detach().clone()) for b in model.buffers()]
    model.train(train_mode)
    try:
        yield
    finally:
        model.train(was_training)
        with torch.no_grad():
            for buffer, value in saved:
                if not torch.equal(buffer, value):  # copy only what changed: no needless version bumps
                    buffer.copy_(value)
