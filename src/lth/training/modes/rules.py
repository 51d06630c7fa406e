"""What each training mode takes from a one-shot method's settings: the registered `check` of a
mode (lth.core.parts.TRAINING_MODES), called with (method, experiment, where) when the config is
checked. Torch-free: the workflow runs these when it is parsed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lth.core.errors import LTHError


def iht(m: Mapping[str, Any], s: Mapping[str, Any], at: str) -> None:
    """Iterative hard thresholding ranks by magnitude, globally or per layer, and reaches its density
    within the budget."""
    if m["score"] != "magnitude" or m["distribution"] not in ("global", "uniform"):
        raise LTHError(f"{at}: train: iht thresholds by magnitude, globally or per layer: it takes "
                       f"score: magnitude and distribution global or uniform")
    if m["iht"]["warmup"] + m["iht"]["ramp"] >= s["training"]["iterations"]:
        raise LTHError(f"{at}.iht: warmup + ramp = {m['iht']['warmup'] + m['iht']['ramp']} leaves no "
                       f"iteration at the target density (training.iterations = {s['training']['iterations']})")


def edgepopup(m: Mapping[str, Any], s: Mapping[str, Any], at: str) -> None:
    """Edge-popup keeps the same fraction of every layer."""
    if m["distribution"] != "uniform":
        raise LTHError(f"{at}: train: edgepopup keeps the same fraction of every layer (Ramanujan et al. 2020): "
                       f"it takes distribution: uniform, got {m['distribution']!r}")
