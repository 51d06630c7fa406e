"""Stage 6: one tidy table per experiment, from the runs' metrics.json files (no torch needed).

summary.csv: one row per seed x level x variant (level 0 is variant "dense").
layer_density.csv: one row per seed x level x variant x prunable layer.
"""

from __future__ import annotations

import csv
from pathlib import Path

from lth.files import atomic_path, read_json
from lth.layout import DENSE, Layout
from lth.settings import chains

COLUMNS = ["experiment", "seed", "level", "variant", "weights_remaining", "test_accuracy", "best_val_accuracy",
           "early_stop_iteration", "train_accuracy", "wall_seconds",
           # beyond the contract of DESIGN.md
           "early_stop_test_accuracy", "test_loss", "train_seconds", "iterations_trained"]


def run_keys(seeds: list[int], levels: int, variants: list[str]):
    """(seed, level, variant) of every run an experiment holds, in table order."""
    trained = [v for vs in chains(variants).values() for v in vs]
    for seed in seeds:
        yield seed, 0, DENSE
        for level in range(1, levels + 1):
            for variant in trained:
                yield seed, level, variant


def write_summary(experiment: str, root: str | Path, seeds: list[int], levels: int, variants: list[str]) -> Path:
    layout = Layout(Path(root))
    rows, densities = [], []
    for seed, level, variant in run_keys(seeds, levels, variants):
        record = read_json(layout.metrics(seed, level, variant))
        s, curves = record["summary"], record["curves"]
        rows.append({"experiment": experiment, "seed": seed, "level": level, "variant": variant,
                     "weights_remaining": record["weights_remaining"],
                     "iterations_trained": curves[-1]["iteration"] - curves[0]["iteration"],
                     **{k: s.get(k) for k in COLUMNS if k in s}})
        densities += [{"experiment": experiment, "seed": seed, "level": level, "variant": variant,
                       "layer": layer, "density": d} for layer, d in record["layer_density"].items()]
    _write_csv(layout.root / "summary.csv", COLUMNS, rows)
    _write_csv(layout.root / "layer_density.csv", ["experiment", "seed", "level", "variant", "layer", "density"],
               densities)
    return layout.root / "summary.csv"


def _write_csv(path: Path, columns: list[str], rows: list[dict]) -> None:
    with atomic_path(path) as tmp, tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
