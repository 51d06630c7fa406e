"""The networks of the lottery-ticket papers, built with a seeded, RNG-isolated initialisation.

Use `build_model`: it constructs the module under a forked global RNG (so PyTorch's own default
initialisation leaves the global state untouched) and then initialises every parameter from
`torch.Generator().manual_seed(seed)` alone, as the source paper / reference code does.
Same seed -> bitwise-identical state_dict, whatever else the process has drawn.

Only nn.Linear, nn.Conv2d and nn.BatchNorm2d carry parameters, and the output layer is the
last nn.Linear in `model.modules()` order: pruning relies on both.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn import init

from lth.errors import LTHError

__all__ = ["MODELS", "build_model", "output_layer_name"]


# --- initialisers (all draw from an explicit generator) ----------------------------------


def _torch_default_bias(m: nn.Linear | nn.Conv2d, g: torch.Generator) -> None:
    """PyTorch's default bias init: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    if m.bias is not None:
        fan_in = m.weight[0].numel()
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        init.uniform_(m.bias, -bound, bound, generator=g)


def _torch_default(m: nn.Linear | nn.Conv2d, g: torch.Generator) -> None:
    """PyTorch's `reset_parameters()` for Linear/Conv2d, same draws in the same order."""
    init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=g)
    _torch_default_bias(m, g)


def _glorot_zero(m: nn.Linear | nn.Conv2d, g: torch.Generator) -> None:
    """Frankle & Carbin 2019: Gaussian Glorot weights, zero biases."""
    init.xavier_normal_(m.weight, generator=g)
    if m.bias is not None:
        init.zeros_(m.bias)


def _openlth(module: nn.Module, g: torch.Generator) -> None:
    """OpenLTH `kaiming_normal` + `uniform` batchnorm init for one module.

    OpenLTH's initializer only replaces `.weight`; biases keep PyTorch's default, which we
    reproduce (from `g`). BatchNorm: weight ~ U(0, 1), bias 0.
    """
    if isinstance(module, (nn.Linear, nn.Conv2d)):
        init.kaiming_normal_(module.weight, generator=g)
        _torch_default_bias(module, g)
    elif isinstance(module, nn.BatchNorm2d):
        init.uniform_(module.weight, 0.0, 1.0, generator=g)
        init.zeros_(module.bias)


# --- shape helpers -----------------------------------------------------------------------


def _image_size_after_pools(model: str, shape: tuple[int, ...], pools: int) -> tuple[int, int, int]:
    """(C, H, W) after `pools` 2x2 stride-2 poolings; refuse shapes that would pool to nothing."""
    need = 2**pools
    if len(shape) != 3 or shape[1] < need or shape[2] < need:
        why = f" with H and W >= {need} ({pools} 2x2 poolings)" if pools else ""
        raise LTHError(
            f"model {model!r} cannot take input_shape {shape}: it needs an image shape (C, H, W){why}"
        )
    c, h, w = shape
    return c, h // need, w // need


# --- architectures -----------------------------------------------------------------------


class ResidualMLP(nn.Module):
    """Residual MLP of Greydanus 2020 (MNIST-1D lottery-ticket notebook, `SparseMLP`).

    h1 = relu(linear1(x)); h2 = h1 + relu(linear2(h1)); logits = linear3(h2).
    PyTorch's default Linear init, as in the notebook.
    """

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, hidden: int = 100):
        super().__init__()
        self.linear1 = nn.Linear(math.prod(input_shape), hidden)
        self.linear2 = nn.Linear(hidden, hidden)
        self.linear3 = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.linear1(x.flatten(1)))
        h = h + F.relu(self.linear2(h))
        return self.linear3(h)

    def init_parameters(self, g: torch.Generator) -> None:
        for m in (self.linear1, self.linear2, self.linear3):
            _torch_default(m, g)


class LeNet300100(nn.Module):
    """LeNet-300-100 of Frankle & Carbin 2019 (from LeCun et al. 1998): in-300-100-out, ReLU."""

    def __init__(self, input_shape: tuple[int, ...], num_classes: int):
        super().__init__()
        self.fc1 = nn.Linear(math.prod(input_shape), 300)
        self.fc2 = nn.Linear(300, 100)
        self.fc3 = nn.Linear(100, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.fc1(x.flatten(1)))
        x = F.relu(self.fc2(x))
        return self.fc3(x)

    def init_parameters(self, g: torch.Generator) -> None:
        for m in (self.fc1, self.fc2, self.fc3):
            _glorot_zero(m, g)


