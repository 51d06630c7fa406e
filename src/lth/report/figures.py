"""The report's figures, drawn with matplotlib's object API (no pyplot, no global state): each
function returns a Figure, and save_figure turns one into PNG bytes (and PNG and SVG files)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from lth.variants import DENSE
from lth.report.stats import CHAIN_HEADS, COLOURS, by_level, variants, wr


def _log_weights_axis(ax) -> None:
    """Weights remaining on a log axis, 100% at the left, ticks at 1-2-5 in percent."""
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    lo, hi = ax.get_xlim()
    ax.set_xlim(max(hi, 100 * 1.05), lo)
    ax.set_xlabel("weights remaining (%, log scale)")
    ax.grid(True, which="major", alpha=0.3)


def _band(ax, x, mean, std, variant: str, label: str, **kw) -> None:
    (line,) = ax.plot(x, mean, marker="o", markersize=3, color=COLOURS.get(variant), label=label, **kw)
    ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.2, linewidth=0)


def _per_variant(ax, summary: pd.DataFrame, column: str, scale: float, from_dense: bool = True) -> None:
    """Dense as a horizontal band, then one line per variant (starting at dense's 100% if `from_dense`)."""
    stats = by_level(summary, column)
    for dense in stats[stats["level"] == 0].itertuples():
        ax.axhline(scale * dense.mean, color=COLOURS[DENSE], linestyle="--", linewidth=1,
                   label=f"{DENSE} (mean ± std)")
        ax.axhspan(scale * (dense.mean - dense.std), scale * (dense.mean + dense.std),
                   color=COLOURS[DENSE], alpha=0.12, linewidth=0)
    for v in variants(summary):
        rows = stats[(stats["variant"] == v) | (from_dense & (stats["level"] == 0))]
        _band(ax, 100 * rows["weights_remaining"], scale * rows["mean"], scale * rows["std"], v, v)


def plot_accuracy(summary: pd.DataFrame, published: pd.DataFrame | None = None) -> Figure:
    """Figure 1: final test accuracy vs weights remaining, one line per variant; paper's numbers as markers."""
    fig = Figure(figsize=(7.5, 4.5), layout="constrained")
    ax = fig.add_subplot()
    _per_variant(ax, summary, "test_accuracy", 100)
    for v, rows in (published.groupby("variant") if published is not None else []):
        ax.scatter(100 * rows["weights_remaining"], 100 * rows["test_accuracy"], marker="D", s=30,
                   color=COLOURS.get(v, "black"), edgecolor="black", zorder=5, label=f"{v} (paper)")
    _log_weights_axis(ax)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"Test accuracy at the end of training (mean ± std over {summary['seed'].nunique()} seed(s))")
    ax.legend(fontsize="small", loc="best")
    return fig


def plot_early_stop(summary: pd.DataFrame) -> Figure:
    """Figure 2: iteration of minimum validation loss vs weights remaining, per variant."""
    fig = Figure(figsize=(7.5, 4.5), layout="constrained")
    ax = fig.add_subplot()
    _per_variant(ax, summary, "early_stop_iteration", 1)
    _log_weights_axis(ax)
    ax.set_ylabel("early-stop iteration (min. validation loss)")
    ax.set_title("Early-stopping iteration (mean ± std over seeds)")
    ax.legend(fontsize="small", loc="best")
    return fig


def plot_curves(data: pd.DataFrame, levels: list[int]) -> Figure:
    """Figure 3: test accuracy over training iterations at a few levels, dense as the reference."""
    fig = Figure(figsize=(4.2 * max(len(levels), 1), 4), layout="constrained")
    axes = fig.subplots(1, max(len(levels), 1), sharey=True, squeeze=False)[0]
    for ax, level in zip(axes, levels):
        for v, rows in data[(data["level"] == level) | (data["level"] == 0)].groupby("variant", sort=False):
            s = rows.groupby("iteration")["test_accuracy"].agg(["mean", "std"]).fillna(0.0)
            style = {"linestyle": "--"} if v == DENSE else {}
            _band(ax, s.index, 100 * s["mean"], 100 * s["std"], v, v, **style)
        w = data.loc[data["level"] == level, "weights_remaining"]
        ax.set_title(f"level {level}: {wr(w.mean())}% weights remaining" if not w.empty else f"level {level}")
        ax.set_xlabel("training iteration")
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("test accuracy (%)")
    axes[0].legend(fontsize="small", loc="lower right")
    return fig


def plot_layer_density(density: pd.DataFrame, summary: pd.DataFrame) -> Figure:
    """Figure 4: density of each prunable layer across levels, one panel per mask chain."""
    chains = [v for v in CHAIN_HEADS if v in set(density["variant"])] or variants(summary)[:1]
    fig = Figure(figsize=(4.5 * max(len(chains), 1), 4), layout="constrained")
    axes = fig.subplots(1, max(len(chains), 1), sharey=True, squeeze=False)[0]
    for ax, chain in zip(axes, chains):
        rows = density[(density["variant"] == chain) | (density["level"] == 0)]
        for layer, r in rows.groupby("layer", sort=False):
            m = r.groupby("level")["density"].mean()
            ax.plot(m.index, 100 * m.values, marker="o", markersize=3, label=layer)
        chain_rows = summary[(summary["variant"] == chain) | (summary["level"] == 0)]
        overall = chain_rows.groupby("level")["weights_remaining"].mean()
        ax.plot(overall.index, 100 * overall.values, color="black", linestyle="--", label="all prunable weights")
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(f"{chain} masks")
        ax.set_xlabel("pruning level")
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("weights remaining in the layer (%, log scale)")
    axes[0].legend(fontsize="small", loc="lower left")
    return fig


def plot_transfer(transfer: pd.DataFrame) -> Figure:
    """Figure 5: test accuracy on each transfer target vs weights remaining, per variant."""
    targets = sorted(transfer["target"].unique())
    fig = Figure(figsize=(4.8 * len(targets), 4), layout="constrained")
    axes = fig.subplots(1, len(targets), sharey=True, squeeze=False)[0]
    for ax, target in zip(axes, targets):
        _per_variant(ax, transfer[transfer["target"] == target], "test_accuracy", 100, from_dense=False)
        _log_weights_axis(ax)
        ax.set_title(f"target: {target}")
    axes[0].set_ylabel("test accuracy on the target (%)")
    axes[0].legend(fontsize="small", loc="best")
    return fig


def save_figure(fig: Figure, name: str, outdir: str | Path | None) -> bytes:
    """The figure as PNG bytes; also written as <outdir>/<name>.png and .svg when `outdir` is given."""
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120, metadata={"Software": None})
    png = buffer.getvalue()
    if outdir:
        out = Path(outdir)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{name}.png").write_bytes(png)
        fig.savefig(out / f"{name}.svg", format="svg", metadata={"Date": None})
    return png
