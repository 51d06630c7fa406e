"""Reading a results folder for the report: every table is checked on the way in, so that a missing
or malformed file stops with one line naming it, and the rest of the report can trust what it gets.
No matplotlib here: loading a results folder stays cheap."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from lth.core.errors import LTHError
from lth.core.files import read_json
from lth.plan.variants import DENSE
from lth.store import summary
from lth.store.summary import KEY_COLUMNS

# The columns of lth.store.summary's tables that the report reads.
SUMMARY_COLUMNS = [*KEY_COLUMNS, "weights_remaining", "test_accuracy", "early_stop_iteration"]
DENSITY_COLUMNS = [c for c in summary.DENSITY_COLUMNS if c not in ("experiment", "target")]
NUMERIC = {"seed", "level", "weights_remaining", "test_accuracy", "early_stop_iteration", "density"}
MAY_BE_EMPTY = {"test_accuracy", "early_stop_iteration"}  # a regression; no validation split


def read_table(path: str | Path, required: list[str]) -> pd.DataFrame:
    """A CSV with the `required` columns, the numeric ones numeric; LTHError naming the file otherwise.
    A column that may be empty throughout stays NaN: a regression has no accuracy, a run without a
    validation split no early stopping."""
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
        if column in MAY_BE_EMPTY and table[column].isna().all():
            table[column] = table[column].astype(float)
            continue
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
        bad = ~summary[column].between(0.0, 1.0, inclusive=inclusive) & summary[column].notna()
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

    _records: dict[tuple[int, int, str], dict[str, Any] | None] = field(default_factory=dict, repr=False)
    unreadable: dict[tuple[int, int, str], str] = field(default_factory=dict, repr=False)  # run -> why
    _plan: Any = field(default=None, repr=False)

    @property
    def published(self) -> pd.DataFrame:
        return normalise_published(self.reference)

    @property
    def plan(self):
        """The experiment's plan, from its settings.json (read once per report, not per run)."""
        if self._plan is None:
            from lth.plan import Plan

            self._plan = Plan.from_results(self.root)
        return self._plan

    def record(self, seed: int, level: int, variant: str) -> dict[str, Any] | None:
        """A run's metrics.json, read once; None when it cannot be read (no settings.json, no record,
        a damaged one: why is kept in `unreadable`), so that the page can leave that run's curves out
        and say so instead of failing."""
        from lth.plan.layout import RunKey
        from lth.store.results import read_record

        key = (int(seed), int(level), str(variant))
        if key not in self._records:
            try:
                self._records[key] = read_record(self.plan.layout.metrics(RunKey(*key)))
            except (LTHError, OSError) as exc:
                self._records[key], self.unreadable[key] = None, str(exc)
        return self._records[key]


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
    target = targets_of(summary)
    density = density[targets_of(density) == ""]
    return Results(root=root, experiment=experiment, summary=summary[target == ""].reset_index(drop=True),
                   transfer=summary[target != ""].assign(target=target[target != ""]).reset_index(drop=True),
                   density=density.reset_index(drop=True), config=config,
                   reference=config.pop("reference", None) or {})


def targets_of(table: pd.DataFrame) -> pd.Series:
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
    """A preset's published numbers as rows (variant, weights_remaining, test_accuracy), fractions.

    Presets write them two ways: `published: [{variant, weights_remaining, test_accuracy}]` (one
    row per point) or `published: [{weights_remaining, <variant>: accuracy, ...}]` (one row per
    sparsity); a `dense_test_accuracy` is the dense point at 100%. The reference is free form, so
    a number may also be {mean, std} (its mean) or a percentage (any value above 1): each is read
    rather than dropped, so that the figure's diamonds appear whenever the paper's numbers are there.
    """
    reference = reference or {}
    rows = []
    for point in reference.get("published") or []:
        if not isinstance(point, dict):
            continue
        w = _fraction(point.get("weights_remaining"))
        if "variant" in point:
            rows.append((str(point["variant"]), w, _fraction(point.get("test_accuracy"))))
        else:
            rows += [(k, w, _fraction(v)) for k, v in point.items() if k != "weights_remaining"]
    dense = _fraction(reference.get("dense_test_accuracy"))
    if dense is not None and not any(w == 1.0 and v in (DENSE, "ticket") for v, w, _ in rows):
        rows.append((DENSE, 1.0, dense))
    table = pd.DataFrame(rows, columns=["variant", "weights_remaining", "test_accuracy"])
    table = table.astype({"weights_remaining": float, "test_accuracy": float}).dropna()
    return table[table["weights_remaining"] > 0].reset_index(drop=True)  # a log axis has no 0


def _fraction(value: Any) -> float | None:
    """A published number as a fraction: a number, or the mean of {mean, ...}; a percentage is divided by 100."""
    if isinstance(value, dict):
        value = value.get("mean")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value / 100 if value > 1 else float(value)
