"""Hessian spectra of tickets (Sagun et al. 2016, 2017: a bulk near zero plus a few outliers, about
one per class): do tickets sit in flatter or sharper minima than the dense network and the controls,
and how does the spectrum change as IMP removes weights?

For each chosen run (`hessian.levels` x `hessian.variants` x seeds; level 0 is the dense run), at its
final weights: the Hessian of the mean training loss on a fixed subset of `hessian.examples` training
examples (drawn by `hessian.subset_seed`, the same for every run; the model in eval mode) with respect
to the parameters its mask keeps (the masked network's own Hessian: the rows and columns of pruned
weights removed; biases and other unprunable parameters stay). From Hessian-vector products (double
backward) only, as PyHessian does (lth.analyses.spectrum): the `top_k` largest eigenvalues (Ritz values
of `lanczos_steps` Lanczos steps), the trace (Hutchinson, `trace_samples` Rademacher probes, with its
standard error) and the spectral density (stochastic Lanczos quadrature: `slq_runs` probes of
`lanczos_steps` steps; the table's `density` column holds its nodes and weights as JSON). In
`dtype` (float64 by default: the networks are small and the spectrum's bulk is tiny).
"""

from __future__ import annotations

import json
import time

import torch

from lth.plan.variants import DENSE

NAME = "hessian"
DTYPES = {"float32": torch.float32, "float64": torch.float64}


def check(s: dict, where: str) -> None:
    """top_k at most lanczos_steps and at most the unpruned parameters of the sparsest analysed run (as
    planned: `planned_parameters`); levels the experiment has."""
    from lth.core.errors import LTHError

    o, at = s[NAME], f"{where}: {NAME}"
    if o["top_k"] > o["lanczos_steps"]:
        raise LTHError(f"{at}.top_k: {o['top_k']} exceeds lanczos_steps = {o['lanczos_steps']} (Lanczos gives at "
                       f"most one eigenvalue per step)")
    if s["kind"] == "imp":
        beyond = [lv for lv in o["levels"] or () if lv > s["pruning"]["levels"]]
        if beyond:
            raise LTHError(f"{at}.levels: {beyond} beyond pruning.levels = {s['pruning']['levels']}")
    if s["kind"] == "oneshot":
        methods = list(s["oneshot"]["methods"])
        known = {*methods, *(f"{m}-{c}" for m in methods for c in s["oneshot"]["controls"])}
    else:
        known = set(s["variants"])
    unknown = sorted(set(o["variants"] or ()) - known)
    if unknown:
        raise LTHError(f"{at}.variants: {unknown} not run by this experiment (it runs: {', '.join(sorted(known))})")
    found = planned_parameters(s, o["levels"])
    if found is not None and o["top_k"] > found[1]:
        raise LTHError(f"{at}.top_k: {o['top_k']} exceeds the {found[1]} unpruned parameters planned at level "
                       f"{found[0]}")


def planned_parameters(s: dict, levels) -> tuple[int, int] | None:
    """(level, parameters left unpruned) of the sparsest of `levels` (None: every level), from the model's
    shapes and the counts the pruning rule gives (IMP layerwise or global: round(rate x remaining) per
    round; a sweep: round(density x prunable)); None where the rule's counts are not known ahead."""
    from lth.models import build_model
    from lth.plan.facts import input_shape, num_classes
    from lth.pruning import masks, select

    m, p = s["model"], s["pruning"]
    model = build_model(m["name"], input_shape(s["dataset"]), num_classes(s["dataset"]), seed=0, **m["options"])
    kinds = masks.layer_kinds(model, p["exclude"], p["biases"])
    sizes = {n: t.numel() for n, t in model.named_parameters() if n in kinds}
    fixed = sum(t.numel() for n, t in model.named_parameters() if n not in kinds)
    if s["kind"] == "oneshot":
        per = 10000
        chosen = [lv for lv in levels or [round(d * per) for d in s["oneshot"]["densities"]] if lv]
        if not chosen:
            return 0, fixed + sum(sizes.values())
        level = min(chosen)
        return level, fixed + round(level / per * sum(sizes.values()))
    level = max(levels) if levels else p["levels"]
    if p["strategy"] == "layerwise":
        rates = select.layer_rates(kinds, p["rates"])
        kept = 0
        for name, n in sizes.items():
            for _ in range(level):
                n -= round(rates[name] * n)
            kept += n
    elif p["strategy"] == "global":
        kept = sum(sizes.values())
        for _ in range(level):
            kept -= round(p["global_rate"] * kept)
    else:
        return None
    return level, fixed + kept


