"""The comparison of pruning methods in a one-shot sweep (lth.plan.oneshot): accuracy vs density, one
colour per method, its controls in the same colour, dashed (mask shuffled within layers) or
dotted (mask on a fresh init), as "Missing the mark" (Frankle et al. 2021) draws them."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from lth.plan.variants import DENSE
from lth.report.figures import band, log_weights_axis
from lth.report.stats import COLOURS, by_level, levels_are_densities

CONTROL_STYLES = {"": "-", "shuffle": "--", "reinit": ":"}


def methods(summary: pd.DataFrame, config: dict | None = None) -> list[str]:
    """The one-shot methods of a sweep (`config`: its experiment's), in table order; none for IMP."""
    if not levels_are_densities((config or {}).get("kind")):  # IMP: one method, its variants
        return []
    return list(dict.fromkeys(v.split("-")[0] for v in summary.loc[summary["level"] > 0, "variant"]))


def methods_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Test accuracy (%, mean ± std over seeds) per density (rows) and method or control (columns)."""
    stats = by_level(summary[summary["level"] > 0])
    stats["cell"] = [f"{100 * m:.1f} ± {100 * s:.1f}" for m, s in zip(stats["mean"], stats["std"])]
    table = stats.pivot(index="level", columns="variant", values="cell")
    density = stats.groupby("level")["weights_remaining"].mean()
    table.index = [f"{100 * density[level]:.3g} %" for level in table.index]
    table.index.name = "weights remaining"
    return table.iloc[::-1]


def plot_methods(summary: pd.DataFrame) -> Figure:
    """Test accuracy vs weights remaining, one line per method, controls dashed or dotted."""
    fig = Figure(figsize=(8.5, 5), layout="constrained")
    ax = fig.add_subplot()
    stats = by_level(summary)
    for dense in stats[stats["level"] == 0].itertuples():
        ax.axhline(100 * dense.mean, color=COLOURS[DENSE], linestyle="--", linewidth=1, label=f"{DENSE}")
    for i, method in enumerate(dict.fromkeys(v.split("-")[0] for v in stats.loc[stats["level"] > 0, "variant"])):
        for v in dict.fromkeys(stats.loc[stats["variant"].str.split("-").str[0] == method, "variant"]):
            rows = stats[stats["variant"] == v].sort_values("weights_remaining", ascending=False)
            control = v.partition("-")[2]
            band(ax, 100 * rows["weights_remaining"], 100 * rows["mean"], 100 * rows["std"], v, v,
                  linestyle=CONTROL_STYLES.get(control, "-."), color=f"C{i % 10}")
    log_weights_axis(ax)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"Pruning methods: test accuracy at the end of training "
                 f"(mean ± std over {summary['seed'].nunique()} seed(s))")
    ax.legend(fontsize="x-small", loc="best", ncol=2)
    return fig


def methods_caption(summary: pd.DataFrame) -> str:
    n = summary["seed"].nunique()
    return (f"Figure M. Test accuracy at the end of training vs. weights remaining for each pruning method of "
            f"the sweep (solid), its mask shuffled within each layer (dashed) and its mask on a fresh "
            f"initialisation (dotted); bands: ± std over {n} seed(s). Every run trains the same budget from the "
            f"same start weights.")
