"""What a group of stacked runs needs in memory, and what the device has: a group that cannot fit is
refused before it trains, naming `batching`."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import torch
from torch import nn

from lth.core.errors import LTHError
from lth.training.evaluation import EVAL_BATCH


def activation_elements(model: nn.Module, input_shape: Sequence[int]) -> int:
    """Elements of every leaf module's output (and the input) for one example, in eval mode."""
    total = [math.prod(input_shape)]

    def hook(_module, _inputs, out):
        if isinstance(out, torch.Tensor):
            total[0] += out[:1].numel()

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    was_training = model.training
    device = next(model.parameters()).device
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(2, *input_shape, device=device))  # 2: BatchNorm refuses one example in training
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return total[0]


def estimate_bytes(model: nn.Module, members: int, batch_size: int, optimizer: str,
                   input_shape: Sequence[int]) -> int:
    """Bytes a group of `members` runs of `model` needs to train at `batch_size` with `optimizer`.

    Per member: parameters, gradients, optimiser state (Adam/AdamW: 2 copies; SGD with or without
    momentum: 1, an upper bound), the float mask factors and the bool masks, the buffers; plus the
    activations of a step, counted as 3 x (every layer's output for one example) x batch_size
    (forward outputs kept for the backward, their gradients, the per-member copies the stacked
    layers make). Evaluation runs in chunks of members sized by `eval_members`, not counted here.
    Data splits already on the device are not counted. float32 throughout."""
    params = sum(p.numel() for p in model.parameters())
    buffers = sum(b.numel() * b.element_size() for b in model.buffers())
    states = 2 if optimizer in ("adam", "adamw") else 1
    per_member = 4 * params * (2 + states + 1) + params + buffers
    activations = 3 * 4 * batch_size * activation_elements(model, input_shape)
    return members * (per_member + activations)


def available_bytes(device: torch.device) -> int:
    """Free memory of the device: CUDA's free memory, or the host's MemAvailable (/proc/meminfo)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


def check_fits(model: nn.Module, members: int, batch_size: int, optimizer: str, input_shape: Sequence[int],
               device: torch.device | str | None = None) -> int:
    """Refuse (LTHError naming `batching`) a group whose estimate exceeds the device's free memory;
    return the estimate."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    need = estimate_bytes(model, members, batch_size, optimizer, input_shape)
    have = available_bytes(device)
    if need > have:
        per = need / members
        raise LTHError(f"batching: a group of {members} runs of {type(model).__name__} (batch {batch_size}, "
                       f"{optimizer}) needs about {_gib(need)} ({_gib(per)} per run), but {device} has "
                       f"{_gib(have)} free; put at most {max(1, int(have // per))} runs in a group")
    return need


def eval_members(model: nn.Module, input_shape: Sequence[int], budget: int) -> int:
    """How many members to evaluate at once so that one chunk of EVAL_BATCH examples stays within
    `budget` bytes of activations (at least 1)."""
    per = 4 * EVAL_BATCH * activation_elements(model, input_shape)
    return max(1, budget // per)
