"""Pruning masks: which weights of a model are still alive.

A mask is a plain ``dict[str, torch.BoolTensor]`` keyed by parameter name, covering exactly the
prunable parameters (weights of Linear and Conv2d layers not excluded by the settings, and their
biases when the settings prune biases, as Greydanus 2020 does). BatchNorm parameters are never
prunable. Keeping masks as plain dicts makes them trivial to
save (safetensors), compare and hand to the pruning strategies.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import nn

from lth.core.errors import LTHError

Mask = dict[str, torch.Tensor]


def layer_kinds(model: nn.Module, exclude: Iterable[str] = (), biases: bool = False) -> dict[str, str]:
    """Prunable parameter name -> "conv" | "fc" | "output" (| "bias"), in registration order.

    The output layer is the last Linear of the model: Frankle & Carbin prune it at a lower rate.
    `exclude` names layers (module prefix, e.g. "linear1") or parameters ("linear1.weight").
    """
    from lth.models import output_layer_name

    exclude = set(exclude)
    output = output_layer_name(model)
    kinds: dict[str, str] = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            kind = "conv"
        elif isinstance(module, nn.Linear):
            kind = "output" if name == output else "fc"
        else:
            continue
        param = f"{name}.weight"
        if name in exclude or param in exclude:
            continue
        kinds[param] = kind
        if biases and module.bias is not None and f"{name}.bias" not in exclude:
            kinds[f"{name}.bias"] = "bias"
    known = {n for n, _ in model.named_modules()} | {n for n, _ in model.named_parameters()}
    unknown = sorted(exclude - known)
    if unknown:
        raise LTHError(f"pruning.exclude names no layer of the model: {unknown}; layers: {sorted(kinds)}")
    return kinds


def full_mask(model: nn.Module, exclude: Iterable[str] = (), biases: bool = False) -> Mask:
    """All-ones mask over the prunable weights (level 0: nothing pruned yet)."""
    params = dict(model.named_parameters())
    return {name: torch.ones_like(params[name], dtype=torch.bool) for name in layer_kinds(model, exclude, biases)}


def check_mask(model: nn.Module, mask: Mapping[str, torch.Tensor], source: str = "mask") -> None:
    """Refuse a mask that does not fit the model (another architecture, another dataset's head)."""
    params = dict(model.named_parameters())
    for name, m in mask.items():
        if name not in params:
            raise LTHError(f"{source}: names parameter '{name}' that the model does not have")
        if tuple(m.shape) != tuple(params[name].shape):
            raise LTHError(
                f"{source}: shape of '{name}' is {tuple(m.shape)}, the model's is {tuple(params[name].shape)}"
            )


@torch.no_grad()
def apply_mask(model: nn.Module, mask: Mapping[str, torch.Tensor]) -> None:
    """Zero the pruned weights in place (a mask on another device is copied to the weights')."""
    params = dict(model.named_parameters())
    for name, m in mask.items():
        params[name].mul_(m.to(device=params[name].device, dtype=params[name].dtype))


class MaskEnforcer:
    """Keeps pruned weights exactly zero after every optimiser step, whatever the optimiser.

    Adam's moments or SGD's momentum and weight decay would move a zeroed weight again;
    multiplying by the mask after each step (one fused foreach call, on the weights' device)
    keeps it at exactly 0.0. Every masked layer is multiplied, dense ones too (by 1.0: exact), so
    that nothing here reads a mask's values: building it never waits for the device.
    """

    def __init__(self, model: nn.Module, mask: Mapping[str, torch.Tensor]):
        params = dict(model.named_parameters())
        self.params = [params[name] for name in mask]
        self.factors = [m.to(device=params[name].device, dtype=params[name].dtype) for name, m in mask.items()]

    @torch.no_grad()
    def __call__(self) -> None:
        if self.params:
            torch._foreach_mul_(self.params, self.factors)


def counts(mask: Mapping[str, torch.Tensor]) -> dict[str, int]:
    """Weights remaining per layer."""
    return {name: int(m.sum()) for name, m in mask.items()}


def layer_density(mask: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """Fraction of weights remaining per layer."""
    return {name: int(m.sum()) / m.numel() for name, m in mask.items()}


def density(mask: Mapping[str, torch.Tensor]) -> float:
    """Fraction of all prunable weights remaining (the "weights remaining" of every table)."""
    total = sum(m.numel() for m in mask.values())
    return sum(int(m.sum()) for m in mask.values()) / total if total else 1.0
