"""Stage 7: the regenerated paper report (notebooks/lth_report.ipynb calls these; no torch needed).

The notebook stays thin so that what it computes is unit-tested here, one module per job: `tables`
reads and checks a results folder, `stats` computes the numbers and tables, `headline` decides the
headline by a stated statistical rule, `about` says what the results hold and lack (and the
appendix), `sections` which sections apply, `methods` (a sweep's figures and table, laid out by
`panels`), `figures` draws and `captions` says what was drawn, and `notebook` shows them on the
page and runs the notebook (`python -m lth.report`, what the workflow runs: papermill, then a
self-contained HTML export). The names the notebook and the tests use are re-exported here, so
that `from lth import report; report.load(...)` works.

May import lth.core, lth.plan and lth.store (an analysis's figure: through its registry entry).
"""

from lth.report.about import config_yaml, describe, expected, missing, missing_text, overview, published_text
from lth.report.analyses import analysis_tables, show_analyses
from lth.report.captions import (
                                 accuracy_caption,
                                 curves_caption,
                                 differences_caption,
                                 early_stop_caption,
                                 layer_density_caption,
                                 transfer_caption,
)
from lth.report.claims import claims_table, claims_text, protocol
from lth.report.figures import (
                                 plot_accuracy,
                                 plot_curves,
                                 plot_differences,
                                 plot_early_stop,
                                 plot_layer_density,
                                 plot_transfer,
)
from lth.report.headline import MARGIN, headline, headline_table, headline_text, match_table, rule_text, title
from lth.report.methods import (
                                 has_controls,
                                 methods,
                                 methods_caption,
                                 methods_table,
                                 overview_caption,
                                 plot_methods,
                                 plot_overview,
)
from lth.report.notebook import (
                                 plain_errors,
                                 show_code,
                                 show_download,
                                 show_figure,
                                 show_figures,
                                 show_markdown,
                                 show_table,
)
from lth.report.sections import contents, heading, sections
from lth.report.stats import (
                                 chance_levels,
                                 comparison_table,
                                 curve_variants,
                                 curves,
                                 differences,
                                 estimate,
                                 pick_levels,
                                 transfer_table,
                                 versus,
)
from lth.report.tables import load, normalise_published

__all__ = ["MARGIN", "accuracy_caption", "analysis_tables", "chance_levels", "claims_table", "claims_text",
           "comparison_table", "config_yaml", "contents", "curve_variants", "curves", "curves_caption", "describe",
           "differences", "differences_caption", "early_stop_caption", "estimate", "expected", "has_controls",
           "heading", "headline", "headline_table", "headline_text", "layer_density_caption", "load", "match_table",
           "methods", "methods_caption", "methods_table", "missing", "missing_text", "normalise_published", "overview",
           "overview_caption", "pick_levels", "plain_errors", "plot_accuracy", "plot_curves", "plot_differences",
           "plot_early_stop", "plot_layer_density", "plot_methods", "plot_overview", "plot_transfer", "protocol",
           "published_text", "rule_text", "sections", "show_analyses", "show_code", "show_download", "show_figure",
           "show_figures", "show_markdown", "show_table", "title", "transfer_caption", "transfer_table", "versus"]
