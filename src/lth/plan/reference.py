"""An experiment's `reference` (schemas/reference.schema.yaml) checked against its plan when the config
is read: every claim names a variant the experiment trains, a metric it records and a density it
reaches, so that a claim cannot silently evaluate to nothing in the report (lth.report.claims).
Torch-free: densities of an IMP experiment are bounded from its rates, not computed on the model."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from lth.core import parts
from lth.core.errors import LTHError
from lth.plan.variants import DENSE

# summary.csv's numbers a claim may compare (lth.store.summary.COLUMNS without keys and bookkeeping)
METRICS = ("test_accuracy", "best_val_accuracy", "early_stop_iteration", "train_accuracy",
           "early_stop_test_accuracy", "test_loss")
NEAREST = 1.25  # a claim `at` a density is evaluated at the level nearest in weights remaining, within this ratio


def needs(s: Mapping[str, Any]) -> list[str]:
    """What the experiment needs beyond an offline CPU: its reference's `needs`, and a download when a
    dataset it trains on (transfer targets included) comes from torchvision."""
    out = list(s["reference"].get("needs") or [])
    datasets = [s["dataset"]["name"], *(t["dataset"]["name"] for t in s["transfer"]["targets"].values())]
    if "download" not in out and any(parts.DATASETS[d].downloadable for d in datasets):
        out.append("download")
    return out


def check(plan, where: str) -> None:
    """LTHError "<where>.reference.claims[i].<key>: ..." for a claim its experiment cannot answer."""
    s = plan.settings
    for i, c in enumerate(s.reference.get("claims") or []):
        at = f"{where}.reference.claims[{i}]"
        if c.get("target") is not None and c["target"] not in s.transfer.targets:
            raise LTHError(f"{at}.target: {c['target']!r} is not a transfer target of this experiment "
                           f"({', '.join(s.transfer.targets) or 'none'})")
        trained = {k.variant for k in plan.runs() if (k.target or None) == c.get("target")}
        if "versus" not in c and not c.get("analysis"):
            raise LTHError(f"{at}: no versus: name the variant it is compared with (dense: the dense run) or a number")
        if c.get("at") is not None and c.get("between") is not None:
            raise LTHError(f"{at}: at and between both given: a claim holds at one density or over a range")
        if c.get("analysis") is not None:
            _check_analysis(c, s, at)
            continue
        for key in ("variant", "versus"):
            if isinstance(c.get(key), str) and c[key] not in trained:
                raise LTHError(f"{at}.{key}: {c[key]!r} is not a variant of this experiment; it trains: "
                               f"{', '.join(sorted(trained))}")
        if "variant" not in c:
            raise LTHError(f"{at}: no variant: name the variant the claim is about")
        if c["metric"] not in METRICS:
            raise LTHError(f"{at}.metric: {c['metric']!r} is not a column of summary.csv; one of {', '.join(METRICS)}"
                           f" (or name an analysis)")
        if c["variant"] != DENSE:
            _check_density(c, plan, at)
        if c.get("versus_at") is not None:
            _check_density({"at": c["versus_at"]}, plan, at, "versus_at")


def _check_analysis(c: Mapping[str, Any], s, at: str) -> None:
    if c["analysis"] not in (s.get("analyses") or []):
        raise LTHError(f"{at}.analysis: {c['analysis']!r} is not one of this experiment's analyses "
                       f"({', '.join(s.get('analyses') or []) or 'none'})")
    if not isinstance(c.get("versus"), (int, float)) and c.get("versus_where") is None and not c.get("versus_metric"):
        raise LTHError(f"{at}: an analysis claim compares with a number (versus: <value>) or other rows "
                       f"(versus_where: {{column: value}})")


def _check_density(c: Mapping[str, Any], plan, at: str, name: str = "") -> None:
    """`at` or `between` must reach a level: a one-shot sweep's densities, or for IMP the range a round's
    weights remaining can lie in, between (1 - largest rate)^l and (1 - smallest rate)^l."""
    wanted = [c["at"]] if c.get("at") is not None else list(c.get("between") or [])
    if not wanted:
        raise LTHError(f"{at}: no at or between: say at which fraction of the weights the claim holds")
    low, high = min(wanted), max(wanted)
    reached = _reachable(plan)
    if c.get("at") is not None:
        ok = any(lo / NEAREST <= low <= hi * NEAREST for lo, hi in reached)
    else:
        ok = any(lo <= high and hi >= low for lo, hi in reached)
    if not ok:
        got = ", ".join(f"{lo:.4g}" if lo == hi else f"{lo:.3g}-{hi:.3g}" for lo, hi in reached)
        key = "at" if c.get("at") is not None else "between"
        raise LTHError(f"{at}.{name or key}: {c.get(key)} weights remaining is no level of this experiment "
                       f"(its levels keep {got})")


def _reachable(plan) -> list[tuple[float, float]]:
    s = plan.settings
    if s.kind == "oneshot":
        return [(lv / 10000, lv / 10000) for lv in plan.levels()]
    rates = [float(r) for r in (s.pruning.rates.values() if s.pruning.strategy == "layerwise"
                                else [s.pruning.get("global_rate", 0.2)])]
    most, least = max(rates), min(rates)
    return [(math.pow(1 - most, lv), math.pow(1 - least, lv)) for lv in plan.levels() if lv > 0]
