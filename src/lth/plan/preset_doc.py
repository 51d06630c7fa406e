"""The Presets page of the documentation site, written from config/presets/*.yaml at build time.

Each preset is a config file: its header comment says what it reproduces, and each experiment's
`reference` (schemas/reference.schema.yaml) its paper, protocol and claims. The page is a table of
every preset, then one section per preset: citation, the command that runs it, its experiments,
the protocol beside the paper's, and the claims. Each experiment is read as the workflow reads it
(lth.plan.settings.resolve: defaults filled in), and what it needs as the scorecard says
(lth.plan.reference.needs). Torch-free.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from lth.plan import reference
from lth.plan.markdown_text import cell, plain
from lth.plan.settings import Settings, resolve

COMMAND = "uv run snakemake --cores all --configfile config/presets/{name}.yaml"

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


def short_citation(citation: str) -> str:
    """The authors and year of a citation ("Frankle & Carbin 2019, ..." -> "Frankle & Carbin 2019")."""
    found = re.match(r"(.*?\b(?:19|20)\d\d)\b", citation)
    return found.group(1) if found else citation.split(",")[0]


@dataclass(frozen=True)
class Preset:
    """A preset file read once: its name, header comment, top-level `download` and resolved experiments."""

    name: str
    header: str
    download: bool
    experiments: dict[str, Settings]

    @classmethod
    def read(cls, path: Path) -> Preset:
        text = path.read_text()
        config = yaml.safe_load(text) or {}
        experiments = {name: resolve(json.loads(json.dumps(raw)), where=f"{path}: experiments.{name}")
                       for name, raw in (config.get("experiments") or {}).items()}
        return cls(path.stem, header(text), bool(config.get("download")), experiments)

    def citations(self) -> list[str]:
        return list(dict.fromkeys(s["reference"]["citation"] for s in self.experiments.values()
                                  if s["reference"].get("citation")))

    def needs(self) -> list[str]:
        out = {n for s in self.experiments.values() for n in reference.needs(s)}
        return sorted(out | ({"download"} if self.download else set()))

    def what_it_runs(self) -> str:
        return "; ".join(dict.fromkeys(summary(s) for s in self.experiments.values()))


def header(text: str) -> str:
    """The preset file's leading comment, as one paragraph."""
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    return plain(" ".join(line for line in lines if line))


def summary(s: Settings) -> str:
    """One experiment in a few words: its kind, model and dataset."""
    return f"{s['kind']}: `{s['model']['name']}` on `{s['dataset']['name']}`"


def schedule(s: Settings) -> str:
    """The levels of an IMP experiment, or the densities of a sweep."""
    if s["kind"] == "oneshot":
        return "densities " + ", ".join(f"{d * 100:g} %" for d in s["oneshot"]["densities"])
    return f"{s['pruning']['levels']} levels"


def experiment_rows(preset: Preset) -> list[str]:
    rows = ["| experiment | dataset | model | kind | levels or densities | seeds | variants or methods | analyses |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, s in preset.experiments.items():
        if s["kind"] == "oneshot":
            variants = ", ".join(s["oneshot"]["methods"])
            if s["oneshot"]["controls"]:
                variants += f" (controls: {', '.join(s['oneshot']['controls'])})"
        else:
            variants = ", ".join(s["variants"])
        if s["transfer"]["targets"]:
            variants += f"; transferred to {', '.join(s['transfer']['targets'])}"
        model = s["model"]["name"]
        if s["model"]["pretrained"]:
            model += f" (pre-trained by {s['model']['pretrained']})"
        rows.append("| " + " | ".join(cell(v) for v in (
            f"`{name}`", s["dataset"]["name"], model, s["kind"], schedule(s), ", ".join(map(str, s["seeds"])),
            variants, ", ".join(s["analyses"]) or "none")) + " |")
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


def section(preset: Preset) -> list[str]:
    out = [f"## {preset.name}", ""]
    if preset.header:
        out += [preset.header, ""]
    cites = preset.citations()
    if cites:
        out += ["**Paper**: " + "; ".join(map(plain, cites)), ""]
    wanted = preset.needs()
    out += [f"**Needs**: {', '.join(wanted) if wanted else 'nothing: offline, on a CPU'}", "",
            "```text", COMMAND.format(name=preset.name), "```", ""]
    out += experiment_rows(preset) + [""]
    for exp_name, s in preset.experiments.items():
        ref = s["reference"]
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
    presets = [Preset.read(path) for path in sorted(Path(folder).glob("*.yaml"))]
    lines = [INTRO, "| preset | paper | needs | what it runs |", "| --- | --- | --- | --- |"]
    for p in presets:
        paper = "; ".join(dict.fromkeys(short_citation(c) for c in p.citations())) or "(none)"
        lines.append(f"| [`{p.name}`](#{p.name}) | {cell(paper)} | {', '.join(p.needs()) or 'offline, CPU'} | "
                     f"{cell(p.what_it_runs())} |")
    lines.append("")
    for p in presets:
        lines += section(p)
    return "\n".join(lines).rstrip() + "\n"
