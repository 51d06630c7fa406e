"""Analyses: stages that compute a table from an experiment's runs (lth.core.parts.ANALYSES).

An analysis is a module of this package with `compute(plan) -> list of rows`, plus its line in
lth.core.parts; `analyses: [NAME]` in an experiment switches it on, and the workflow's `analysis`
rule writes results/<experiment>/analysis-<NAME>.csv once the runs it reads are finished. Its config
keys are a section of the experiment named after it. An analysis that needs runs of its own
(`trains=True` in its line, with `trained_by`: the keys that change those runs) also has these
hooks, which the plan and the jobs reach through its registry entry (never by importing it):
    jobs(plan) -> [Job]                the jobs that train them (stage "probe", chain = its name),
                                       and the theta_k replays ("rewind" jobs) they start from
    inputs(plan, job) -> [Path]        what one of its jobs reads (finished jobs' outputs)
    train(ctx, job) -> [record]        run one job (lth.jobs.context.Context), writing its runs
                                       (lth.jobs.runs.train_and_mark with start states of its own)
and may have `figure(table)` (a matplotlib Figure), `caption(table)` and `overview(table)` for the
report. The other modules here are the analyses' numerics (interpolate, earlybird_detector, lasso).

May import everything below it (core to jobs); never report or cli.
"""

from __future__ import annotations

import csv
from pathlib import Path

from lth.core.files import atomic_path
from lth.core.parts import ANALYSES


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
