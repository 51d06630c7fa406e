"""The comparison of pruning methods in a one-shot sweep (lth.plan.oneshot), drawn so that it scales
with the number of methods (the rule: lth.report.panels):

- the overview (Figure 1 of a sweep of two or more methods): the methods alone, one distinct colour
  each, at most MAX_LINES to an axes, dense as a band, the legend outside the axes;
- the small multiples (Figure M, when the methods have controls): one panel per method with its
  controls beside it, `<method>-shuffle` (its mask shuffled within each layer) dashed and
  `<method>-reinit` (its mask on a fresh initialisation) dotted, as "Missing the mark" (Frankle et al.
  2021) compares them, the same axes in every panel and on every page;
- the table: one row per density, labelled by weights remaining (%), one column per method and
  control, each method's controls beside it.

A one-method sweep has no overview (Figure 1 is that method beside its controls) and no Figure M
(the same curve twice).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from lth.plan.variants import DENSE
from lth.report import panels
from lth.report.figures import band, dense_band, legend_outside, weights_axis
from lth.report.stats import COLOURS, SWEEP_CONTROLS, by_level, levels_are_densities, split_variant, wr

CONTROL_STYLES = {"shuffle": ("--", "s"), "reinit": (":", "^")}
CONTROL_WORDS = {"shuffle": "mask shuffled within each layer", "reinit": "mask on a fresh initialisation"}
# tab10 without its grey, which dense's band already is: nine colours no two alike
PALETTE = [c for i, c in enumerate(colormaps["tab10"].colors) if i != 7]  # grey is dense's
assert len(PALETTE) == panels.MAX_LINES  # one distinct colour per line of an axes
WEIGHTS = "weights remaining (%)"


def methods(summary: pd.DataFrame, config: dict | None = None) -> list[str]:
    """The one-shot methods of a sweep (`config`: its experiment's), in table order; none for IMP."""
    if not levels_are_densities((config or {}).get("kind")):  # IMP: one method, its variants
        return []
    return list(families(summary))


def families(summary: pd.DataFrame) -> dict[str, list[str]]:
    """Each method of a sweep and its variants present: the method first, then its controls."""
    present = list(dict.fromkeys(summary.loc[summary["level"] > 0, "variant"]))
    out: dict[str, list[str]] = {}
    for v in present:
        out.setdefault(split_variant(v)[0], [])
    for m in out:
        out[m] = [v for v in [m, *(f"{m}-{c}" for c in SWEEP_CONTROLS)] if v in present]
    return out


def has_controls(summary: pd.DataFrame) -> bool:
    """Whether any method of the sweep has a control to draw beside it (Figure M)."""
    return any(len(vs) > 1 for vs in families(summary).values())


def colours(names: list[str]) -> dict[str, tuple]:
    """A colour per method, distinct within each group of lines that shares an axes (panels.split)."""
    return {m: PALETTE[j] for group in panels.split(names) for j, m in enumerate(group)}


def methods_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Test accuracy (%, mean ± std over seeds) per density: one row per density, densest first, its
    weights remaining (%) the first column, then each method and its controls side by side. The
    column groups (a method and its controls) travel in `attrs["groups"]` for the page's header."""
    stats = by_level(summary[summary["level"] > 0])
    stats["cell"] = [f"{100 * m:.1f} ± {100 * s:.1f}" for m, s in zip(stats["mean"], stats["std"])]
    table = stats.pivot(index="level", columns="variant", values="cell")
    density = stats.groupby("level")["weights_remaining"].mean()
    fam = families(summary)
    order = [v for vs in fam.values() for v in vs]
    table = table.reindex(columns=order).fillna("")
    table = table.loc[density.sort_values(ascending=False, kind="stable").index]
    table.insert(0, WEIGHTS, [wr(density[lv]) for lv in table.index])
    table = table.reset_index(drop=True)
    table.columns.name = None
    table.attrs["groups"] = [("", 1)] + [(m, len(vs)) for m, vs in fam.items()]
    return table


def _limits(stats: pd.DataFrame, scale: float) -> tuple[tuple[float, float], tuple[float, float]]:
    """The x (weights remaining, %) and y limits every panel and page shares: all bands in view."""
    finite = stats[np.isfinite(stats["mean"])]
    lo, hi = (scale * (finite["mean"] - finite["std"])).min(), (scale * (finite["mean"] + finite["std"])).max()
    pad = 0.04 * (hi - lo) if hi > lo else 1.0
    return (100 * stats["weights_remaining"].min(), 100.0), (lo - pad, hi + pad)




def _line(ax, stats: pd.DataFrame, variant: str, scale: float, with_band: bool = True, **kw) -> None:
    rows = stats[stats["variant"] == variant].sort_values("weights_remaining", ascending=False, kind="stable")
    rows = rows[rows["level"] > 0]
    kw = {**panels.markers(len(rows)), **kw}
    if with_band:
        band(ax, 100 * rows["weights_remaining"], scale * rows["mean"], scale * rows["std"], variant, variant, **kw)
    else:
        ax.plot(100 * rows["weights_remaining"], scale * rows["mean"], label=variant, **kw)


def plot_overview(summary: pd.DataFrame, column: str = "test_accuracy", scale: float = 100,
                  ylabel: str = "test accuracy (%)", what: str = "Test accuracy at the end of training",
                  published: pd.DataFrame | None = None) -> Iterator[Figure]:
    """The methods alone (no controls), one distinct colour each, dense as a band: at most
    panels.MAX_LINES methods to an axes (more: further axes, the same limits), at most
    panels.MAX_STACKED axes to a figure (more: further figures). The legend is outside each axes."""
    stats = by_level(summary, column)
    names = list(families(summary))
    groups = panels.split(names)
    colour = colours(names)
    (xlo, xhi), ylim = _limits(stats[stats["variant"].isin(names) | (stats["level"] == 0)], scale)
    seeds = summary["seed"].nunique()
    for page in panels.stacked(len(groups)):
        fig = Figure(figsize=(panels.PAGE_WIDTH * 0.85, 3.9 * len(page) + 0.3), layout="constrained")
        axes = fig.subplots(len(page), 1, squeeze=False)[:, 0]
        for ax, g in zip(axes, page):
            dense_band(ax, stats, scale, alpha=0.15)
            for m in groups[g]:
                _line(ax, stats, m, scale, color=colour[m])
            if published is not None:
                rows = published[published["variant"].isin(groups[g])
                                 | ((g == 0) & (published["weights_remaining"] >= 0.999))]
                for v, p in rows.groupby("variant", sort=False):
                    ax.scatter(100 * p["weights_remaining"], 100 * p["test_accuracy"], marker="D", s=36,
                               color=colour.get(v, "black"), edgecolor="black", zorder=5, label=f"{v} (paper)")
            weights_axis(ax, xlo, xhi)
            ax.set_ylim(*ylim)
            ax.set_ylabel(ylabel)
            part = f" ({g + 1} of {len(groups)}: {groups[g][0]} to {groups[g][-1]})" if len(groups) > 1 else ""
            ax.set_title(f"{what}, each method (mean ± std over {seeds} seed(s)){part}", fontsize="medium")
            legend_outside(ax)
        yield fig


def plot_methods(summary: pd.DataFrame, column: str = "test_accuracy", scale: float = 100,
                 ylabel: str = "test accuracy (%)") -> Iterator[Figure]:
    """One small panel per method: the method solid in its colour with its band, its controls in
    black beside it (shuffle dashed, reinit dotted), dense as a grey band; the same x and y limits in
    every panel of every page, and one legend for all of them above the panels."""
    stats = by_level(summary, column)
    fam = families(summary)
    names = list(fam)
    colour = colours(names)
    (xlo, xhi), ylim = _limits(stats, scale)
    g = panels.grid(len(names))
    present = [c for c in SWEEP_CONTROLS if any(f"{m}-{c}" in vs for m, vs in fam.items())]
    for page in g.pages:
        fig = Figure(figsize=g.size(len(page)), layout="constrained")
        axes = fig.subplots(g.rows(len(page)), g.cols, squeeze=False, sharex=True, sharey=True).ravel()
        for ax, i in zip(axes, page):
            m = names[i]
            dense_band(ax, stats, scale, alpha=0.15)
            _line(ax, stats, m, scale, color=colour[m], linewidth=1.8)
            for v in fam[m][1:]:
                style, marker = CONTROL_STYLES[split_variant(v)[1]]
                kw = panels.markers(int((stats["variant"] == v).sum()))
                _line(ax, stats, v, scale, with_band=False, color="black", linestyle=style, linewidth=1.1,
                      **({**kw, "marker": marker, "markersize": 3, "fillstyle": "none"} if kw["marker"] else kw))
            weights_axis(ax, xlo, xhi, label="")
            ax.set_ylim(*ylim)
            ax.set_title(m, fontsize="medium", color=colour[m], fontweight="bold")
            ax.tick_params(labelsize="small")
            ax.label_outer()
        for ax in axes[len(page):]:
            ax.set_visible(False)
        fig.supxlabel("weights remaining (%, log scale)", fontsize="medium")
        fig.supylabel(ylabel, fontsize="medium")
        handles = [Line2D([], [], color="0.2", linewidth=1.8, label="the method (its colour), ± std")]
        handles += [Line2D([], [], color="black", linestyle=CONTROL_STYLES[c][0], marker=CONTROL_STYLES[c][1],
                           fillstyle="none", markersize=4, label=f"{c}: {CONTROL_WORDS[c]}") for c in present]
        handles += [Patch(facecolor=COLOURS[DENSE], alpha=0.3, edgecolor=COLOURS[DENSE], linestyle="--",
                          label=f"{DENSE} (mean ± std)")]
        cols = len(handles) if g.cols >= 3 else 2  # a narrow page: the legend on two rows, not wider than it
        fig.legend(handles=handles, loc="outside upper center", ncols=cols, fontsize="small", frameon=False)
        yield fig


def methods_caption(summary: pd.DataFrame, page: int = 1, pages: int = 1) -> str:
    n = summary["seed"].nunique()
    fam = families(summary)
    of = f" (page {page} of {pages}, {len(fam)} methods in all)" if pages > 1 else ""
    return (f"Figure M{of}. Test accuracy at the end of training vs. weights remaining, one panel per pruning "
            f"method of the sweep (solid, in its colour of Figure 1) beside its controls (black): its mask "
            f"shuffled within each layer (dashed) and its mask on a fresh initialisation (dotted); grey band: "
            f"dense, ± std over {n} seed(s). Every panel has the same axes. Every run trains the same budget "
            f"from the same start weights.")


def overview_caption(summary: pd.DataFrame, what: str = "Figure 1. Test accuracy at the end of training",
                     page: int = 1, pages: int = 1, published: pd.DataFrame | None = None) -> str:
    fam = families(summary)
    n = summary["seed"].nunique()
    groups = panels.split(list(fam))
    note = (f" The {len(fam)} methods are drawn {panels.MAX_LINES} or fewer to an axes ({len(groups)} axes, the "
             f"same limits)" + (f"; figure {page} of {pages}." if pages > 1 else ".")) if len(groups) > 1 else ""
    controls = has_controls(summary)
    text = (f"{what} vs. weights remaining, each pruning method of the sweep alone, one colour each "
            f"(mean ± std over {n} seed(s)); grey band: dense.{note}"
            + (" Each method beside its controls: Figure M." if controls and len(fam) > 1 else ""))
    if published is not None and not published.empty:
        text += f" Diamonds: the paper's published numbers ({len(published)} points)."
    return text
