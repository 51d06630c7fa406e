"""The NVIDIA GPUs this process may use, found without importing torch (the workflow asks when it is
parsed): `nvidia-smi`'s list, narrowed to CUDA_VISIBLE_DEVICES when that names indices."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass


@dataclass(frozen=True)
class GPU:
    index: int
    name: str
    compute_capability: tuple[int, int]

    @property
    def has_bf16(self) -> bool:
        return self.compute_capability >= (8, 0)  # Ampere and later compute in bfloat16


def visible_gpus() -> list[GPU]:
    """The GPUs CUDA would show this process ([] without a driver, or when CUDA_VISIBLE_DEVICES hides all)."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        out = subprocess.run([smi, "--query-gpu=index,name,compute_cap", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = []
    for line in out.stdout.splitlines() if out.returncode == 0 else []:
        index, name, cap = (part.strip() for part in line.split(","))
        major, _, minor = cap.partition(".")
        gpus.append(GPU(int(index), name, (int(major), int(minor or 0))))
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return gpus
    wanted = [v.strip() for v in visible.split(",") if v.strip()]
    if all(v.isdigit() for v in wanted):  # indices, in CUDA's order
        by_index = {g.index: g for g in gpus}
        return [by_index[int(v)] for v in wanted if int(v) in by_index]
    return gpus[: len(wanted)]  # UUIDs or MIG names: as many as named
