"""The report's numbers and tables, computed from loaded results (no matplotlib, so that they are
cheap to compute and unit-testable on small tables): means per level, differences between variants
with 95 % intervals over seeds, ours beside the paper's, the transfer table, and the curves."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from lth.core.parts import EXPERIMENT_KINDS
from lth.plan.variants import DENSE
from lth.report.tables import Results

# The known variants in the order tables and figures list them, each with a fixed colour (drawn by
# lth.report.figures), so that a variant looks the same in every figure and every report.
# Transfer (lth.jobs.transfer) has ticket_transfer, mask_transfer (its control) and random_prune: like the source's.
COLOURS = {DENSE: "0.35", "ticket": "C0", "ticket_transfer": "C0", "reinit": "C1", "mask_transfer": "C1",
           "random_prune": "C2", "lr_rewind": "C3", "finetune": "C4"}
CHAIN_HEADS = ("ticket", "lr_rewind", "finetune")  # variants whose masks differ (the baselines share the ticket's)
CONTROLS = ("random_prune", "reinit")  # the ticket's controls: its mask with a new init, a random mask with its init
SWEEP_CONTROLS = ("shuffle", "reinit")  # a one-shot method's (lth.plan.oneshot): variants <method>-<control>
CONFIDENCE = 0.95


def by_level(summary: pd.DataFrame, column: str = "test_accuracy") -> pd.DataFrame:
    """Mean and std over seeds of `column` per variant and level (std 0 with one seed)."""
    stats = (summary.groupby(["variant", "level"], sort=False)
             .agg(weights_remaining=("weights_remaining", "mean"), mean=(column, "mean"), std=(column, "std"),
                  seeds=("seed", "nunique"))
             .reset_index())
    rank = stats["variant"].map({v: i for i, v in enumerate(COLOURS)}).fillna(len(COLOURS))
    stats = stats.assign(_rank=rank).sort_values(["level", "_rank", "variant"]).drop(columns="_rank")
    stats["std"] = stats["std"].fillna(0.0)
    return stats.reset_index(drop=True)


def levels_are_densities(kind: str) -> bool:
    """Whether an experiment kind numbers its levels by density (a one-shot sweep), not by pruning
    round (its `levels` in lth.core.parts.EXPERIMENT_KINDS)."""
    return EXPERIMENT_KINDS[kind or "imp"].info.get("levels") == "densities"


def split_variant(variant: str) -> tuple[str, str]:
    """(method, control) of a sweep's variant: `snip-shuffle` -> (snip, shuffle); a method -> (it, "")."""
    for control in SWEEP_CONTROLS:
        if variant.endswith(f"-{control}"):
            return variant[: -len(control) - 1], control
    return variant, ""


def controls_of(summary: pd.DataFrame, variant: str, kind: str = "imp") -> list[str]:
    """The controls of `variant` present in the results: a sweep method's own (`<method>-shuffle`,
    `<method>-reinit`), IMP's ticket's (random_prune, reinit); none for anything else."""
    if levels_are_densities(kind):
        present = variants(summary)
        return [f"{variant}-{c}" for c in SWEEP_CONTROLS if f"{variant}-{c}" in present]
    return controls(summary) if variant == "ticket" else []


def sweep_methods(summary: pd.DataFrame) -> list[str]:
    """A sweep's methods present, in `variants` order: its variants less their controls."""
    return [v for v in variants(summary) if not split_variant(v)[1]]


def variants(summary: pd.DataFrame) -> list[str]:
    """Pruned variants in a fixed order (known ones first), dense excluded."""
    present = list(dict.fromkeys(summary.loc[summary["level"] > 0, "variant"]))
    return [v for v in COLOURS if v in present] + [v for v in present if v not in COLOURS]


@dataclass(frozen=True)
class Estimate:
    """A mean over n seeds and its 95 % t-interval; the bounds are NaN with fewer than two seeds
    (no spread, so no interval), and everything is NaN with none."""

    n: int
    mean: float = math.nan
    lo: float = math.nan
    hi: float = math.nan

    @property
    def has_interval(self) -> bool:
        return self.n >= 2 and not math.isnan(self.lo)


