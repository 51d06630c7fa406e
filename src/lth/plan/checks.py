"""What a schema cannot say: relations between an experiment's keys, and names known only to the
registries. Each check raises one LTHError naming the key and the value. Torch-free: these run
when the workflow is parsed. A kind's own checks are its plan class's `check`; an analysis's, its
registered `check`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lth.core import parts
from lth.core.errors import LTHError
from lth.core.registry import load_target
from lth.plan import variants
from lth.plan.facts import dataset_facts, input_shape


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


def kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "integer" if isinstance(value, int) else "number"
    return "list" if isinstance(value, (list, tuple)) else type(value).__name__


def check_options(name: str, options: Mapping[str, Any], where: str) -> None:
    """Generator options a dataset takes (lth.core.parts.DATASETS), each of the kind of its default."""
    defaults = parts.DATASETS[name].info.get("options", {})
    for key, value in options.items():
        if key not in defaults:
            allowed = f"allowed: {', '.join(defaults)}" if defaults else "it takes none"
            raise LTHError(f"{where}: unknown or unsupported option {key!r} for dataset {name!r}; {allowed}")
        want = kind_of(defaults[key])
        if kind_of(value) != want and not (want == "number" and kind_of(value) == "integer"):
            raise LTHError(f"{where}.{key}: {value!r} is not a {want} (the default is {defaults[key]!r})")


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
    strategy = parts.SELECTIONS[s["pruning"]["strategy"]]
    if strategy.info.get("check"):
        load_target(strategy.check)(s["pruning"], f"{where}: pruning")
    parts.EXPERIMENT_KINDS[s["kind"]].load().check(s, where)
    for name in s["analyses"]:
        if parts.ANALYSES[name].info.get("check"):
            load_target(parts.ANALYSES[name].check)(s, where)
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
    """Refuse a target whose inputs cannot be adapted to the source model's input shape (lth.jobs.transfer)."""
    if tuple(source) == tuple(target):
        return
    if len(source) == 3 and len(target) == 3 and (source[0] == target[0] or 1 in (source[0], target[0])):
        return
    raise LTHError(f"{where}: target inputs of shape {tuple(target)} cannot be adapted to the source model's "
                   f"input shape {tuple(source)} (only channels 1<->C and image resizing are adapted)")



def check_pq(o: Mapping[str, Any], where: str) -> None:
    """The PQ Index (lth.pruning.sap) needs 0 < p < q."""
    if o["p"] >= o["q"]:
        raise LTHError(f"{where}: p = {o['p']} must be below q = {o['q']} (the PQ Index needs 0 < p < q)")


def check_sap(pruning: Mapping[str, Any], where: str) -> None:
    check_pq(pruning["sap"], f"{where}.sap")
