"""Conv-2/4/6 of Frankle & Carbin 2019."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lth.models.init import glorot_zero, image_size_after_pools


class ConvNet(nn.Module):
    """Conv-2/4/6 of Frankle & Carbin 2019 (VGG-like, after Simonyan & Zisserman 2014).

    Pairs of 3x3 same-padded conv+ReLU (64, 128, 256 channels), a 2x2 max-pool after each pair,
    then FC 256-256-out with ReLU.
    """

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, *, depth: int):
        super().__init__()
        pairs = depth // 2
        c, h, w = image_size_after_pools(f"conv{depth}", input_shape, pairs)
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
                glorot_zero(m, g)
