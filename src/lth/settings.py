"""Experiment settings: validated once, defaults filled in, frozen, and fingerprinted per stage. No torch.

The schema (src/lth/schemas/experiment.schema.yaml) plus the keys and names of the registered
parts (lth.parts, lth.variants) describe what an experiment may contain. `resolve` returns an
immutable `Settings`; the workflow writes it once to results/<experiment>/settings.json and
every job reads it from there (`lth.plan`).

Each stage's artifacts live in a folder keyed by the fingerprint of only the settings that stage
depends on (`fingerprints`): a dense run does not depend on the pruning settings or the rewind
point, so changing those reuses it. Fingerprints hash the settings that differ from the defaults
(as OpenLTH does), so a key added later with a default leaves existing results valid.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from lth import parts, variants
from lth.errors import LTHError

SCHEMA_PATH = Path(__file__).with_name("schemas") / "experiment.schema.yaml"


class Settings(Mapping):
    """A deeply immutable mapping (lists become tuples) with attribute access: `s.training.lr`."""

    def __init__(self, data: Mapping[str, Any]):
        object.__setattr__(self, "_data", {k: _freeze(v) for k, v in data.items()})

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __getattr__(self, key: str) -> Any:
        if key.startswith("__") or key == "_data":  # copy and pickle look these up before __init__
            raise AttributeError(key)
        try:
            return self._data[key]
        except KeyError:
            raise AttributeError(key) from None

    def __reduce__(self):
        return (Settings, (self.thaw(),))

    def __setattr__(self, key, value):
        raise AttributeError("settings are immutable")

    def __iter__(self):
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"Settings({self.thaw()!r})"

    def thaw(self) -> dict[str, Any]:
        """Plain dicts and lists again (for JSON, and for code that edits a copy)."""
        return _thaw(self)


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return value if isinstance(value, Settings) else Settings(value)
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


# --- validation ---------------------------------------------------------------------------------

@cache
def schema() -> dict:
    """The experiment schema with the registered parts' names and keys filled in."""
    s = yaml.safe_load(SCHEMA_PATH.read_text())
    props = s["properties"]
    pruning = props["pruning"]["properties"]
    pruning.update(parts.SELECTIONS.keys_schema() | parts.SCORES.keys_schema())
    pruning["strategy"]["enum"] = list(parts.SELECTIONS)
    pruning["score"]["enum"] = list(parts.SCORES)
    method = s["$defs"]["method"]["properties"]
    method.update(parts.SCORES.keys_schema())
    method["score"]["enum"] = list(parts.SCORES)
    props["kind"]["enum"] = list(parts.KINDS)
    props["variants"]["items"]["enum"] = list(variants.SOURCE)
    props["analyses"]["items"]["enum"] = list(parts.ANALYSES)
    props.update(parts.ANALYSES.keys_schema())
    props["transfer"]["properties"]["variants"]["items"]["enum"] = list(variants.TRANSFER)
    return s


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


def resolve(raw: Mapping[str, Any], where: str = "settings") -> Settings:
    """Validated, frozen settings with defaults filled in; LTHError naming the key and value otherwise."""
    if isinstance(raw, Settings):
        raw = raw.thaw()
    if not isinstance(raw, Mapping):
        raise LTHError(f"{where}: an experiment must be a mapping, got {type(raw).__name__}")
    settings = copy.deepcopy(dict(raw))
    validator = _validator_with_defaults()(schema())
    errors = sorted(validator.iter_errors(settings), key=lambda e: list(e.absolute_path))
    if errors:
        e = errors[0]
        raise LTHError(f"{where}: {'.'.join(str(p) for p in e.absolute_path) or '(top level)'}: {e.message}")
    check_consistency(settings, where)
    return Settings(settings)


def check_model(name: str, options: Mapping[str, Any], input_shape: tuple[int, ...], where: str = "model") -> None:
    """A registered model, options it takes (positive ints), inputs of the kind it is built for."""
    part = parts.MODELS[name]
    allowed = part.info.get("options", ())
    for key, value in options.items():
        if key not in allowed:
            takes = ", ".join(allowed) if allowed else "no options"
            raise LTHError(f"{where}: unknown option {key!r} for model {name!r} (it takes: {takes})")
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise LTHError(f"{where}: option {key!r} of model {name!r} must be a positive integer, got {value!r}")
    if part.inputs == "image" and len(input_shape) != 3:
        raise LTHError(f"{where}: model {name!r} cannot take input_shape {tuple(input_shape)}: "
                       f"it needs an image shape (C, H, W)")


