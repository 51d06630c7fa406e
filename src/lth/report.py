"""Stage 7: the regenerated paper report (notebooks/lth_report.ipynb calls these; no torch needed).

The notebook stays thin so that what it computes is unit-tested here: loading and checking the
results folder (a missing or malformed table stops with one line naming the file), the published
numbers of a preset in one normal form, the headline numbers, the tables and the figures.
`python -m lth.report` is what the workflow runs: papermill, then a self-contained HTML export.
"""

from __future__ import annotations

import base64
import html
import json
import math
import platform
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from lth.errors import LTHError
from lth.files import read_json
from lth.layout import DENSE, Layout

SUMMARY_COLUMNS = ["experiment", "seed", "level", "variant", "weights_remaining", "test_accuracy",
                   "early_stop_iteration"]
DENSITY_COLUMNS = ["seed", "level", "variant", "layer", "density"]
NUMERIC = {"seed", "level", "weights_remaining", "test_accuracy", "early_stop_iteration", "density"}
# Fixed colours, so that a variant looks the same in every figure and every report.
# Transfer (lth.transfer) has ticket_transfer, mask_transfer (its control) and random_prune: like the source's.
COLOURS = {DENSE: "0.35", "ticket": "C0", "ticket_transfer": "C0", "reinit": "C1", "mask_transfer": "C1",
           "random_prune": "C2", "lr_rewind": "C3", "finetune": "C4"}
CHAIN_HEADS = ("ticket", "lr_rewind", "finetune")  # variants whose masks differ (the baselines share the ticket's)
TOLERANCE = 0.01  # "within one point of dense"


# --- loading ---------------------------------------------------------------------------------