def restricted_hvp(model: torch.nn.Module, mask, x: torch.Tensor, y: torch.Tensor, task: str):
    """(hvp, n, theta): the product with the Hessian of the mean loss on (x, y) with respect to the
    parameters `mask` keeps (a flat vector of n, in the model's parameter order; pruned entries removed)."""
    from lth.training.evaluation import loss_of

    params = [p for p in model.parameters() if p.requires_grad]
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    keep = [mask[n].reshape(-1) if n in mask else torch.ones(p.numel(), dtype=torch.bool, device=p.device)
            for n, p in zip(names, params)]
    sizes = [int(k.sum()) for k in keep]
    loss = loss_of(model(x), y, task)
    grads = torch.autograd.grad(loss, params, create_graph=True)

    def hvp(v: torch.Tensor) -> torch.Tensor:
        parts, dot = v.split(sizes), 0
        for g, k, part in zip(grads, keep, parts):
            full = torch.zeros(k.numel(), dtype=part.dtype, device=part.device)
            full[k] = part
            dot = dot + (g.reshape(-1) * full).sum()
        hv = torch.autograd.grad(dot, params, retain_graph=True)
        return torch.cat([h.reshape(-1)[k] for h, k in zip(hv, keep)]).detach()

    theta = torch.cat([p.detach().reshape(-1)[k] for p, k in zip(params, keep)])
    return hvp, sum(sizes), theta


def spectrum(model, mask, x, y, task: str, o, seed: int = 0) -> dict:
    """The analysis's numbers for one network (module docstring); `o`: the hessian settings."""
    from lth.analyses.spectrum import hutchinson_trace, slq_density, top_eigenvalues
    from lth.core.errors import LTHError

    dtype = DTYPES[o["dtype"]]
    model = model.to(dtype).eval()
    x = x.to(dtype) if x.is_floating_point() else x
    y = y.to(dtype) if y.is_floating_point() else y
    hvp, n, _ = restricted_hvp(model, mask, x, y, task)
    if o["top_k"] > n:
        raise LTHError(f"{NAME}.top_k: {o['top_k']} exceeds this network's {n} unpruned parameters")
    g = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    top = top_eigenvalues(hvp, n, o["top_k"], o["lanczos_steps"], g, dtype)
    trace, trace_se = hutchinson_trace(hvp, n, o["trace_samples"], g, dtype)
    nodes, weights = slq_density(hvp, n, o["slq_runs"], o["lanczos_steps"], g, dtype)
    return {"parameters": n, **{f"eigenvalue_{i + 1}": e for i, e in enumerate(top)},
            "top_eigenvalue": top[0], "trace": trace, "trace_se": trace_se,
            "density": json.dumps([[round(float(a), 10), round(float(b), 10)] for a, b in zip(nodes, weights)]),
            "seconds": time.perf_counter() - start}


def subset(splits, examples: int, seed: int):
    """The fixed training examples the loss is taken on (all of them when there are fewer)."""
    n = len(splits.y_train)
    index = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:min(examples, n)]
    return splits.x_train[index], splits.y_train[index]


def runs(plan) -> list:
    """The planned runs analysed: the chosen levels and variants of every seed (level 0: the dense run)."""
    o = plan.settings[NAME]
    levels = set(o["levels"]) if o["levels"] is not None else None
    variants = set(o["variants"]) if o["variants"] is not None else None
    return [k for k in plan.runs() if not k.target and not k.analysis
            and (levels is None or k.level in levels)
            and (k.level == 0 or variants is None or k.variant in variants)]


