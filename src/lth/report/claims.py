"""A paper's claims (an experiment's `reference.claims`, lth.plan.reference) evaluated on its results,
each with a verdict, and its protocol beside ours.

A claim is a difference, per seed, of a metric: `variant` minus `versus` (another variant, paired by
seed since the runs of a seed share theta_0, or a number), at one density (`at`, the nearest level)
or at every level in a range (`between`). With its 95 % t-interval over seeds (lth.report.stats):
  held          the interval lies beyond the margin on the claimed side (above it for `greater`)
  contradicted  the interval lies on the other side
  not shown     the interval straddles the margin (or one seed gives no interval): `settle` says how
                many seeds would put an interval of the same spread and mean clear of it
Over a range the claim holds where it holds at every level, is contradicted where it is at one level,
else is not shown. An `analysis` claim reads analysis-<name>.csv's rows (`where`) instead of summary.csv.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from lth.plan.reference import NEAREST
from lth.plan.variants import DENSE
from lth.report.stats import Estimate, estimate, t_factor
from lth.report.tables import Results

HELD, NOT_SHOWN, CONTRADICTED, NOT_RUN = "held", "not shown", "contradicted", "not run"
MOST_SEEDS = 10_000
COLUMNS = ["claim", "source", "published", "ours", "lo", "hi", "seeds", "where", "verdict", "settle"]


@dataclass(frozen=True)
class Check:
    """One claim at one level: the estimate of variant - versus, and its verdict."""

    where: str
    e: Estimate
    verdict: str
    settle: str = ""


def verdict(e: Estimate, margin: float = 0.0, direction: str = "greater") -> tuple[str, str]:
    """(verdict, seeds that would settle it) of an estimate of the difference against the margin."""
    if e.n == 0:
        return NOT_RUN, ""
    sign = 1.0 if direction == "greater" else -1.0
    if not e.has_interval:
        return NOT_SHOWN, "2 or more (one seed: no interval)"
    if sign * (e.lo - margin) > 0 and sign * (e.hi - margin) > 0:
        return HELD, ""
    if sign * (e.lo - margin) < 0 and sign * (e.hi - margin) < 0:
        return CONTRADICTED, ""
    return NOT_SHOWN, seeds_to_settle(e, margin)


def seeds_to_settle(e: Estimate, margin: float) -> str:
    """The fewest seeds whose interval, with this mean and spread, would exclude the margin."""
    gap = abs(e.mean - margin)
    half = (e.hi - e.lo) / 2
    sd = half / t_factor(e.n) * math.sqrt(e.n)
    if gap == 0 or sd == 0:
        return "none: the mean is on the margin" if gap == 0 else ""
    for n in range(e.n + 1, MOST_SEEDS + 1):
        if t_factor(n) * sd / math.sqrt(n) < gap:
            return str(n)
    return f"more than {MOST_SEEDS:,}"


def evaluate(r: Results) -> pd.DataFrame:
    """One row per claim of the experiment's reference (COLUMNS); empty without claims."""
    rows = []
    for c in r.reference.get("claims") or []:
        checks = _checks(r, c)
        head = _overall(checks, c.get("direction", "greater"))
        rows.append({"claim": c["claim"], "source": c["source"], "published": c.get("published"),
                     "ours": head.e.mean if head else math.nan, "lo": head.e.lo if head else math.nan,
                     "hi": head.e.hi if head else math.nan, "seeds": head.e.n if head else 0,
                     "where": head.where if head else "", "verdict": head.verdict if head else NOT_RUN,
                     "settle": head.settle if head else ""})
    return pd.DataFrame(rows, columns=COLUMNS)


def _overall(checks: list[Check], direction: str) -> Check | None:
    """The check that decides a claim over its levels: a contradicting one, else one not shown (the
    hardest to settle), else the weakest that held."""
    if not checks:
        return None
    for wanted in (CONTRADICTED, NOT_SHOWN, NOT_RUN):
        found = [c for c in checks if c.verdict == wanted]
        if found:
            return max(found, key=lambda c: _seeds_needed(c.settle))
    sign = 1.0 if direction == "greater" else -1.0
    return min(checks, key=lambda c: sign * (c.e.lo if sign > 0 else c.e.hi))


def _seeds_needed(settle: str) -> float:
    """`settle` as a number to order by: unknown or unreachable is infinite."""
    return int(settle) if settle.isdigit() else math.inf if settle else 0


def _checks(r: Results, c: dict) -> list[Check]:
    margin, direction = float(c.get("margin", 0.0)), c.get("direction", "greater")
    if c.get("analysis"):
        return [_check(_analysis_difference(r, c), c.get("analysis"), margin, direction)]
    out, runs = [], _runs(r, c)
    for level, wr in _levels(runs, c):
        a = _per_seed(runs, c["variant"], level, c.get("metric", "test_accuracy"))
        b = _versus(runs, c, level)
        where = "dense" if c["variant"] == DENSE else f"{100 * wr:.3g} % of the weights"
        if c.get("target"):
            where += f" on {c['target']}"
        out.append(_check(a - b if isinstance(b, (int, float)) else a.sub(b).dropna(), where, margin, direction))
    return out


def _check(d: pd.Series, where: str, margin: float, direction: str) -> Check:
    e = estimate(d.to_numpy(dtype=float))
    return Check(where, e, *verdict(e, margin, direction))


def _per_seed(summary: pd.DataFrame, variant: str, level: int, metric: str) -> pd.Series:
    rows = summary[(summary["variant"] == variant) & (summary["level"] == (0 if variant == DENSE else level))]
    if metric not in rows:
        return pd.Series(dtype=float)
    return rows.groupby("seed")[metric].mean().dropna()