def _kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "integer" if isinstance(value, int) else "number"
    return "list" if isinstance(value, (list, tuple)) else type(value).__name__


def check_options(name: str, options: Mapping[str, Any], where: str) -> None:
    """Generator options a dataset takes (lth.parts.DATASETS), each of the kind of its default."""
    defaults = parts.DATASETS[name].info.get("options", {})
    for key, value in options.items():
        if key not in defaults:
            allowed = f"allowed: {', '.join(defaults)}" if defaults else "it takes none"
            raise LTHError(f"{where}: unknown or unsupported option {key!r} for dataset {name!r}; {allowed}")
        want = _kind_of(defaults[key])
        if _kind_of(value) != want and not (want == "number" and _kind_of(value) == "integer"):
            raise LTHError(f"{where}.{key}: {value!r} is not a {want} (the default is {defaults[key]!r})")


def dataset_facts(name: str, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A dataset's input shape, classes and training-set size under its options: the registered
    facts, or those its `facts` function derives from the options (a modulus, a dimension)."""
    part = parts.DATASETS[name]
    merged = {**part.info.get("options", {}), **(options or {})}
    facts = {"input_shape": tuple(part.info.get("input_shape", ())), "num_classes": part.info.get("num_classes"),
             "train_size": part.info.get("train_size")}
    if "facts" in part.info:
        facts.update(part.facts(merged))
    facts["input_shape"] = tuple(facts["input_shape"])
    return facts


def input_shape(dataset: Mapping[str, Any]) -> tuple[int, ...]:
    """The shape of one example of a dataset's settings ({name, options, ...})."""
    return dataset_facts(dataset["name"], dataset["options"])["input_shape"]


def num_classes(dataset: Mapping[str, Any]) -> int:
    return dataset_facts(dataset["name"], dataset["options"])["num_classes"]


def check_dataset(d: Mapping[str, Any], batch_size: int, where: str) -> None:
    """A registered dataset, options it takes with values of their kind, and enough training examples
    for the validation split and one batch (`where` names the dataset's key)."""
    name = d["name"]
    if name not in parts.DATASETS:
        raise LTHError(f"{where}.name: unknown dataset '{name}'; known: {', '.join(parts.DATASETS)}")
    check_options(name, d["options"], f"{where}.options")
    options = {**parts.DATASETS[name].info.get("options", {}), **d["options"]}
    if "check" in parts.DATASETS[name].info:
        parts.DATASETS[name].check(options, f"{where}.options")
    train = dataset_facts(name, d["options"])["train_size"]
    if d["val_size"] >= train:
        raise LTHError(f"{where}.val_size: {d['val_size']} leaves no training examples ({name} has {train})")
    if batch_size > train - d["val_size"]:
        raise LTHError(f"{where}.val_size: {d['val_size']} leaves {train - d['val_size']} training examples of "
                       f"{name}, fewer than training.batch_size = {batch_size}")


def check_consistency(s: dict[str, Any], where: str = "settings") -> None:
    """What a schema cannot say: relations between keys, and names known only to the registries."""
    t = s["training"]
    check_dataset(s["dataset"], t["batch_size"], f"{where}: dataset")
    if s["model"]["name"] not in parts.MODELS:
        raise LTHError(f"{where}: model.name: unknown model '{s['model']['name']}'; known: {', '.join(parts.MODELS)}")
    check_model(s["model"]["name"], s["model"]["options"], input_shape(s["dataset"]),
                f"{where}: model")
    if s["rewind_iteration"] >= t["iterations"]:
        raise LTHError(
            f"{where}: rewind_iteration: {s['rewind_iteration']} is beyond the training budget "
            f"(training.iterations = {t['iterations']})"
        )
    check_transfer(s, where)
    check_data_score(s["pruning"], f"{where}: pruning")
    if s["kind"] == "oneshot":
        check_oneshot(s, where)
    for name in s["analyses"]:
        if parts.ANALYSES[name].info.get("check"):
            from lth.registry import Part

            Part("check", parts.ANALYSES[name].check).load()(s, where)
    late = [m for m in t["milestones"] if m >= t["iterations"]]
    if late:
        raise LTHError(f"{where}: training.milestones: {late} not below training.iterations = {t['iterations']}")
    if t["warmup"] >= t["iterations"]:
        raise LTHError(f"{where}: training.warmup: {t['warmup']} not below training.iterations = {t['iterations']}")


def check_data_score(method: dict[str, Any], where: str) -> None:
    """A score that ranks weights by their effect on a batch of training data is told its batch size."""
    if parts.SCORES[method["score"]].info.get("data") and method["batch"] is None:
        raise LTHError(f"{where}.batch: score {method['score']!r} needs a batch of training data: set batch "
                       f"(e.g. batch: 256)")


DENSITY_GRID = 10000  # a one-shot density is a whole number of weights per DENSITY_GRID (it names folders)


def check_oneshot(s: dict[str, Any], where: str) -> None:
    """A one-shot sweep: densities strictly between 0 and 1 on a 1/10,000 grid (they name folders),
    methods whose scores get what they need, and each method's rounds spelt out (lth.sweep)."""
    o = s["oneshot"]
    for d in o["densities"]:
        if isinstance(d, bool) or not 0 < d < 1:
            raise LTHError(f"{where}: oneshot.densities: {d!r} is not a density in (0, 1) (the fraction of "
                           f"prunable weights kept: 0 keeps none, 1 prunes nothing)")
        if abs(d * DENSITY_GRID - round(d * DENSITY_GRID)) > 1e-6:
            raise LTHError(f"{where}: oneshot.densities: {d!r} is not a multiple of 0.0001")
    for name, m in o["methods"].items():
        at = f"{where}: oneshot.methods.{name}"
        check_data_score(m, at)
        if m["rounds"] is None:
            m["rounds"] = parts.SCORES[m["score"]].info.get("rounds", 1)
        if isinstance(m["at"], int) and m["at"] >= s["training"]["iterations"]:
            raise LTHError(f"{at}.at: iteration {m['at']} is beyond the training budget (training.iterations = "
                           f"{s['training']['iterations']})")
        if m["train"] == "edgepopup" and m["distribution"] != "uniform":
            raise LTHError(f"{at}: train: edgepopup keeps the same fraction of every layer (Ramanujan et al. 2020): "
                           f"it takes distribution: uniform, got {m['distribution']!r}")
        if m["train"] == "iht":
            if m["score"] != "magnitude" or m["distribution"] == "erk":
                raise LTHError(f"{at}: train: iht thresholds by magnitude, globally or per layer: it takes "
                               f"score: magnitude and distribution global or uniform")
            if m["iht"]["warmup"] + m["iht"]["ramp"] >= s["training"]["iterations"]:
                raise LTHError(f"{at}.iht: warmup + ramp = {m['iht']['warmup'] + m['iht']['ramp']} leaves no "
                               f"iteration at the target density (training.iterations = {s['training']['iterations']})")


def check_transfer(s: dict[str, Any], where: str) -> None:
    """Transfer targets: known datasets, inputs adaptable to the source model, levels that exist."""
    tr = s["transfer"]
    if not tr["targets"]:
        return
    if "ticket" not in variants.chains(s["variants"]):
        raise LTHError(f"{where}: transfer needs the tickets of the ticket chain: add 'ticket' to variants")
    beyond = [level for level in (tr["levels"] or []) if level > s["pruning"]["levels"]]
    if beyond:
        raise LTHError(f"{where}: transfer.levels: {beyond} beyond pruning.levels = {s['pruning']['levels']}")
    source = input_shape(s["dataset"])
    for name, target in tr["targets"].items():
        check_dataset(target["dataset"], s["training"]["batch_size"], f"{where}: transfer.targets.{name}.dataset")
        check_adaptable(source, input_shape(target["dataset"]),
                        f"{where}: transfer.targets.{name}")


def check_adaptable(source: tuple[int, ...], target: tuple[int, ...], where: str) -> None:
    """Refuse a target whose inputs cannot be adapted to the source model's input shape (lth.transfer)."""
    if tuple(source) == tuple(target):
        return
    if len(source) == 3 and len(target) == 3 and (source[0] == target[0] or 1 in (source[0], target[0])):
        return
    raise LTHError(f"{where}: target inputs of shape {tuple(target)} cannot be adapted to the source model's "
                   f"input shape {tuple(source)} (only channels 1<->C and image resizing are adapted)")


def read(path: str | Path) -> Any:
    """The raw settings in a YAML/JSON file of one experiment (by hand: `lth train --settings F`);
    an empty file is all defaults."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise LTHError(f"settings file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise LTHError(f"{path}: not valid YAML: {exc}") from None
    return {} if raw is None else raw


def augments(training: Mapping[str, Any], dataset: str) -> bool:
    """Crop/flip augmentation on `dataset`: as configured, else the dataset's default."""
    return parts.DATASETS[dataset].augment if training["augment"] is None else training["augment"]


# --- fingerprints -------------------------------------------------------------------------------

_REMOVED = "<removed>"
NOT_RESULTS = ("checkpoint_every",)  # training keys that change how a run is written, not its results


@cache
def _defaults() -> Settings:
    return resolve({})


def _diff(value: Any, default: Any) -> Any:
    """What `value` changes relative to `default`: the changed keys of nested mappings (removed ones
    marked), a whole value otherwise. Equal settings give equal diffs, different settings different ones."""
    if isinstance(value, Mapping) and isinstance(default, Mapping):
        out = {k: _diff(v, default.get(k, _REMOVED)) for k, v in value.items() if default.get(k, _REMOVED) != v}
        out.update({k: _REMOVED for k in default if k not in value})
        return out
    return _thaw(value)


def _hash(*parts_: Any) -> str:
    return hashlib.sha256(json.dumps(parts_, sort_keys=True).encode()).hexdigest()[:12]


def _changed(s: Settings, *keys: str) -> dict[str, Any]:
    d = _defaults()
    return {k: _diff(s[k], d[k]) for k in keys}


def _score_keys(method: Mapping[str, Any]) -> tuple[str, ...]:
    """The keys a method's score reads: its own, and the batch size of a data score."""
    score = parts.SCORES[method["score"]]
    return (*score.keys, *(["batch"] if score.info.get("data") else []))


def _method_keys(s: Settings, m: Mapping[str, Any]) -> dict[str, Any]:
    """What a one-shot method's runs depend on: its keys that apply, and, for a method that prunes
    its own previous density's weights, the densities of that chain."""
    if m["train"] == "iht":
        keys = ["train", "distribution", "iht"]
    elif m["train"] == "edgepopup":
        keys = ["train", "distribution"]
    else:
        keys = ["score", "at", "train", "distribution", "min_per_layer", "rounds", *_score_keys(m)]
    out = {k: _thaw(m[k]) for k in keys}
    if m["at"] == "previous" and m["train"] == "masked":
        out["densities"] = sorted(s.oneshot.densities, reverse=True)
    return out


def fingerprints(s: Settings) -> dict[str, str]:
    """Stage -> fingerprint of the settings its artifacts depend on, each including its upstream's.

    dense: dataset, model, training (less how often it checkpoints; augmentation as it applies),
    the excluded layers and whether biases are pruned (the dense mask); imp: + kind, rewind point and the pruning method (the
    score and strategy, with the keys they declare; not how many levels); transfer:<target>: +
    the target's dataset. A one-shot sweep (kind oneshot) has instead of imp a fingerprint of the
    dense one and the rewind point, and one per method ("method:<name>") of its own keys.
    Which seeds, levels, variants and targets exist is in none of them.
    """
    d = _defaults()
    training = {k: v for k, v in s.training.items() if k not in NOT_RESULTS}
    training["augment"] = augments(s.training, s.dataset.name)  # the dataset's default, spelt out
    dense = _hash("dense", _changed(s, "dataset", "model"),
                  _diff(training, {k: v for k, v in d.training.items() if k not in NOT_RESULTS}),
                  sorted(s.pruning.exclude), *(["biases pruned"] if s.pruning.biases else []))
    if s.kind == "oneshot":
        imp = _hash("oneshot", dense, s.rewind_iteration)
        out = {"dense": dense, "imp": imp, **{f"method:{name}": _hash("method", imp, _method_keys(s, m))
                                               for name, m in s.oneshot.methods.items()}}
    else:
        method = ("score", "strategy", *parts.SELECTIONS[s.pruning.strategy].keys, *_score_keys(s.pruning))
        imp = _hash("imp", dense, s.kind, s.rewind_iteration,
                    _diff({k: s.pruning[k] for k in method}, {k: d.pruning[k] for k in method}))
        out = {"dense": dense, "imp": imp}
    for name in s.analyses:
        part = parts.ANALYSES[name]
        if part.info.get("trains"):
            own = {k: _thaw(v) for k, v in s[name].items() if k in part.info["trained_by"]}
            out[f"analysis:{name}"] = _hash("analysis", name, out["imp"], own)
    for name, target in s.transfer.targets.items():
        out[f"transfer:{name}"] = _hash("transfer", imp, _diff(target.dataset, _defaults().dataset))
    return out