def compute(plan) -> list[dict]:
    from lth.analyses.inference import load
    from lth.data.splits import load_splits
    from lth.store.results import read_record
    from lth.training.evaluation import task_of

    s, o = plan.settings, plan.settings[NAME]
    d = s.dataset
    splits = load_splits(d.name, plan.data_dir, val_size=d.val_size, split_seed=d.split_seed,
                         options=d.options.thaw() or None, label_noise=d.label_noise, normalise=d.normalise)
    x, y = subset(splits, o["examples"], o["subset_seed"])
    task, rows = task_of(splits), []
    threads = torch.get_num_threads()
    torch.set_num_threads(int(plan.workflow.get("threads", 1)))  # tiny products: more threads only contend
    try:
        for key in runs(plan):
            record = read_record(plan.layout.metrics(key))
            model, mask = load(plan, key)
            found = spectrum(model, mask, x, y, task, o, seed=key.seed)
            rows.append({"experiment": plan.experiment, "seed": key.seed, "level": key.level,
                         "variant": key.variant, "weights_remaining": record["weights_remaining"],
                         "test_accuracy": record["summary"]["test_accuracy"], "examples": len(y),
                         "dtype": o["dtype"], **found})
    finally:
        torch.set_num_threads(threads)
    return rows


def _curves(ax, table, column: str) -> None:
    import pandas as pd
    from matplotlib.ticker import FuncFormatter, NullFormatter

    dense = table[table["variant"] == DENSE]
    for variant, part in table[table["variant"] != DENSE].groupby("variant", sort=False):
        part = pd.concat([dense, part])
        per = part.groupby("level").agg(w=("weights_remaining", "mean"), m=(column, "mean"), sd=(column, "std"))
        per = per.sort_values("w", ascending=False)
        ax.errorbar(100 * per["w"], per["m"], yerr=per["sd"].fillna(0), marker="o", capsize=2, label=variant)
    ax.set_xscale("log")
    ax.invert_xaxis()
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("weights remaining (%, log scale)")


def figure(table):
    """Top eigenvalue and trace against weights remaining per variant; densities of up to three levels."""
    import numpy as np
    from matplotlib.figure import Figure

    from lth.analyses.spectrum import smooth

    fig = Figure(figsize=(15, 4.2), layout="constrained")
    top, trace, dens = fig.subplots(1, 3)
    _curves(top, table, "top_eigenvalue")
    top.set_ylabel("largest Hessian eigenvalue")
    top.set_title("Sharpness")
    top.legend(fontsize="small")
    _curves(trace, table, "trace")
    trace.set_ylabel("Hessian trace (Hutchinson)")
    trace.set_title("Trace")
    seed = table["seed"].min()
    chain = [v for v in table["variant"].unique() if v != DENSE][:1]
    mine = table[(table["seed"] == seed) & table["variant"].isin([DENSE, *chain])].sort_values("level")
    picks = mine.iloc[np.unique(np.linspace(0, len(mine) - 1, min(3, len(mine))).round().astype(int))]
    for r in picks.itertuples():
        pairs = np.array(json.loads(r.density))
        span = pairs[:, 0].max() - pairs[:, 0].min() or 1.0
        grid = np.linspace(pairs[:, 0].min() - 0.05 * span, pairs[:, 0].max() + 0.05 * span, 400)
        values = smooth(pairs[:, 0], pairs[:, 1], grid, sigma=0.01 * span).numpy()
        dens.plot(grid, np.maximum(values, 1e-6), label=f"{r.variant} {100 * r.weights_remaining:.3g}%")
    dens.set_yscale("log")
    dens.set_ylim(bottom=1e-5)
    dens.set_xlabel("eigenvalue")
    dens.set_ylabel("density (SLQ, smoothed)")
    dens.set_title(f"Spectral density (seed {seed})")
    dens.legend(fontsize="small")
    return fig


def caption(table) -> str:
    return ("Figure H. Hessian of the training loss at the trained weights, restricted to each network's unpruned "
            f"parameters, on {int(table['examples'].iloc[0])} fixed training examples ({table['dtype'].iloc[0]}). "
            "Left: the largest eigenvalue (sharpness); middle: the trace (Hutchinson); mean and standard deviation "
            "over seeds against weights remaining, the dense network at 100 %. Right: the spectral density "
            "(stochastic Lanczos quadrature, smoothed, log scale) of up to three levels: Sagun et al. report a "
            "bulk near zero and a few outliers.")


def overview(table):
    keep = ["seed", "level", "variant", "weights_remaining", "test_accuracy", "parameters", "top_eigenvalue",
            "trace", "trace_se", "seconds"]
    return table[keep].round(4)
