"""What a ticket buys at inference: parameters, FLOPs, CPU latency and memory, dense vs masked vs sparse.

For the dense network and every level's ticket of the experiment's first seed (seed 0 in every preset: one
seed is enough here, the quantities are properties of one mask and one machine, not of a distribution
over seeds), the table gives:

- params / params_kept: every parameter of the model (BatchNorm's too), and those not pruned;
- flops / flops_kept: multiply-adds of one example through the Linear and Conv2d layers, each weight
  counted once per output position (a Conv2d's weight x H_out x W_out; a Linear's once), all weights for
  `flops`, the kept ones for `flops_kept` (biases, BatchNorm, activations and pooling are not counted;
  one multiply-add is one FLOP here, as pruning papers count it);
- latency_ms: the median over `inference.repeats` forward passes (after `inference.warmup` unmeasured
  ones) on the CPU, in inference mode, at each batch size of `inference.batches` (1 and 256 by
  default), with the workflow's `threads` torch threads (the table says how many), of three
  implementations: `dense` (the dense run), `masked` (the ticket as it trains: dense tensors with its
  zeros, the same kernels, so the same cost as dense) and `sparse_csr` (its Linear weights as
  torch.sparse CSR tensors, multiplied with torch.sparse.mm; its convolutions stay masked dense tensors,
  torch has no sparse convolution on the CPU). latency_ratio is the latency over the dense network's at
  the same batch size: below 1 is faster;
- memory_bytes: the bytes of the tensors the implementation stores (parameters and buffers; for CSR,
  values, column indices and row pointers: 12 bytes or more per kept weight against 4 dense), not the
  process's memory or the activations; memory_ratio likewise over dense's;
- max_abs_logit_diff: the largest difference between the sparse and the masked model's logits on the
  measured batch (float round-off: they compute the same function).

Expect the honest result of Hoefler et al. (2021) and Gale et al. (2020): at moderate sparsity general
sparse kernels lose to dense ones (index overhead, irregular memory access); CSR pays off only at
high sparsity and for large layers, and its memory falls below dense's only under about a third of the
weights. Latency is a measurement of this machine, noisy under load: the repeats are few on purpose
(the analysis runs in the workflow), so read ratios, not milliseconds. `benchmarks/ticket_latency.py`
prints the same table for a results folder with as many repeats as asked.
"""

from __future__ import annotations

import copy
import statistics
import time
import warnings
from collections.abc import Iterable, Mapping

import torch
from torch import nn

from lth.plan.layout import RunKey
from lth.plan.variants import DENSE

NAME = "inference"
IMPLEMENTATIONS = ("dense", "masked", "sparse_csr")


class SparseLinear(nn.Module):
    """A Linear whose weight is a CSR tensor: y = (W_csr x^T)^T + b, with torch.sparse.mm."""

    def __init__(self, linear: nn.Linear, mask: torch.Tensor | None):
        super().__init__()
        w = linear.weight.detach() * (mask.to(linear.weight.dtype) if mask is not None else 1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
            self.weight = w.to_sparse_csr()
        self.bias = None if linear.bias is None else linear.bias.detach().clone()
        self.in_features, self.out_features = linear.in_features, linear.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.in_features)
        y = torch.sparse.mm(self.weight, flat.t()).t()
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*x.shape[:-1], self.out_features)

    def nbytes(self) -> int:
        w = self.weight
        out = sum(t.numel() * t.element_size() for t in (w.values(), w.col_indices(), w.crow_indices()))
        return out + (0 if self.bias is None else self.bias.numel() * self.bias.element_size())


def sparse_model(model: nn.Module, mask: Mapping[str, torch.Tensor]) -> nn.Module:
    """A copy of `model` whose Linear layers hold their masked weights as CSR tensors (SparseLinear)."""
    out = copy.deepcopy(model)
    for name, module in list(out.named_modules()):
        if isinstance(module, nn.Linear):
            parent, _, attr = name.rpartition(".")
            owner = out.get_submodule(parent) if parent else out
            setattr(owner, attr, SparseLinear(module, mask.get(f"{name}.weight")))
    return out


