"""The report's figures, drawn with matplotlib's object API (no pyplot, no global state): each
function returns a Figure, and save_figure turns one into PNG bytes (and PNG and SVG files)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from lth.plan.variants import DENSE
from lth.report.headline import MARGIN, Headline, smoothed_differences
from lth.report.panels import DPI, PAGE_WIDTH
from lth.report.stats import CHAIN_HEADS, COLOURS, by_level, controls, differences, variants, wr

MARKERS = "osD^v<>phP*X"


def _log_axis(axis, lo: float, hi: float) -> None:
    """A log axis in percent, ticks at 1-2-5, or at every digit when it spans less than a decade
    (a few levels' worth), so that it always has labels to read the data by."""
    subs = (1.0, 2.0, 5.0) if max(lo, hi) >= 10 * min(lo, hi) else tuple(range(1, 10))
    axis.set_major_locator(LogLocator(base=10, subs=subs))
    axis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    axis.set_minor_formatter(NullFormatter())


def log_weights_axis(ax) -> None:
    """Weights remaining on a log axis, 100% at the left."""
    ax.set_xscale("log")
    lo, hi = ax.get_xlim()
    ax.set_xlim(max(hi, 100 * 1.05), lo)
    _log_axis(ax.xaxis, lo, max(hi, 100))
    ax.set_xlabel("weights remaining (%, log scale)")
    ax.grid(True, which="major", alpha=0.3)


def weights_axis(ax, lo: float, hi: float, label: str = "weights remaining (%, log scale)") -> None:
    """Weights remaining on a log axis from `hi` (left) to `lo`, the same in every panel that shares
    them (small multiples compare by position only when their axes agree)."""
    ax.set_xscale("log")
    ax.set_xlim(max(hi, 100) * 1.05, lo / 1.05)
    _log_axis(ax.xaxis, lo, max(hi, 100))
    ax.set_xlabel(label)
    ax.grid(True, which="major", alpha=0.3)


def legend_outside(ax, **kw) -> None:
    """The axes' legend to the right of it, never over the data: constrained layout makes room."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize="small", **kw)


def band(ax, x, mean, std, variant: str, label: str, **kw) -> None:
    kw = {"color": COLOURS.get(variant), "marker": "o", "markersize": 3, **kw}
    (line,) = ax.plot(x, mean, label=label, **kw)
    ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.2, linewidth=0)


def dense_band(ax, stats: pd.DataFrame, scale: float, alpha: float = 0.12) -> None:
    """Dense (level 0 of `stats`, lth.report.stats.by_level) as a dashed line at its mean in a band of ± std."""
    for dense in stats[stats["level"] == 0].itertuples():
        ax.axhline(scale * dense.mean, color=COLOURS[DENSE], linestyle="--", linewidth=1,
                   label=f"{DENSE} (mean ± std)")
        ax.axhspan(scale * (dense.mean - dense.std), scale * (dense.mean + dense.std),
                   color=COLOURS[DENSE], alpha=alpha, linewidth=0)


def _per_variant(ax, summary: pd.DataFrame, column: str, scale: float, from_dense: bool = True) -> None:
    """Dense as a horizontal band, then one line per variant (starting at dense's 100% if `from_dense`)."""
    stats = by_level(summary, column)
    dense_band(ax, stats, scale)
    for v in variants(summary):
        rows = stats[(stats["variant"] == v) | (from_dense & (stats["level"] == 0))]
        rows = rows.sort_values("weights_remaining", ascending=False, kind="stable")  # a sweep's levels too
        band(ax, 100 * rows["weights_remaining"], scale * rows["mean"], scale * rows["std"], v, v)


def plot_accuracy(summary: pd.DataFrame, published: pd.DataFrame | None = None) -> Figure:
    """Figure 1: final test accuracy vs weights remaining, one line per variant; paper's numbers as diamonds."""
    fig = Figure(figsize=(8.5, 4.5), layout="constrained")
    ax = fig.add_subplot()
    _per_variant(ax, summary, "test_accuracy", 100)
    for v, rows in (published.groupby("variant", sort=False) if published is not None else []):
        ax.scatter(100 * rows["weights_remaining"], 100 * rows["test_accuracy"], marker="D", s=36,
                   color=COLOURS.get(v, "black"), edgecolor="black", zorder=5, label=f"{v} (paper)")
    log_weights_axis(ax)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"Test accuracy at the end of training (mean ± std over {summary['seed'].nunique()} seed(s))")
    legend_outside(ax)
    return fig


def plot_differences(summary: pd.DataFrame, head: Headline | None = None) -> Figure:
    """Figure 2: the headline's variant minus dense (with the rule's -1-point margin) and minus each
    control, per level: mean and 95 % interval over seeds, paired by seed. It shows what the
    accuracy figure's overlapping bands cannot: whether a difference stands out of the noise."""
    present = variants(summary)
    variant = head.variant if head is not None else next((v for v in CHAIN_HEADS if v in present),
                                                          present[0] if present else None)
    panels = [[DENSE]] + ([controls(summary)] if variant == "ticket" and controls(summary) else [])
    fig = Figure(figsize=(8.5, 3.9 * len(panels)), layout="constrained")  # stacked: each legend beside its panel
    axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
    for ax, others in zip(axes, panels):
        for i, other in enumerate(others):
            d = differences(summary, variant, other)
            x = 100 * d["weights_remaining"] * 1.03 ** (i - (len(others) - 1) / 2)  # side by side, not on top
            colour = COLOURS.get(other, f"C{i}")
            ax.plot(x, 100 * d["mean"], marker="o", markersize=4, color=colour, label=f"{variant} − {other}")
            bars = d[np.isfinite(d["lo"])] if not d.empty else d
            ax.errorbar(x[bars.index], 100 * bars["mean"], fmt="none", capsize=3, color=colour,
                        yerr=[100 * (bars["mean"] - bars["lo"]), 100 * (bars["hi"] - bars["mean"])])
        ax.axhline(0, color="black", linewidth=1)
        if others == [DENSE]:
            ax.axhline(-100 * MARGIN, color="C3", linestyle=":",
                       label=f"−{100 * MARGIN:g} point (the headline's margin)")
            if head is not None and head.window > 1:  # what the sweep's rule tests: the moving average
                avg = smoothed_differences(summary, variant, head.kind)
                ax.plot(100 * avg["weights_remaining"], 100 * avg["mean"], color="C0", linewidth=2, zorder=4,
                        label=f"{head.window}-density moving average (the rule's)")
                ax.fill_between(100 * avg["weights_remaining"], 100 * avg["lo"], 100 * avg["hi"], color="C0",
                                alpha=0.2, linewidth=0, label="its 95 % CI")
            if head is not None and head.matched:
                basis = " (point estimate)" if head.basis == "point" else ""
                ax.axvline(100 * head.matched.weights_remaining, color="0.5", linestyle="--", linewidth=1,
                           label=f"matches dense down to {wr(head.matched.weights_remaining)} %{basis}")
        log_weights_axis(ax)
        ax.set_ylabel("difference in test accuracy (points)")
        spread = "mean, 95 % CI over seeds" if summary["seed"].nunique() > 1 else "one seed: no interval"
        ax.set_title(f"{variant} − {'dense' if others == [DENSE] else 'control'} ({spread})")
        legend_outside(ax)
    return fig


def plot_early_stop(summary: pd.DataFrame) -> Figure:
    """Figure 3: iteration of minimum validation loss vs weights remaining, per variant."""
    fig = Figure(figsize=(8.5, 4.5), layout="constrained")
    ax = fig.add_subplot()
    _per_variant(ax, summary, "early_stop_iteration", 1)
    log_weights_axis(ax)
    ax.set_ylabel("early-stop iteration (min. validation loss)")
    ax.set_title("Early-stopping iteration (mean ± std over seeds)")
    legend_outside(ax)
    return fig


def plot_curves(data: pd.DataFrame, levels: list[int]) -> Figure:
    """Figure 4: test accuracy over training iterations at a few levels, dense as the reference."""
    fig = Figure(figsize=(min(PAGE_WIDTH, 3.4 * max(len(levels), 1) + 1.6), 4), layout="constrained")
    axes = fig.subplots(1, max(len(levels), 1), sharey=True, squeeze=False)[0]
    for ax, level in zip(axes, levels):
        for v, rows in data[(data["level"] == level) | (data["level"] == 0)].groupby("variant", sort=False):
            s = rows.groupby("iteration")["test_accuracy"].agg(["mean", "std"]).fillna(0.0)
            style = {"linestyle": "--"} if v == DENSE else {}
            band(ax, s.index, 100 * s["mean"], 100 * s["std"], v, v, **style)
        w = data.loc[data["level"] == level, "weights_remaining"]
        ax.set_title(f"level {level}: {wr(w.mean())}% weights remaining" if not w.empty else f"level {level}")
        ax.set_xlabel("training iteration")
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("test accuracy (%)")
    legend_outside(axes[-1])
    return fig


def plot_layer_density(density: pd.DataFrame, summary: pd.DataFrame) -> Figure:
    """Figure 5: density of each prunable layer across levels, one panel per mask chain. Layers pruned
    at the same rate coincide: each gets its own marker and a small sideways offset, the ones drawn
    first are wider, and the legend names the layer a line coincides with, so every layer shows."""
    chains = [v for v in CHAIN_HEADS if v in set(density["variant"])] or variants(summary)[:1]
    fig = Figure(figsize=(min(PAGE_WIDTH, 4.4 * max(len(chains), 1) + 2.2), 4.4), layout="constrained")
    axes = fig.subplots(1, max(len(chains), 1), sharey=True, squeeze=False)[0]
    for ax, chain in zip(axes, chains):
        rows = density[(density["variant"] == chain) | (density["level"] == 0)]
        series = {layer: r.groupby("level")["density"].mean() for layer, r in rows.groupby("layer", sort=False)}
        k = len(series)
        palette = colormaps["tab10" if k <= 10 else "tab20"].colors
        for i, (layer, m) in enumerate(series.items()):
            same = next((other for other in list(series)[:i] if series[other].equals(m)), None)
            offset = 0.24 * (i / (k - 1) - 0.5) if k > 1 else 0.0
            ax.plot(m.index + offset, 100 * m.values, marker=MARKERS[i % len(MARKERS)],
                    markersize=7 - 4 * i / max(k - 1, 1), linewidth=2.6 - 1.6 * i / max(k - 1, 1),
                    color=palette[i % len(palette)], zorder=2 + i, label=layer + (f" (same as {same})" if same else ""))
        chain_rows = summary[(summary["variant"] == chain) | (summary["level"] == 0)]
        overall = chain_rows.groupby("level")["weights_remaining"].mean()
        ax.plot(overall.index, 100 * overall.values, color="black", linestyle="--", linewidth=1, zorder=2 + k,
                label="all prunable weights")
        ax.set_yscale("log")
        _log_axis(ax.yaxis, *ax.get_ylim())
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(f"{chain} masks")
        ax.set_xlabel("pruning level (layers offset sideways to stay visible)")
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("weights remaining in the layer (%, log scale)")
    legend_outside(axes[-1])
    return fig


def plot_transfer(transfer: pd.DataFrame, chance: dict[str, float] | None = None) -> Figure:
    """Figure 6: test accuracy on each transfer target vs weights remaining, per variant. Each target
    has its own y axis (their accuracies differ too much to share one) and its chance line."""
    targets = sorted(transfer["target"].unique())
    fig = Figure(figsize=(min(PAGE_WIDTH, 4.4 * len(targets) + 2), 4.2), layout="constrained")
    axes = fig.subplots(1, len(targets), squeeze=False)[0]
    for ax, target in zip(axes, targets):
        _per_variant(ax, transfer[transfer["target"] == target], "test_accuracy", 100, from_dense=False)
        if target in (chance or {}):
            ax.axhline(100 * chance[target], color="black", linestyle=":", linewidth=1.2,
                       label=f"chance (1/{round(1 / chance[target])} classes)")
        log_weights_axis(ax)
        ax.set_title(f"target: {target}")
        ax.set_ylabel("test accuracy on the target (%)")
    legend_outside(axes[-1])  # the same variants in every panel
    return fig


def save_figure(fig: Figure, name: str, outdir: str | Path | None, experiment: str = "") -> bytes:
    """The figure as PNG bytes; also written, when `outdir` is given, as <outdir>/<name>.png (what
    `snakemake --report` collects) and as a vector file for papers, named by experiment and figure:
    <outdir>/<experiment>-<name>.svg (<name>.svg without an experiment)."""
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    png = buffer.getvalue()
    if outdir:
        out = Path(outdir)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{name}.png").write_bytes(png)
        stem = f"{experiment}-{name}" if experiment else name
        fig.savefig(out / f"{stem}.svg", format="svg", metadata={"Date": None})
    return png
