"""Analyses: stages that compute a table from an experiment's finished runs (lth.parts.ANALYSES).

An analysis is a function `(plan) -> list of rows` in a module of this package, plus its line in
lth.parts; `analyses: [NAME]` in an experiment switches it on, and the workflow's `analysis` rule
writes results/<experiment>/analysis-<NAME>.csv once every run of the plan is finished.
"""

from __future__ import annotations

import csv
from pathlib import Path

from lth.files import atomic_path
from lth.parts import ANALYSES


def output(plan, name: str) -> Path:
    return plan.layout.table(f"analysis-{name}.csv")


def run(plan, name: str) -> Path:
    """Compute analysis `name` on the plan's runs and write its table."""
    rows = ANALYSES[name].load()(plan)
    path = output(plan, name)
    with atomic_path(path) as tmp, tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["experiment"])
        writer.writeheader()
        writer.writerows(rows)
    return path
