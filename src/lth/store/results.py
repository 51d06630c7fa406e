"""Writing a finished run's results, and reading them back verified.

A run folder holds mask.safetensors, final.safetensors and metrics.json (curves, summary,
provenance). metrics.json is written last: its presence means the run is complete, so a job
restarted after an interruption keeps the runs it had finished. It carries the sha256 of its own
content (the tensor files carry theirs), checked whenever it is read. No torch here: the summary,
the report and tracking read records too.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from lth.core.errors import LTHError
from lth.core.files import DAMAGED, read_json, write_json
from lth.plan.layout import Layout, RunKey

FIELDS = ("seed", "level", "variant", "target", "weights_remaining", "layer_density", "curves", "summary",
          "provenance")


def _checksum(record: dict[str, Any]) -> str:
    body = {k: v for k, v in record.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def read_record(path: str | Path) -> dict[str, Any]:
    """A run's metrics.json, checked: readable, complete, and its content the one written."""
    record = read_json(path)
    if not isinstance(record, dict) or any(k not in record for k in FIELDS) or not record.get("curves"):
        raise LTHError(f"{path}: damaged run record (fields missing); {DAMAGED}")
    if record.get("checksum") != _checksum(record):
        raise LTHError(f"{path}: damaged run record (checksum mismatch); {DAMAGED}")
    return record


def finished(layout: Layout, key: RunKey) -> dict[str, Any] | None:
    """The record of run `key` if it is complete, else None."""
    path = layout.metrics(key)
    return read_record(path) if path.exists() else None


def write_run(layout: Layout, key: RunKey, model, mask: dict, result: dict[str, Any],
              provenance: dict[str, Any], started: float, started_at: float) -> dict[str, Any]:
    """Write run `key`'s mask, trained weights and record; drop its resume checkpoint.

    `started` is the run's start on the perf_counter clock (its wall time), `started_at` on the
    epoch clock: the record keeps when the run trained (`times`), for tracking."""
    from lth.pruning import masks
    from lth.store import artifacts

    record = {"seed": key.seed, "level": key.level, "variant": key.variant, "target": key.target or "",
              "weights_remaining": masks.density(mask), "layer_density": masks.layer_density(mask),
              "curves": result["curves"],
              "summary": {**result["summary"], "wall_seconds": time.perf_counter() - started},
              "provenance": provenance, "times": {"start": started_at, "end": time.time()}}
    record["checksum"] = _checksum(record)
    artifacts.save_tensors(layout.mask(key), mask)
    artifacts.save_tensors(layout.final(key), model.state_dict())
    write_json(layout.metrics(key), record)
    layout.checkpoint(key).unlink(missing_ok=True)
    return record
