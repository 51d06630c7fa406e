"""Weights and masks carried into another network: a source ticket to a transfer target (stage 5),
and a pre-trained network to an experiment's theta_0 (model.pretrained).

The target model is the source architecture (it keeps the source's input shape; its inputs are
adapted by lth.data.adapt). Its output head is new (fresh init, unpruned) when the numbers of
classes differ, else it is the source's.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from lth.core.errors import LTHError


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
            out[name] = torch.ones(params[name].shape, dtype=torch.bool, device=m.device)
        else:
            raise LTHError(f"source mask of '{name}' has shape {tuple(m.shape)}, the target model's is "
                           f"{tuple(params[name].shape)}")
    return out


def load_into(model, state: Mapping[str, torch.Tensor], head: str, path: str) -> None:
    """Copy pre-trained weights (`state`, read from `path`) into `model`, all but an output layer of
    another size; a layer missing or of another shape is refused by name."""
    load_source_weights(model, state, head, where=f"{path}: the pre-trained network")
