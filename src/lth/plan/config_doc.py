"""The configuration reference, written from the schemas and the registries, never typed.

config/README.md and the site's reference/configuration.md are both this module's `markdown()`
(`python -m lth.plan.config_doc --write config/README.md` rewrites the first; docs/hooks.py writes the
second at build time), so a key added to a schema or a part added to a registry is documented where
it is declared: its `description`, default and accepted values. `documented_keys()` lists every key
and part name the page covers; a test compares it with what the schemas and registries accept.
Torch-free.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lth.core import parts
from lth.plan import schema as experiment_schema
from lth.plan import variants
from lth.plan.markdown_text import cell

TOP_SCHEMA = Path(__file__).resolve().parents[3] / "workflow" / "schemas" / "config.schema.yaml"

# Keys whose values name a registered part: the page lists the parts in "Registered parts".
REGISTRIES: dict[str, tuple[str, str, parts.Registry]] = {
    "models": ("Models", "`model.name`", parts.MODELS),
    "datasets": ("Datasets", "`dataset.name`", parts.DATASETS),
    "pruning-scores": ("Pruning scores", "`pruning.score`, a one-shot method's `score`", parts.SCORES),
    "pruning-strategies": ("Pruning strategies", "`pruning.strategy`", parts.SELECTIONS),
    "training-modes": ("Training modes", "a one-shot method's `train`", parts.TRAINING_MODES),
    "loop-features": ("Loop features", "keys of `training` that switch them on", parts.LOOP_FEATURES),
    "analyses": ("Analyses", "`analyses`", parts.ANALYSES),
    "experiment-kinds": ("Experiment kinds", "`kind`", parts.EXPERIMENT_KINDS),
}
PART_KEYS = {"dataset.name": "datasets", "model.name": "models", "pruning.score": "pruning-scores",
             "pruning.strategy": "pruning-strategies", "kind": "experiment-kinds", "analyses": "analyses",
             "oneshot.methods.<name>.score": "pruning-scores", "oneshot.methods.<name>.train": "training-modes",
             "variants": "variants", "transfer.variants": "transfer-variants"}
SECTIONS_ELSEWHERE = ("reference", "oneshot.methods.<name>")


@dataclass(frozen=True)
class Row:
    key: str
    default: str
    accepts: str
    meaning: str


def fmt(value: Any) -> str:
    """A default as YAML writes it in a flow (one line)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    return text.removesuffix("\n...")


def accepts(s: Mapping[str, Any]) -> str:
    """What a key accepts, read from its schema: type, bounds, choices."""
    if "enum" in s:
        return "one of " + ", ".join(f"`{fmt(v)}`" for v in s["enum"])
    if "oneOf" in s:
        return " or ".join(accepts(o) for o in s["oneOf"])
    types = s.get("type", "")
    types = [types] if isinstance(types, str) else list(types)
    words = {"integer": "integer", "number": "number", "string": "text", "boolean": "`true`/`false`",
             "array": "list", "object": "mapping", "null": "`null`"}
    out = " or ".join(words.get(t, t) for t in types if t) or ("mapping" if "properties" in s else "")
    bounds = [f"{op} {s[k]}" for k, op in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="),
                                            ("exclusiveMaximum", "<")) if k in s]
    if bounds:
        out += " " + ", ".join(bounds)
    items = s.get("items")
    if isinstance(items, Mapping) and ("enum" in items or "type" in items):
        out += f" of {accepts(items)}"
    if "pattern" in s and "|" not in s["pattern"]:  # a table cell cannot hold a "|" that both renderers read
        out += f" matching `{s['pattern']}`"
    return out


def meaning(key: str, s: Mapping[str, Any]) -> str:
    text = cell(s.get("description", ""))
    if text[:2].istitle():  # "Seed of ..." -> "seed of ..."; "MLflow ..." stays
        text = text[0].lower() + text[1:]
    listed = PART_KEYS.get(key)
    return text + (f" ([{listed.replace('-', ' ')}](#{listed}))" if listed else "")


def rows(props: Mapping[str, Any], prefix: str = "", required: tuple[str, ...] = ()) -> Iterator[Row]:
    """One row per key, an object's keys after it; a mapping of named entries as `<name>`."""
    for key, s in props.items():
        full = prefix + key
        default = fmt(s["default"]) if "default" in s else ("(required)" if key in required else "")
        yield Row(full, default, accepts(s), meaning(full, s))
        if full in SECTIONS_ELSEWHERE:
            continue  # its keys have a section of their own
        if "properties" in s:
            yield from rows(s["properties"], f"{full}.", tuple(s.get("required", ())))
        entry = s.get("additionalProperties")
        if isinstance(entry, Mapping) and "properties" in entry and f"{full}.<name>" not in SECTIONS_ELSEWHERE:
            yield from rows(entry["properties"], f"{full}.<name>.", tuple(entry.get("required", ())))


