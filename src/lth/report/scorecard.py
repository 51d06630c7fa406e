"""The reproduction scorecard: every claim of every experiment of the given configs (the presets), with
what we measured beside what the paper published, its verdict (lth.report.claims), the protocol's
deviations and the training time; an experiment that has not run says why (it needs a GPU or a download
this machine lacks, or it was not run: the command that runs it). `lth scorecard` writes it as CSV and
HTML, and can rewrite README.md's copy of the table, so that the README shows the table, not a retyping."""

from __future__ import annotations

import html
import json
import math
import re
from pathlib import Path

import pandas as pd
import yaml

from lth.core.errors import LTHError
from lth.plan.reference import needs
from lth.plan.settings import resolve
from lth.report import claims as claims_
from lth.report.tables import load

COLUMNS = ["config", "experiment", "paper", "claim", "published", "ours", "interval", "seeds", "at", "verdict",
           "seeds to settle", "deviations", "training minutes"]
BEGIN, END = "<!-- scorecard: lth scorecard --readme README.md -->", "<!-- /scorecard -->"


def configs_of(project: str | Path = ".") -> list[Path]:
    """The configs a scorecard covers: the default config and every preset."""
    root = Path(project)
    return [root / "config" / "config.yaml", *sorted((root / "config" / "presets").glob("*.yaml"))]


def experiments_of(path: Path) -> dict[str, dict]:
    """A config file's experiments (raw, as written)."""
    try:
        config = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise LTHError(f"{path}: cannot read it as a config ({exc})") from None
    if not isinstance(config.get("experiments"), dict):
        raise LTHError(f"{path}: no experiments mapping")
    return dict(config["experiments"])


def rows_of(path: Path, results: Path) -> list[dict]:
    """The scorecard rows of one config file."""
    out = []
    for name, raw in experiments_of(path).items():
        s = resolve(json.loads(json.dumps(raw)), where=f"{path}: experiments.{name}")
        reference = s.reference
        base = {"config": path.name, "experiment": name, "paper": reference.get("citation") or "",
                "deviations": _deviations(reference)}
        root = results / name
        if not (root / "summary.csv").exists():
            wanted = needs(s)
            why = (f"needs {' and '.join('a GPU' if n == 'gpu' else 'a download' for n in wanted)}" if wanted
                   else f"not run: snakemake --cores all --configfile {path}")
            out += [{**base, "claim": c["claim"], "published": c.get("published"), "verdict": why}
                    for c in reference.get("claims") or [{"claim": "(no claims stated)"}]]
            continue
        r = load(root, name, config_json=json.dumps(raw))
        minutes = float(pd.to_numeric(r.summary["wall_seconds"], errors="coerce").sum()) / 60 \
            if "wall_seconds" in r.summary else math.nan
        table = claims_.claims_table(r)
        if table.empty:
            out.append({**base, "claim": "(no claims stated)", "verdict": "", "training minutes": minutes})
        for _, row in table.iterrows():
            ours, _, interval = row["ours (95 % interval)"].partition(" [")
            out.append({**base, "claim": row["claim"], "published": row["published"], "ours": ours,
                        "interval": f"[{interval}" if interval else "", "seeds": row["seeds"], "at": row["at"],
                        "verdict": row["verdict"], "seeds to settle": row["seeds to settle"],
                        "training minutes": minutes})
    return out


def _deviations(reference) -> str:
    protocol = reference.get("protocol") or []
    if not protocol:
        return "no protocol stated"
    changed = [p for p in protocol if p.get("deviation")]
    return "; ".join(f"{p['choice']}: {p['deviation']}" for p in changed) or "none"


def scorecard(configs: list[Path], results: Path) -> pd.DataFrame:
    rows = [row for path in configs for row in rows_of(Path(path), Path(results))]
    table = pd.DataFrame(rows, columns=COLUMNS)
    table["training minutes"] = pd.to_numeric(table["training minutes"]).round(1)
    table["seeds"] = pd.to_numeric(table["seeds"]).astype("Int64")  # NaN (not run) would make them floats
    return table.astype(object).where(table.notna(), "")


def to_html(table: pd.DataFrame) -> str:
    colours = {"held": "#d9f2d9", "contradicted": "#f8d7d7", "not shown": "#fff3cd"}
    body = "".join(
        f"<tr style='background:{colours.get(row['verdict'], '#f0f0f0')}'>"
        + "".join(f"<td>{html.escape(str(row[c]))}</td>" for c in COLUMNS) + "</tr>"
        for _, row in table.iterrows())
    head = "".join(f"<th>{html.escape(c)}</th>" for c in COLUMNS)
    return ("<!doctype html><html><head><meta charset='utf-8'><title>lth reproduction scorecard</title>"
            "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;font-size:13px}"
            "td,th{border:1px solid #bbb;padding:4px;vertical-align:top}th{background:#eee}</style></head><body>"
            "<h1>Reproduction scorecard</h1><p>Each claim: ours = the variant minus what it is compared with, "
            "over seeds, with its 95 % t-interval. held: the interval clears the margin on the claimed side; "
            "contradicted: it lies on the other side; not shown: it straddles it.</p>"
            f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></body></html>")


def to_markdown(table: pd.DataFrame) -> str:
    """README's table: every claim of an experiment that ran, with its verdict; an experiment that did
    not run is one row (its claims counted, and why: a GPU, a download, or the command that runs it)."""
    shown = ["experiment", "claim", "published", "ours", "interval", "seeds", "verdict", "training minutes"]
    lines = ["| " + " | ".join(shown) + " |", "|" + "---|" * len(shown)]
    ran = table["ours"].astype(str) != ""
    for _, row in table[ran].iterrows():
        lines.append("| " + " | ".join(str(row[c]).replace("|", "/") for c in shown) + " |")
    waiting = table[~ran].groupby(["experiment", "verdict"], sort=False)
    for (experiment, why), rows in waiting:
        claims = [c for c in rows["claim"] if c != "(no claims stated)"]
        what = f"{len(claims)} claim{'s' * (len(claims) != 1)}" if claims else "(no claims stated)"
        lines.append("| " + " | ".join([experiment, what, "", "", "", "", str(why).replace("|", "/"), ""]) + " |")
    return "\n".join(lines)


def summary_line(table: pd.DataFrame) -> str:
    """How many claims, and how many of each verdict."""
    return f"{len(table)} claims; " + ", ".join(f"{n} {v}" for v, n in table["verdict"].value_counts().items())


def write(configs: list[Path], results: Path, out: Path, readme: Path | None = None,
          log: Path | None = None) -> pd.DataFrame:
    """reports/scorecard.csv and .html; README.md's table between its markers when `readme` is given;
    the verdicts' counts in `log` when given (the Snakemake rule's)."""
    table = scorecard(configs, results)
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(summary_line(table) + "\n")
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "scorecard.csv", index=False)
    (out / "scorecard.html").write_text(to_html(table))
    if readme is not None:
        text = readme.read_text()
        pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
        if not pattern.search(text):
            raise LTHError(f"{readme}: no scorecard block ({BEGIN} ... {END}) to rewrite")
        readme.write_text(pattern.sub(lambda _: f"{BEGIN}\n{to_markdown(table)}\n{END}", text))
    return table