def nbytes(model: nn.Module) -> int:
    """Bytes of the tensors a model stores: parameters and buffers, a SparseLinear's CSR parts."""
    total = sum(m.nbytes() for m in model.modules() if isinstance(m, SparseLinear))
    total += sum(t.numel() * t.element_size() for t in model.parameters())
    return total + sum(t.numel() * t.element_size() for t in model.buffers())


def counts(model: nn.Module, mask: Mapping[str, torch.Tensor], input_shape: tuple[int, ...]) -> dict[str, int]:
    """params, params_kept, flops, flops_kept of one example (module docstring)."""
    positions: dict[str, int] = {}
    hooks = []
    for name, m in model.named_modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            def hook(module, args, output, name=name):
                positions[name] = output[0].numel() // output.shape[-1 if isinstance(module, nn.Linear) else 1]
            hooks.append(m.register_forward_hook(hook))
    try:
        was = model.training
        model.eval()
        with torch.inference_mode():
            model(torch.zeros(1, *input_shape))
        model.train(was)
    finally:
        for h in hooks:
            h.remove()
    params = dict(model.named_parameters())
    total = sum(p.numel() for p in params.values())
    pruned = sum(int((~m).sum()) for m in mask.values())
    flops = kept = 0
    for name, n in positions.items():
        w = f"{name}.weight"
        flops += params[w].numel() * n
        kept += (int(mask[w].sum()) if w in mask else params[w].numel()) * n
    return {"params": total, "params_kept": total - pruned, "flops": flops, "flops_kept": kept}


def latency(model: nn.Module, x: torch.Tensor, repeats: int, warmup: int) -> float:
    """Median seconds of one forward pass of `x` (inference mode, after `warmup` unmeasured ones)."""
    times = []
    with torch.inference_mode():
        for i in range(warmup + repeats):
            start = time.perf_counter()
            model(x)
            if i >= warmup:
                times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(models: Mapping[str, nn.Module], input_shape: tuple[int, ...], batches: Iterable[int], repeats: int,
            warmup: int, seed: int = 0) -> dict[tuple[str, int], dict[str, float]]:
    """(implementation, batch) -> latency_ms, memory_bytes (and, for sparse_csr beside masked, the largest
    logit difference) of each model on a seeded random batch."""
    out = {}
    for batch in batches:
        x = torch.randn(batch, *input_shape, generator=torch.Generator().manual_seed(seed))
        logits = {}
        for impl, model in models.items():
            model.eval()
            with torch.inference_mode():
                logits[impl] = model(x)
            out[impl, batch] = {"latency_ms": 1000 * latency(model, x, repeats, warmup), "memory_bytes": nbytes(model)}
        if "sparse_csr" in logits and "masked" in logits:
            diff = (logits["sparse_csr"] - logits["masked"]).abs().max()
            out["sparse_csr", batch]["max_abs_logit_diff"] = float(diff)
    return out


def tickets(plan) -> list[RunKey]:
    """The dense run and every level's ticket of the first seed (each ticket chain's; a sweep: each method's)."""
    seed = plan.settings.seeds[0]
    planned = set(plan.runs())
    keys = [RunKey(seed, 0, DENSE)]
    keys += [RunKey(seed, level, chain) for chain in plan.ticket_chains() for level in plan.method_levels(chain)
             if RunKey(seed, level, chain) in planned]
    return keys


def load(plan, key: RunKey) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """The run's trained model (CPU, eval mode, pruned weights zero) and its mask."""
    from lth.models import build_model
    from lth.plan.facts import input_shape, num_classes
    from lth.pruning.masks import apply_mask
    from lth.store import artifacts

    s = plan.settings
    model = build_model(s.model.name, input_shape(s.dataset), num_classes(s.dataset), seed=key.seed, **s.model.options)
    artifacts.load_weights(model, plan.layout.final(key))
    mask = artifacts.load_tensors(plan.layout.mask(key))
    apply_mask(model, mask)
    return model.eval(), mask


