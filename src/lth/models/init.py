"""Initialisers (each draws from an explicit generator, never the global RNG) and shape checks."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import init

from lth.core.errors import LTHError


def torch_default_bias(m: nn.Linear | nn.Conv2d, g: torch.Generator) -> None:
    """PyTorch's default bias init: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    if m.bias is not None:
        fan_in = m.weight[0].numel()
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        init.uniform_(m.bias, -bound, bound, generator=g)


def torch_default(m: nn.Linear | nn.Conv2d, g: torch.Generator) -> None:
    """PyTorch's `reset_parameters()` for Linear/Conv2d, same draws in the same order."""
    init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=g)
    torch_default_bias(m, g)


def glorot_zero(m: nn.Linear | nn.Conv2d, g: torch.Generator) -> None:
    """Frankle & Carbin 2019: Gaussian Glorot weights, zero biases."""
    init.xavier_normal_(m.weight, generator=g)
    if m.bias is not None:
        init.zeros_(m.bias)


def openlth(module: nn.Module, g: torch.Generator) -> None:
    """OpenLTH `kaiming_normal` + `uniform` batchnorm init for one module.

    OpenLTH's initializer only replaces `.weight`; biases keep PyTorch's default, which we
    reproduce (from `g`). BatchNorm: weight ~ U(0, 1), bias 0.
    """
    if isinstance(module, (nn.Linear, nn.Conv2d)):
        init.kaiming_normal_(module.weight, generator=g)
        torch_default_bias(module, g)
    elif isinstance(module, nn.BatchNorm2d):
        init.uniform_(module.weight, 0.0, 1.0, generator=g)
        init.zeros_(module.bias)


def image_size_after_pools(model: str, shape: tuple[int, ...], pools: int) -> tuple[int, int, int]:
    """(C, H, W) after `pools` 2x2 stride-2 poolings; refuse shapes that would pool to nothing."""
    need = 2**pools
    if len(shape) != 3 or shape[1] < need or shape[2] < need:
        why = f" with H and W >= {need} ({pools} 2x2 poolings)" if pools else ""
        raise LTHError(
            f"model {model!r} cannot take input_shape {shape}: it needs an image shape (C, H, W){why}"
        )
    c, h, w = shape
    return c, h // need, w // need


def kaiming_normal_weights(module: nn.Module, g: torch.Generator, density: float = 1.0) -> None:
    """Ramanujan et al. 2020's "Kaiming Normal": N(0, sigma^2), sigma = sqrt(2 / (fan_in * density)).

    Linear/Conv2d weights only (fan_in mode, ReLU gain); biases and other modules are left as they
    are. density < 1 is the paper's "scaled" variant (fan scaled by the fraction of weights kept).
    """
    if isinstance(module, (nn.Linear, nn.Conv2d)):
        fan_in = module.weight[0].numel() * density
        std = init.calculate_gain("relu") / math.sqrt(fan_in)
        with torch.no_grad():
            module.weight.normal_(0.0, std, generator=g)


def signed_kaiming_constant(module: nn.Module, g: torch.Generator, density: float = 1.0) -> None:
    """Ramanujan et al. 2020's "Signed Kaiming Constant": every weight +-sigma, the sign a fair coin.

    sigma = gain / sqrt(fan_in * density), gain = sqrt(2) (ReLU); the sign is drawn from `g` (the
    authors' code keeps the sign of the previous init instead). Linear/Conv2d weights only; biases
    and other modules are left as they are. density < 1 is the paper's "scaled" variant.
    """
    if isinstance(module, (nn.Linear, nn.Conv2d)):
        fan_in = module.weight[0].numel() * density
        sigma = init.calculate_gain("relu") / math.sqrt(fan_in)
        signs = torch.randint(0, 2, module.weight.shape, generator=g, device=module.weight.device)
        with torch.no_grad():
            module.weight.copy_((signs * 2 - 1).to(module.weight.dtype) * sigma)


# model.init: weight initialisers applied after a model's own (lth.models.build_model)
WEIGHT_INITS = {"kaiming_normal": kaiming_normal_weights, "signed_kaiming_constant": signed_kaiming_constant}
