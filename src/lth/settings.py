"""Experiment settings: validated against the JSON schema, defaults filled in, cross-checked.

The schema (src/lth/schemas/experiment.schema.yaml) is the single description of what an
experiment may contain; the workflow validates its config against the same file.
"""

from __future__ import annotations

import copy
import hashlib
import json
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from lth.errors import LTHError
from lth.files import read_json, write_json

SCHEMA_PATH = Path(__file__).with_name("schemas") / "experiment.schema.yaml"
VARIANTS = ("ticket", "reinit", "random_prune", "lr_rewind", "finetune")
# Chains of masks: each keeps its own across levels; the baselines branch off the ticket chain.
CHAIN_OF = {"ticket": "ticket", "reinit": "ticket", "random_prune": "ticket", "lr_rewind": "lr_rewind", "finetune": "finetune"}


def chains(variants: list[str]) -> dict[str, list[str]]:
    """Chain -> the variants trained in its level jobs. The ticket chain always trains `ticket`
    (its weights are what the next level prunes), then the baselines configured beside it."""
    out: dict[str, list[str]] = {}
    for v in VARIANTS:
        if v in variants or (v == "ticket" and any(CHAIN_OF[x] == "ticket" for x in variants)):
            out.setdefault(CHAIN_OF[v], []).append(v)
    return out


@cache
def schema() -> dict:
    return yaml.safe_load(SCHEMA_PATH.read_text())


def _validator_with_defaults():
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


def _path(error) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "(top level)"


def resolve(raw: dict[str, Any] | None, where: str = "settings") -> dict[str, Any]:
    """Validated settings with defaults filled in; LTHError naming the key and value otherwise."""
    settings = copy.deepcopy(raw or {})
    if not isinstance(settings, dict):
        raise LTHError(f"{where}: an experiment must be a mapping, got {type(settings).__name__}")
    validator = _validator_with_defaults()(schema())
    errors = sorted(validator.iter_errors(settings), key=lambda e: list(e.absolute_path))
    if errors:
        e = errors[0]
        raise LTHError(f"{where}: {_path(e)}: {e.message}")
    check_consistency(settings, where)
    return settings


def check_consistency(s: dict[str, Any], where: str = "settings") -> None:
    """What a schema cannot say: relations between keys, and names known only to the code."""
    from lth.datasets import DATASETS
    from lth.models import MODELS

    t = s["training"]
    if s["dataset"]["name"] not in DATASETS:
        raise LTHError(f"{where}: dataset.name: unknown dataset '{s['dataset']['name']}'; known: {', '.join(DATASETS)}")
    if s["model"]["name"] not in MODELS:
        raise LTHError(f"{where}: model.name: unknown model '{s['model']['name']}'; known: {', '.join(MODELS)}")
    if s["rewind_iteration"] >= t["iterations"]:
        raise LTHError(
            f"{where}: rewind_iteration: {s['rewind_iteration']} is beyond the training budget "
            f"(training.iterations = {t['iterations']})"
        )
    late = [m for m in t["milestones"] if m >= t["iterations"]]
    if late:
        raise LTHError(f"{where}: training.milestones: {late} not below training.iterations = {t['iterations']}")
    if t["warmup"] >= t["iterations"]:
        raise LTHError(f"{where}: training.warmup: {t['warmup']} not below training.iterations = {t['iterations']}")


def load(path: str | Path) -> dict[str, Any]:
    """Read a YAML/JSON settings file of one experiment, or a results folder's settings.json, and resolve it."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise LTHError(f"settings file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise LTHError(f"{path}: not valid YAML: {exc}") from None
    if isinstance(raw, dict) and set(raw) == {"fingerprint", "settings"}:  # written by claim_results_folder
        raw = raw["settings"]
    return resolve(raw, where=str(path))


def core(settings: dict[str, Any]) -> dict[str, Any]:
    """The settings that determine each run's results: not which seeds, levels or variants exist,
    so adding a seed or a level to an experiment keeps its finished runs."""
    out = {k: v for k, v in settings.items() if k not in ("seeds", "variants", "reference")}
    out["pruning"] = {k: v for k, v in settings["pruning"].items() if k != "levels"}
    return out


def fingerprint(settings: dict[str, Any]) -> str:
    """Short stable hash of `core(settings)`."""
    return hashlib.sha256(json.dumps(core(settings), sort_keys=True).encode()).hexdigest()[:12]


def check_results_folder(root: str | Path, settings: dict[str, Any]) -> bool:
    """True if `root` already records these settings; False if it records none yet.

    LTHError if it holds runs of other settings: the experiment name was reused after a change,
    and mixing old and new runs would silently corrupt its summary.
    """
    path = Path(root) / "settings.json"
    if not path.exists():
        return False
    old = read_json(path)
    if old.get("fingerprint") == fingerprint(settings):
        return True
    changed = sorted(k for k in set(old.get("settings", {})) | set(core(settings))
                     if old.get("settings", {}).get(k) != core(settings).get(k))
    raise LTHError(
        f"{root} holds results of other settings (changed: {', '.join(changed) or '?'}; fingerprint "
        f"{old.get('fingerprint')} there, {fingerprint(settings)} now): use another experiment name, "
        f"or delete {root} to recompute"
    )


def claim_results_folder(root: str | Path, settings: dict[str, Any]) -> None:
    """Record the settings beside the results (see `check_results_folder`)."""
    if not check_results_folder(root, settings):
        write_json(Path(root) / "settings.json", {"fingerprint": fingerprint(settings), "settings": core(settings)})