def t_factor(n: int) -> float:
    """The interval's half-width in standard errors for n seeds (t-distribution, n - 1 degrees of
    freedom): few seeds give honest, wide intervals (12.7 with two)."""
    from scipy import stats

    return float(stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1))


def estimate(values) -> Estimate:
    """Mean and t-interval of `values` (one per seed)."""
    x = np.asarray(values, dtype=float)
    if len(x) == 0:
        return Estimate(0)
    mean = float(x.mean())
    if len(x) < 2:
        return Estimate(1, mean)
    half = t_factor(len(x)) * x.std(ddof=1) / math.sqrt(len(x))
    return Estimate(len(x), mean, mean - half, mean + half)


def seed_values(summary: pd.DataFrame, variant: str, level: int) -> pd.Series:
    rows = summary[(summary["variant"] == variant) & (summary["level"] == level)]
    return rows.groupby("seed")["test_accuracy"].mean()


def paired(summary: pd.DataFrame, variant: str, level: int, other: str, other_level: int | None = None) -> Estimate:
    """`variant` minus `other` in test accuracy at `level` (`other` at `other_level`: dense at 0),
    paired by seed: the runs of one seed share their initialisation, so pairing removes its noise."""
    a = seed_values(summary, variant, level)
    b = seed_values(summary, other, level if other_level is None else other_level)
    both = a.index.intersection(b.index)
    return estimate(a[both] - b[both])


def versus(summary: pd.DataFrame, variant: str, level: int, other: str) -> Estimate:
    """`variant` minus `other` at `level`, where dense is always taken at level 0."""
    return paired(summary, variant, level, other, 0 if other == DENSE else None)


def differences(summary: pd.DataFrame, variant: str, other: str) -> pd.DataFrame:
    """`variant` minus `other` at every level where `variant` has runs (see `versus`)."""
    rows = []
    for level, runs in summary[(summary["variant"] == variant) & (summary["level"] > 0)].groupby("level"):
        e = versus(summary, variant, int(level), other)
        rows.append({"level": int(level), "weights_remaining": runs["weights_remaining"].mean(), "n": e.n,
                     "mean": e.mean, "lo": e.lo, "hi": e.hi})
    return pd.DataFrame(rows, columns=["level", "weights_remaining", "n", "mean", "lo", "hi"])


def controls(summary: pd.DataFrame) -> list[str]:
    """The ticket's controls present in the results, in a fixed order."""
    present = variants(summary)
    return [c for c in CONTROLS if c in present]


def pct(x: float, digits: int = 2) -> str:
    """A fraction as a percentage (no % sign: the column names carry the unit)."""
    return "n/a" if x is None or pd.isna(x) else f"{100 * x:.{digits}f}"


def wr(x: float) -> str:
    """Weights remaining as a percentage with three significant digits."""
    return f"{100 * x:.3g}"


def points(x: float) -> str:
    return "n/a" if pd.isna(x) else f"{100 * x:+.2f}"


def interval(e: Estimate) -> str:
    """An estimate's 95 % interval in points, or why there is none."""
    if e.n == 0:
        return "n/a (no paired runs)"
    if not e.has_interval:
        return "none (1 seed)"
    return f"[{points(e.lo)}, {points(e.hi)}]"


def comparison_table(summary: pd.DataFrame, published: pd.DataFrame, max_ratio: float = 1.25) -> pd.DataFrame:
    """Each published point beside our level nearest in weights remaining (log scale) for the same
    variant; none when our nearest level is more than `max_ratio` away."""
    stats = by_level(summary)
    stats.loc[stats["level"] == 0, "variant"] = DENSE
    rows = []
    for p in published.itertuples():
        # a paper's point at 100% (whatever its variant) is the dense network
        dense = p.variant == DENSE or p.weights_remaining >= 0.999
        ours = stats[stats["level"] == 0] if dense else stats[stats["variant"] == p.variant]
        if not ours.empty:
            distance = (np.log(ours["weights_remaining"]) - math.log(p.weights_remaining)).abs()
            ours = ours.loc[[distance.idxmin()]] if distance.min() <= math.log(max_ratio) else ours.iloc[:0]
        o = ours.iloc[0] if not ours.empty else None
        rows.append({"variant": p.variant, "paper: weights remaining (%)": wr(p.weights_remaining),
                     "ours: weights remaining (%)": wr(o["weights_remaining"]) if o is not None else "none near",
                     "paper: test accuracy (%)": pct(p.test_accuracy),
                     "ours: test accuracy (%)": pct(o["mean"]) if o is not None else "n/a",
                     "ours: std (%)": pct(o["std"]) if o is not None else "n/a",
                     "ours minus paper (points)": points(o["mean"] - p.test_accuracy) if o is not None else "n/a"})
    return pd.DataFrame(rows)


