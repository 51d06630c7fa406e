"""Magnitude: the smallest weights by absolute value go first (Frankle & Carbin 2019)."""

from __future__ import annotations


def score(weights, mask, context) -> dict:
    return {name: weights[name].detach().abs().float().cpu() for name in mask}
