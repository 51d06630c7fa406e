"""A linear model for "Lottery Tickets in Linear Models" (Elesedy, Kanade, Teh 2020): one bias-free
nn.Linear from the features to one output (regression) or two class logits (logistic regression as
a softmax over two classes, whose difference of rows is the logistic weight vector).

It starts at zero (`init_parameters`): gradient descent on least squares from zero ends at the
minimum-norm solution, so a ticket rewound to theta_0 = 0 retrains to the least-squares fit on the
features its mask keeps, the setting of the paper's analysis.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class LinearModel(nn.Module):
    def __init__(self, input_shape: tuple[int, ...], num_classes: int):
        super().__init__()
        self.linear = nn.Linear(math.prod(input_shape), num_classes, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1))

    def init_parameters(self, g: torch.Generator) -> None:
        with torch.no_grad():
            self.linear.weight.zero_()
