"""What a group of stacked runs needs in memory, and what the device has: a group that cannot fit is
refused before it trains, naming `batching`."""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from lth.core.errors import LTHError
from lth.training.evaluation import EVAL_BATCH


class _Allocations(TorchDispatchMode):
    """Bytes of every new tensor an operation makes (views alias, and are not counted)."""

    def __init__(self):
        super().__init__()
        self.bytes = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if not any(r.alias_info is not None for r in func._schema.returns):
            self.bytes += sum(t.numel() * t.element_size() for t in tree_leaves(out) if isinstance(t, torch.Tensor))
        return out


def activation_bytes(model: nn.Module, input_shape: Sequence[int]) -> int:
    """Bytes of everything a forward pass makes for one example (every operation's output, the
    functional ones and residual sums included; not only the layers'), the input counted too."""
    device = next(model.parameters()).device
    was_training = model.training
    counter = _Allocations()
    try:
        model.eval()
        x = torch.zeros(2, *input_shape, device=device)  # 2: BatchNorm refuses one example in training
        with torch.no_grad(), counter:
            model(x)
    finally:
        model.train(was_training)
    return (counter.bytes + x.numel() * x.element_size()) // 2


WORKSPACE = 2**28  # CUDA: cuDNN's and cuBLAS's workspaces and the allocator's rounding, allowed once per group


def estimate_bytes(model: nn.Module, members: int, batch_size: int, optimizer: str,
                   input_shape: Sequence[int]) -> int:
    """Bytes a group of `members` runs of `model` needs to train at `batch_size` with `optimizer`.

    Per member: parameters, gradients, optimiser state (Adam/AdamW: 2 copies; SGD with or without
    momentum: 1, an upper bound), the float mask factors and the bool masks, the buffers; plus the
    activations of a step, counted as 3 x (what a forward pass makes for one example, every
    operation's output) x batch_size (forward outputs kept for the backward, their gradients, the
    per-member copies the stacked layers make). On CUDA, WORKSPACE once. Evaluation runs in chunks of
    members sized by `eval_members`, not counted here. Data splits already on the device are not
    counted. benchmarks/gpu_check.py compares this with the peak a GPU measures."""
    params = sum(p.numel() for p in model.parameters())
    buffers = sum(b.numel() * b.element_size() for b in model.buffers())
    states = 2 if optimizer in ("adam", "adamw") else 1
    per_member = 4 * params * (2 + states + 1) + params + buffers
    activations = 3 * batch_size * activation_bytes(model, input_shape)
    workspace = WORKSPACE if next(model.parameters()).device.type == "cuda" else 0
    return members * (per_member + activations) + workspace


def available_bytes(device: torch.device) -> int:
    """Memory the device can give this process: on CUDA, the free memory plus what PyTorch's caching
    allocator holds but no tensor uses (reserved less allocated: a group after a group reuses it);
    else the host's MemAvailable (/proc/meminfo)."""
    device = torch.device(device)
    if device.type == "cuda":
        cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return torch.cuda.mem_get_info(device)[0] + cached
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
    per = EVAL_BATCH * activation_bytes(model, input_shape)
    return max(1, budget // per)
