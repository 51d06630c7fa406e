"""What the page says about the results rather than computes from them: what is in them, what is
missing from them (so that a partial or odd results folder still gives a page that says so), the
paper they reproduce, and the appendix (what was run: provenance and config)."""

from __future__ import annotations

import json
import platform
import sys

import yaml

from lth.plan.variants import DENSE, chains
from lth.report.stats import levels_are_densities, variants
from lth.report.tables import Results

MAX_LINES = 12  # of "what is missing": a long list is cut, saying how much more there is


def expected(results: Results) -> tuple[list[int], list[str], list[int]]:
    """Seeds, pruned variants and pruned levels the config asks for (what is present, without one)."""
    config, s = results.config, results.summary
    seeds = sorted({int(x) for x in config.get("seeds") or s["seed"].unique()})
    if levels_are_densities(config.get("kind")):  # a sweep: its methods and their controls, at its densities
        plan = results.plan
        levels = [j for j in plan.jobs() if j.stage == "level"]
        names = list(dict.fromkeys(k.variant for j in levels for k in plan.job_runs(j)))
        return seeds, names, plan.levels()
    wanted = config.get("variants")
    names = [v for chain in chains(wanted).values() for v in chain] if wanted else variants(s)
    top = max(int((config.get("pruning") or {}).get("levels") or 0), int(s["level"].max()))
    return seeds, names, list(range(1, top + 1))


def missing(results: Results) -> list[str]:
    """One line per thing the config asks for that the results lack, and what that costs the page."""
    s = results.summary
    seeds, names, levels = expected(results)
    lines = []
    if s["seed"].nunique() == 1:
        lines.append(f"Only one seed ({int(s['seed'].iloc[0])}): no spread over seeds, so no confidence interval "
                     f"can be computed; the figures show single runs and the headline falls back to the point "
                     f"estimate.")
    gone = [seed for seed in seeds if not (s["seed"] == seed).any()]
    if gone:
        lines.append(f"Seed(s) {_join(gone)}: no runs at all.")
    seeds = [seed for seed in seeds if seed not in gone]
    lacking = [seed for seed in seeds if not ((s["level"] == 0) & (s["seed"] == seed)).any()]
    if lacking:
        lines.append(f"{DENSE}: no run for seed(s) {_join(lacking)}, so the differences, paired by seed, leave "
                     f"these seeds out.")
    absent = [v for v in names if not (s["variant"] == v).any()]
    lines += [f"{v}: no runs at all (the config asks for it), so it is left out of every table and figure."
              for v in absent]
    empty = [lv for lv in levels if not (s["level"] == lv).any()]
    if empty:
        lines.append(f"Level(s) {_join(empty)}: no runs at all.")
    gaps: dict[tuple[str, tuple[int, ...]], list[int]] = {}
    planned = _planned(results)
    for v in (v for v in names if v not in absent):
        for level in (lv for lv in levels if lv not in empty and (planned is None or (v, lv) in planned)):
            have = set(s.loc[(s["variant"] == v) & (s["level"] == level), "seed"].astype(int))
            if set(seeds) - have:
                gaps.setdefault((v, tuple(sorted(set(seeds) - have))), []).append(level)
    lines += [f"{v}: seed(s) {_join(gap)} missing at level(s) {_join(lvs)}." for (v, gap), lvs in gaps.items()]
    targets = ((results.config.get("transfer") or {}).get("targets") or {})
    present = set(results.transfer["target"]) if not results.transfer.empty else set()
    lines += [f"Transfer target {t}: no runs." for t in targets if t not in present]
    unread = [k for k in s[["seed", "level", "variant"]].itertuples(index=False) if results.record(*k) is None]
    if unread:
        first = tuple(unread[0])
        lines.append(f"{len(unread)} run(s) have no readable record (metrics.json), so their curves and provenance "
                     f"are left out; the first, seed {first[0]}, level {first[1]}, {first[2]}: "
                     f"{results.unreadable[first]}")
    if len(lines) > MAX_LINES:
        lines = lines[:MAX_LINES - 1] + [f"... and {len(lines) - MAX_LINES + 1} more."]
    return lines