def read_table(path: str | Path, required: list[str]) -> pd.DataFrame:
    """A CSV with the `required` columns, the numeric ones numeric; LTHError naming the file otherwise."""
    path = Path(path)
    if not path.is_file():
        raise LTHError(f"{path}: file not found (run the workflow up to its summary step first)")
    try:
        table = pd.read_csv(path, keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise LTHError(f"{path}: not a readable CSV table ({str(exc).strip()})") from None
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise LTHError(f"{path}: missing column(s) {', '.join(missing)} (has: {', '.join(map(str, table.columns))})")
    if table.empty:
        raise LTHError(f"{path}: has a header but no rows")
    for column in sorted(NUMERIC & set(required)):
        values = pd.to_numeric(table[column], errors="coerce")
        bad = values.isna()
        if bad.any():
            row = int(bad.idxmax())
            value = "an empty cell" if pd.isna(table[column][row]) else repr(table[column][row])
            raise LTHError(f"{path}: line {row + 2}: {column} is {value}, not a number")
        table[column] = values
    return table


def check_summary(path: Path, summary: pd.DataFrame) -> None:
    """What a column check cannot see: a summary must hold the dense run, and fractions in [0, 1]."""
    if not (summary["level"] == 0).any():
        raise LTHError(f"{path}: no level-0 ({DENSE}) row")
    for column, (inclusive, interval) in {"weights_remaining": ("right", "(0, 1]"),
                                          "test_accuracy": ("both", "[0, 1]")}.items():
        bad = ~summary[column].between(0.0, 1.0, inclusive=inclusive)
        if bad.any():
            row = int(bad.idxmax())
            raise LTHError(f"{path}: line {row + 2}: {column} = {summary[column][row]} is not a fraction in {interval}")


@dataclass
class Results:
    """One experiment's finished results, as the report needs them."""

    root: Path
    experiment: str
    summary: pd.DataFrame  # source rows only (no transfer target)
    transfer: pd.DataFrame  # rows with a transfer target (empty when there are none)
    density: pd.DataFrame
    config: dict[str, Any]
    reference: dict[str, Any] = field(default_factory=dict)

    @property
    def published(self) -> pd.DataFrame:
        return normalise_published(self.reference)

    def metrics(self, seed: int, level: int, variant: str) -> dict[str, Any]:
        return read_json(Layout(self.root).metrics(int(seed), int(level), variant))


def load(results: str | Path, experiment: str = "", config_json: str = "", configfile: str = "") -> Results:
    """Read and check a results folder; the config comes from `config_json` (what the workflow passes),
    else from `configfile`'s `experiments.<experiment>` (by hand, for a preset's published numbers),
    else from the folder's settings.json (no published numbers)."""
    root = Path(results)
    if not root.is_dir():
        raise LTHError(f"{root}: results folder not found")
    summary_path = root / "summary.csv"
    summary = read_table(summary_path, SUMMARY_COLUMNS)
    check_summary(summary_path, summary)
    density = read_table(root / "layer_density.csv", DENSITY_COLUMNS)
    experiment = experiment or str(summary["experiment"].iloc[0])
    config = _config(root, experiment, config_json, configfile)
    target = _targets(summary)
    density = density[_targets(density) == ""]
    return Results(root=root, experiment=experiment, summary=summary[target == ""].reset_index(drop=True),
                   transfer=summary[target != ""].assign(target=target[target != ""]).reset_index(drop=True),
                   density=density.reset_index(drop=True), config=config,
                   reference=config.pop("reference", None) or {})


def _targets(table: pd.DataFrame) -> pd.Series:
    """The transfer target of each row ("" for the source dataset, also when there is no target column)."""
    if "target" not in table:
        return pd.Series("", index=table.index)
    return table["target"].map(lambda t: "" if pd.isna(t) else str(t))


def _config(root: Path, experiment: str, config_json: str, configfile: str) -> dict[str, Any]:
    if config_json:
        try:
            return json.loads(config_json)
        except json.JSONDecodeError as exc:
            raise LTHError(f"parameter config_json: not JSON ({exc})") from None
    if configfile:
        try:
            experiments = (yaml.safe_load(Path(configfile).read_text()) or {}).get("experiments") or {}
        except (OSError, yaml.YAMLError) as exc:
            raise LTHError(f"{configfile}: cannot read it as a config ({exc})") from None
        if experiment not in experiments:
            raise LTHError(f"{configfile}: no experiments.{experiment} (has: {', '.join(experiments) or 'none'})")
        return dict(experiments[experiment])
    settings = root / "settings.json"
    return dict(read_json(settings).get("settings", {})) if settings.exists() else {}


def normalise_published(reference: dict[str, Any] | None) -> pd.DataFrame:
    """A preset's published numbers as rows (variant, weights_remaining, test_accuracy).

    Presets write them two ways: `published: [{variant, weights_remaining, test_accuracy}]` (one
    row per point) or `published: [{weights_remaining, <variant>: accuracy, ...}]` (one row per
    sparsity); a `dense_test_accuracy` (a number or {mean}) is the dense point at 100%.
    """
    reference = reference or {}
    rows = []
    for point in reference.get("published") or []:
        w = point.get("weights_remaining")
        if "variant" in point:
            rows.append((point["variant"], w, point.get("test_accuracy")))
        else:
            rows += [(k, w, v) for k, v in point.items() if k != "weights_remaining" and isinstance(v, (int, float))]
    dense = reference.get("dense_test_accuracy")
    dense = dense.get("mean") if isinstance(dense, dict) else dense
    if isinstance(dense, (int, float)) and not any(w == 1.0 and v in (DENSE, "ticket") for v, w, _ in rows):
        rows.append((DENSE, 1.0, dense))
    table = pd.DataFrame(rows, columns=["variant", "weights_remaining", "test_accuracy"])
    table = table.astype({"weights_remaining": float, "test_accuracy": float})
    return table.dropna().reset_index(drop=True)


# --- numbers ---------------------------------------------------------------------------------

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


# --- the text at the top -------------------------------------------------------------------------

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


# --- figures ---------------------------------------------------------------------------------

def _log_weights_axis(ax) -> None:
    """Weights remaining on a log axis, 100% at the left, ticks at 1-2-5 in percent."""
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    lo, hi = ax.get_xlim()
    ax.set_xlim(max(hi, 100 * 1.05), lo)
    ax.set_xlabel("weights remaining (%, log scale)")
    ax.grid(True, which="major", alpha=0.3)


def _band(ax, x, mean, std, variant: str, label: str, **kw) -> None:
    (line,) = ax.plot(x, mean, marker="o", markersize=3, color=COLOURS.get(variant), label=label, **kw)
    ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.2, linewidth=0)


def _per_variant(ax, summary: pd.DataFrame, column: str, scale: float, from_dense: bool = True) -> None:
    """Dense as a horizontal band, then one line per variant (starting at dense's 100% if `from_dense`)."""
    stats = by_level(summary, column)
    for dense in stats[stats["level"] == 0].itertuples():
        ax.axhline(scale * dense.mean, color=COLOURS[DENSE], linestyle="--", linewidth=1,
                   label=f"{DENSE} (mean ± std)")
        ax.axhspan(scale * (dense.mean - dense.std), scale * (dense.mean + dense.std),
                   color=COLOURS[DENSE], alpha=0.12, linewidth=0)
    for v in variants(summary):
        rows = stats[(stats["variant"] == v) | (from_dense & (stats["level"] == 0))]
        _band(ax, 100 * rows["weights_remaining"], scale * rows["mean"], scale * rows["std"], v, v)


