"""A transfer target's inputs adapted to the source model's input shape, once, on tensors, where
that is meaningful: grayscale <-> colour (repeat the channel / average the channels) and a bilinear
resize of the image. Other shape changes (a 1-D signal to an image, different signal lengths) are
refused when the config is checked (lth.plan.checks.check_adaptable).
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F


def adapt_inputs(x: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """(N, *target shape) -> (N, *shape): channel repeat/average, then bilinear resize."""
    if tuple(x.shape[1:]) == tuple(shape):
        return x
    c, h, w = shape
    if x.shape[1] != c:
        x = x.repeat(1, c, 1, 1) if x.shape[1] == 1 else x.mean(1, keepdim=True)
    if tuple(x.shape[2:]) != (h, w):
        x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
    return x.contiguous()


def adapt_splits(splits, shape: tuple[int, ...]):
    """The target's splits with every input adapted to the source model's input shape."""
    return dataclasses.replace(splits, **{name: adapt_inputs(getattr(splits, name), shape)
                                          for name in ("x_train", "x_val", "x_test")})
