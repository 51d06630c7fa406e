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


def _by_magnitude(m: Mapping[str, Any], at: str, mode: str) -> None:
    if m["score"] != "magnitude":
        raise LTHError(f"{at}: train: {mode} removes the weights of smallest magnitude: it takes score: magnitude, "
                       f"got {m['score']!r}")


def _three_quarters(s: Mapping[str, Any]) -> int:
    """An unset end of a schedule: three quarters of the budget, the last quarter trained at the target."""
    return max(1, 3 * s["training"]["iterations"] // 4)


def gmp(m: Mapping[str, Any], s: Mapping[str, Any], at: str) -> None:
    """Gradual magnitude pruning ranks by magnitude, per layer or globally, and reaches its density
    within the iterations the runs train (steps counted in optimiser updates)."""
    _by_magnitude(m, at, "gmp")
    if m["distribution"] == "module":
        raise LTHError(f"{at}: train: gmp keeps the same density per layer (uniform), an erk share of it, or ranks "
                       f"globally: it takes distribution uniform, erk or global, got 'module'")
    g, T, k = m["gmp"], s["training"]["iterations"], s["rewind_iteration"]
    if g["end"] is None:
        g["end"] = _three_quarters(s)
    if g["end"] > T:
        raise LTHError(f"{at}.gmp.end: {g['end']} is beyond training.iterations = {T}: the density would not reach "
                       f"its target")
    if g["start"] >= g["end"]:
        raise LTHError(f"{at}.gmp.start: {g['start']} is not before gmp.end = {g['end']}")
    if g["start"] < k:
        raise LTHError(f"{at}.gmp.start: {g['start']} is before the runs' first step (they train from "
                       f"rewind_iteration = {k})")
    if g["frequency"] > g["end"] - g["start"]:
        raise LTHError(f"{at}.gmp.frequency: {g['frequency']} is more than gmp.end - gmp.start = "
                       f"{g['end'] - g['start']}: no pruning step before the end")


def _sparse_start(m: Mapping[str, Any], s: Mapping[str, Any], at: str, mode: str, last: int) -> None:
    """SET and RigL: a random start per layer, and at least one update of its connections by step `last`
    (steps counted in optimiser updates, from rewind_iteration + 1)."""
    _by_magnitude(m, at, mode)
    if m["distribution"] not in ("erk", "uniform"):
        raise LTHError(f"{at}: train: {mode} starts from a random mask with a count per layer: it takes distribution "
                       f"erk (the paper's) or uniform, got {m['distribution']!r}")
    dt, k = m[mode]["delta_t"], s["rewind_iteration"]
    if (k // dt + 1) * dt > last:
        raise LTHError(f"{at}.{mode}.delta_t: {dt} leaves no update of the connections in steps {k + 1} to {last} "
                       f"(rewind_iteration = {k}, training.iterations = {s['training']['iterations']})")


def set_(m: Mapping[str, Any], s: Mapping[str, Any], at: str) -> None:
    """SET (its mode's name, less the builtin): see _sparse_start."""
    _sparse_start(m, s, at, "set", s["training"]["iterations"])


def rigl(m: Mapping[str, Any], s: Mapping[str, Any], at: str) -> None:
    """RigL: as SET, its updates stop at t_end, within the budget (at t_end the cosine is 0: the last
    update that changes anything comes before it)."""
    r, T = m["rigl"], s["training"]["iterations"]
    if r["t_end"] is None:
        r["t_end"] = _three_quarters(s)
    if r["t_end"] > T:
        raise LTHError(f"{at}.rigl.t_end: {r['t_end']} is beyond training.iterations = {T}")
    _sparse_start(m, s, at, "rigl", r["t_end"] - 1)
