"""Stage 5, ticket transfer: what carries over from a source ticket to a target dataset.

The target model is the source architecture (it keeps the source's input shape). Its output
head is new (fresh init, unpruned) when the numbers of classes differ, else it is the source's.
Target inputs are adapted to the source's shape once, on tensors, where that is meaningful:
grayscale <-> colour (repeat the channel / average the channels) and a bilinear resize of the
image. Other shape changes (a 1-D signal to an image, different signal lengths) are refused.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import torch
import torch.nn.functional as F

from lth.errors import LTHError


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


def head_is_new(source_state: Mapping[str, torch.Tensor], model: torch.nn.Module, head: str) -> bool:
    return tuple(source_state[f"{head}.weight"].shape) != tuple(model.state_dict()[f"{head}.weight"].shape)


def load_source_weights(model: torch.nn.Module, source_state: Mapping[str, torch.Tensor], head: str,
                        where: str = "source weights") -> None:
    """Copy the source's weights into the target model, all but a replaced head; a layer missing, of
    another shape, or extra is refused by name (`where`: what the weights are, for the message)."""
    new_head = head_is_new(source_state, model, head)
    own = model.state_dict()
    for name, value in own.items():
        if new_head and name.startswith(f"{head}."):
            continue
        if name not in source_state:
            raise LTHError(f"{where}: no layer {name!r}: not this architecture")
        if tuple(source_state[name].shape) != tuple(value.shape):
            raise LTHError(f"{where}: layer {name!r} is {tuple(source_state[name].shape)} there, "
                           f"{tuple(value.shape)} here: not this architecture")
    extra = sorted(set(source_state) - set(own))
    if extra:
        raise LTHError(f"{where}: layers this model lacks: {extra[:5]}")
    model.load_state_dict({k: v for k, v in source_state.items() if not (new_head and k.startswith(f"{head}."))},
                          strict=False)


def target_mask(source_mask: Mapping[str, torch.Tensor], model: torch.nn.Module, head: str) -> dict:
    """The source mask, layer by layer; a replaced head is unpruned (all ones)."""
    params = dict(model.named_parameters())
    out = {}
    for name, m in source_mask.items():
        if tuple(m.shape) == tuple(params[name].shape):
            out[name] = m.clone()
        elif name == f"{head}.weight":
            out[name] = torch.ones_like(params[name], dtype=torch.bool)
        else:
            raise LTHError(f"source mask of '{name}' has shape {tuple(m.shape)}, the target model's is "
                           f"{tuple(params[name].shape)}")
    return out
