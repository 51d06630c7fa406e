"""The experiment schema with the registered parts filled in, and a validator that fills in defaults.

src/lth/plan/schemas/experiment.schema.yaml holds what every experiment has; each registry adds
its parts' names (the enums) and the keys its parts declare (lth.core.registry). Torch-free.
"""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from lth.core import parts
from lth.core.errors import LTHError
from lth.plan import variants

SCHEMA_PATH = Path(__file__).with_name("schemas") / "experiment.schema.yaml"
REFERENCE_PATH = SCHEMA_PATH.with_name("reference.schema.yaml")


@cache
def schema() -> dict:
    """The experiment schema with the registered parts' names and keys filled in."""
    s = yaml.safe_load(SCHEMA_PATH.read_text())
    props = s["properties"]
    pruning = props["pruning"]["properties"]
    pruning.update(parts.SELECTIONS.keys_schema() | parts.SCORES.keys_schema())
    pruning["strategy"]["enum"] = list(parts.SELECTIONS)
    pruning["score"]["enum"] = list(parts.SCORES)
    props["training"]["properties"].update(parts.LOOP_FEATURES.keys_schema())
    props["kind"]["enum"] = list(parts.EXPERIMENT_KINDS)
    props["reference"] = yaml.safe_load(REFERENCE_PATH.read_text())
    props.update(parts.EXPERIMENT_KINDS.keys_schema())
    props["variants"]["items"]["enum"] = list(variants.SOURCE)
    props["analyses"]["items"]["enum"] = list(parts.ANALYSES)
    props.update(parts.ANALYSES.keys_schema())
    props["transfer"]["properties"]["variants"]["items"]["enum"] = list(variants.TRANSFER)
    return s


def validator_with_defaults():
    """A Draft 2020-12 validator that also fills in `default` values (objects first, then their keys)."""
    import jsonschema

    base = jsonschema.Draft202012Validator
    validate_props = base.VALIDATORS["properties"]

    def properties(validator, props, instance, schema_):
        if isinstance(instance, dict):
            for key, sub in props.items():
                if "default" in sub and key not in instance:
                    instance[key] = copy.deepcopy(sub["default"])
        yield from validate_props(validator, props, instance, schema_)

    return jsonschema.validators.extend(base, {"properties": properties})


def validate(instance: Any, schema_: dict, where: str, longest: int | None = None) -> None:
    """Fill in `instance`'s defaults; LTHError "<where>: <key>: <message>" for its first error (by key
    path; the message cut at `longest` characters when given)."""
    errors = sorted(validator_with_defaults()(schema_).iter_errors(instance), key=lambda e: list(e.absolute_path))
    if errors:
        e = errors[0]
        key = ".".join(str(p) for p in e.absolute_path) or "(top level)"
        message = e.message if longest is None or len(e.message) <= longest else e.message[:longest] + "..."
        raise LTHError(f"{where}: {key}: {message}")
