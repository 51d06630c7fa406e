"""Analyses: stages that compute a table from an experiment's runs (lth.parts.ANALYSES).

An analysis is a module of this package with `compute(plan) -> list of rows`, plus its line in
lth.parts; `analyses: [NAME]` in an experiment switches it on, and the workflow's `analysis` rule
writes results/<experiment>/analysis-<NAME>.csv once the runs it reads are finished. Its config
keys are a section of the experiment named after it. An analysis that needs runs of its own
(`trains=True` in its line, with `trained_by`: the keys that change those runs) also has:
    jobs(plan) -> [Job]                the jobs that train them (stage "probe", chain = its name),
                                       and the theta_k replays ("rewind" jobs) they start from
    inputs(plan, job) -> [Path]        what one of its jobs reads (finished jobs' outputs)
    train(ctx, job) -> [record]        run one job (lth.jobs.Context), writing its runs
and may have `figure(table)` (a matplotlib Figure) and `caption(table)` for the report.
"""

from __future__ import annotations

import csv
from pathlib import Path

from lth.files import atomic_path
from lth.parts import ANALYSES


def module(name: str):
    """The module of analysis `name` (its registered compute function's)."""
    import importlib

    return importlib.import_module(ANALYSES[name].target.partition(":")[0])


def probe_jobs(plan) -> list:
    """The jobs of every configured analysis that trains runs of its own, without duplicates."""
    out = []
    for name in plan.settings.analyses:
        if ANALYSES[name].info.get("trains"):
            out += [j for j in module(name).jobs(plan) if j not in out and j not in plan.jobs()]
    return out


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


def train_runs(ctx, job, keys, start_of) -> list:
    """Train an analysis job's runs (lth.jobs.Context `ctx`), each from what `start_of(key)` gives:
    (model, mask, first iteration, data seed), to the end of the budget with the schedule from that
    iteration; resumable from checkpoints, each kept once finished; then mark the job done."""
    import time

    from lth.files import write_json
    from lth.results import finished, write_run
    from lth.training import Segment, lr_at, train

    plan, training = ctx.plan, ctx.plan.settings.training
    L, records = plan.layout, []
    for key in keys:
        done = finished(L, key)
        if done is not None:
            records.append(done)
            continue
        started, started_at = time.perf_counter(), time.time()
        model, mask, start, data_seed = start_of(key)
        fp = plan.fingerprint(job)
        seg = Segment(start=start, stop=training.iterations, lr=lambda t: lr_at(training, t), data_seed=data_seed,
                      checkpoint=L.checkpoint(key), fingerprint=f"{fp}/{key}", label=str(key))
        result = train(model, mask, ctx.splits(), training, seg, augment=ctx.augment(ctx.splits().info))
        records.append(write_run(L, key, model, mask, result, ctx.provenance(None, fp), started, started_at))
    write_json(plan.outputs(job)[0], {k.variant: str(L.metrics(k).relative_to(L.root)) for k in keys})
    return records
