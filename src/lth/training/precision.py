"""The arithmetic a run trains in (`training.precision`): fp32 (the default: full float32 everywhere,
TF32 off for matrix products and convolutions), tf32 (CUDA's TensorFloat-32 for both) or bf16
(autocast: matrix products and convolutions in bfloat16, the rest in float32, parameters and the
optimiser in float32). A setting, part of the run's fingerprint when not the default.
"""

from __future__ import annotations

import contextlib

import torch

from lth.core.errors import LTHError

PRECISIONS = ("fp32", "tf32", "bf16")


def check_precision(device: torch.device, precision: str) -> None:
    """One line naming `training.precision` when `device` cannot train in it."""
    if precision not in PRECISIONS:
        raise LTHError(f"training.precision: {precision!r} is not one of {', '.join(PRECISIONS)}")
    if precision == "tf32" and device.type != "cuda":
        raise LTHError(f"training.precision: tf32 is a CUDA format; {device} has none (use fp32 or bf16)")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise LTHError(f"training.precision: bf16 needs a GPU that computes in bfloat16; "
                       f"{torch.cuda.get_device_name(device)} does not (use fp32 or tf32)")


def set_precision(device: torch.device, precision: str) -> None:
    """The process-wide switches of `precision` (TF32 on or off for CUDA's products and convolutions)."""
    check_precision(device, precision)
    if device.type == "cuda":
        tf32 = precision == "tf32"
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32


def autocast(device: torch.device, precision: str):
    """The context a forward pass (and its loss) runs in: bfloat16 autocast for bf16, else nothing."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