def plot_accuracy(summary: pd.DataFrame, published: pd.DataFrame | None = None) -> Figure:
    """Figure 1: final test accuracy vs weights remaining, one line per variant; paper's numbers as markers."""
    fig = Figure(figsize=(7.5, 4.5), layout="constrained")
    ax = fig.add_subplot()
    _per_variant(ax, summary, "test_accuracy", 100)
    for v, rows in (published.groupby("variant") if published is not None else []):
        ax.scatter(100 * rows["weights_remaining"], 100 * rows["test_accuracy"], marker="D", s=30,
                   color=COLOURS.get(v, "black"), edgecolor="black", zorder=5, label=f"{v} (paper)")
    _log_weights_axis(ax)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"Test accuracy at the end of training (mean ± std over {summary['seed'].nunique()} seed(s))")
    ax.legend(fontsize="small", loc="best")
    return fig


def plot_early_stop(summary: pd.DataFrame) -> Figure:
    """Figure 2: iteration of minimum validation loss vs weights remaining, per variant."""
    fig = Figure(figsize=(7.5, 4.5), layout="constrained")
    ax = fig.add_subplot()
    _per_variant(ax, summary, "early_stop_iteration", 1)
    _log_weights_axis(ax)
    ax.set_ylabel("early-stop iteration (min. validation loss)")
    ax.set_title("Early-stopping iteration (mean ± std over seeds)")
    ax.legend(fontsize="small", loc="best")
    return fig


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


def plot_curves(data: pd.DataFrame, levels: list[int]) -> Figure:
    """Figure 3: test accuracy over training iterations at a few levels, dense as the reference."""
    fig = Figure(figsize=(4.2 * max(len(levels), 1), 4), layout="constrained")
    axes = fig.subplots(1, max(len(levels), 1), sharey=True, squeeze=False)[0]
    for ax, level in zip(axes, levels):
        for v, rows in data[(data["level"] == level) | (data["level"] == 0)].groupby("variant", sort=False):
            s = rows.groupby("iteration")["test_accuracy"].agg(["mean", "std"]).fillna(0.0)
            style = {"linestyle": "--"} if v == DENSE else {}
            _band(ax, s.index, 100 * s["mean"], 100 * s["std"], v, v, **style)
        w = data.loc[data["level"] == level, "weights_remaining"]
        ax.set_title(f"level {level}: {wr(w.mean())}% weights remaining" if not w.empty else f"level {level}")
        ax.set_xlabel("training iteration")
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("test accuracy (%)")
    axes[0].legend(fontsize="small", loc="lower right")
    return fig


def plot_layer_density(density: pd.DataFrame, summary: pd.DataFrame) -> Figure:
    """Figure 4: density of each prunable layer across levels, one panel per mask chain."""
    chains = [v for v in CHAIN_HEADS if v in set(density["variant"])] or variants(summary)[:1]
    fig = Figure(figsize=(4.5 * max(len(chains), 1), 4), layout="constrained")
    axes = fig.subplots(1, max(len(chains), 1), sharey=True, squeeze=False)[0]
    for ax, chain in zip(axes, chains):
        rows = density[(density["variant"] == chain) | (density["level"] == 0)]
        for layer, r in rows.groupby("layer", sort=False):
            m = r.groupby("level")["density"].mean()
            ax.plot(m.index, 100 * m.values, marker="o", markersize=3, label=layer)
        chain_rows = summary[(summary["variant"] == chain) | (summary["level"] == 0)]
        overall = chain_rows.groupby("level")["weights_remaining"].mean()
        ax.plot(overall.index, 100 * overall.values, color="black", linestyle="--", label="all prunable weights")
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(f"{chain} masks")
        ax.set_xlabel("pruning level")
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("weights remaining in the layer (%, log scale)")
    axes[0].legend(fontsize="small", loc="lower left")
    return fig


def plot_transfer(transfer: pd.DataFrame) -> Figure:
    """Figure 5: test accuracy on each transfer target vs weights remaining, per variant."""
    targets = sorted(transfer["target"].unique())
    fig = Figure(figsize=(4.8 * len(targets), 4), layout="constrained")
    axes = fig.subplots(1, len(targets), sharey=True, squeeze=False)[0]
    for ax, target in zip(axes, targets):
        _per_variant(ax, transfer[transfer["target"] == target], "test_accuracy", 100, from_dense=False)
        _log_weights_axis(ax)
        ax.set_title(f"target: {target}")
    axes[0].set_ylabel("test accuracy on the target (%)")
    axes[0].legend(fontsize="small", loc="best")
    return fig


