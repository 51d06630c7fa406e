"""The Presets page of the documentation site, written from config/presets/*.yaml at build time.

Each preset is a config file: its header comment says what it reproduces, and each experiment's
`reference` (schemas/reference.schema.yaml) its paper, protocol and claims. The page is a table of
every preset, then one section per preset: citation, the command that runs it, its experiments,
the protocol beside the paper's, and the claims. Torch-free: yaml and the standard library only.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

COMMAND = "uv run snakemake --cores all --configfile config/presets/{name}.yaml"
DEFAULTS = {"kind": "imp", "levels": 13, "seeds": [0, 1, 2], "variants": ["ticket", "reinit", "random_prune"]}

INTRO = """# Presets

A preset is a config file in `config/presets/` that reproduces a paper, or one line of it: its
experiments, the paper's protocol beside ours (every choice, where the paper states it, and why ours
differs), and the paper's claims as checks that each report and the
[scorecard](guides/scorecard.md) give a verdict. Run one with

```text
uv run snakemake --cores all --configfile config/presets/<name>.yaml
```

(add `-n` to see the jobs without running them). A preset that **needs a download** fetches its
torchvision dataset on first use; one that **needs a GPU** is sized for one (it runs on a CPU, for
days). The others run offline on a CPU. This page is written from the preset files when the site is
built (`lth.plan.preset_doc`).
"""


def plain(value: Any) -> str:
    """Free text of a preset as Markdown shows it: one line; brackets and angle brackets escaped, so that
    `x[-1]` is no link and `<iteration>` no HTML tag."""
    parts = " ".join(str(value).split()).split("`")
    for i in range(0, len(parts), 2):  # outside `code spans` only
        parts[i] = parts[i].replace("[", "\\[").replace("]", "\\]").replace("<", "&lt;")
    return "`".join(parts)


def cell(value: Any) -> str:
    """A table cell: plain text, pipes escaped."""
    return plain(value).replace("|", "\\|")


def short_citation(citation: str) -> str:
    """The authors and year of a citation ("Frankle & Carbin 2019, ..." -> "Frankle & Carbin 2019")."""
    found = re.match(r"(.*?\b(?:19|20)\d\d)\b", citation)
    return found.group(1) if found else citation.split(",")[0]


def header(text: str) -> str:
    """The preset file's leading comment, as one paragraph."""
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    return plain(" ".join(line for line in lines if line))


def references(config: dict) -> list[dict]:
    return [e.get("reference") or {} for e in (config.get("experiments") or {}).values()]


def citations(config: dict) -> list[str]:
    seen: list[str] = []
    for ref in references(config):
        if ref.get("citation") and ref["citation"] not in seen:
            seen.append(ref["citation"])
    return seen


def needs(config: dict) -> list[str]:
    out = {n for ref in references(config) for n in ref.get("needs") or []}
    if config.get("download"):
        out.add("download")
    return sorted(out)


def summary(experiment: dict) -> str:
    """One experiment in a few words: its kind, model and dataset."""
    kind = experiment.get("kind", DEFAULTS["kind"])
    model = (experiment.get("model") or {}).get("name", "?")
    dataset = (experiment.get("dataset") or {}).get("name", "?")
    return f"{kind}: `{model}` on `{dataset}`"


def what_it_runs(config: dict) -> str:
    parts = []
    for experiment in (config.get("experiments") or {}).values():
        if summary(experiment) not in parts:
            parts.append(summary(experiment))
    return "; ".join(parts)


def schedule(experiment: dict) -> str:
    """The levels of an IMP experiment, or the densities of a sweep."""
    oneshot = experiment.get("oneshot")
    if oneshot and oneshot.get("densities"):
        return "densities " + ", ".join(f"{d * 100:g} %" for d in oneshot["densities"])
    levels = (experiment.get("pruning") or {}).get("levels", DEFAULTS["levels"])
    return f"{levels} levels"


