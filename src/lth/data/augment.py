"""Crop and flip augmentation of image batches, drawn from a seeded generator."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def augment_batch(x: torch.Tensor, generator: torch.Generator, padding: int = 4) -> torch.Tensor:
    """Random crop (zero padding of `padding` pixels) + horizontal flip (p=0.5) of an (N,C,H,W) batch.

    Vectorised: pad once, then gather every example's window with per-example row/column
    indices (flipped columns for flipped examples). The random draws (row offsets, column
    offsets, flips, in that order) come from `generator` alone, so a seeded generator makes
    the augmentation reproducible.
    """
    if x.dim() != 4:
        raise ValueError(f"augment_batch expects an (N, C, H, W) tensor, got shape {tuple(x.shape)}")
    n, c, h, w = x.shape
    gdev = generator.device
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=gdev).to(x.device)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=gdev).to(x.device)
    flip = (torch.rand(n, generator=generator, device=gdev) < 0.5).to(x.device)
    padded = F.pad(x, (padding, padding, padding, padding))
    rows = dy[:, None] + torch.arange(h, device=x.device)  # (N, H)
    cols = dx[:, None] + torch.arange(w, device=x.device)  # (N, W)
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    return padded[
        torch.arange(n, device=x.device)[:, None, None, None],
        torch.arange(c, device=x.device)[None, :, None, None],
        rows[:, None, :, None],
        cols[:, None, None, :],
    ]