# --- showing in the notebook -------------------------------------------------------------------

def save_figure(fig: Figure, name: str, outdir: str | Path | None) -> bytes:
    """The figure as PNG bytes; also written as <outdir>/<name>.png and .svg when `outdir` is given."""
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120, metadata={"Software": None})
    png = buffer.getvalue()
    if outdir:
        out = Path(outdir)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{name}.png").write_bytes(png)
        fig.savefig(out / f"{name}.svg", format="svg", metadata={"Date": None})
    return png


def figure_html(png: bytes, name: str, caption: str) -> str:
    """An embedded figure the HTML export keeps as is: the image travels inside the report."""
    data = base64.b64encode(png).decode()
    return (f'<figure id="fig-{name}" class="lth-figure" style="margin: 1em 0">'
            f'<img src="data:image/png;base64,{data}" alt="{html.escape(caption)}" style="max-width: 100%">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def table_html(table: pd.DataFrame, name: str) -> str:
    return table.to_html(index=False, table_id=f"table-{name}", classes="lth-table", border=0, escape=True)


def show_figure(fig: Figure, name: str, caption: str, outdir: str | Path | None = None) -> None:
    from IPython.display import HTML, display

    display(HTML(figure_html(save_figure(fig, name, outdir), name, caption)))


def show_table(table: pd.DataFrame, name: str) -> None:
    from IPython.display import HTML, display

    display(HTML(table_html(table, name)))


def show_markdown(text: str) -> None:
    from IPython.display import Markdown, display

    display(Markdown(text))


def plain_errors() -> None:
    """In a notebook, show an LTHError as its one line (which file, what is wrong) instead of a traceback."""
    from IPython import get_ipython

    def one_line(shell, etype, value, tb, tb_offset=None):
        stb = [f"{etype.__name__}: {value}"]
        shell._showtraceback(etype, value, stb)  # what showtraceback() does with a formatted traceback
        return stb

    shell = get_ipython()
    if shell is not None:
        shell.set_custom_exc((LTHError,), one_line)


# --- running the notebook (the workflow's report rule) ---------------------------------------

# The lab template without what it fetches from the network (require.js, MathJax, Mermaid): the
# report opens offline with nothing to load and no script to fail.
TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
"""


def export_html(notebook: str | Path, out: str | Path, title: str = "") -> Path:
    """A self-contained HTML page of an executed notebook, without the code cells."""
    import jinja2
    import nbformat
    from nbconvert import HTMLExporter

    from lth.files import atomic_path

    nb = nbformat.read(str(notebook), as_version=4)
    if title:
        nb.metadata["title"] = title
    exporter = HTMLExporter(extra_loaders=[jinja2.DictLoader({"lth_report.html.j2": TEMPLATE})],
                            template_file="lth_report.html.j2", exclude_input=True, exclude_input_prompt=True,
                            exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(nb)
    with atomic_path(out) as tmp:
        tmp.write_text(body, encoding="utf-8")
        tmp.chmod(0o644)  # a page to share, not the private temporary file's 0600
    return Path(out)


def run(notebook: str, executed: str, html_out: str, parameters: dict[str, Any]) -> None:
    """Execute the notebook with papermill in this interpreter's environment, then export it."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    for out in (executed, html_out):
        Path(out).parent.mkdir(parents=True, exist_ok=True)
    try:
        papermill.execute_notebook(notebook, executed, parameters=parameters, kernel_name="python3",
                                   progress_bar=False)
    except PapermillExecutionError as exc:
        raise LTHError(f"{notebook} failed on {parameters.get('results')} ({exc.ename}: {exc.evalue}); "
                       f"the executed notebook is {executed}") from None
    export_html(executed, html_out, title=f"lth report: {parameters.get('experiment') or Path(html_out).stem}")


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m lth.report", description=run.__doc__)
    p.add_argument("--notebook", required=True)
    p.add_argument("--executed", required=True, help="where the executed notebook is kept (.ipynb)")
    p.add_argument("--html", required=True)
    p.add_argument("--results", required=True)
    p.add_argument("--experiment", default="")
    p.add_argument("--figures-dir", default="")
    p.add_argument("--config-json", default="")
    args = p.parse_args(argv)
    try:
        run(args.notebook, args.executed, args.html,
            {"results": args.results, "experiment": args.experiment, "figures_dir": args.figures_dir,
             "config_json": args.config_json})
    except LTHError as exc:
        print(f"lth report: error: {exc}", file=sys.stderr)
        return 2
    print(args.html)
    return 0


if __name__ == "__main__":
    sys.exit(main())