def transfer_table(transfer: pd.DataFrame) -> pd.DataFrame:
    """Test accuracy on each transfer target per variant and level (mean and std over seeds)."""
    out = []
    for target, rows in transfer.groupby("target", sort=True):
        stats = by_level(rows)
        out.append(pd.DataFrame({"target": target, "variant": stats["variant"], "level": stats["level"],
                                 "weights remaining (%)": stats["weights_remaining"].map(wr),
                                 "test accuracy (%)": stats["mean"].map(pct), "std (%)": stats["std"].map(pct),
                                 "seeds": stats["seeds"]}))
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame()


def chance_levels(config: dict[str, Any], targets) -> dict[str, float]:
    """Chance accuracy (1 / classes) on each transfer target whose dataset is known: the floor an
    accuracy on the target should be read against."""
    from lth.core.parts import DATASETS
    from lth.plan.facts import dataset_facts

    configured = (config.get("transfer") or {}).get("targets") or {}
    out = {}
    for target in targets:
        dataset = (configured.get(target) or {}).get("dataset") or {}
        name = dataset.get("name", target)
        if name in DATASETS:  # classes may depend on the dataset's options (grammar's task, modular's p)
            facts = dataset_facts(name, dataset.get("options") or {})
            if facts.get("num_classes") and facts.get("task", "classification") == "classification":
                out[target] = 1.0 / facts["num_classes"]
    return out


def pruned_levels(summary: pd.DataFrame, kind: str = "imp") -> list[int]:
    """The pruned levels from the densest to the sparsest: IMP's 1, 2, ... up to its last (a level
    lost in between stays in the sequence, so that a walk down the levels stops there); a one-shot
    sweep's (numbered by density, lth.plan.oneshot) from its largest density down."""
    pruned = summary[summary["level"] > 0]
    if not levels_are_densities(kind):
        return list(range(1, int(pruned["level"].max()) + 1)) if len(pruned) else []
    density = pruned.groupby("level")["weights_remaining"].mean()
    return [int(lv) for lv in density.sort_values(ascending=False, kind="stable").index]


def pick_levels(levels: list[int], n: int = 3) -> list[int]:
    """Up to `n` pruned levels spread evenly from the first to the last."""
    levels = sorted(set(levels) - {0})
    if len(levels) <= n:
        return levels
    return sorted({levels[round(i * (len(levels) - 1) / (n - 1))] for i in range(n)})


def curves(results: Results, levels: list[int], wanted: list[str]) -> pd.DataFrame:
    """Test-accuracy curves (one row per evaluation) of the dense runs and of `wanted` at `levels`;
    a run without a readable record is left out (the page lists them)."""
    keys = results.summary[(results.summary["level"] == 0)
                           | (results.summary["level"].isin(levels) & results.summary["variant"].isin(wanted))]
    rows = []
    for k in keys[["seed", "level", "variant", "weights_remaining"]].itertuples(index=False):
        for point in (results.record(k.seed, k.level, k.variant) or {}).get("curves") or []:
            if point.get("test_accuracy") is not None:
                rows.append({"seed": k.seed, "level": k.level, "variant": k.variant,
                             "weights_remaining": k.weights_remaining,
                             "iteration": point["iteration"], "test_accuracy": point["test_accuracy"]})
    return pd.DataFrame(rows, columns=["seed", "level", "variant", "weights_remaining", "iteration", "test_accuracy"])


def curve_variants(summary: pd.DataFrame) -> list[str]:
    """Ticket against its control (reinit) when both exist; else every pruned variant."""
    present = variants(summary)
    pair = [v for v in ("ticket", "reinit") if v in present]
    return pair if len(pair) == 2 else present
