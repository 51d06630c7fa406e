"""A planted sparse two-layer ReLU network, its recovery by IHT, and how well it was recovered.

The setting of Fridovich-Keil & Pilanci 2025, "A Recovery Guarantee for Sparse Neural Networks"
(arXiv:2509.20323; planted-MLP experiments of their code, github.com/voilalab/MLP-IHT):

- teacher f(x) = sum_j relu(w_j . x): scalar output, no biases, the second layer fixed to ones, as
  the paper's planted model. For scalar output the paper fuses the second layer into the first
  (w_j = u_j v_j; v relu(u.x) = relu((v u).x) for v > 0), so the signal to recover is the sparse
  first-layer matrix W* (hidden x dim);
- W* has exactly s = round(density * hidden * dim) nonzeros at uniformly random positions (as the
  paper's planted model), values of random sign and magnitude min_magnitude + |N(0, 1)| (ours: a
  floor makes "recovered to 1e-4" a statement about every weight, not one lost in a tiny entry);
- inputs x ~ N(0, I), targets noiseless (optionally + Gaussian noise on the training targets);
- the theorem assumes the planted activation patterns 1[X w_j >= 0] are well separated in Hamming
  distance (and each active on a fraction of the inputs: about 1/2 here). On Gaussian inputs two
  units' patterns differ on a fraction angle(w_j, w_k) / pi of the inputs, so the generator
  redraws W* until every pair of units is at least `separation` apart. Without it two single-entry
  units on the same input with the same sign act as one (relu(a x) + relu(b x) = relu((a + b) x))
  and no algorithm can tell them apart.

Two formulations of the student (`fit_iht`), both trained by full-batch gradient steps on
(1/2n) ||y_hat - y||^2 with `lth.training.modes.iht.Projector` after each step (the paper's planted experiments
are full-batch):

- "convex" (`generators=` given): the paper's theorem. The network is the linear model
  y_hat = sum_j diag(1[X h_j >= 0]) X w_j with fixed generator vectors h_j, whose patterns the
  analysis takes to include the planted ones (it samples them at random and proves coverage):
  `covering_generators` returns the teacher's own rows, shuffled, plus optional random decoys.
  IHT is then sparse recovery from linear measurements, each unit tied to its pattern.
- "sequential" (no generators): the "sequential convex" formulation of all the paper's IHT
  experiments, which knows nothing of the teacher. Each unit is gated by its own current weights,
  i.e. the ReLU network itself; a unit with no weights yet is gated by a fixed random generator
  (the paper starts from random generators) so that it can still receive a gradient (torch's
  relu'(0) = 0 would leave it dead). Nonconvex: it can stall in a wrong support, and the
  benchmark shows how often.

The step size is the paper's adaptive one (normalised IHT, Blumensath & Davies 2010): exact line
search along the gradient restricted to the current support. The paper's extra line-searched
steps on the support after each projection (accelerated IHT, Blumensath 2012) are left out: they
speed up convergence once the support is found, and without them every step is one IHT step.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from lth.core.errors import LTHError
from lth.training.modes.iht import Projector


def make_planted(seed: int, n_train: int, n_test: int, dim: int, hidden: int, density: float,
                 noise: float = 0.0, separation: float = 0.25, min_magnitude: float = 0.5,
                 dtype: torch.dtype = torch.float64, max_draws: int = 10_000) -> dict[str, torch.Tensor]:
    """Teacher W (hidden x dim, exactly round(density * hidden * dim) nonzeros), its support, second
    layer v (ones), Gaussian inputs and targets y = sum_j relu(x . w_j). Seeded, CPU, offline.

    float64 by default, so that recovery to 1e-4 is far above rounding.
    """
    s = round(density * hidden * dim)
    if not 0 < s <= hidden * dim:
        raise LTHError(f"planted: density {density} of {hidden}x{dim} weights gives {s} nonzeros")
    g = torch.Generator().manual_seed(seed)
    for _ in range(max_draws):
        W = torch.zeros(hidden * dim, dtype=dtype)
        values = torch.randn(s, generator=g, dtype=dtype)
        W[torch.randperm(hidden * dim, generator=g)[:s]] = values.sign() * (min_magnitude + values.abs())
        W = W.view(hidden, dim)
        if min_separation(W) >= separation:
            break
    else:
        raise LTHError(f"planted: no draw of {max_draws} has units {separation} apart; lower separation or density")
    x_train = torch.randn(n_train, dim, generator=g, dtype=dtype)
    x_test = torch.randn(n_test, dim, generator=g, dtype=dtype)
    y_train = teacher_output(W, x_train) + noise * torch.randn(n_train, generator=g, dtype=dtype)
    return {"W": W, "support": W != 0, "v": torch.ones(hidden, dtype=dtype), "x_train": x_train,
            "y_train": y_train, "x_test": x_test, "y_test": teacher_output(W, x_test)}


def teacher_output(W: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return torch.relu(x @ W.T).sum(1)


def min_separation(W: torch.Tensor) -> float:
    """Smallest angle / pi between two nonzero units: the fraction of Gaussian inputs their patterns differ on."""
    U = W[(W != 0).any(1)]
    if len(U) < 2:
        return 1.0
    U = U / U.norm(dim=1, keepdim=True)
    cos = (U @ U.T).clamp(-1.0, 1.0)
    cos.fill_diagonal_(-1.0)
    return math.acos(cos.max().item()) / math.pi


def covering_generators(data: dict[str, torch.Tensor], decoys: int = 0, seed: int = 0) -> torch.Tensor:
    """Generator vectors that cover the planted patterns (the theorem's assumption), in a seeded order.

    The teacher's nonzero rows (their patterns are the planted ones), random N(0, I) directions for
    its empty rows and `decoys` more, shuffled so that position says nothing about which is which.
    """
    W = data["W"]
    g = torch.Generator().manual_seed(seed)
    rows = W[(W != 0).any(1)]
    extra = torch.randn(len(W) - len(rows) + decoys, W.shape[1], generator=g, dtype=W.dtype)
    h = torch.cat([rows, extra])
    return h[torch.randperm(len(h), generator=g)]


class Student(nn.Module):
    """sum_j gate_j(x) * (w_j . x), gates 1[h_j . x >= 0]: fixed h (convex), or h_j = w_j (sequential)."""

    def __init__(self, width: int, dim: int, generators: torch.Tensor, sequential: bool):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(width, dim, dtype=generators.dtype))
        self.register_buffer("generators", generators)
        self.sequential = sequential

    def gates(self, x: torch.Tensor) -> torch.Tensor:
        h = self.generators
        if self.sequential:
            w = self.weight.detach()
            h = torch.where((w != 0).any(1, keepdim=True), w, h)
        return (x @ h.T >= 0).to(x.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.gates(x) * (x @ self.weight.T)).sum(1)


@torch.no_grad()
def fit_iht(data: dict[str, torch.Tensor], density: float, steps: int = 3000, lr: float | None = None,
            warmup: int = 0, ramp: int = 0, seed: int = 0, generators: torch.Tensor | None = None,
            tol: float = 1e-10) -> dict:
    """IHT on the planted data: gradient step, then keep the top s = round(density * hidden * dim) weights.

    `generators` given: the convex formulation (width = number of generators); None: sequential,
    width = the teacher's, random gates for empty units drawn from `seed`. lr None: the paper's
    adaptive step; a number: that fixed step. The budget s is the teacher's (known sparsity, as in
    the paper); warmup/ramp let it shrink from dense (lth.training.modes.iht.density_at). Stops once the relative
    training residual is below `tol` after the schedule has ended.
    """
    x, y = data["x_train"], data["y_train"]
    n, dim = x.shape
    hidden = data["W"].shape[0]
    sequential = generators is None
    if sequential:
        g = torch.Generator().manual_seed(seed)
        generators = torch.randn(hidden, dim, generator=g, dtype=x.dtype)
    student = Student(len(generators), dim, generators, sequential)
    budget = round(density * hidden * dim)
    project = Projector(student, ["weight"], budget / student.weight.numel(), warmup, ramp)
    W = student.weight
    residual = float("inf")
    for t in range(steps):
        gates = student.gates(x)
        r = (gates * (x @ W.T)).sum(1) - y
        residual = (r.norm() / y.norm()).item()
        if residual < tol and t >= warmup + ramp:
            break
        grad = (gates * r[:, None]).T @ x / n
        W -= _step(grad, W, gates, x) * grad if lr is None else lr * grad
        project(t)
    else:
        t = steps
    test = student(data["x_test"]) - data["y_test"]
    return {"W": W.detach().clone(), "mask": project.mask["weight"], "steps": t,
            "train_residual": residual, "test_rmse": test.square().mean().sqrt().item()}


def _step(grad: torch.Tensor, W: torch.Tensor, gates: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Normalised IHT's step: minimises the loss along the gradient restricted to W's support (all if W = 0)."""
    g = grad * (W != 0) if bool((W != 0).any()) else grad
    Ag = (gates * (x @ g.T)).sum(1)
    return g.square().sum() / Ag.square().mean().clamp_min(torch.finfo(x.dtype).tiny)


