"""Modular arithmetic, the algorithmic task of grokking (Power et al. 2022; Minegishi et al. 2023).

Every pair (a, b) in [0, p)^2 appears exactly once, labelled (a op b) mod p. A permutation seeded
with `seed` splits the p*p pairs into round(train_fraction * p*p) training pairs and the rest for
test (disjoint; each part in (a, b) order). An example is one-hot(a) followed by one-hot(b): float32
of shape (2p,), inputs that must not be normalised.

Minegishi et al.'s code shuffles the pairs with a seed too, but keeps only a <= b (addition is
symmetric); here every ordered pair is kept, so that subtraction has its whole table.

`check_options` and `facts` are torch-free (they run when a workflow is parsed).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from lth.core.errors import LTHError

if TYPE_CHECKING:
    import torch

DEFAULTS = {"p": 23, "op": "+", "train_fraction": 0.4, "seed": 0}
OPS = ("+", "-")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_prime(n: int) -> bool:
    return n >= 2 and all(n % d for d in range(2, int(n**0.5) + 1))


def train_size(p: int, train_fraction: float) -> int:
    """Training pairs of the split: round(train_fraction * p*p) (Python's round, half to even)."""
    return round(train_fraction * p * p)


def check_options(options: Mapping, where: str = "modular") -> None:
    """Refuse bad generator options with one LTHError line naming the option and the value."""
    unknown = sorted(set(options) - set(DEFAULTS))
    if unknown:
        raise LTHError(f"{where}: unknown option(s) {unknown}; allowed: {', '.join(DEFAULTS)}")
    o = {**DEFAULTS, **options}
    p, op, fraction, seed = o["p"], o["op"], o["train_fraction"], o["seed"]
    if not _is_int(p) or not _is_prime(p) or p < 3:
        raise LTHError(f"{where}: p must be a prime >= 3, got {p!r}")
    if op not in OPS:
        raise LTHError(f"{where}: op must be one of {', '.join(repr(x) for x in OPS)}, got {op!r}")
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
        raise LTHError(f"{where}: train_fraction must be in (0, 1) (a train fraction of 0 or 1 leaves a split "
                       f"empty), got {fraction!r}")
    n = train_size(p, fraction)
    if not 0 < n < p * p:
        raise LTHError(f"{where}: train_fraction {fraction!r} gives {n} of the {p * p} pairs (p={p}) to training: "
                       f"a split would be empty")
    if not _is_int(seed):
        raise LTHError(f"{where}: seed must be an integer, got {seed!r}")


def facts(options: Mapping) -> dict:
    """Shape of one example (2p,), classes p and training-set size under the options."""
    o = {**DEFAULTS, **options}
    return {"input_shape": (2 * o["p"],), "num_classes": o["p"], "train_size": train_size(o["p"], o["train_fraction"])}


def make_modular(name: str, raw: Path, download: bool, options: dict) -> dict[str, torch.Tensor]:
    """The split p*p table of (a op b) mod p as tensors (x float32 one-hot pairs, y int64)."""
    import torch
    import torch.nn.functional as F

    check_options(options, f"dataset {name!r}")
    o = {**DEFAULTS, **options}
    p = o["p"]
    a, b = torch.arange(p).repeat_interleave(p), torch.arange(p).repeat(p)  # pair i = (i // p, i % p)
    y = (a + b) % p if o["op"] == "+" else (a - b) % p
    x = torch.cat([F.one_hot(a, p), F.one_hot(b, p)], dim=1).to(torch.float32)
    perm = torch.randperm(p * p, generator=torch.Generator().manual_seed(o["seed"]))
    n = train_size(p, o["train_fraction"])
    train, test = perm[:n].sort().values, perm[n:].sort().values
    return {"x_train": x[train], "y_train": y[train], "x_test": x[test], "y_test": y[test]}
