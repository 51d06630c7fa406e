"""Sparse linear problems with a known support (the dataset `sparse_linear`); the lasso and dense
references to judge IMP by are lth.analyses.lasso.

The setting of Elesedy, Kanade & Teh, "Lottery Tickets in Linear Models: An Analysis of Iterative
Magnitude Pruning" (arXiv:2007.08243): IMP applied to a linear model trained by gradient flow, read
as a method for sparse estimation (recover the support of a sparse target) and sparse prediction in
noisy settings, with minimal assumptions on the design (from the abstract; the full text was not at
hand). Gradient flow on least squares started at zero ends at the minimum-norm least-squares solution,
so with a zero initialisation (ours) a ticket rewound to it retrains to the least-squares fit on its
surviving features; lth.analyses.lasso's `dense_reference` is that round-0 model, its `lasso_reference`
the classical sparse estimator at the same number of nonzeros.

Data model (ours; the classical sparse-regression one):
- beta* in R^dim has exactly `support` nonzeros at seeded positions, each of random sign and
  magnitude U[1, 2]: bounded away from 0, so "support recovered" is a statement about every entry;
- x ~ N(0, I_dim) (float32; no intercept, no normalisation: the inputs are used as they are);
- regression: y = x . beta* + noise * N(0, 1) (float32);
- logistic: y = 1[x . beta* + noise * eps > 0], eps ~ Logistic(0, 1) (int64 0/1). This is
  Bernoulli(sigmoid(x . beta* / noise)): noise = 1 is the usual logistic model, noise = 0 noiseless.
  Labels are balanced in expectation (x . beta* is symmetric about 0).

Defaults: n_train 200 > dim 100 (the least-squares fit exists) and n_train >> support * log(dim) (~46,
the lasso's sample complexity on Gaussian designs), SNR high (noise 0.1 against |beta*_j| >= 1), so
both IMP and the lasso should find the support; shrink n_train below dim for the paper's
overparameterised regime. Train and test are independent draws from the same distribution, each
from its own seeded stream (changing n_test leaves the training set as it was).

`check_options` and `facts` are torch-free (they run when a workflow is parsed).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from lth.core.errors import LTHError
from lth.core.seeding import derive_seed

if TYPE_CHECKING:
    import torch

DEFAULTS = {"n_train": 200, "n_test": 1000, "dim": 100, "support": 10, "noise": 0.1, "task": "regression", "seed": 0}
TASKS = ("regression", "logistic")


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_options(options: Mapping, where: str = "sparse_linear") -> None:
    """Refuse bad generator options with one LTHError line naming the option and the value."""
    unknown = sorted(set(options) - set(DEFAULTS))
    if unknown:
        raise LTHError(f"{where}: unknown option(s) {unknown}; allowed: {', '.join(DEFAULTS)}")
    o = {**DEFAULTS, **options}
    for key in ("n_train", "n_test", "dim", "support"):
        if not is_int(o[key]) or o[key] < 1:
            raise LTHError(f"{where}: {key} must be an integer >= 1, got {o[key]!r}")
    if o["support"] > o["dim"]:
        raise LTHError(f"{where}: support {o['support']} is larger than the dimension {o['dim']}")
    noise = o["noise"]
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not math.isfinite(noise) or noise < 0:
        raise LTHError(f"{where}: noise must be a finite number >= 0, got {noise!r}")
    if o["task"] not in TASKS:
        raise LTHError(f"{where}: task must be one of {', '.join(map(repr, TASKS))}, got {o['task']!r}")
    if not is_int(o["seed"]):
        raise LTHError(f"{where}: seed must be an integer, got {o['seed']!r}")


def facts(options: Mapping) -> dict:
    """Shape of one example, classes (2 for logistic; 1 output for regression) and training-set size."""
    o = {**DEFAULTS, **options}
    return {"input_shape": (o["dim"],), "num_classes": 2 if o["task"] == "logistic" else 1,
            "train_size": o["n_train"]}


def ground_truth(options: Mapping) -> torch.Tensor:
    """beta* (float64, (dim,)): `support` nonzeros at seeded positions, sign +-1 times U[1, 2]."""
    import torch

    check_options(options)
    o = {**DEFAULTS, **options}
    g = torch.Generator().manual_seed(derive_seed(o["seed"], "sparse_linear", "beta"))
    positions = torch.randperm(o["dim"], generator=g)[: o["support"]]
    signs = torch.randint(0, 2, (o["support"],), generator=g, dtype=torch.float64) * 2 - 1
    magnitudes = 1 + torch.rand(o["support"], generator=g, dtype=torch.float64)
    beta = torch.zeros(o["dim"], dtype=torch.float64)
    beta[positions] = signs * magnitudes
    return beta


def _draw(o: Mapping, beta: torch.Tensor, n: int, split: str):
    import torch

    g = torch.Generator().manual_seed(derive_seed(o["seed"], "sparse_linear", split))
    x = torch.randn(n, o["dim"], generator=g, dtype=torch.float64).to(torch.float32)
    signal = x.double() @ beta  # from the stored float32 inputs, so x and y agree exactly
    if o["task"] == "regression":
        y = (signal + o["noise"] * torch.randn(n, generator=g, dtype=torch.float64)).to(torch.float32)
    else:
        u = torch.rand(n, generator=g, dtype=torch.float64).clamp(1e-12, 1 - 1e-12)
        y = (signal + o["noise"] * (torch.log(u) - torch.log1p(-u)) > 0).to(torch.int64)
    return x, y


def make_sparse_linear(name: str, raw: Path, download: bool, options: dict) -> dict[str, torch.Tensor]:
    """Train and test draws of the sparse linear model (see the module docstring); offline, seeded."""
    check_options(options, f"dataset {name!r}")
    o = {**DEFAULTS, **options}
    beta = ground_truth(o)
    x_train, y_train = _draw(o, beta, o["n_train"], "train")
    x_test, y_test = _draw(o, beta, o["n_test"], "test")
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