def _planned(results: Results) -> set[tuple[str, int]] | None:
    """A sweep's (variant, level) pairs (an N:M method runs at its one density); None: every pair."""
    if not levels_are_densities(results.config.get("kind")):
        return None
    plan = results.plan
    return {(k.variant, k.level) for j in plan.jobs() if j.stage == "level" for k in plan.job_runs(j)}


def _join(values) -> str:
    return ", ".join(map(str, values))


def missing_text(results: Results) -> str:
    """Markdown: what is missing, or nothing when the results are complete."""
    lines = missing(results)
    return "\n".join(["**What is missing from these results:**", ""] + [f"- {line}" for line in lines]) if lines else ""


def overview(results: Results) -> str:
    """Markdown: one line on what the results hold."""
    s = results.summary
    seeds = sorted(int(x) for x in s["seed"].unique())
    targets = sorted(results.transfer["target"].unique()) if not results.transfer.empty else []
    return (f"Results: `{results.root}`, {len(s)} runs: seed(s) {_join(seeds)}; levels 0-{int(s['level'].max())}; "
            f"variants {', '.join([DENSE] + variants(s))}"
            + (f"; transfer targets {', '.join(targets)}" if targets else "") + ".")


def published_text(results: Results) -> str:
    """Markdown: the paper the experiment reproduces and what it found (empty without a reference)."""
    r = results.reference
    if not r:
        return ""
    lines = [f"Published numbers: {r.get('citation', 'no citation given')}."]
    lines += [f"- {finding}" for finding in r.get("findings") or []]
    shown_elsewhere = ("citation", "findings", "published", "protocol", "claims", "needs")  # claims: section 1
    lines += [f"- {k}: {json.dumps(v)}" for k, v in r.items() if k not in shown_elsewhere]
    return "\n".join(lines)


def provenance(results: Results, pruned: bool | None = None) -> dict[str, list[str]]:
    """Every distinct value of each provenance field over the runs (more than one means mixed runs);
    only the dense runs or only the pruned ones with `pruned` (their settings differ by design)."""
    s = results.summary
    if pruned is not None:
        s = s[(s["level"] > 0) == pruned]
    seen: dict[str, dict[str, None]] = {}
    for row in s[["seed", "level", "variant"]].drop_duplicates().itertuples(index=False):
        for key, value in ((results.record(*row) or {}).get("provenance") or {}).items():
            seen.setdefault(key, {})[str(value)] = None
    return {k: list(v) for k, v in seen.items()}


def describe(results: Results) -> str:
    """Markdown, for the appendix: what was run (versions, git commit, data checksum, settings)."""
    prov = provenance(results)

    def one(key: str, of: dict[str, list[str]] = prov) -> str:
        values = of.get(key, ["not recorded"])
        return f"`{values[0]}`" if len(values) == 1 else "mixed: " + ", ".join(f"`{v}`" for v in values)

    pruned_runs = results.summary["level"] > 0
    stages = [f"{name} {one('settings_fingerprint', provenance(results, pruned))}"
              for name, pruned in ((DENSE, False), ("pruned", True)) if (pruned_runs == pruned).any()]

    return "\n".join([
        "### What was run",
        "",
        f"- {overview(results)}",
        f"- Versions: lth {one('lth_version')}, torch {one('torch_version')}; device {one('device')}",
        f"- Git commit: {one('git_commit')}",
        f"- Dataset sha256: {one('dataset_sha256')}",
        f"- Settings fingerprint (one per stage): {'; '.join(stages)}",
        f"- Report kernel: Python {platform.python_version()} in `{sys.prefix}`",
    ])


def config_yaml(results: Results) -> str:
    """For the appendix: the experiment's resolved config as YAML (seeds and variants are above)."""
    config = {k: v for k, v in results.config.items() if k not in ("seeds", "variants")}
    if not config:
        return "# no config was found (no settings.json, config_json or configfile)"
    return yaml.safe_dump(config, sort_keys=False, default_flow_style=None, width=100).rstrip()
