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
    check_transfer(s, where)
    late = [m for m in t["milestones"] if m >= t["iterations"]]
    if late:
        raise LTHError(f"{where}: training.milestones: {late} not below training.iterations = {t['iterations']}")
    if t["warmup"] >= t["iterations"]:
        raise LTHError(f"{where}: training.warmup: {t['warmup']} not below training.iterations = {t['iterations']}")


def check_transfer(s: dict[str, Any], where: str) -> None:
    """Transfer targets: known datasets, inputs adaptable to the source model, levels that exist."""
    from lth.datasets import DATASETS
    from lth.transfer import check_adaptable

    tr = s["transfer"]
    if not tr["targets"]:
        return
    if "ticket" not in chains(s["variants"]):
        raise LTHError(f"{where}: transfer needs the tickets of the ticket chain: add 'ticket' to variants")
    beyond = [level for level in (tr["levels"] or []) if level > s["pruning"]["levels"]]
    if beyond:
        raise LTHError(f"{where}: transfer.levels: {beyond} beyond pruning.levels = {s['pruning']['levels']}")
    source = DATASETS[s["dataset"]["name"]].input_shape
    for name, target in tr["targets"].items():
        dataset = target["dataset"]["name"]
        if dataset not in DATASETS:
            raise LTHError(f"{where}: transfer.targets.{name}.dataset.name: unknown dataset '{dataset}'; "
                           f"known: {', '.join(DATASETS)}")
        check_adaptable(source, DATASETS[dataset].input_shape, f"{where}: transfer.targets.{name}")


def transfer_levels(s: dict[str, Any]) -> list[int]:
    """Levels of a transfer job: 0 (the dense network) and the source levels transferred."""
    if not s["transfer"]["targets"]:
        return []
    return [0] + list(s["transfer"]["levels"] or range(1, s["pruning"]["levels"] + 1))


def transfer_variants(s: dict[str, Any], level: int) -> list[str]:
    wanted = s["transfer"]["variants"]
    return [v for v in wanted if (v == "dense") == (level == 0)]


def load(path: str | Path) -> dict[str, Any]:
    """Read a YAML/JSON settings file of one experiment, or a results folder's settings.json, and resolve it."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise LTHError(f"settings file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise LTHError(f"{path}: not valid YAML: {exc}") from None
    if isinstance(raw, dict) and {"fingerprint", "settings"} <= set(raw):  # written by claim_results_folder
        raw = {**raw["settings"], "transfer": {"targets": raw.get("targets", {})}}
    return resolve(raw, where=str(path))


def core(settings: dict[str, Any]) -> dict[str, Any]:
    """The settings that determine each run's results: not which seeds, levels, variants or
    transfer targets exist, so adding any of them keeps an experiment's finished runs. (A target's
    own settings are checked per target: see `check_results_folder`.)"""
    out = {k: v for k, v in settings.items() if k not in ("seeds", "variants", "reference", "transfer")}
    out["pruning"] = {k: v for k, v in settings["pruning"].items() if k != "levels"}
    return out


def fingerprint(settings: dict[str, Any]) -> str:
    """Short stable hash of `core(settings)`."""
    return hashlib.sha256(json.dumps(core(settings), sort_keys=True).encode()).hexdigest()[:12]


def check_results_folder(root: str | Path, settings: dict[str, Any]) -> bool:
    """True if `root` already records these settings; False if it records none yet.

    LTHError if it holds runs of other settings (or a transfer target of the same name with
    another dataset): the name was reused after a change, and mixing old and new runs would
    silently corrupt its summary.
    """
    path = Path(root) / "settings.json"
    if not path.exists():
        return False
    old = read_json(path)
    if old.get("fingerprint") != fingerprint(settings):
        changed = sorted(k for k in set(old.get("settings", {})) | set(core(settings))
                         if old.get("settings", {}).get(k) != core(settings).get(k))
        raise LTHError(
            f"{root} holds results of other settings (changed: {', '.join(changed) or '?'}; fingerprint "
            f"{old.get('fingerprint')} there, {fingerprint(settings)} now): use another experiment name, "
            f"or delete {root} to recompute"
        )
    for name, target in settings["transfer"]["targets"].items():
        before = old.get("targets", {}).get(name)
        if before is not None and before != target:
            raise LTHError(f"{root} holds transfer runs of target '{name}' with other settings: rename the target, "
                           f"or delete {root}/seed*/transfer-{name} to recompute")
    return True


def claim_results_folder(root: str | Path, settings: dict[str, Any]) -> None:
    """Record the settings beside the results (see `check_results_folder`)."""
    path = Path(root) / "settings.json"
    targets = settings["transfer"]["targets"]
    if check_results_folder(root, settings):
        old = read_json(path)
        if not targets.keys() <= old.get("targets", {}).keys():
            write_json(path, {**old, "targets": {**old.get("targets", {}), **targets}})
    else:
        write_json(path, {"fingerprint": fingerprint(settings), "settings": core(settings), "targets": targets})
