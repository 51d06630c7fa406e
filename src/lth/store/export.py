"""A ticket as one standalone file (`lth export`): its masked weights, its mask and what builds the model,
readable with safetensors and torch alone.

The file is a safetensors file. Tensors: the run's trained state (every parameter and buffer, by its
state_dict name), pruned weights exactly zero; and the mask, each prunable parameter's as a bool tensor
named `mask/<parameter>`. Metadata (strings): `format` (FORMAT), `model` (JSON: name, options, init,
input_shape, num_classes: what `lth.models.build_model` takes, so the same architecture can be built
again), `dataset` (JSON: the experiment's dataset settings; inputs are normalised as lth's splits do,
`lth.data.splits.statistics`, unless `normalise` is false), `experiment`, `seed`, `level`, `variant`,
`weights_remaining`, `test_accuracy` and `lth.sha256` (the tensors' checksum, as every tensor file here).
docs/guides/structured.md ("A ticket as one file") has a loader of ten lines without lth.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from lth.core.errors import LTHError
from lth.core.files import atomic_path
from lth.plan.facts import input_shape, num_classes
from lth.plan.layout import RunKey
from lth.store import artifacts
from lth.store.results import read_record

FORMAT = "lth-ticket/1"
MASK = "mask/"


def ticket_tensors(weights: dict[str, torch.Tensor], mask: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The trained state with pruned weights set to exactly zero, and the mask under `mask/<name>`."""
    unknown = sorted(set(mask) - set(weights))
    if unknown:
        raise LTHError(f"the mask names parameters the weights lack: {unknown[:3]}")
    out = {k: (v * mask[k].to(v.dtype)) if k in mask else v for k, v in weights.items()}
    out.update({f"{MASK}{k}": m.to(torch.bool) for k, m in mask.items()})
    return {k: v.detach().cpu().contiguous() for k, v in out.items()}


def export_ticket(plan, key: RunKey, out: str | Path) -> dict[str, Any]:
    """Write run `key`'s ticket to `out` (module docstring); its metadata."""
    from safetensors.torch import save_file

    L = plan.layout
    if key not in plan.runs():
        levels = sorted({k.level for k in plan.runs() if k.variant == key.variant})
        raise LTHError(f"{plan.experiment}: no run seed {key.seed}, level {key.level}, variant {key.variant!r} in the "
                       f"plan" + (f"; {key.variant} has levels {levels}" if levels else
                                  f"; variants: {sorted({k.variant for k in plan.runs()})}"))
    if not L.metrics(key).exists():
        raise LTHError(f"{L.run_dir(key)}: not trained yet (no metrics.json): run the workflow first")
    record = read_record(L.metrics(key))
    s = plan.settings
    tensors = ticket_tensors(artifacts.load_tensors(L.final(key)), artifacts.load_tensors(L.mask(key)))
    model = {"name": s.model.name, "options": s.model.options.thaw(), "init": s.model.init,
             "input_shape": list(input_shape(s.dataset)), "num_classes": num_classes(s.dataset)}
    meta = {"format": FORMAT, "model": json.dumps(model), "dataset": json.dumps(s.dataset.thaw()),
            "experiment": plan.experiment, "seed": str(key.seed), "level": str(key.level), "variant": key.variant,
            "weights_remaining": str(record["weights_remaining"]),
            "test_accuracy": str(record["summary"]["test_accuracy"]), artifacts.CHECKSUM: artifacts.digest(tensors)}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    return meta
