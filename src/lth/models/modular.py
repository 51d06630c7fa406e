"""Small networks for modular arithmetic (grokking: Power et al. 2022; Minegishi et al. 2023).

Inputs are the (2p,) vectors of `lth.data.modular_arithmetic`: one-hot(a) followed by one-hot(b). The embeddings
are bias-free nn.Linear layers on the one-hots (an embedding lookup, prunable like any weight).

Initialisation (both models): every weight ~ N(0, 1/fan_in), no biases except where stated (zero),
as in Minegishi et al.'s code (`weight_scale=1`: embedding, projections and unembedding all normal
with std 1/sqrt(input width)).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn import init

from lth.core.errors import LTHError


def _p_of(model: str, input_shape: tuple[int, ...]) -> int:
    if len(input_shape) != 1 or input_shape[0] % 2 or input_shape[0] < 2:
        raise LTHError(f"model {model!r} cannot take input_shape {tuple(input_shape)}: "
                       f"it needs (2p,), one-hot(a) followed by one-hot(b)")
    return input_shape[0] // 2


def normal_fan_in(m: nn.Linear, g: torch.Generator, std: float | None = None) -> None:
    """Weight ~ N(0, std^2) with std 1/sqrt(fan_in) unless given; bias (if any) 0."""
    init.normal_(m.weight, 0.0, 1 / math.sqrt(m.in_features) if std is None else std, generator=g)
    if m.bias is not None:
        init.zeros_(m.bias)


class ModMLP(nn.Module):
    """One-hidden-layer MLP on embedded operands ("MLP with embeddings" of Minegishi et al. 2023).

    e_a = embed(one-hot a), e_b = embed(one-hot b) (one table, shared by both operands, as in
    Minegishi et al.); logits = out(relu(hidden([e_a, e_b]))). Minegishi et al. sum e_a + e_b,
    which makes the network symmetric in (a, b) and so unable to learn a - b; the concatenation
    keeps the order. No biases, as in their code; their output is two bias-free linear maps
    (d_model -> d_emb -> p), here one. It groks on a CPU in under a minute: p=31, half the table for
    training, embed 32, hidden 128, full-batch AdamW (lr 3e-3, weight decay 1, betas 0.9/0.98) fits
    the training set in 100-200 steps and passes 95 % test accuracy after 3.5k-10k (8 seeds).
    """

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, embed: int = 128, hidden: int = 256):
        super().__init__()
        self.p = _p_of("mod_mlp", input_shape)
        self.embed = nn.Linear(self.p, embed, bias=False)
        self.hidden = nn.Linear(2 * embed, hidden, bias=False)
        self.out = nn.Linear(hidden, num_classes, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        e = torch.cat([self.embed(x[:, : self.p]), self.embed(x[:, self.p :])], dim=1)
        return self.out(F.relu(self.hidden(e)))

    def init_parameters(self, g: torch.Generator) -> None:
        for m in (self.embed, self.hidden, self.out):
            normal_fan_in(m, g)


class Block(nn.Module):
    """Pre-LN block: x + attn(ln(x)), then x + mlp(ln(x)); causal attention over the tokens (a
    decoder's), unless `causal` is False (lth.models.encoder's).

    q, k, v and the output projection are separate nn.Linear layers (not nn.MultiheadAttention's
    packed in_proj_weight), so that each is a prunable weight. The layer norms have no learned
    gain or bias: the convention is that only Linear/Conv2d/BatchNorm2d carry parameters, and an
    affine after the normalisation is absorbed exactly by the Linear layers that follow it (all of
    which have biases), so the family of functions is the same.
    """

    causal = True

    def __init__(self, dim: int, heads: int, mlp: int):
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(dim, elementwise_affine=False)
        self.q, self.k, self.v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)
        self.ln2 = nn.LayerNorm(dim, elementwise_affine=False)
        self.fc1 = nn.Linear(dim, mlp)
        self.fc2 = nn.Linear(mlp, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, d = x.shape
        h = self.ln1(x)
        q, k, v = (m(h).view(n, t, self.heads, d // self.heads).transpose(1, 2) for m in (self.q, self.k, self.v))
        a = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)
        x = x + self.proj(a.transpose(1, 2).reshape(n, t, d))
        return x + self.fc2(F.relu(self.fc1(self.ln2(x))))


def add_positions(h: torch.Tensor, pos: nn.Linear) -> torch.Tensor:
    """h (N, L, dim) plus the learned position table pos(one-hot positions) (L, dim). The one-hot
    positions go in as one (1, L, L) input shared by every example, and the table is added per group
    of examples it has: one group for a network, one per member for networks stacked for batched
    training (lth.training.batched gives each member its own table from a (1, ...) input). A layer
    never sees a shared input laid out as if it were examples."""
    length = h.shape[1]
    table = pos(torch.eye(length, dtype=h.dtype, device=h.device).unsqueeze(0))  # (groups, L, dim)
    return (h.unflatten(0, (table.shape[0], -1)) + table.unsqueeze(1)).flatten(0, 1)


class ModTransformer(nn.Module):
    """Decoder-only transformer on the two tokens (a, b), read out at the last position.

    As Power et al. 2022 (causal attention, learned positions, prediction from the last token),
    smaller: `layers` pre-LN blocks of width `dim`, `heads` heads, MLP width 4*dim, ReLU, a final
    layer norm. The token embedding is one bias-free nn.Linear(p, dim) shared by both positions;
    the learned positional embedding is a bias-free nn.Linear(2, dim) applied to one-hot positions
    (so it is an nn.Linear too: a prunable "fc" weight; `pruning.exclude: [pos]` keeps it dense).
    Init: N(0, 1/fan_in) weights, zero biases, and positions N(0, 1/p) so that they start at the
    scale of the token embedding. Deviation from Power et al.: no LayerNorm gain/bias (see Block).
    Minegishi et al.'s transformer has neither layer norms nor positions (Power et al.'s has both).
    """

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, dim: int = 64, heads: int = 4,
                 layers: int = 1):
        super().__init__()
        self.p = _p_of("mod_transformer", input_shape)
        if dim % heads:
            raise LTHError(f"model 'mod_transformer': dim={dim} is not a multiple of heads={heads}")
        self.embed = nn.Linear(self.p, dim, bias=False)
        self.pos = nn.Linear(2, dim, bias=False)
        self.blocks = nn.ModuleList(Block(dim, heads, 4 * dim) for _ in range(layers))
        self.ln = nn.LayerNorm(dim, elementwise_affine=False)
        self.out = nn.Linear(dim, num_classes)  # registered last: the output layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        tokens = torch.stack([x[:, : self.p], x[:, self.p :]], dim=1)  # (N, 2, p)
        h = add_positions(self.embed(tokens), self.pos)
        for block in self.blocks:
            h = block(h)
        return self.out(self.ln(h[:, -1]))

    def init_parameters(self, g: torch.Generator) -> None:
        for m in self.modules():
            if m is self.pos:
                normal_fan_in(m, g, std=1 / math.sqrt(self.p))
            elif isinstance(m, nn.Linear):
                normal_fan_in(m, g)
