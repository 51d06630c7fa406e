"""The PQ Index of a weight vector and the pruning amount SAP sets from it (Diao et al. 2023, "Pruning
Deep Neural Networks from a Sparsity Perspective", ICLR; Section 3 and Algorithm 1).

For the d entries w a layer (or the network) still has and 0 < p < q:
    I_{p,q}(w) = 1 - d^(1/q - 1/p) ||w||_p / ||w||_q,
0 when every entry has the same magnitude, and largest, 1 - d^(1/q - 1/p), when one entry holds all the
mass: the larger, the sparser (more compressible) w. Sparsity-informed Adaptive Pruning keeps at least
    r = ceil(d (1 + eta_r)^(-q / (q - p)) (1 - I)^(q p / (q - p)))
entries and removes c = floor(d min(gamma (1 - r / d), beta)) of them, the lowest first (the rounding as
in the authors' code, modules/compression.py). Defaults: p = 0.5, q = 1.0, eta_r = 0.001 and gamma = 1.2
(the authors' README example of SAP), beta = 0.9 (the most one round may remove; Algorithm 1's cap).
"""

from __future__ import annotations

import math

import torch

DEFAULTS = {"p": 0.5, "q": 1.0, "eta_r": 0.001, "gamma": 1.2, "beta": 0.9}


def pq_index(w: torch.Tensor, p: float = 0.5, q: float = 1.0) -> float:
    """I_{p,q} of the entries of `w` (all of them: pass only the unpruned ones); 0 for an all-zero w."""
    w = w.detach().reshape(-1).double().abs()
    d = w.numel()
    norm_q = float(w.pow(q).sum() ** (1 / q))
    if d == 0 or norm_q == 0:
        return 0.0
    norm_p = float(w.pow(p).sum() ** (1 / p))
    return 1 - d ** (1 / q - 1 / p) * norm_p / norm_q


def sap_keep_bound(index: float, d: int, p: float, q: float, eta_r: float) -> int:
    """r: the fewest entries SAP keeps of d with PQ Index `index`."""
    return math.ceil(d * (1 + eta_r) ** (-q / (q - p)) * (1 - index) ** (q * p / (q - p)))


def sap_remove(index: float, d: int, p: float, q: float, eta_r: float, gamma: float, beta: float) -> int:
    """c: the entries SAP removes this round, of d with PQ Index `index`."""
    if d == 0:
        return 0
    ratio = min(max(gamma * (1 - sap_keep_bound(index, d, p, q, eta_r) / d), 0.0), beta)
    return math.floor(d * ratio)