def table(plan, repeats: int | None = None, warmup: int | None = None, batches: Iterable[int] | None = None,
          threads: int | None = None) -> list[dict]:
    """The analysis's rows (module docstring); the settings' `inference` keys unless given."""
    from lth.plan.facts import input_shape
    from lth.store.results import read_record

    o = plan.settings[NAME]
    repeats, warmup = repeats or o.repeats, o.warmup if warmup is None else warmup
    batches = list(batches or o.batches)
    threads = threads or int(plan.workflow.get("threads", 1))
    shape = input_shape(plan.settings.dataset)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    rows, dense = [], {}
    try:
        for key in tickets(plan):
            record = read_record(plan.layout.metrics(key))
            model, mask = load(plan, key)
            models = {"dense": model} if key.level == 0 else {"masked": model, "sparse_csr": sparse_model(model, mask)}
            found = measure(models, shape, batches, repeats, warmup)
            size = counts(model, mask, shape)
            for (impl, batch), m in found.items():
                if impl == "dense":
                    dense[batch] = m
                base = dense.get(batch, m)
                rows.append({"experiment": plan.experiment, "seed": key.seed, "level": key.level,
                             "variant": key.variant, "weights_remaining": record["weights_remaining"],
                             "test_accuracy": record["summary"]["test_accuracy"], **size,
                             "implementation": impl, "batch": batch, "latency_ms": m["latency_ms"],
                             "latency_ratio": m["latency_ms"] / base["latency_ms"], "memory_bytes": m["memory_bytes"],
                             "memory_ratio": m["memory_bytes"] / base["memory_bytes"],
                             "max_abs_logit_diff": m.get("max_abs_logit_diff"),
                             "repeats": repeats, "warmup": warmup, "threads": threads})
    finally:
        torch.set_num_threads(before)
    return rows


def compute(plan) -> list[dict]:
    return table(plan)


def figure(table):
    """Test accuracy against measured latency, one panel per batch size, one line per implementation."""
    from matplotlib.figure import Figure

    batches = sorted(table["batch"].unique())
    fig = Figure(figsize=(5.2 * len(batches), 4.2), layout="constrained")
    axes = fig.subplots(1, len(batches), squeeze=False)[0]
    styles = {"dense": ("k", "*", 12), "masked": ("C0", "o", 6), "sparse_csr": ("C3", "^", 6)}
    for ax, batch in zip(axes, batches):
        t = table[table["batch"] == batch]
        for (variant, impl), part in t.groupby(["variant", "implementation"], sort=False):
            colour, marker, size = styles.get(impl, ("C2", "s", 6))
            part = part.sort_values("weights_remaining", ascending=False)
            label = impl if variant in (DENSE, "ticket") else f"{variant} {impl}"
            ax.plot(part["latency_ms"], part["test_accuracy"], marker=marker, markersize=size, color=colour,
                    linestyle="" if impl == "dense" else "-", label=label)
            for r in part.itertuples():
                ax.annotate(f"{100 * r.weights_remaining:.3g}%", (r.latency_ms, r.test_accuracy), fontsize="x-small",
                            textcoords="offset points", xytext=(3, 3))
        ax.set_xscale("log")
        ax.set_xlabel(f"CPU latency, batch {batch} (ms, median of {int(t['repeats'].iloc[0])}, log scale)")
        ax.set_ylabel("test accuracy")
        ax.set_title(f"Batch {batch}, {int(t['threads'].iloc[0])} thread(s)")
        ax.legend(fontsize="small")
    return fig


def caption(table) -> str:
    return ("Figure I. What a ticket buys at inference (seed "
            f"{int(table['seed'].iloc[0])}): test accuracy against the measured CPU latency of one forward pass, "
            "for the dense network (star), each ticket as it trains (dense tensors holding its zeros: the dense "
            "network's cost) and each ticket with its Linear weights as sparse CSR tensors (torch.sparse.mm; "
            "convolutions stay dense); labels give the weights remaining. General sparse kernels lose to dense ones "
            "at moderate sparsity; the table (analysis-inference.csv) gives parameters, FLOPs, memory and the "
            "ratios to dense.")


def overview(table):
    keep = ["level", "variant", "weights_remaining", "test_accuracy", "flops_kept", "implementation", "batch",
            "latency_ms", "latency_ratio", "memory_ratio"]
    return table[keep].round(4)
