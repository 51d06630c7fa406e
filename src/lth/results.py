"""Writing a finished run's results, and finding those already written.

A run folder holds mask.safetensors, final.safetensors and metrics.json (curves, summary,
provenance). metrics.json is written last: its presence means the run is complete, so a job
restarted after an interruption keeps the runs it had finished.
"""

from __future__ import annotations

import time
from typing import Any

from lth import artifacts, masks
from lth.files import read_json, write_json
from lth.layout import Layout, RunKey


def finished(layout: Layout, key: RunKey) -> dict[str, Any] | None:
    """The record of run `key` if it is complete, else None."""
    path = layout.metrics(key)
    return read_json(path) if path.exists() else None


def write_run(layout: Layout, key: RunKey, model, mask: masks.Mask, result: dict[str, Any],
              provenance: dict[str, Any], started: float) -> dict[str, Any]:
    """Write run `key`'s mask, trained weights and record; drop its resume checkpoint."""
    record = {"seed": key.seed, "level": key.level, "variant": key.variant, "target": key.target or "",
              "weights_remaining": masks.density(mask), "layer_density": masks.layer_density(mask),
              "curves": result["curves"],
              "summary": {**result["summary"], "wall_seconds": time.perf_counter() - started},
              "provenance": provenance}
    artifacts.save_tensors(layout.mask(key), mask)
    artifacts.save_tensors(layout.final(key), model.state_dict())
    write_json(layout.metrics(key), record)
    layout.checkpoint(key).unlink(missing_ok=True)
    return record
