"""Spectra of a symmetric operator known only through its products H v (the numerics of lth.analyses.hessian).

The three estimates PyHessian (Yao et al. 2020) computes from Hessian-vector products, here on any
`hvp(v) -> H v` of a flat vector of length n:
- `lanczos`: m steps of the Lanczos iteration with full reorthogonalisation (float round-off would
  otherwise bring back converged directions as spurious copies), giving the tridiagonal T_m; its
  eigenvalues (Ritz values) converge to H's extreme eigenvalues first, and are H's exactly when m = n;
- `top_eigenvalues`: the k largest Ritz values of one Lanczos run from a seeded start;
- `hutchinson_trace`: tr(H) ~ mean of v^T H v over Rademacher v (unbiased), with its standard error;
- `slq_density`: stochastic Lanczos quadrature (Ubaru, Chen, Saad 2017; Ghorbani, Krishnan, Xiao 2019):
  for each of `runs` Gaussian probes v/|v|, the Gauss quadrature of T_m's eigen-decomposition gives nodes
  theta_j with weights tau_j (the squared first components of its eigenvectors, summing to 1) such that
  v^T H^p v = sum_j tau_j theta_j^p exactly for p <= 2m - 1; averaged over probes they estimate the
  spectral density, whose moments are tr(H^p) / n.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

HVP = Callable[[torch.Tensor], torch.Tensor]


def lanczos(hvp: HVP, v0: torch.Tensor, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(alpha, beta) of the tridiagonal T (diagonal, off-diagonal) after up to `steps` steps from v0; stops
    early when the Krylov space is invariant (beta ~ 0: T's eigenvalues are then exact eigenvalues of H)."""
    q = v0 / v0.norm()
    basis, alphas, betas = [q], [], []
    for i in range(min(steps, v0.numel())):
        w = hvp(q)
        alpha = torch.dot(w, q)
        alphas.append(alpha)
        w = w - alpha * q - (betas[-1] * basis[-2] if betas else 0)
        stacked = torch.stack(basis)
        for _ in range(2):  # full reorthogonalisation, twice ("twice is enough")
            w = w - stacked.T @ (stacked @ w)
        beta = w.norm()
        scale = max(abs(float(a)) for a in alphas) or 1.0
        if i == min(steps, v0.numel()) - 1 or beta <= 1e-10 * scale:
            break
        betas.append(beta)
        q = w / beta
        basis.append(q)
    return torch.stack(alphas), (torch.stack(betas) if betas else v0.new_zeros(0))


def ritz(alpha: torch.Tensor, beta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """T's eigenvalues (ascending) and the squared first components of its eigenvectors (quadrature weights)."""
    t = torch.diag(alpha)
    if len(beta):
        t = t + torch.diag(beta, 1) + torch.diag(beta, -1)
    values, vectors = torch.linalg.eigh(t)
    return values, vectors[0] ** 2


def top_eigenvalues(hvp: HVP, n: int, k: int, steps: int, generator: torch.Generator,
                    dtype: torch.dtype = torch.float64) -> list[float]:
    """The k largest eigenvalues (descending), as Ritz values of `steps` Lanczos steps from a Gaussian start."""
    v0 = torch.randn(n, generator=generator, dtype=dtype)
    values, _ = ritz(*lanczos(hvp, v0, steps))
    return [float(x) for x in values.flip(0)[:k]]


def hutchinson_trace(hvp: HVP, n: int, samples: int, generator: torch.Generator,
                     dtype: torch.dtype = torch.float64) -> tuple[float, float]:
    """The mean of v^T H v over `samples` Rademacher probes, and its standard error (0 for one probe)."""
    found = []
    for _ in range(samples):
        v = torch.randint(0, 2, (n,), generator=generator).to(dtype) * 2 - 1
        found.append(float(torch.dot(v, hvp(v))))
    mean = sum(found) / len(found)
    if len(found) < 2:
        return mean, 0.0
    var = sum((x - mean) ** 2 for x in found) / (len(found) - 1)
    return mean, math.sqrt(var / len(found))


def slq_density(hvp: HVP, n: int, runs: int, steps: int, generator: torch.Generator,
                dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes and weights of the spectral density, pooled over `runs` probes (weights sum to 1)."""
    nodes, weights = [], []
    for _ in range(runs):
        v0 = torch.randn(n, generator=generator, dtype=dtype)
        values, w = ritz(*lanczos(hvp, v0, steps))
        nodes.append(values)
        weights.append(w / runs)
    return torch.cat(nodes), torch.cat(weights)


def smooth(nodes, weights, grid, sigma: float):
    """The density on `grid`: each node a Gaussian of width sigma carrying its weight (integrates to the
    weights' sum when the grid covers the nodes by a few sigma)."""
    nodes, weights, grid = (torch.as_tensor(a, dtype=torch.float64) for a in (nodes, weights, grid))
    z = (grid[:, None] - nodes[None, :]) / sigma
    return (torch.exp(-0.5 * z**2) * weights[None, :]).sum(1) / (sigma * math.sqrt(2 * math.pi))
