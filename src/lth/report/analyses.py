"""The analyses' part of the report: each configured analysis's table (analysis-<name>.csv), drawn
by its own module's `figure` and `caption` (lth.analyses), with its `overview` table if it has one."""

from __future__ import annotations

import pandas as pd

from lth.report.tables import Results


def analysis_tables(r: Results) -> dict[str, pd.DataFrame]:
    """Name -> table of every analysis the experiment lists whose table exists (empty ones left out)."""
    out = {}
    for name in r.config.get("analyses") or []:
        path = r.root / f"analysis-{name}.csv"
        if path.exists() and path.stat().st_size:
            table = pd.read_csv(path)
            if not table.empty:
                out[name] = table
    return out


def show_analyses(r: Results, figures_dir: str = "") -> None:
    """One subsection per analysis: its figure and caption, its overview table."""
    from lth.core.parts import ANALYSES
    from lth.report.notebook import show_figure, show_markdown, show_table

    tables = analysis_tables(r)
    if not tables:
        show_markdown("No analyses in this experiment (`analyses` in its config).")
    for name, table in tables.items():
        show_markdown(f"### {name}")
        part = ANALYSES[name]
        if figure := part.hook("figure"):
            show_figure(figure(table), f"analysis-{name}", part.hook("caption")(table), figures_dir,
                        r.experiment)
        if overview := part.hook("overview"):
            show_table(overview(table), f"analysis-{name}")
