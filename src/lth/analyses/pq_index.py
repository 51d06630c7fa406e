"""The PQ Index along IMP (Diao et al. 2023, "Pruning Deep Neural Networks from a Sparsity Perspective"):
its claimed course as pruning proceeds is down while the network is effectively regularised, up when
its compressibility reaches its limit (underfitting begins), then down again when it collapses.

For every run of the experiment (every seed, level and variant; level 0: the dense network), the PQ
Index I_{p,q} (lth.pruning.sap; `pq_index.p`, `pq_index.q`, the paper's 0.5 and 1.0 by default) of
its trained weights that the mask keeps: of all prunable weights together (layer `all`) and of each
prunable layer, with the count d of entries it was taken over.
"""

from __future__ import annotations

NAME = "pq_index"
ALL = "all"


def check(s: dict, where: str) -> None:
    from lth.plan.checks import check_pq

    check_pq(s[NAME], f"{where}: {NAME}")


def indices(weights, mask, p: float, q: float) -> dict[str, tuple[int, float]]:
    """layer -> (d, I_{p,q}) of the kept weights, and the same for all layers together (`all`)."""
    import torch

    from lth.pruning.sap import pq_index

    kept = {n: weights[n].detach().reshape(-1)[m.reshape(-1)] for n, m in mask.items()}
    out = {ALL: (sum(v.numel() for v in kept.values()), pq_index(torch.cat(list(kept.values())), p, q))}
    out.update({n: (v.numel(), pq_index(v, p, q)) for n, v in kept.items()})
    return out


def compute(plan) -> list[dict]:
    from lth.store import artifacts
    from lth.store.results import read_record

    o, rows = plan.settings[NAME], []
    for key in plan.runs():
        if key.target or key.analysis:
            continue
        record = read_record(plan.layout.metrics(key))
        weights = artifacts.load_tensors(plan.layout.final(key))
        mask = artifacts.load_tensors(plan.layout.mask(key))
        for layer, (d, index) in indices(weights, mask, o["p"], o["q"]).items():
            rows.append({"experiment": plan.experiment, "seed": key.seed, "level": key.level, "variant": key.variant,
                         "weights_remaining": record["weights_remaining"],
                         "test_accuracy": record["summary"]["test_accuracy"], "layer": layer, "d": d,
                         "p": o["p"], "q": o["q"], "pq_index": index})
    return rows


def figure(table):
    """Left: the index of all prunable weights against weights remaining, per variant (mean +- std over
    seeds); right: per layer, for the first variant after dense."""
    import pandas as pd
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, NullFormatter

    from lth.plan.variants import DENSE

    fig = Figure(figsize=(11, 4.2), layout="constrained")
    left, right = fig.subplots(1, 2)
    whole = table[table["layer"] == ALL]
    dense = whole[whole["variant"] == DENSE]
    variants = [v for v in whole["variant"].unique() if v != DENSE]
    for variant in variants:
        part = pd.concat([dense, whole[whole["variant"] == variant]])
        per = part.groupby("level").agg(w=("weights_remaining", "mean"), m=("pq_index", "mean"),
                                        sd=("pq_index", "std")).sort_values("w", ascending=False)
        left.errorbar(100 * per["w"], per["m"], yerr=per["sd"].fillna(0), marker="o", capsize=2, label=variant)
    chain = variants[:1]
    layers = table[(table["layer"] != ALL) & table["variant"].isin([DENSE, *chain])]
    for layer, part in layers.groupby("layer", sort=False):
        per = part.groupby("level").agg(w=("weights_remaining", "mean"), m=("pq_index", "mean"))
        per = per.sort_values("w", ascending=False)
        right.plot(100 * per["w"], per["m"], marker=".", label=layer)
    for ax in (left, right):
        ax.set_xscale("log")
        ax.invert_xaxis()
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("weights remaining (%, log scale)")
        ax.set_ylabel(f"PQ Index (p = {table['p'].iloc[0]:g}, q = {table['q'].iloc[0]:g})")
        ax.legend(fontsize="small")
    left.set_title("All prunable weights")
    right.set_title(f"Per layer ({chain[0] if chain else DENSE})")
    return fig


def caption(table) -> str:
    return ("Figure Q. The PQ Index of the trained weights each mask keeps (Diao et al. 2023), against weights "
            "remaining: left, all prunable weights per variant (mean and standard deviation over seeds); right, "
            "each layer of the first chain. The paper's hypothesis: down, then up when underfitting begins, then "
            "down at collapse.")


def overview(table):
    keep = ["seed", "level", "variant", "weights_remaining", "test_accuracy", "d", "pq_index"]
    return table[table["layer"] == ALL][keep].round(4)