def _runs(r: Results, c: dict) -> pd.DataFrame:
    """The rows a claim reads: the source dataset's, or a transfer target's."""
    if not c.get("target"):
        return r.summary
    return r.transfer[r.transfer["target"] == c["target"]] if not r.transfer.empty else r.transfer


def _versus(summary: pd.DataFrame, c: dict, level: int) -> pd.Series | float:
    if isinstance(c["versus"], (int, float)):
        return float(c["versus"])
    if c.get("versus_at") is not None:
        found = _levels(summary, {"variant": c["versus"], "at": c["versus_at"]})
        level = found[0][0] if found else -1
    return _per_seed(summary, c["versus"], level, c.get("metric", "test_accuracy"))


def _levels(summary: pd.DataFrame, c: dict) -> list[tuple[int, float]]:
    """(level, weights remaining) the claim is evaluated at: the nearest to `at` (within NEAREST), or
    all within `between`; the dense run's level 0 for a claim about dense."""
    if c["variant"] == DENSE:
        return [(0, 1.0)]
    rows = summary[(summary["variant"] == c["variant"]) & (summary["level"] > 0)]
    means = rows.groupby("level")["weights_remaining"].mean()
    if c.get("at") is not None:
        if means.empty:
            return []
        ratio = np.abs(np.log(means / c["at"]))
        level = int(ratio.idxmin())
        return [(level, float(means[level]))] if ratio[level] <= math.log(NEAREST) else []
    if c.get("between") is None:
        return [(int(lv), float(w)) for lv, w in means.items()]
    low, high = sorted(c["between"])
    inside = means[(means >= low * (1 - 1e-3)) & (means <= high * (1 + 1e-3))]
    return [(int(lv), float(w)) for lv, w in inside.items()]


def _analysis_difference(r: Results, c: dict) -> pd.Series:
    """Per seed: the analysis table's metric on the `where` rows minus the `versus_where` rows (or the number)."""
    from lth.core.errors import LTHError

    path = r.root / f"analysis-{c['analysis']}.csv"
    if not path.exists():
        return pd.Series(dtype=float)
    table = pd.read_csv(path)
    metric = c.get("metric", "test_accuracy")
    if metric not in table:
        raise LTHError(f"{path}: no column {metric!r} for the claim {c['claim']!r} (columns: "
                       f"{', '.join(table.columns)})")

    other = c.get("versus_metric") or metric
    if other not in table:
        raise LTHError(f"{path}: no column {other!r} for the claim {c['claim']!r} (columns: "
                       f"{', '.join(table.columns)})")

    def rows(where: dict, column: str) -> pd.Series:
        keep = np.ones(len(table), dtype=bool)
        for key, value in where.items():
            keep &= (table[key] == value).to_numpy() if key in table else False
        return pd.to_numeric(table[keep].groupby("seed")[column].mean(), errors="coerce")

    a = rows(c.get("where") or {}, metric)
    if c.get("versus_where") is not None or c.get("versus_metric"):
        return a.sub(rows(c.get("versus_where") or c.get("where") or {}, other)).dropna()
    return (a - float(c["versus"])).dropna()


def protocol(r: Results) -> pd.DataFrame:
    """The paper's protocol beside ours (reference.protocol): choice, paper, ours, source, deviation."""
    rows = r.reference.get("protocol") or []
    return pd.DataFrame([{k: p.get(k, "") for k in ("choice", "paper", "ours", "source", "deviation")} for p in rows],
                        columns=["choice", "paper", "ours", "source", "deviation"])


def claims_table(r: Results) -> pd.DataFrame:
    """The claims as the report prints them: the difference in points for accuracies, else in the metric's units."""
    table = evaluate(r)
    metrics = [c.get("metric", "test_accuracy") for c in r.reference.get("claims") or []]
    shown = []
    for (_, row), metric in zip(table.iterrows(), metrics):
        points = "accuracy" in metric or "error" in metric
        scale, unit, form = (100, " points", "+.1f") if points else (1, "", "+.3g")
        ours = "" if math.isnan(row["ours"]) else f"{scale * row['ours']:{form}}{unit}"
        if not math.isnan(row["lo"]):
            ours += f" [{scale * row['lo']:{form}}, {scale * row['hi']:{form}}]"
        shown.append({"claim": row["claim"], "source": row["source"],
                      "published": "" if row["published"] is None else row["published"],
                      "ours (95 % interval)": ours, "at": row["where"], "seeds": row["seeds"],
                      "verdict": row["verdict"], "seeds to settle": row["settle"]})
    return pd.DataFrame(shown, columns=["claim", "source", "published", "ours (95 % interval)", "at", "seeds",
                                        "verdict", "seeds to settle"])


def claims_text(r: Results) -> str:
    """One line over the claims: how many held, were not shown, were contradicted."""
    table = evaluate(r)
    if table.empty:
        return ("This experiment states no claims (`reference.claims` in its config): nothing to check "
                "against a paper.")
    counts = table["verdict"].value_counts()
    parts = [f"{counts.get(v, 0)} {v}" for v in (HELD, NOT_SHOWN, CONTRADICTED, NOT_RUN) if counts.get(v, 0)]
    return (f"{len(table)} claim{'s' if len(table) != 1 else ''} of {r.reference.get('citation') or 'the paper'}: "
            f"{', '.join(parts)}. Each is a difference over seeds with its 95 % t-interval; held: the interval "
            f"clears the margin on the claimed side; contradicted: it lies on the other side; not shown: it "
            f"straddles the margin (the seeds that would settle it, at this mean and spread, are given).")
