"""What every run records about where it was computed: the versions of lth and torch, the git commit
of the code, the dataset's checksum, the device (on CUDA its GPU, CUDA, cuDNN and switches), the
precision and thread count, the settings' fingerprint."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import torch

import lth
from lth.data.fetch import file_sha256
from lth.jobs.device import describe


def record(dataset_file: Path, device: torch.device, fingerprint: str, precision: str = "fp32") -> dict[str, Any]:
    """The provenance of a run trained on `device` in `precision` from `dataset_file` under settings
    `fingerprint` (on CUDA: the GPU, CUDA, cuDNN and the determinism switches, lth.jobs.device)."""
    return {"lth_version": lth.__version__, "torch_version": torch.__version__, "git_commit": git_commit(),
            "dataset_sha256": file_sha256(dataset_file), **describe(device), "precision": precision,
            "threads": torch.get_num_threads(), "settings_fingerprint": fingerprint}


_GIT_COMMIT: str | None = None


def git_commit() -> str:
    """Commit of the repository holding the lth code that runs ("+dirty" if modified; "unknown"
    for an installed copy outside a repository), whatever the working directory."""
    global _GIT_COMMIT
    if _GIT_COMMIT is None:
        git = ["git", "-C", str(Path(__file__).resolve().parent)]
        try:
            sha = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10).stdout.strip()
            dirty = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                                   text=True, timeout=10).stdout.strip()
            _GIT_COMMIT = (sha + ("+dirty" if dirty else "")) if sha else "unknown"
        except (OSError, subprocess.SubprocessError):
            _GIT_COMMIT = "unknown"
    return _GIT_COMMIT
