"""Stage 6: one tidy table per experiment, from the runs' metrics.json files (no torch needed).

summary.csv: one row per seed x level x variant (level 0 is variant "dense"), then the transfer
runs with their `target` (empty for the source's own runs).
layer_density.csv: one row per run x prunable layer.
"""

from __future__ import annotations

import csv
from pathlib import Path

from lth.files import atomic_path, read_json
from lth.layout import DENSE, Layout
from lth.settings import chains, transfer_levels, transfer_variants

COLUMNS = ["experiment", "seed", "level", "variant", "weights_remaining", "test_accuracy", "best_val_accuracy",
           "early_stop_iteration", "train_accuracy", "wall_seconds", "target",
           # beyond the contract of DESIGN.md
           "early_stop_test_accuracy", "test_loss", "train_seconds", "iterations_trained"]


def run_keys(settings: dict):
    """(seed, level, variant, target) of every run an experiment holds, in table order.

    target is None for the source runs; transfer runs follow each seed's source runs.
    """
    trained = [v for vs in chains(settings["variants"]).values() for v in vs]
    for seed in settings["seeds"]:
        yield seed, 0, DENSE, None
        for level in range(1, settings["pruning"]["levels"] + 1):
            for variant in trained:
                yield seed, level, variant, None
        for target in settings["transfer"]["targets"]:
            for level in transfer_levels(settings):
                for variant in transfer_variants(settings, level):
                    yield seed, level, variant, target


def write_summary(experiment: str, root: str | Path, settings: dict) -> Path:
    layout = Layout(Path(root))
    rows, densities = [], []
    for seed, level, variant, target in run_keys(settings):
        record = read_json(layout.metrics(seed, level, variant, target))
        s, curves = record["summary"], record["curves"]
        key = {"experiment": experiment, "seed": seed, "level": level, "variant": variant, "target": target or ""}
        rows.append({**key, "weights_remaining": record["weights_remaining"],
                     "iterations_trained": curves[-1]["iteration"] - curves[0]["iteration"],
                     **{k: s.get(k) for k in COLUMNS if k in s}})
        densities += [{**key, "layer": layer, "density": d} for layer, d in record["layer_density"].items()]
    _write_csv(layout.root / "summary.csv", COLUMNS, rows)
    _write_csv(layout.root / "layer_density.csv",
               ["experiment", "seed", "level", "variant", "target", "layer", "density"], densities)
    return layout.root / "summary.csv"


def _write_csv(path: Path, columns: list[str], rows: list[dict]) -> None:
    with atomic_path(path) as tmp, tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
