"""Verifying an experiment's results folder: every finished run's record and tensor files, theta_k,
and the datasets it reads (`lth verify --results`).

Each damaged file is reported in one line. With `delete`, what must be recomputed is deleted so
that the workflow's next run recomputes exactly that and what depends on it: the damaged file,
its run's metrics.json (so the job retrains that run and keeps the others), the job's
finished-markers (so Snakemake reruns the job, then what reads its outputs), and the summary
tables made from it are set aside (Snakemake would not rebuild an existing, newer table).
"""

from __future__ import annotations

from pathlib import Path

from lth.core.errors import LTHError
from lth.data import pins
from lth.plan import GROUPED, Plan
from lth.plan.layout import tensors_file
from lth.store import artifacts
from lth.store.results import read_record


def _problem(check, *args) -> str | None:
    try:
        check(*args)
    except LTHError as exc:
        return str(exc).split("; run `lth verify")[0]
    return None


def damaged(plan: Plan) -> list[tuple[str, list[Path]]]:
    """(one-line problem, files to delete so that it is recomputed) for every damaged result."""
    L, out = plan.layout, []
    for job in plan.jobs():
        if job.stage == "rewind":
            path = L.rewind(job.seed, job.k)
            if path.exists() and (problem := _problem(artifacts.load_tensors, path)):
                out.append((problem, [path]))
            continue
        markers = plan.markers(job) if job.stage in GROUPED else []
        for key in plan.job_runs(job):
            metrics = L.metrics(key)
            if not metrics.exists():
                continue
            files = [L.mask(key), L.final(key)] + ([L.init(key.seed)] if job.stage == "dense" else [])
            checks = [(read_record, metrics)] + [(artifacts.load_tensors, f) for f in files]
            for check, path in checks:
                if problem := _problem(check, path):
                    out.append((problem, [path, metrics, *markers]))
                    break
    return out


def datasets(plan: Plan) -> list[str]:
    """One line per dataset file of the plan: how it was verified (LTHError for a damaged one)."""
    pinned = pins.load(plan.workflow["pins"]) if plan.workflow.get("pins") else None
    s = plan.settings
    lines = []
    for d in [s.dataset] + [t.dataset for t in s.transfer.targets.values()]:
        path = tensors_file(plan.data_dir, d)
        lines.append(f"{path}: " + (pins.verify(path, plan.data_dir, pinned) if path.is_file() else "not fetched"))
    return lines


def verify(root: str | Path, delete: bool = False) -> tuple[list[str], int]:
    """(report lines, number of damaged files) for a results folder; with `delete`, their recomputation
    is prepared (see the module docstring)."""
    plan = Plan.from_results(root)
    lines = datasets(plan)
    problems = damaged(plan)
    for problem, files in problems:
        lines.append(problem)
        if delete:
            for f in files:
                f.unlink(missing_ok=True)
            lines.append("  deleted " + ", ".join(str(f) for f in files) + ": run the workflow again")
    if problems and delete:  # tables made from the damaged runs: rebuilt (the workflow puts them back if it fails)
        for name in ("summary.csv", "layer_density.csv"):
            if (table := plan.layout.table(name)).exists():
                table.replace(f"{table}.previous")
                lines.append(f"  {table} set aside as {table.name}.previous: the workflow rebuilds it")
    finished = sum(1 for key in plan.runs() if plan.layout.metrics(key).exists())
    lines.append(f"{root}: {finished} finished runs checked, {len(problems)} damaged")
    return lines, len(problems)
