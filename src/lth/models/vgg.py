"""CIFAR VGG-16/19 with BatchNorm as OpenLTH builds them."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lth.models.init import image_size_after_pools, openlth

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
        _, h, w = image_size_after_pools(f"vgg{depth}", input_shape, 5)  # 4 max + 1 avg pool
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
            openlth(m, g)
