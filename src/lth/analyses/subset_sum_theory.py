"""Strong lottery tickets in theory: a target ReLU network found by pruning a wider random one.

Sources: A. Pensia et al., "Optimal Lottery Tickets via SubsetSum: Logarithmic Over-Parameterization
is Sufficient", NeurIPS 2020 (arXiv:2006.07990); E. Malach et al., "Proving the Lottery Ticket
Hypothesis: Pruning is All You Need", ICML 2020; L. Orseau et al., "Logarithmic Pruning is All
You Need", NeurIPS 2020. Pensia's construction, checked numerically here:

- A target layer x -> W x (W: d_out x d_in) becomes two random layers with a ReLU between,
  x -> B relu(A x). Hidden neurons come in blocks, one block per input j; pruning cuts every
  first-layer edge of a block's neurons except the one from x_j, so neuron r computes
  relu(a_r x_j). With relu(a x) = a x for a > 0, x >= 0 and for a < 0, x < 0 (the ReLU trick,
  x = relu(x) - relu(-x)), the pruned pair computes W+ relu(x) - W- relu(-x), where W+_kj
  (W-_kj) is the sum of the products b_kr a_r over the kept second-layer edges (k, r) of
  block j's neurons with a_r > 0 (a_r < 0). Each is a subset sum of n random products, chosen
  as close as possible to W_kj; the neurons are shared by all outputs k, each output picks its
  own subset through its own second-layer edges.
- The subset-sum lemma (Lueker 1998) makes the best of n such products within eps of any target
  in a bounded interval once n = O(log 1/eps): the error falls exponentially in n, and the
  width needed grows only logarithmically in the accuracy (Pensia's over-parameterisation
  bound; Malach's construction needed a polynomial one).

Choices made here:

1. Target networks have no biases: f(x) = W_L relu(... relu(W_1 x)); `make_target` draws entries
   U[-1/2, 1/2] by default (the products b a below have mean |b a| = 1/4, so targets near +-1
   need many candidates of one sign; Pensia's lemma hides this in its constant). The random
   network has 2L layers, a ReLU after every one but the last, all entries i.i.d. U[-1, 1],
   except that block j's edges from x_j take magnitude U[0, 1] with sign + for its first n
   neurons and - for the other n (stratified signs), so every target weight has exactly n
   candidate products per side, not Binomial(2n, 1/2) of them. Blocks are 2n neurons wide: the
   random network is 2n d_in wide where the target layer has d_out neurons.
   Each neuron's weights are seeded by its place (seed, layer, block, side, index) alone, so the
   networks of increasing n are nested: n + 1 adds one candidate to every subset sum, and the
   best weight error can only fall. The curve then shows the accuracy bought by each added
   neuron, not the spread between unrelated draws.
2. Every subset sum is solved exactly, in float64: full enumeration of the 2^n subsets for
   n <= 16, meet-in-the-middle (sorted half sums, binary search) up to n = 32. Among equally
   good subsets enumeration keeps the lowest bitmask (neuron i is bit i).
3. A first-layer edge is kept only when its neuron is used by some output; unused neurons are
   pruned whole. The pruned network is the random one times its 0/1 masks: every removed entry
   is exactly 0.0.
4. Errors: the output error is max |f(x) - g(x)| over outputs and a fixed batch of inputs drawn
   uniformly from the unit ball (seeded); the weight error of a target weight is
   |W+_kj - W_kj| and |W-_kj - W_kj|, both counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import Any

import torch

from lth.core.errors import LTHError
from lth.core.seeding import derive_seed

MAX_ENUMERATE = 16
MAX_N = 32


def relu_net(weights: Sequence[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """x (batch, d) through the layers, a ReLU after every layer but the last; no biases."""
    for i, w in enumerate(weights):
        x = x @ w.T
        if i < len(weights) - 1:
            x = torch.relu(x)
    return x


def make_target(dims: Sequence[int] = (4, 8, 2), seed: int = 0, scale: float = 0.5) -> list[torch.Tensor]:
    """A bias-free ReLU MLP with layer widths `dims`, entries i.i.d. U[-scale, scale] (float64)."""
    g = torch.Generator().manual_seed(derive_seed(seed, "subset_sum", "target"))
    return [(torch.rand(d_out, d_in, generator=g, dtype=torch.float64) * 2 - 1) * scale
            for d_in, d_out in pairwise(dims)]


def unit_ball(count: int, dim: int, seed: int) -> torch.Tensor:
    """`count` points uniform in the unit ball of R^dim (float64, seeded)."""
    g = torch.Generator().manual_seed(derive_seed(seed, "subset_sum", "inputs"))
    x = torch.randn(count, dim, generator=g, dtype=torch.float64)
    radius = torch.rand(count, 1, generator=g, dtype=torch.float64) ** (1.0 / dim)
    return x / x.norm(dim=1, keepdim=True) * radius


def _subset_bits(n: int) -> torch.Tensor:
    """(2^n, n) 0/1 float64 matrix: row s holds the bits of s, neuron i at bit i."""
    s = torch.arange(2**n).unsqueeze(1)
    return ((s >> torch.arange(n)) & 1).to(torch.float64)


def best_subsets(values: torch.Tensor, targets: torch.Tensor, method: str = "auto") -> torch.Tensor:
    """For each row p: the subset of values[p] (n of them) whose sum is closest to targets[p].

    Exact. method "enumerate" (all 2^n sums; ties: lowest bitmask), "meet" (meet in the middle)
    or "auto" (enumerate for n <= 16). Returns a (P, n) bool tensor.
    """
    values, targets = values.to(torch.float64), targets.to(torch.float64)
    n = values.shape[1]
    if not 1 <= n <= MAX_N:
        raise LTHError(f"subset sum: n must be in [1, {MAX_N}], got {n}")
    if method == "auto":
        method = "enumerate" if n <= MAX_ENUMERATE else "meet"
    if method == "enumerate":
        bits = _subset_bits(n)
        err = (values @ bits.T - targets.unsqueeze(1)).abs()
        return bits[err.argmin(dim=1)].bool()
    if method != "meet":
        raise LTHError(f"subset sum: unknown method {method!r}")
    h = n // 2
    lo_bits, hi_bits = _subset_bits(h), _subset_bits(n - h)
    lo = values[:, :h] @ lo_bits.T  # (P, 2^h)
    hi = values[:, h:] @ hi_bits.T  # (P, 2^(n-h))
    hi_sorted, order = hi.sort(dim=1)
    want = targets.unsqueeze(1) - lo  # what the high half should add to each low subset
    pos = torch.searchsorted(hi_sorted, want.contiguous())
    best_err = torch.full_like(want, float("inf"))
    best_pos = torch.zeros_like(pos)
    for cand in (pos - 1, pos):  # the neighbours of the insertion point
        ok = (cand >= 0) & (cand < hi_sorted.shape[1])
        c = cand.clamp(0, hi_sorted.shape[1] - 1)
        err = torch.where(ok, (hi_sorted.gather(1, c) - want).abs(), torch.inf)
        better = err < best_err
        best_err, best_pos = torch.where(better, err, best_err), torch.where(better, c, best_pos)
    i_lo = best_err.argmin(dim=1)
    i_hi = order.gather(1, best_pos.gather(1, i_lo.unsqueeze(1))).squeeze(1)
    return torch.cat([lo_bits[i_lo], hi_bits[i_hi]], dim=1).bool()


def _neuron(seed: int, layer: int, j: int, side: int, i: int, d_in: int, d_out: int):
    """Random weights of one hidden neuron: its first-layer row a and second-layer column b.

    Seeded by its place alone, so the network for n holds the same neurons as the one for n - 1 plus
    one more per block and side (choice 1).
    """
    g = torch.Generator().manual_seed(derive_seed(seed, "subset_sum", "neuron", layer, j, side, i))
    a = torch.rand(d_in, generator=g, dtype=torch.float64) * 2 - 1
    b = torch.rand(d_out, generator=g, dtype=torch.float64) * 2 - 1
    a[j] = a[j].abs() if side == 0 else -a[j].abs()
    return a, b


def prune_layer(w: torch.Tensor, n: int, seed: int = 0, layer: int = 0) -> dict[str, Any]:
    """Random pair (A, B) for target layer w, their masks and the realised W+ / W- (choice 1)."""
    d_out, d_in = w.shape
    neurons = [_neuron(seed, layer, j, side, i, d_in, d_out)
               for j in range(d_in) for side in (0, 1) for i in range(n)]
    a = torch.stack([u for u, _ in neurons])  # (width, d_in), width = 2 n d_in
    b = torch.stack([v for _, v in neurons], dim=1)  # (d_out, width)
    width = a.shape[0]
    rows, block = torch.arange(width), torch.arange(width) // (2 * n)  # the input each neuron serves
    products = b * a[rows, block]  # (d_out, width): b_kr a_r
    # one problem per (k, j, side): the n products of block j's neurons of that side
    vals = products.view(d_out, d_in, 2, n)
    chosen = best_subsets(vals.reshape(-1, n), w.unsqueeze(2).expand(d_out, d_in, 2).reshape(-1))
    mask_b = chosen.view(d_out, width)
    mask_a = torch.zeros(width, d_in, dtype=torch.bool)
    mask_a[rows, block] = mask_b.any(dim=0)
    realised = (vals * chosen.view(d_out, d_in, 2, n)).sum(dim=3)
    return {"random": [a, b], "masks": [mask_a, mask_b], "w_plus": realised[..., 0], "w_minus": realised[..., 1]}


def prune_random(target: Sequence[torch.Tensor], n: int, seed: int = 0) -> dict[str, Any]:
    """The random network for `target` with n candidates per weight and side, and its best prune.

    Returns random (the 2L random weight tensors), masks (bool, same shapes), pruned (random *
    masks, as tensors), w_plus / w_minus (the realised target weights per layer).
    """
    if not 1 <= n <= MAX_N:
        raise LTHError(f"subset sum: n must be in [1, {MAX_N}], got {n}")
    out: dict[str, Any] = {"random": [], "masks": [], "w_plus": [], "w_minus": []}
    for i, w in enumerate(target):
        layer = prune_layer(w.to(torch.float64), n, seed, i)
        for key in out:
            out[key] += layer[key] if key in ("random", "masks") else [layer[key]]
    out["pruned"] = [r * m.to(r.dtype) for r, m in zip(out["random"], out["masks"])]
    return out


def approximation_curve(target: Sequence[torch.Tensor], ns: Sequence[int] = (2, 4, 6, 8, 10, 12),
                        seed: int = 0, inputs: int = 1000) -> list[dict[str, Any]]:
    """Per n: the random network's size, its over-parameterisation over the target, and the errors."""
    target = [w.to(torch.float64) for w in target]
    x = unit_ball(inputs, target[0].shape[1], seed)
    fx = relu_net(target, x)
    target_params = sum(w.numel() for w in target)
    rows = []
    for n in ns:
        net = prune_random(target, n, seed)
        params = sum(r.numel() for r in net["random"])
        weight_err = torch.cat([(torch.stack([p, m]) - w).abs().flatten()
                                for w, p, m in zip(target, net["w_plus"], net["w_minus"])])
        rows.append({
            "n": n,
            "random_params": params,
            "kept_params": sum(int(m.sum()) for m in net["masks"]),
            "overparameterisation": params / target_params,
            "max_output_error": float((relu_net(net["pruned"], x) - fx).abs().max()),
            "mean_weight_error": float(weight_err.mean()),
            "max_weight_error": float(weight_err.max()),
        })
    return rows
