"""Stage 6: one tidy table per experiment, from the runs' metrics.json files (no torch needed).

summary.csv: one row per run of the plan, in its order (per seed: the dense run as level 0, each
level's variants, then the transfer runs with their `target`; empty for the source's own runs).
layer_density.csv: one row per run x prunable layer. The columns are defined here only.
"""

from __future__ import annotations

import csv
from pathlib import Path

from lth.core.files import atomic_path
from lth.plan import Plan
from lth.store.results import read_record

KEY_COLUMNS = ["experiment", "seed", "level", "variant"]
COLUMNS = [*KEY_COLUMNS, "weights_remaining", "test_accuracy", "best_val_accuracy",
           "early_stop_iteration", "train_accuracy", "wall_seconds", "target",
           # beyond the columns the documentation promises (docs/getting-started.md: summary.csv)
           "early_stop_test_accuracy", "test_loss", "train_seconds", "iterations_trained"]
DENSITY_COLUMNS = [*KEY_COLUMNS, "target", "layer", "density"]


def write_summary(plan: Plan) -> Path:
    rows, densities = [], []
    for run in plan.runs():
        record = read_record(plan.layout.metrics(run))
        s, curves = record["summary"], record["curves"]
        key = {"experiment": plan.experiment, "seed": run.seed, "level": run.level, "variant": run.variant,
               "target": run.target or ""}
        rows.append({**key, "weights_remaining": record["weights_remaining"],
                     "iterations_trained": curves[-1]["iteration"] - curves[0]["iteration"],
                     **{k: s.get(k) for k in COLUMNS if k in s}})
        densities += [{**key, "layer": layer, "density": d} for layer, d in record["layer_density"].items()]
    _write_csv(plan.layout.table("summary.csv"), COLUMNS, rows)
    _write_csv(plan.layout.table("layer_density.csv"), DENSITY_COLUMNS, densities)
    return plan.layout.table("summary.csv")


def damaged_tables(root: str | Path) -> list[tuple[Path, str]]:
    """(table, why) for each of an experiment's tables that exists but is not one this module wrote:
    another header, or a row of another width (a truncated or edited file)."""
    out = []
    for name, columns in (("summary.csv", COLUMNS), ("layer_density.csv", DENSITY_COLUMNS)):
        path = Path(root) / name
        if not path.exists():
            continue
        try:
            with path.open(newline="") as f:
                rows = list(csv.reader(f))
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            out.append((path, f"unreadable ({exc})"))
            continue
        if not rows or rows[0] != columns:
            out.append((path, "not its header"))
        elif any(len(r) != len(columns) for r in rows[1:]) or len(rows) < 2:
            out.append((path, "rows cut short or missing"))
    return out


def _write_csv(path: Path, columns: list[str], rows: list[dict]) -> None:
    with atomic_path(path) as tmp, tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
