"""Fetching a dataset: materialise it once into a safetensors file, which training jobs then load
cheaply (lth.data.splits):

    <data_dir>/<name>[-<options hash>]/tensors.safetensors

A dataset is generated offline or read through torchvision by its registered maker
(lth.core.parts.DATASETS, lth.data.sources); the file is written under a temporary name and renamed,
and its md5 recorded for the pins (lth.data.pins).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
from safetensors.torch import save_file

from lth.core.errors import LTHError
from lth.core.files import atomic_path
from lth.core.lockfile import exclusive
from lth.core.parts import DATASETS
from lth.data import pins
from lth.data.splits import read_tensors
from lth.plan.checks import check_options
from lth.plan.facts import dataset_facts
from lth.plan.layout import TENSORS_FILE, dataset_dir


def file_sha256(path) -> str:
    """Hex sha256 of a file, streamed (dataset files can be large)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def fetch(name: str, data_dir, *, download: bool = False, options: dict | None = None) -> Path:
    """Materialise dataset `name` and return its tensors file; a no-op if a valid file is there.

    The file is written under a temporary name and renamed, so a crash never leaves a partial
    file under the final name.
    """
    info = DATASETS[name]
    if options and not info.info.get("options"):
        raise LTHError(f"dataset {name!r} takes no options, got {options!r}")
    check_options(name, options or {}, f"dataset {name!r}")
    out_dir = dataset_dir(data_dir, name, options)
    path = out_dir / TENSORS_FILE
    if _valid(path, name, options):
        return path
    # Workflows sharing the data folder (two experiments, two users) fetch it once: the first holds
    # the lock, the others wait for it and find the file.
    with exclusive(Path(data_dir) / ".locks" / f"{out_dir.name}.lock", f"fetch {out_dir.name}"):
        if _valid(path, name, options):
            return path
        tensors = info.load()(name, out_dir / "raw", download, options or {})
        out_dir.mkdir(parents=True, exist_ok=True)
        _write_atomic(tensors, path)
        pins.record(path)
    return path


def _valid(path: Path, name: str, options: dict | None) -> bool:
    """Whether the dataset's file is there and readable as what its maker writes (corrupt or stale:
    fetched anew)."""
    if not path.exists():
        return False
    try:
        read_tensors(path, DATASETS[name], dataset_facts(name, options))
        return True
    except LTHError:
        return False


def _write_atomic(tensors: dict[str, torch.Tensor], path: Path) -> None:
    tensors = {k: v.contiguous() for k, v in tensors.items()}
    with atomic_path(path, size=sum(t.nbytes for t in tensors.values())) as tmp:
        save_file(tensors, str(tmp))
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
