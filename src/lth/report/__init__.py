"""Stage 7: the regenerated paper report (notebooks/lth_report.ipynb calls these; no torch needed).

The notebook stays thin so that what it computes is unit-tested here, one module per job: `tables`
reads and checks a results folder, `stats` computes the numbers, tables and text, `figures` draws,
and `notebook` shows them on the page and runs the notebook (`python -m lth.report`, what the
workflow runs: papermill, then a self-contained HTML export). The names the notebook and the tests
use are re-exported here, so that `from lth import report; report.load(...)` works.
"""

from lth.report.figures import plot_accuracy, plot_curves, plot_early_stop, plot_layer_density, plot_transfer
from lth.report.tables import load, normalise_published
from lth.report.notebook import plain_errors, show_figure, show_markdown, show_table
from lth.report.stats import (comparison_table, curve_variants, curves, describe, headline, headline_table,
                              headline_text, pick_levels, title, transfer_table)

__all__ = ["comparison_table", "curve_variants", "curves", "describe", "headline", "headline_table", "headline_text",
           "load", "normalise_published", "pick_levels", "plain_errors", "plot_accuracy", "plot_curves",
           "plot_early_stop", "plot_layer_density", "plot_transfer", "show_figure", "show_markdown", "show_table",
           "title", "transfer_table"]
