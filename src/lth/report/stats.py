"""The report's numbers, tables and text, computed from loaded results (no matplotlib, so that they
are cheap to compute and unit-testable on small tables): the headline, ours beside the paper's, the
transfer table, and what was run."""

from __future__ import annotations

import json
import math
import platform
import sys
from dataclasses import dataclass

import numpy as np
import pandas as pd
import yaml

from lth.variants import DENSE
from lth.report.tables import Results

# The known variants in the order tables and figures list them, each with a fixed colour (drawn by
# lth.report.figures), so that a variant looks the same in every figure and every report.
# Transfer (lth.transfer) has ticket_transfer, mask_transfer (its control) and random_prune: like the source's.
COLOURS = {DENSE: "0.35", "ticket": "C0", "ticket_transfer": "C0", "reinit": "C1", "mask_transfer": "C1",
           "random_prune": "C2", "lr_rewind": "C3", "finetune": "C4"}
CHAIN_HEADS = ("ticket", "lr_rewind", "finetune")  # variants whose masks differ (the baselines share the ticket's)
TOLERANCE = 0.01  # "within one point of dense"


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


def variants(summary: pd.DataFrame) -> list[str]:
    """Pruned variants in a fixed order (known ones first), dense excluded."""
    present = list(dict.fromkeys(summary.loc[summary["level"] > 0, "variant"]))
    return [v for v in COLOURS if v in present] + [v for v in present if v not in COLOURS]


@dataclass
class Headline:
    """The smallest weights remaining at which `variant` stays within one point of dense, and what else scores there."""

    variant: str
    dense_mean: float
    dense_std: float
    seeds: int
    within: bool  # False: already more than a point below dense at the first pruned level
    level: int
    weights_remaining: float
    mean: float
    std: float
    baseline: str | None = None
    baseline_mean: float = math.nan
    # the sparsest level within one point, when the variant comes back within after a dip
    sparsest_level: int | None = None
    sparsest_weights_remaining: float = math.nan

    @property
    def difference(self) -> float:
        return self.mean - self.baseline_mean


def headline(summary: pd.DataFrame, tolerance: float = TOLERANCE) -> Headline | None:
    """Walk the levels from dense downwards while the ticket (else the first chain present) stays
    within `tolerance` of dense; the last level passed is the headline. None if nothing was pruned."""
    present = variants(summary)
    variant = next((v for v in CHAIN_HEADS if v in present), present[0] if present else None)
    if variant is None:
        return None
    stats = by_level(summary)
    dense = stats[stats["level"] == 0].iloc[0]
    rows = stats[stats["variant"] == variant].sort_values("level")
    within = rows["mean"] >= dense["mean"] - tolerance
    passed = within.cummin()
    at = rows[passed].iloc[-1] if passed.any() else rows.iloc[0]
    sparsest = rows[within].iloc[-1] if within.any() else at
    baseline = next((v for v in ("random_prune", "reinit") if v in present and v != variant), None)
    base = stats[(stats["variant"] == baseline) & (stats["level"] == at["level"])]
    return Headline(variant=variant, dense_mean=dense["mean"], dense_std=dense["std"], seeds=int(dense["seeds"]),
                    within=bool(passed.any()), level=int(at["level"]), weights_remaining=at["weights_remaining"],
                    mean=at["mean"], std=at["std"], baseline=baseline,
                    baseline_mean=base["mean"].iloc[0] if not base.empty else math.nan,
                    sparsest_level=int(sparsest["level"]) if sparsest["level"] != at["level"] else None,
                    sparsest_weights_remaining=sparsest["weights_remaining"])


def pct(x: float, digits: int = 2) -> str:
    """A fraction as a percentage (no % sign: the column names carry the unit)."""
    return "n/a" if x is None or pd.isna(x) else f"{100 * x:.{digits}f}"


def wr(x: float) -> str:
    """Weights remaining as a percentage with three significant digits."""
    return f"{100 * x:.3g}"


def points(x: float) -> str:
    return "n/a" if pd.isna(x) else f"{100 * x:+.2f}"


def headline_table(summary: pd.DataFrame, head: Headline) -> pd.DataFrame:
    """Every variant at the headline level beside dense, in accuracy points."""
    stats = by_level(summary)
    dense = stats[stats["level"] == 0].iloc[0]
    rows = [stats[stats["level"] == 0]] + [stats[(stats["level"] == head.level) & (stats["variant"] == v)]
                                           for v in variants(summary)]
    table = pd.concat(rows)
    ref = table.loc[table["variant"] == head.variant, "mean"].iloc[0]
    return pd.DataFrame({
        "variant": table["variant"],
        "level": table["level"],
        "weights remaining (%)": table["weights_remaining"].map(wr),
        "test accuracy (%)": table["mean"].map(pct),
        "std (%)": table["std"].map(pct),
        "seeds": table["seeds"],
        "minus dense (points)": (table["mean"] - dense["mean"]).map(points),
        f"{head.variant} minus it (points)": (ref - table["mean"]).map(points),
    }).reset_index(drop=True)


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