class ConvNet(nn.Module):
    """Conv-2/4/6 of Frankle & Carbin 2019 (VGG-like, after Simonyan & Zisserman 2014).

    Pairs of 3x3 same-padded conv+ReLU (64, 128, 256 channels), a 2x2 max-pool after each pair,
    then FC 256-256-out with ReLU.
    """

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, *, depth: int):
        super().__init__()
        pairs = depth // 2
        c, h, w = _image_size_after_pools(f"conv{depth}", input_shape, pairs)
        layers: list[nn.Module] = []
        for width in (64, 128, 256)[:pairs]:
            layers += [nn.Conv2d(c, width, 3, padding=1), nn.ReLU(),
                       nn.Conv2d(width, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
            c = width
        self.features = nn.Sequential(*layers)
        self.fc1 = nn.Linear(c * h * w, 256)
        self.fc2 = nn.Linear(256, 256)
        self.fc3 = nn.Linear(256, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x).flatten(1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)

    def init_parameters(self, g: torch.Generator) -> None:
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                _glorot_zero(m, g)


class _BasicBlock(nn.Module):
    """He et al. 2016 basic block; projection shortcut (1x1 conv + BN) when the shape changes."""

    def __init__(self, f_in: int, f_out: int, downsample: bool):
        super().__init__()
        stride = 2 if downsample else 1
        self.conv1 = nn.Conv2d(f_in, f_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(f_out)
        self.conv2 = nn.Conv2d(f_out, f_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(f_out)
        if downsample or f_in != f_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(f_in, f_out, 1, stride=stride, bias=False), nn.BatchNorm2d(f_out)
            )
        else:
            self.shortcut = nn.Sequential()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet20(nn.Module):
    """CIFAR ResNet-20 of He et al. 2016 as in OpenLTH `cifar_resnet_20[_W]`.

    Stem 3x3 conv + BN + ReLU, three stages of 3 basic blocks (W, 2W, 4W channels; stride 2
    entering stages 2 and 3), global average pool, Linear 4W -> out.
    """

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, width: int = 16):
        super().__init__()
        c = _image_size_after_pools("resnet20", input_shape, 0)[0]
        self.conv = nn.Conv2d(c, width, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(width)
        blocks, f_in = [], width
        for stage, f_out in enumerate((width, 2 * width, 4 * width)):
            for i in range(3):
                blocks.append(_BasicBlock(f_in, f_out, downsample=stage > 0 and i == 0))
                f_in = f_out
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(4 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.blocks(F.relu(self.bn(self.conv(x))))
        return self.fc(out.mean(dim=(2, 3)))

    def init_parameters(self, g: torch.Generator) -> None:
        for m in self.modules():
            _openlth(m, g)


_VGG_PLANS = {
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
         512, 512, 512, 512, "M", 512, 512, 512, 512],
}


class _ConvBN(nn.Module):
    """One VGG module: 3x3 conv (with bias, as OpenLTH) + BN + ReLU."""

    def __init__(self, f_in: int, f_out: int):
        super().__init__()
        self.conv = nn.Conv2d(f_in, f_out, 3, padding=1)
        self.bn = nn.BatchNorm2d(f_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class VGG(nn.Module):
    """CIFAR VGG-16/19 (Simonyan & Zisserman 2014) with BatchNorm as in OpenLTH `cifar_vgg_N`.

    Conv plan with 4 max-pools, then AvgPool2d(2) and one Linear (512 inputs on 32x32 images).
    """

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, *, depth: int):
        super().__init__()
        _, h, w = _image_size_after_pools(f"vgg{depth}", input_shape, 5)  # 4 max + 1 avg pool
        layers: list[nn.Module] = []
        c = input_shape[0]
        for spec in _VGG_PLANS[depth]:
            if spec == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers.append(_ConvBN(c, spec))
                c = spec
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AvgPool2d(2)
        self.fc = nn.Linear(c * h * w, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.layers(x)).flatten(1))

    def init_parameters(self, g: torch.Generator) -> None:
        for m in self.modules():
            _openlth(m, g)


# --- registry ----------------------------------------------------------------------------

MODELS: dict[str, Callable[..., nn.Module]] = {
    "mlp1d": ResidualMLP,
    "lenet_300_100": LeNet300100,
    "conv2": partial(ConvNet, depth=2),
    "conv4": partial(ConvNet, depth=4),
    "conv6": partial(ConvNet, depth=6),
    "resnet20": ResNet20,
    "vgg16": partial(VGG, depth=16),
    "vgg19": partial(VGG, depth=19),
}
"""name -> constructor(input_shape, num_classes, **options). Call `build_model`, not these:
they leave PyTorch's default (global-RNG) initialisation in place."""

# The options each model accepts (all positive ints); anything else is refused by name.
_OPTIONS: dict[str, tuple[str, ...]] = {"mlp1d": ("hidden",), "resnet20": ("width",)}


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def build_model(
    name: str, input_shape: tuple[int, ...], num_classes: int, *, seed: int, **options
) -> nn.Module:
    """Build model `name` for inputs of `input_shape` (no batch dim), initialised from `seed` only.

    Raises LTHError for an unknown name or option, a bad option value, or an input shape the
    architecture cannot take. Leaves the global torch RNG untouched.
    """
    if name not in MODELS:
        raise LTHError(f"unknown model {name!r}; known models: {', '.join(MODELS)}")
    allowed = _OPTIONS.get(name, ())
    for key, value in options.items():
        if key not in allowed:
            takes = ", ".join(allowed) if allowed else "no options"
            raise LTHError(f"unknown option {key!r} for model {name!r} (it takes: {takes})")
        if not _positive_int(value):
            raise LTHError(f"option {key!r} of model {name!r} must be a positive integer, got {value!r}")
    shape = tuple(input_shape) if isinstance(input_shape, (tuple, list)) else None
    if not shape or not all(_positive_int(d) for d in shape):
        raise LTHError(
            f"model {name!r}: input_shape must be a non-empty tuple of positive ints, got {input_shape!r}"
        )
    if not _positive_int(num_classes):
        raise LTHError(f"model {name!r}: num_classes must be a positive integer, got {num_classes!r}")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise LTHError(f"model {name!r}: seed must be an integer, got {seed!r}")

    # PyTorch's constructors draw their default init from the global RNG: fork it, so the global
    # state is left as it was, then re-initialise every parameter from g. (Building on the meta
    # device instead costs ~1.5 s of lazy imports per process, more than a small training run.)
    with torch.random.fork_rng(devices=[]):
        model = MODELS[name](shape, num_classes, **options)
    model.init_parameters(torch.Generator().manual_seed(seed))
    return model


def output_layer_name(model: nn.Module) -> str:
    """Name of the output layer (the last nn.Linear), e.g. "fc" -> parameters "fc.weight", "fc.bias"."""
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not names:
        raise LTHError(f"{type(model).__name__} has no nn.Linear output layer")
    return names[-1]
