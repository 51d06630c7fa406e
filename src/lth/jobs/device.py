"""The device a job trains on, and the contract that makes its results reproducible there.

CPU: bitwise identical for the same settings, seed and thread count on the same machine.
CUDA: bitwise identical for the same GPU model, driver, CUDA, cuDNN, torch and precision: `configure`
turns on torch's deterministic algorithms, cuDNN's deterministic mode without autotuning, the cuBLAS
workspace those need, and the precision's TF32 switches; `describe` records all of it in every run.

GPU slots: at most `jobs_per_gpu` training jobs use one GPU at a time. A job asking for "cuda" (or
"auto" on a machine with GPUs) takes a free slot of any visible GPU, a lock file held until its
process ends, and trains on that GPU; when all are taken it waits. So `snakemake --cores all` on a
machine with 4 GPUs trains on all four, one job each, and CPU-only jobs are not held up.
"""

from __future__ import annotations

import fcntl
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

from lth.core.errors import LTHError
from lth.training.precision import set_precision

CUBLAS_WORKSPACE = ":4096:8"  # what deterministic cuBLAS needs (set before CUDA starts)
_held: list = []  # the slot lock files this process holds (released when it ends)


def pick_device(requested: str = "auto", slots: Path | None = None, jobs_per_gpu: int = 1,
                wait: float = 2.0) -> torch.device:
    """The device of `requested` ("auto": a GPU when one is visible, else the CPU). A plain "cuda" (or
    "auto" with GPUs) takes a GPU slot in the folder `slots` when one is given (module docstring)."""
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise LTHError(f"device {requested}: no CUDA device is visible")
        if requested == "cuda" and slots is not None:
            return torch.device("cuda", take_slot(slots, torch.cuda.device_count(), jobs_per_gpu, wait))
    return torch.device(requested)


def take_slot(folder: Path, gpus: int, per_gpu: int, wait: float = 2.0) -> int:
    """The index of a GPU with a free slot, its lock now held by this process: each GPU's first slot
    before any GPU's second. Waits (polling every `wait` seconds) while every slot is held."""
    folder.mkdir(parents=True, exist_ok=True)
    said = False
    while True:
        for slot in range(per_gpu):
            for gpu in range(gpus):
                f = open(folder / f"gpu{gpu}-slot{slot}.lock", "a+")
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    f.close()
                    continue
                f.seek(0)
                f.truncate()
                f.write(f"{os.getpid()}\n")
                f.flush()
                _held.append(f)
                return gpu
        if not said:
            print(f"lth: every GPU slot ({gpus} GPU(s) x {per_gpu}) is in use: waiting for one", file=sys.stderr,
                  flush=True)
            said = True
        time.sleep(wait)


def configure(device: torch.device, precision: str = "fp32") -> None:
    """The reproducibility switches of `device` (module docstring) and the precision's."""
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        torch.use_deterministic_algorithms(True)
        torch.cuda.set_device(device)
    set_precision(device, precision)


def describe(device: torch.device) -> dict[str, Any]:
    """What a run's results depend on besides its settings: the device, and on CUDA the GPU, CUDA,
    cuDNN and the switches `configure` set."""
    out: dict[str, Any] = {"device": str(device)}
    if device.type == "cuda":
        out.update(gpu=torch.cuda.get_device_name(device), cuda=torch.version.cuda,
                   cudnn=torch.backends.cudnn.version(), cudnn_deterministic=torch.backends.cudnn.deterministic,
                   cudnn_benchmark=torch.backends.cudnn.benchmark,
                   deterministic_algorithms=torch.are_deterministic_algorithms_enabled(),
                   tf32_matmul=torch.backends.cuda.matmul.allow_tf32, tf32_cudnn=torch.backends.cudnn.allow_tf32,
                   cublas_workspace=os.environ.get("CUBLAS_WORKSPACE_CONFIG"))
    return out