def provenance(results: Results) -> dict[str, list[str]]:
    """Every distinct value of each provenance field over the runs (more than one means mixed runs)."""
    seen: dict[str, dict[str, None]] = {}
    for row in results.summary[["seed", "level", "variant"]].drop_duplicates().itertuples(index=False):
        for key, value in (results.metrics(*row).get("provenance") or {}).items():
            seen.setdefault(key, {})[str(value)] = None
    return {k: list(v) for k, v in seen.items()}


def headline_text(head: Headline | None) -> str:
    if head is None:
        return "Nothing was pruned yet: only the dense network is in the results."
    dense = f"Dense: **{pct(head.dense_mean)} ± {pct(head.dense_std)} %** test accuracy ({head.seeds} seed(s))."
    at = f"{wr(head.weights_remaining)} % weights remaining (level {head.level})"
    if head.within:
        text = (f"{dense} **{head.variant}** stays within one point of dense down to **{at}**, "
                f"at {pct(head.mean)} ± {pct(head.std)} %")
    else:
        text = (f"{dense} **{head.variant}** is more than one point below dense already at {at}: "
                f"{pct(head.mean)} ± {pct(head.std)} %")
    if head.baseline:
        text += f"; {head.variant} minus {head.baseline} there: **{points(head.difference)} points**"
    if head.sparsest_level is not None:
        text += (f". After dropping below, it is back within one point as sparse as "
                 f"{wr(head.sparsest_weights_remaining)} % (level {head.sparsest_level})")
    return text + "."


def title(results: Results, head: Headline | None) -> str:
    """Markdown: the report's title and its headline numbers."""
    return f"# {results.experiment}: lottery-ticket report\n\n{headline_text(head)}"


def describe(results: Results) -> str:
    """Markdown: what was run (config, versions, git commit, data checksum) and the paper it reproduces."""
    s = results.summary
    prov = provenance(results)
    config = {k: v for k, v in results.config.items() if k not in ("seeds", "variants")}
    seeds = sorted(int(x) for x in s["seed"].unique())
    targets = not results.transfer.empty

    def one(key: str) -> str:
        values = prov.get(key, ["not recorded"])
        return f"`{values[0]}`" if len(values) == 1 else "mixed: " + ", ".join(f"`{v}`" for v in values)

    lines = [
        "## What was run",
        "",
        f"- Results: `{results.root}`, {len(s)} runs: seeds {', '.join(map(str, seeds))}; "
        f"levels 0-{int(s['level'].max())}; variants {', '.join([DENSE] + variants(s))}"
        + (f"; transfer targets {', '.join(sorted(results.transfer['target'].unique()))}" if targets else ""),
        f"- Versions: lth {one('lth_version')}, torch {one('torch_version')}; device {one('device')}",
        f"- Git commit: {one('git_commit')}",
        f"- Dataset sha256: {one('dataset_sha256')}",
        f"- Settings fingerprint: {one('settings_fingerprint')}",
        f"- Report kernel: Python {platform.python_version()} in `{sys.prefix}`",
    ]
    if results.reference:
        r = results.reference
        lines += ["", f"Published numbers: {r.get('citation', 'no citation given')}."]
        lines += [f"- {finding}" for finding in r.get("findings") or []]
        notes = {k: v for k, v in r.items() if k not in ("citation", "findings", "published")}
        lines += [f"- {k}: {json.dumps(v)}" for k, v in notes.items()]
    if config:
        dump = yaml.safe_dump(config, sort_keys=False, default_flow_style=None, width=100).rstrip()
        lines += ["", "Config:", "", "```yaml", dump, "```"]
    return "\n".join(lines)


def pick_levels(levels: list[int], n: int = 3) -> list[int]:
    """Up to `n` pruned levels spread evenly from the first to the last."""
    levels = sorted(set(levels) - {0})
    if len(levels) <= n:
        return levels
    return sorted({levels[round(i * (len(levels) - 1) / (n - 1))] for i in range(n)})


def curves(results: Results, levels: list[int], wanted: list[str]) -> pd.DataFrame:
    """Test-accuracy curves (one row per evaluation) of the dense runs and of `wanted` at `levels`."""
    keys = results.summary[(results.summary["level"] == 0)
                           | (results.summary["level"].isin(levels) & results.summary["variant"].isin(wanted))]
    rows = []
    for k in keys[["seed", "level", "variant", "weights_remaining"]].itertuples(index=False):
        for point in results.metrics(k.seed, k.level, k.variant).get("curves") or []:
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
