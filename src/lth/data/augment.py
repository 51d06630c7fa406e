"""Crop and flip augmentation of image batches. Its random draws (row offsets, column offsets, flips,
in that order) come from a seeded CPU generator (`draw_augment`), so a run's augmentation is the
same on every device; they are applied on the batch's own device (`apply_augment`), vectorised:
pad once, then gather every example's window with per-example row and column indices (flipped
columns for flipped examples)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

PADDING = 4  # pixels of zero padding a crop may shift by


def draw_augment(n: int, generator: torch.Generator, padding: int = PADDING) -> torch.Tensor:
    """(3, n) int64 on the generator's device: each example's row offset, column offset, and flip (0/1)."""
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=generator.device)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=generator.device)
    flip = torch.rand(n, generator=generator, device=generator.device) < 0.5
    return torch.stack([dy, dx, flip.long()])


def apply_augment(x: torch.Tensor, params: torch.Tensor, padding: int = PADDING) -> torch.Tensor:
    """Random crop (zero padding of `padding` pixels) + horizontal flip of an (N, C, H, W) batch, as
    `params` (from `draw_augment`, on x's device) say."""
    if x.dim() != 4:
        raise ValueError(f"augmentation expects an (N, C, H, W) tensor, got shape {tuple(x.shape)}")
    n, c, h, w = x.shape
    dy, dx, flip = params[0], params[1], params[2].bool()
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


def augment_batch(x: torch.Tensor, generator: torch.Generator, padding: int = PADDING) -> torch.Tensor:
    """`x` cropped and flipped by draws from `generator` (what a training step does, in one call)."""
    if x.dim() != 4:
        raise ValueError(f"augment_batch expects an (N, C, H, W) tensor, got shape {tuple(x.shape)}")
    return apply_augment(x, draw_augment(len(x), generator, padding).to(x.device), padding)
