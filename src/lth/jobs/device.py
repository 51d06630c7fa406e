"""The device a job trains on."""

from __future__ import annotations

import torch

from lth.core.errors import LTHError


def pick_device(requested: str = "auto") -> torch.device:
    """The GPU when one is visible (and not refused), the CPU otherwise."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise LTHError(f"device {requested}: no CUDA device is visible")
    return torch.device(requested)
