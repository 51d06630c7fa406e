"""CIFAR ResNet-20 (He et al. 2016) as OpenLTH builds it."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lth.models.init import image_size_after_pools, openlth


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
        c = image_size_after_pools("resnet20", input_shape, 0)[0]
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
            openlth(m, g)