def tables() -> list[tuple[str, str, list[Row]]]:
    """The sections of the page: title, the paragraph before its table, its rows."""
    top = yaml.safe_load(TOP_SCHEMA.read_text())
    exp = experiment_schema.schema()
    props = exp["properties"]
    reference = props["reference"]
    claim = reference["properties"]["claims"]["items"]
    protocol = reference["properties"]["protocol"]["items"]
    method = props["oneshot"]["properties"]["methods"]["additionalProperties"]
    return [
        ("Top level", "", list(rows(top["properties"], required=tuple(top.get("required", ()))))),
        ("One experiment", "", list(rows(props))),
        ("The paper reproduced (`reference`)", INTROS["reference"], list(rows(reference["properties"], "reference."))),
        ("A protocol entry (`reference.protocol[i]`)", "",
         list(rows(protocol["properties"], "", tuple(protocol.get("required", ()))))),
        ("A claim (`reference.claims[i]`)", INTROS["claim"],
         list(rows(claim["properties"], "", tuple(claim.get("required", ()))))),
        ("A one-shot method (`oneshot.methods.<name>`)", INTROS["method"], list(rows(method["properties"]))),
    ]


INTROS = {
    "reference": (
        "What a preset reproduces. Keys not named here stay free form (a preset's extra numbers). The "
        "report's first section and `lth scorecard` evaluate the claims."),
    "claim": (
        "A claim is a difference per seed: `variant` minus `versus` (paired by seed), with its 95 % t-interval "
        "over seeds (`lth.report.claims`). **held**: the interval clears `margin` on the side `direction` says; "
        "**contradicted**: it lies on the other side; **not shown**: it straddles it, and the seeds that would "
        "settle it at the same mean and spread are given. Over a range (`between`) a claim holds where it holds "
        "at every level and is contradicted where it is at one. The config is refused, naming the claim, when "
        "it names a variant, metric, density, target or analysis the experiment lacks."),
    "method": (
        "Every run of a sweep starts from theta_k (`rewind_iteration`) and trains T - k iterations, the budget "
        "of an IMP ticket. A method's keys are these and those its score and training mode declare."),
}


def part_rows(registry: parts.Registry) -> Iterator[tuple[str, str, str]]:
    for name, part in registry.items():
        keys = ", ".join(f"`{k}`" for k in part.config_keys())
        yield name, cell(part.info.get("about", "")), keys


def variant_rows(table: Mapping[str, variants.Variant]) -> Iterator[tuple[str, str, str]]:
    for name, v in table.items():
        yield name, cell(v.about), f"weights `{v.weights}`, mask `{v.mask}`, schedule `{v.schedule}`"


def markdown() -> str:
    out = [
        "# Configuring lth", "",
        "<!-- Written by `python -m lth.plan.config_doc --write config/README.md` from the schemas and the "
        "registries: edit those, not this file. -->", "",
        "`config/config.yaml` is the default config; `config/presets/*.yaml` reproduce papers (each cites its "
        "source and carries the published numbers in `reference`). A `--configfile` replaces the default config. "
        "The schemas are `workflow/schemas/config.schema.yaml` (the top level) and "
        "`src/lth/plan/schemas/*.schema.yaml` (one experiment), completed by the config keys the registered parts "
        "declare (`src/lth/core/parts.py`); this page is written from them. Every key has the default shown, and "
        "a bad key or value stops the workflow before any job, in one line naming the file, the key and the "
        "value. `.test/config/config.yaml` is the smallest complete experiment (CI uses it).", ""]
    for title, intro, table in tables():
        out += [f"## {title}", ""] + ([intro, ""] if intro else [])
        out += ["| key | default | accepts | meaning |", "| --- | --- | --- | --- |"]
        out += [f"| `{r.key}` | {f'`{r.default}`' if r.default and r.default != '(required)' else r.default} "
                f"| {r.accepts} | {r.meaning} |" for r in table]
        out.append("")
    out += ["## Registered parts", "",
            "Every name a key above accepts is a registered part (`src/lth/core/parts.py`, one line each); a "
            "part may add config keys to its section (listed here, described above).", ""]
    for title, used_by, registry in REGISTRIES.values():
        out += [f"### {title}", "", f"Named by {used_by}.", "", "| name | what it is | its keys |",
                "| --- | --- | --- |"]
        out += [f"| `{n}` | {a} | {k} |" for n, a, k in part_rows(registry)]
        out.append("")
    for title, used_by, table in (("Variants", "`variants`", variants.SOURCE),
                                  ("Transfer variants", "`transfer.variants`", variants.TRANSFER)):
        out += [f"### {title}", "", f"Named by {used_by}; each is data (`src/lth/plan/variants.py`).", "",
                "| name | what it trains | as data |", "| --- | --- | --- |"]
        out += [f"| `{n}` | {a} | {d} |" for n, a, d in variant_rows(table)]
        out.append("")
    out += ["Which settings each stage's results depend on, and so when they are reused, is in the concepts "
            "page of the documentation (`docs/concepts.md`, \"Changed settings\").", ""]
    return "\n".join(out)


def documented_keys(text: str) -> set[str]:
    """The keys and part names a page documents: the first cell of its table rows, unquoted."""
    import re

    return set(re.findall(r"^\| `([^`]+)` \|", text, re.M))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lth.plan.config_doc", description=__doc__.split("\n\n")[0])
    p.add_argument("--write", metavar="FILE", help="write the page to FILE (else print it)")
    p.add_argument("--check", metavar="FILE", help="exit 1 if FILE differs from the page")
    a = p.parse_args(argv)
    text = markdown()
    if a.check:
        if Path(a.check).read_text() != text:
            print(f"{a.check} is out of date: python -m lth.plan.config_doc --write {a.check}", file=sys.stderr)
            return 1
    elif a.write:
        Path(a.write).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