def experiment_rows(config: dict) -> list[str]:
    rows = ["| experiment | dataset | model | kind | levels or densities | seeds | variants or methods | analyses |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, e in (config.get("experiments") or {}).items():
        oneshot = e.get("oneshot") or {}
        if oneshot.get("methods"):
            variants = ", ".join(oneshot["methods"])
            if oneshot.get("controls"):
                variants += f" (controls: {', '.join(oneshot['controls'])})"
        else:
            variants = ", ".join(e.get("variants", DEFAULTS["variants"]))
        targets = list(((e.get("transfer") or {}).get("targets") or {}))
        if targets:
            variants += f"; transferred to {', '.join(targets)}"
        model = (e.get("model") or {}).get("name", "?")
        if (e.get("model") or {}).get("pretrained"):
            model += f" (pre-trained by {e['model']['pretrained']})"
        seeds = ", ".join(map(str, e.get("seeds", DEFAULTS["seeds"])))
        rows.append("| " + " | ".join(cell(v) for v in (
            f"`{name}`", (e.get("dataset") or {}).get("name", "?"), model, e.get("kind", DEFAULTS["kind"]),
            schedule(e), seeds, variants, ", ".join(e.get("analyses") or []) or "none")) + " |")
    return rows


def protocol_rows(protocol: list[dict]) -> list[str]:
    rows = ["| choice | paper | source | ours | deviation |", "| --- | --- | --- | --- | --- |"]
    for p in protocol:
        deviation = p.get("deviation") or "as the paper"
        rows.append("| " + " | ".join(cell(p.get(k, "")) for k in ("choice", "paper", "source", "ours"))
                    + f" | {cell(deviation)} |")
    return rows


def claim_rows(claims: list[dict]) -> list[str]:
    rows = ["| claim | source | published |", "| --- | --- | --- |"]
    for c in claims:
        published = c.get("published")
        rows.append(f"| {cell(c['claim'])} | {cell(c.get('source', ''))} | "
                    f"{cell(published) if published is not None else ''} |")
    return rows


def section(path: Path) -> list[str]:
    text = path.read_text()
    config = yaml.safe_load(text) or {}
    name = path.stem
    out = [f"## {name}", ""]
    if header(text):
        out += [header(text), ""]
    cites = citations(config)
    if cites:
        out += ["**Paper**: " + "; ".join(map(plain, cites)), ""]
    wanted = needs(config)
    out += [f"**Needs**: {', '.join(wanted) if wanted else 'nothing: offline, on a CPU'}", "",
            "```text", COMMAND.format(name=name), "```", ""]
    out += experiment_rows(config) + [""]
    for exp_name, experiment in (config.get("experiments") or {}).items():
        ref = experiment.get("reference") or {}
        if not (ref.get("protocol") or ref.get("claims")):
            continue
        out += [f"### {exp_name}", ""]
        if ref.get("citation") and len(cites) > 1:
            out += [f"Paper: {plain(ref['citation'])}", ""]
        if ref.get("protocol"):
            out += ["Protocol:", ""] + protocol_rows(ref["protocol"]) + [""]
        if ref.get("claims"):
            out += ["Claims:", ""] + claim_rows(ref["claims"]) + [""]
    return out


def markdown(folder: Path) -> str:
    """The whole page: the intro, a table of every preset, then a section for each."""
    paths = sorted(Path(folder).glob("*.yaml"))
    lines = [INTRO, "| preset | paper | needs | what it runs |", "| --- | --- | --- | --- |"]
    for path in paths:
        config = yaml.safe_load(path.read_text()) or {}
        paper = "; ".join(dict.fromkeys(short_citation(c) for c in citations(config))) or "(none)"
        lines.append(f"| [`{path.stem}`](#{path.stem}) | {cell(paper)} | "
                     f"{', '.join(needs(config)) or 'offline, CPU'} | {cell(what_it_runs(config))} |")
    lines.append("")
    for path in paths:
        lines += section(path)
    return "\n".join(lines).rstrip() + "\n"
