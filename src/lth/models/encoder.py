"""A small bidirectional transformer encoder (BERT-like) for token sequences (lth.data.grammar).

Inputs of shape (L, T): L positions of T-way one-hot tokens (flattened (L*T,) inputs are reshaped),
token 1 being MASK (`MASK`: the convention of the token datasets, lth.data.grammar's too; a test
keeps the two equal, so that the model need not import a data generator). A 1-D input shape (L,)
is read as L positions of one scalar feature each (a signal such as mnist1d's). Every parameter is an nn.Linear: the token embedding
(bias-free, on the one-hots), the learned positions (bias-free, on one-hot positions), the blocks'
projections and MLPs, and the output head, registered last (the pipeline's output layer).

Structured units (`Encoder.units`, for lth.analyses.earlybird_detector's structured mode): each block's attention heads
and feed-forward neurons, each as the slices of the parameters that belong to it alone. Head h of a
block with head size dh is rows h*dh:(h+1)*dh of the q, k and v weights and biases (its queries,
keys and values) and columns h*dh:(h+1)*dh of proj.weight (what it writes back); neuron j is row j
of fc1.weight, fc1.bias[j] and column j of fc2.weight. proj.bias and fc2.bias belong to no unit.
Zeroing a unit's proj (fc2) columns alone removes its contribution exactly, whatever its other
slices hold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from lth.core.errors import LTHError
from lth.models.modular import Block, add_positions, normal_fan_in

MASK = 1  # the channel of the MASK token in one-hot token inputs



@dataclass(frozen=True)
class Unit:
    """One structured unit of a block: an attention head or a feed-forward neuron (module docstring).

    slices: (parameter name, dim, start, stop): entries start:stop of dimension `dim` (0: rows, 1:
    columns) of that parameter; a bias has dim 0.
    """

    layer: str  # the block's module name, e.g. "blocks.0"
    kind: str  # "head" | "neuron"
    index: int  # the head's or neuron's number in its block
    slices: tuple[tuple[str, int, int, int], ...]


class EncoderBlock(Block):
    """lth.models.modular's pre-LN block with attention over all positions (not causal): q, k, v
    and the attention output separate nn.Linear layers, layer norms without gain or bias, ReLU MLP."""

    causal = False

    def units(self, prefix: str = "") -> list[Unit]:
        """This block's heads, then its feed-forward neurons (module docstring); parameter names
        prefixed with `prefix` (the block's module name)."""
        at = f"{prefix}." if prefix else ""
        dh = self.q.out_features // self.heads
        heads = [Unit(prefix, "head", h, tuple((f"{at}{m}.{p}", 0, h * dh, (h + 1) * dh)
                                               for m in ("q", "k", "v") for p in ("weight", "bias"))
                      + ((f"{at}proj.weight", 1, h * dh, (h + 1) * dh),))
                 for h in range(self.heads)]
        neurons = [Unit(prefix, "neuron", j, ((f"{at}fc1.weight", 0, j, j + 1), (f"{at}fc1.bias", 0, j, j + 1),
                                               (f"{at}fc2.weight", 1, j, j + 1)))
                   for j in range(self.fc1.out_features)]
        return heads + neurons


class Encoder(nn.Module):
    """Bidirectional transformer encoder with a classification head (pre-LN, learned positions).

    `layers` blocks of width `dim` with `heads` heads, MLP width 4*dim, a final layer norm (no
    affine), then `out`. Readout: the hidden state at the MASK position where a sequence has one
    (masked-token pre-training: the head predicts the hidden token), else at position 0 (CLS:
    sequence classification); the first MASK if there are several. Init: N(0, 1/fan_in) weights,
    zero biases, positions N(0, 1/T) so that they start at the token embedding's scale.
    """

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, dim: int = 64, heads: int = 4,
                 layers: int = 2):
        super().__init__()
        shape = tuple(input_shape)
        if len(shape) not in (1, 2):
            raise LTHError(f"model 'encoder' cannot take input_shape {shape}: it needs (positions, tokens) "
                           f"or (positions,)")
        self.length, self.tokens = (shape[0], 1) if len(shape) == 1 else shape
        if dim % heads:
            raise LTHError(f"model 'encoder': dim={dim} is not a multiple of heads={heads}")
        self.embed = nn.Linear(self.tokens, dim, bias=False)
        self.pos = nn.Linear(self.length, dim, bias=False)
        self.blocks = nn.ModuleList(EncoderBlock(dim, heads, 4 * dim) for _ in range(layers))
        self.ln = nn.LayerNorm(dim, elementwise_affine=False)
        self.out = nn.Linear(dim, num_classes)  # registered last: the output layer

    def readout(self, x: torch.Tensor) -> torch.Tensor:
        """Per example of (N, L, T) inputs, the position read out: the first MASK, else 0."""
        if self.tokens <= MASK:
            return torch.zeros(len(x), dtype=torch.long, device=x.device)
        masked = x[:, :, MASK] > 0.5
        return torch.where(masked.any(1), masked.to(torch.uint8).argmax(1), 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(len(x), self.length, self.tokens)
        h = add_positions(self.embed(x), self.pos)
        for block in self.blocks:
            h = block(h)
        return self.out(self.ln(h[torch.arange(len(x), device=x.device), self.readout(x)]))

    def units(self) -> list[Unit]:
        """Every block's attention heads and feed-forward neurons, block by block (module docstring)."""
        return [u for b, block in enumerate(self.blocks) for u in block.units(f"blocks.{b}")]

    def init_parameters(self, g: torch.Generator) -> None:
        for m in self.modules():
            if m is self.pos:
                normal_fan_in(m, g, std=1 / math.sqrt(self.tokens))
            elif isinstance(m, nn.Linear):
                normal_fan_in(m, g)
