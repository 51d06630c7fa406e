"""BINGO: a significance score accumulated while the dense network trains, for one-shot pruning.

Source: A. Panangat, "BINGO: A Novel Pruning Mechanism to Reduce the Size of Neural Networks",
arXiv:2505.09864 (v2, May 2025), section "Methodology / Bingo Design". What the paper specifies:

- "Lottery ticket searching": just after each training pass, a subset of the weights is set back
  to its *initial* values in a simulated "fake training pass"; the real weights are not affected.
- A "weight significance score" per weight, 0.5 for every weight at the start; after each search
  the weights of the subset are updated as S_w = (S_p + (1 - |A_before - A_after| / A_before)) / 2,
  A being the model's accuracy before and after the reset.
- Higher scores mean weights "that contribute more significantly to model accuracy"; after
  training, the weights of lowest score are pruned first, in one shot.

It does not say how large a subset is, how many are drawn per pass, whether subsets span layers,
on which data the accuracy is taken, nor in which mode (BatchNorm) the fake pass runs. The
author's public prototype (github.com/adityapanangat/BINGO, IMP_vs_BINGO.py, `ticket_search`)
draws 1% of each weight layer, uniformly without replacement, one subset per layer per batch,
tests the layers one at a time on the current batch in eval mode, and zeroes the subset (instead
of resetting it) with the update (S + |A_before - A_after|) / 2 from 0, lowest pruned first; it
makes its pass over the training batches after training rather than during it.

The choices made here, each a keyword of `Significance`:

1. Direction. Read literally, the paper's formula *lowers* S_w the more the reset changes the
   accuracy, so pruning the lowest first would prune the weights that matter most: against its own
   prose and its prototype. We keep its arithmetic and its prose: the stored significance is
   s <- (s + r) / 2 from s = 0.5, with r the relative change. This is exactly 1 - S_w of the
   paper's formula at every step (1 - S_w = ((1 - S_p) + r) / 2), so high = important and
   `scores()` are ranked lowest-pruned-first as they are.
2. measure="loss" (default) or "accuracy" (the paper's). r = |m_after - m_before| / m_before with m
   the batch's mean cross-entropy or its accuracy (a zero m_before divides by 1 instead). The
   loss is the default because resetting 1% of a layer seldom flips a prediction in a minibatch:
   with accuracy most tests read r = 0 and the ranking is mostly ties.
3. reset="init" (default, the paper's: back to the initial weights, which the caller hands in as
   `init`) or "zero" (the prototype's, and what pruning itself does).
4. Subsets per layer, as the prototype: k = max(1, floor(fraction * alive)) of a layer's alive
   weights, `subsets` disjoint subsets per layer per observed step, uniform without replacement
   (defaults fraction=0.01, subsets=1). Layers are tested one at a time, each subset on its own.
5. When: `observe(t, x, y)` runs before step t, so it sees the weights after t steps (just after
   training pass t - 1) and measures on batch t, the next batch rather than the one just trained
   on. It observes when t >= 1 and t % every == 0 (every=1: after every pass, the paper's); t = 0
   has had no training pass; the weights after the very last step are never observed.
6. Mode: the fake passes run in the model's current mode. Inside `train` that is training mode, so
   BatchNorm normalises with the batch's statistics, as the real step about to be taken does;
   running statistics lag the weights (and start at 0/1) and would score a network that training
   does not see. The running statistics are not touched: every fake pass gets copies of the buffers.
7. Nothing of the model is written: each fake pass is `torch.func.functional_call` with a copy of
   the one weight tensor, so parameters, buffers, grads and the mode stay bitwise as they were.
   Subsets come from a CPU `torch.Generator` seeded by (seed, t, layer), never the global RNG, so
   a replay and a resumed replay draw the same subsets on any device.
8. average="halving" (default, the paper's update) or "mean" (the plain mean of r over a weight's
   tests). Halving keeps a 0.5**(n+1) share of the prior after n tests and weighs the last few
   tests most; the mean does neither. An alive weight never tested keeps the prior 0.5, which
   ranks it above measured weights whenever r < 0.5 (the usual case): what was not measured is
   kept. A weight outside the mask scores -inf. `coverage()` tells how many were tested.
9. How many weights go is not BINGO's business here: the experiment's selection (rates, counts)
   decides, not the paper's prune-until-an-accuracy-floor loop.

Cost: an observed step costs 1 + (number of prunable layers) * subsets forward passes of the batch,
no backward. A training step is roughly 3 forward passes' worth, so with every=1 and subsets=1 the
replay of Conv-2 (5 prunable layers: 6 extra forwards) costs about 3 training steps per step, and
ResNet-20 (22 layers) about 8.7; `every` divides the extra cost. Memory: one copy of one layer at a
time on the device, ~20 bytes per prunable weight on the CPU (float64 score, int32 count, the
alive weights' int64 indices). On a GPU the scores are reproducible when the kernels are
deterministic; they never feed back into training, whose trajectory stays the dense run's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from lth.core.errors import LTHError
from lth.core.seeding import derive_seed
from lth.pruning.masks import Mask

PRIOR = 0.5  # the paper's starting significance
RESETS, MEASURES, AVERAGES = ("init", "zero"), ("loss", "accuracy"), ("halving", "mean")
MISSING = "bingo: no significance scores: they are accumulated during the dense run's replay (job bingo)"


def distinct(n: int, m: int, g: torch.Generator) -> torch.Tensor:
    """m distinct integers of [0, n), uniformly at random and in random order; O(m) when m << n.

    For m <= n / 4, draws with replacement until m distinct values are in hand (the distinct set of
    i.i.d. draws is uniform given its size), then keeps a random m of them in random order; a full
    permutation of a 2.4M-weight layer would cost ~40 ms of CPU per layer and step.
    """
    if 4 * m > n:
        return torch.randperm(n, generator=g)[:m]
    have = torch.empty(0, dtype=torch.long)
    while have.numel() < m:
        need = m - have.numel()
        have = torch.unique(torch.cat([have, torch.randint(n, (need + need // 4 + 8,), generator=g)]))
    return have[torch.randperm(have.numel(), generator=g)[:m]]


class Significance:
    """BINGO's significance of every prunable weight, accumulated by `observe` calls during training.

    Use as `train(..., observe=Significance(model, mask, seed=...))`, then `scores()`. `init` is
    the weights the run started from (reset="init"). See the module docstring for every knob.
    """

    def __init__(self, model: nn.Module, mask: Mask, *, seed: int, fraction: float = 0.01, subsets: int = 1,
                 every: int = 1, reset: str = "init", init: Mapping[str, torch.Tensor] | None = None,
                 measure: str = "loss", average: str = "halving"):
        if not isinstance(fraction, (int, float)) or isinstance(fraction, bool) or not 0.0 < fraction <= 1.0:
            raise LTHError(f"bingo: fraction must be in (0, 1], got {fraction!r}")
        for key, value in (("subsets", subsets), ("every", every)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise LTHError(f"bingo: {key} must be a positive integer, got {value!r}")
        for key, value, allowed in (("reset", reset, RESETS), ("measure", measure, MEASURES),
                                    ("average", average, AVERAGES)):
            if value not in allowed:
                raise LTHError(f"bingo: {key} must be one of {', '.join(allowed)}; got {value!r}")
        params = dict(model.named_parameters())
        for name, m in mask.items():
            if name not in params or tuple(params[name].shape) != tuple(m.shape):
                raise LTHError(f"bingo: mask layer '{name}' does not fit the model")
        self.model = model
        self.config = {"seed": int(seed), "fraction": float(fraction), "subsets": subsets, "every": every,
                       "reset": reset, "measure": measure, "average": average}
        self.names = list(mask)
        self.shapes = {n: tuple(m.shape) for n, m in mask.items()}
        self.alive = {n: m.detach().reshape(-1).cpu().nonzero().squeeze(1) for n, m in mask.items()}
        self.init: dict[str, torch.Tensor] = {}
        if reset == "init":
            if init is None:
                raise LTHError("bingo: reset='init' needs the run's initial weights (init=)")
            for n in self.names:
                if n not in init or tuple(init[n].shape) != self.shapes[n]:
                    raise LTHError(f"bingo: the initial weights lack layer '{n}' or have another shape")
                self.init[n] = init[n].detach().to(device=params[n].device, dtype=params[n].dtype).reshape(-1)
        # halving: the score itself; mean: the sum of r. count: tests per weight.
        start = PRIOR if average == "halving" else 0.0
        self.value = {n: torch.full((m.numel(),), start, dtype=torch.float64) for n, m in mask.items()}
        self.count = {n: torch.zeros(m.numel(), dtype=torch.int32) for n, m in mask.items()}
        self.next_t: int | None = None  # the iteration the next call must have
        self.observed = 0  # steps measured

    def sample(self, t: int) -> list[tuple[str, torch.Tensor]]:
        """The subsets tested at iteration t, in order: (layer, flat indices into its weight), CPU."""
        c = self.config
        out = []
        for name in self.names:
            alive = self.alive[name]
            n = alive.numel()
            if n == 0:
                continue
            k = max(1, int(c["fraction"] * n))
            count = min(c["subsets"], n // k)
            g = torch.Generator().manual_seed(derive_seed(c["seed"], "bingo", t, name))
            picked = alive[distinct(n, k * count, g)]
            out += [(name, picked[i * k:(i + 1) * k]) for i in range(count)]
        return out

    @torch.no_grad()
    def __call__(self, t: int, x: torch.Tensor, y: torch.Tensor) -> None:
        if self.next_t is not None and t < self.next_t:
            return  # a resumed replay redoing steps already counted: the same weights, the same result
        if self.next_t is not None and t > self.next_t:
            raise LTHError(f"bingo: iteration {t} observed but the significance stops at {self.next_t - 1}: "
                           f"its saved state is older than the training checkpoint")
        self.next_t = t + 1
        if t < 1 or t % self.config["every"]:
            return
        params = dict(self.model.named_parameters())
        buffers = {n: b.clone() for n, b in self.model.named_buffers()}
        tests = self.sample(t)
        values = [self._measure(buffers, {}, x, y)]
        for name, idx in tests:
            w = params[name].detach()
            flat = w.reshape(-1).clone()
            where = idx.to(w.device)
            flat[where] = self.init[name][where] if self.init else 0.0
            values.append(self._measure(buffers, {name: flat.view(w.shape)}, x, y))
        base, *after = torch.stack(values).cpu().tolist()
        denominator = base if base > 0 else 1.0
        halving = self.config["average"] == "halving"
        for (name, idx), a in zip(tests, after):
            r = abs(a - base) / denominator
            v = self.value[name]
            v[idx] = (v[idx] + r) / 2 if halving else v[idx] + r
            self.count[name][idx] += 1
        self.observed += 1

    def _measure(self, buffers, weights, x, y) -> torch.Tensor:
        out = functional_call(self.model, {**buffers, **weights}, (x,))
        if self.config["measure"] == "loss":
            return F.cross_entropy(out, y).to(torch.float64)
        return (out.argmax(1) == y).to(torch.float64).mean()

    def scores(self) -> dict[str, torch.Tensor]:
        """Significance per weight (CPU float64, shaped like the mask): high = important, lowest pruned first."""
        out = {}
        for name in self.names:
            if self.config["average"] == "halving":
                s = self.value[name].clone()
            else:
                tested = self.count[name] > 0
                s = torch.full_like(self.value[name], PRIOR)
                s[tested] = self.value[name][tested] / self.count[name][tested]
            dead = torch.ones_like(s, dtype=torch.bool)
            dead[self.alive[name]] = False
            s[dead] = -torch.inf
            out[name] = s.reshape(self.shapes[name])
        return out

    def coverage(self) -> dict[str, float]:
        """Per layer, the fraction of its alive weights tested at least once so far."""
        return {n: float((self.count[n][self.alive[n]] > 0).double().mean()) if self.alive[n].numel() else 1.0
                for n in self.names}

    def state_dict(self) -> dict[str, Any]:
        return {"config": dict(self.config), "value": {n: v.clone() for n, v in self.value.items()},
                "count": {n: c.clone() for n, c in self.count.items()}, "next_t": self.next_t,
                "observed": self.observed}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if dict(state["config"]) != self.config:
            raise LTHError(f"bingo: saved significance has settings {dict(state['config'])}, this run {self.config}")
        if set(state["value"]) != set(self.names) or any(
                state["value"][n].numel() != self.value[n].numel() for n in self.names):
            raise LTHError("bingo: saved significance covers other layers than this mask")
        self.value = {n: state["value"][n].to(torch.float64).clone() for n in self.names}
        self.count = {n: state["count"][n].to(torch.int32).clone() for n in self.names}
        self.next_t, self.observed = state["next_t"], int(state["observed"])


def score(weights, mask, context) -> dict:
    """The registered score: the significance accumulated by the dense run's replay (options["significance"])."""
    found = (context.options if context is not None else {}).get("significance")
    if found is None:
        raise LTHError(MISSING)
    out = {}
    for name, m in mask.items():
        if name not in found:
            raise LTHError(f"bingo: the significance scores have no layer '{name}'")
        s = found[name].detach().to(device="cpu", dtype=torch.float64)
        if tuple(s.shape) != tuple(m.shape):
            raise LTHError(f"bingo: significance of '{name}' has shape {tuple(s.shape)}, the mask {tuple(m.shape)}")
        out[name] = s
    return out