def recovery(student_W: torch.Tensor, student_mask: torch.Tensor, teacher_W: torch.Tensor) -> dict:
    """How well the student recovered the teacher, after matching its units to the teacher's.

    The network is unchanged by permuting hidden units (nothing else: the second layer is fixed),
    so each teacher unit is matched to a distinct student unit minimising the total squared
    distance (Hungarian algorithm); unmatched student units (a wider student) must be empty.
    support_recovered: the matched mask equals the teacher's support exactly. weight_error: the
    largest absolute weight difference (make_planted's weights are >= min_magnitude = 0.5, so 1e-4
    holds each one to 2e-4 of its size); relative_error: ||W - W*||_F / ||W*||_F; support_overlap:
    Jaccard index of the two supports.
    """
    from scipy.optimize import linear_sum_assignment

    sw, sm, tw = student_W.detach().cpu().double(), student_mask.cpu(), teacher_W.detach().cpu().double()
    if sw.shape[0] < tw.shape[0] or sw.shape[1] != tw.shape[1]:
        raise LTHError(f"recovery: student {tuple(sw.shape)} cannot hold teacher {tuple(tw.shape)}")
    _, cols = linear_sum_assignment(torch.cdist(tw, sw).square().numpy())
    rest = sorted(set(range(len(sw))) - set(cols.tolist()))
    order = torch.as_tensor([*cols.tolist(), *rest], dtype=torch.long)
    teacher = torch.cat([tw, tw.new_zeros(len(sw) - len(tw), tw.shape[1])])
    support = teacher != 0
    mask, weights = sm[order], sw[order]
    return {
        "support_recovered": bool(torch.equal(mask, support)),
        "weight_error": (weights - teacher).abs().max().item(),
        "relative_error": ((weights - teacher).norm() / teacher.norm()).item(),
        "support_overlap": (mask & support).sum().item() / max(1, (mask | support).sum().item()),
        "permutation": order.tolist(),
    }
