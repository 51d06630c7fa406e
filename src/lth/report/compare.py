"""A figure across experiments (the config's `comparisons`): one variant's test accuracy vs weights
remaining, one line per experiment, e.g. sparse double descent per label-noise level and width.

    python -m lth.report.compare --summary results/a/summary.csv ... --variant ticket --out reports/compare-x
writes <out>.png, <out>.svg and <out>.csv (the means and stds drawn).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from lth.plan.variants import DENSE
from lth.report.figures import band, log_weights_axis, save_figure
from lth.report.stats import by_level
from lth.report.tables import SUMMARY_COLUMNS, read_table, targets_of


def table(summaries: dict[str, pd.DataFrame], variant: str) -> pd.DataFrame:
    """Per experiment and level: weights remaining, mean and std over seeds of the test accuracy
    (the dense run as level 0)."""
    parts = []
    for name, s in summaries.items():
        runs = s[(((s["variant"] == variant) & (s["level"] > 0)) | ((s["variant"] == DENSE) & (s["level"] == 0)))
                 & (targets_of(s) == "")]
        stats = by_level(runs).rename(columns={"mean": "test_accuracy"})
        parts.append(stats.assign(experiment=name, level=stats["level"].astype(int)))
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    out = out.reindex(columns=["experiment", "level", "weights_remaining", "test_accuracy", "std", "seeds"])
    return out.sort_values(["experiment", "weights_remaining"], ascending=[True, False], kind="stable")


def plot(t: pd.DataFrame, variant: str, title: str = "") -> Figure:
    fig = Figure(figsize=(8, 4.8), layout="constrained")
    ax = fig.add_subplot()
    for i, (name, rows) in enumerate(t.groupby("experiment", sort=False)):
        band(ax, 100 * rows["weights_remaining"], 100 * rows["test_accuracy"], 100 * rows["std"], name, name,
              color=f"C{i % 10}")
    log_weights_axis(ax)
    ax.set_ylabel(f"test accuracy of {variant} (%)")
    ax.set_title(title or f"{variant}: test accuracy vs weights remaining (mean ± std over seeds)")
    ax.legend(fontsize="small")
    return fig


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lth.report.compare", description=__doc__.splitlines()[0])
    p.add_argument("--summary", action="append", required=True, help="an experiment's summary.csv (repeatable)")
    p.add_argument("--variant", default="ticket")
    p.add_argument("--title", default="")
    p.add_argument("--out", required=True, help="output path without suffix")
    a = p.parse_args(argv)
    summaries = {Path(s).parent.name: read_table(s, SUMMARY_COLUMNS) for s in a.summary}
    t = table(summaries, a.variant)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    t.to_csv(out.with_suffix(".csv"), index=False)
    save_figure(plot(t, a.variant, a.title), out.name, out.parent)
    print(out.with_suffix(".png"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
