"""The configuration reference is written from the schemas and registries: config/README.md is that page
as generated now, it covers every key the schemas accept and every registered part, and every key has a
meaning (a key added without a description fails here)."""

import subprocess
import sys
from pathlib import Path

import yaml

from lth.core import parts
from lth.plan import config_doc, variants
from lth.plan.schema import schema

ROOT = Path(__file__).resolve().parents[2]


def accepted_keys(s, prefix=""):
    """Every key a schema accepts, dotted; the entries of a name -> settings mapping as `<name>`."""
    for key, sub in (s.get("properties") or {}).items():
        yield prefix + key
        yield from accepted_keys(sub, f"{prefix}{key}.")
        entry = sub.get("additionalProperties")
        if isinstance(entry, dict):
            yield from accepted_keys(entry, f"{prefix}{key}.<name>.")


def test_config_readme_is_the_generated_page():
    """Edit a schema's description and forget to regenerate: this names the command that fixes it."""
    done = subprocess.run([sys.executable, "-m", "lth.plan.config_doc", "--check", "config/README.md"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


def test_the_page_covers_every_key_and_every_registered_part():
    text = config_doc.markdown()
    documented = config_doc.documented_keys(text)
    top = yaml.safe_load(config_doc.TOP_SCHEMA.read_text())
    exp = schema()
    reference = exp["properties"]["reference"]["properties"]
    method = exp["properties"]["oneshot"]["properties"]["methods"]["additionalProperties"]
    wanted = {*accepted_keys(top), *accepted_keys(exp)}
    # the sections of their own: a claim's, a protocol entry's and a one-shot method's keys, unprefixed
    wanted = {k for k in wanted if not k.startswith(("reference.claims.", "reference.protocol.",
                                                     "oneshot.methods.<name>."))}
    wanted |= {*accepted_keys(reference["claims"]["items"]), *accepted_keys(reference["protocol"]["items"]),
               *accepted_keys(method)}
    assert wanted - documented == set()
    names = {n for r in (parts.DATASETS, parts.MODELS, parts.SCORES, parts.SELECTIONS, parts.TRAINING_MODES,
                         parts.LOOP_FEATURES, parts.ANALYSES, parts.EXPERIMENT_KINDS) for n in r}
    assert names | set(variants.SOURCE) | set(variants.TRANSFER) <= documented


def cells(text):
    """The cells of every table row of the page whose first cell is a key or a name."""
    return [[c.strip() for c in line.strip("|").split(" | ")] for line in text.splitlines()
            if line.startswith("| `")]


def test_every_key_and_part_has_a_meaning():
    rows = cells(config_doc.markdown())
    keys = [r for r in rows if len(r) == 4]  # key, default, accepts, meaning
    named = [r for r in rows if len(r) == 3]  # name, what it is, its keys
    assert len(keys) > 150 and len(named) > 50 and len(keys) + len(named) == len(rows)
    assert [r[0] for r in keys if not r[3]] == [] and [r[0] for r in named if not r[1]] == []


def test_a_key_without_a_description_has_an_empty_meaning():
    """So the check above fails for a key a schema or part adds without its description."""
    row = next(config_doc.rows({"x": {"type": "integer", "default": 3}}))
    assert (row.key, row.default, row.accepts, row.meaning) == ("x", "3", "integer", "")


def test_accepts_reads_types_bounds_and_choices():
    assert config_doc.accepts({"type": "number", "exclusiveMinimum": 0, "maximum": 1}) == "number > 0, <= 1"
    assert config_doc.accepts({"enum": ["a", None]}) == "one of `a`, `null`"
    assert config_doc.accepts({"type": ["integer", "null"], "minimum": 1}) == "integer or `null` >= 1"
    assert config_doc.accepts({"type": "array", "items": {"enum": ["x"]}}) == "list of one of `x`"
