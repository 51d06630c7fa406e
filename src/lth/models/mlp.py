"""Fully-connected models: the residual MLP of Greydanus 2020 and LeNet-300-100 of Frankle & Carbin 2019."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from lth.models.init import glorot_zero, torch_default


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
            torch_default(m, g)


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
            glorot_zero(m, g)
