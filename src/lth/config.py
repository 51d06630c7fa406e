"""The workflow's config: its top level (folders, device, tracking) and its experiments, checked
when the workflow is parsed, before any job starts. Every problem is one line that names the
config file, the key and the value; nothing is hashed or imported (torch only for a config that
names layers, to check those names against the model).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from lth import parts
from lth.errors import LTHError
from lth.layout import dataset_dir, tensors_file
from lth.settings import Settings, _validator_with_defaults, input_shape, num_classes, resolve

KINDS = ("fc", "conv", "output", "bias")


def load(config: Any, schema_file: str | Path, source: str, cwd: str | Path = ".") -> tuple[dict, dict[str, Settings]]:
    """(the top level with defaults filled in, each experiment's resolved settings); LTHError otherwise."""
    if not isinstance(config, dict):
        raise LTHError(f"{source}: a config must be a mapping of keys, got {type(config).__name__}")
    validator = _validator_with_defaults()(yaml.safe_load(Path(schema_file).read_text()))
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        e = errors[0]
        key = ".".join(str(p) for p in e.absolute_path) or "(top level)"
        message = e.message if len(e.message) <= 300 else e.message[:300] + "..."
        raise LTHError(f"{source}: {key}: {message}")
    check_paths(config, source, cwd)
    experiments = {}
    for name, raw in config["experiments"].items():
        where = f"{source}: experiments.{name}"
        experiments[name] = s = resolve(raw, where=where)
        check_layers(s, where)
        for key, dataset in [("dataset", s.dataset)] + [(f"transfer.targets.{t}.dataset", v.dataset)
                                                         for t, v in s.transfer.targets.items()]:
            check_on_disk(dataset, config, f"{where}.{key}", cwd)
    from lth.pretrained import link

    experiments = link(experiments, config["experiments"], source)
    for name, c in config["comparisons"].items():
        unknown = [e for e in c["experiments"] if e not in experiments]
        if unknown:
            raise LTHError(f"{source}: comparisons.{name}.experiments: {unknown} are not experiments of this config; "
                           f"known: {', '.join(experiments)}")
    return config, experiments


def check_paths(config: dict, source: str, cwd: str | Path) -> None:
    """Folders inside the project (unless `paths_outside_project`), and no wildcard braces in them."""
    root = os.path.abspath(cwd)
    for key in ("data_dir", "results_dir", "reports_dir"):
        value = config[key]
        if any(c in value for c in "{}\n\r\0"):
            raise LTHError(f"{source}: {key}: {value!r}: braces and control characters are not allowed in a folder")
        full = os.path.abspath(os.path.join(root, value))
        if not config["paths_outside_project"] and os.path.commonpath([root, full]) != root:
            raise LTHError(f"{source}: {key}: {value!r} is outside the project folder {root}; "
                           f"set paths_outside_project: true to allow it")


def check_layers(s: Settings, where: str) -> None:
    """Layer-wise rates for every kind of layer the model has; named layers that exist."""
    model = parts.MODELS[s.model.name]
    layerwise = s.pruning.strategy == "layerwise" and s.kind == "imp"  # a one-shot sweep has no rates
    if layerwise:
        missing = [k for k in (*model.kinds, *(["bias"] if s.pruning.biases else [])) if k not in s.pruning.rates]
        named = [k for k in s.pruning.rates if k not in KINDS]
        if missing and not named and not s.pruning.exclude:  # excluded layers may be all of a kind: checked below
            raise LTHError(f"{where}: pruning.rates: no rate for the {', '.join(missing)} layers of model "
                           f"{s.model.name!r} (rates: {dict(s.pruning.rates)})")
    synflow = s.kind == "oneshot" and any(m.score == "synflow" for m in s.oneshot.methods.values())
    if not s.pruning.exclude and not synflow and (not layerwise or all(k in KINDS for k in s.pruning.rates)):
        return
    from lth.masks import layer_kinds
    from lth.models import build_model
    from lth.pruning.select import layer_rates

    net = build_model(s.model.name, input_shape(s.dataset), num_classes(s.dataset), seed=0, **s.model.options)
    try:
        kinds = layer_kinds(net, s.pruning.exclude, s.pruning.biases)
        if layerwise:
            layer_rates(kinds, s.pruning.rates)
        if synflow:  # a model with no positive path from input to output: refused now, not after training
            from lth.masks import full_mask
            from lth.pruning import Context, scores

            mask = full_mask(net, s.pruning.exclude, s.pruning.biases)
            scores("synflow", net.state_dict(), mask, Context(model=lambda: net, input_shape=input_shape(s.dataset)))
    except LTHError as exc:
        raise LTHError(f"{where}: {exc}") from None


def check_on_disk(dataset, config: dict, where: str, cwd: str | Path) -> None:
    """A torchvision dataset is fetched only with `download: true`, unless its files are there."""
    part = parts.DATASETS[dataset.name]
    if not part.downloadable or config["download"]:
        return
    folder = dataset_dir(Path(cwd) / config["data_dir"], dataset.name)
    if not (Path(cwd) / tensors_file(config["data_dir"], dataset)).exists() and not (folder / "raw").exists():
        raise LTHError(f"{where}.name: {dataset.name!r} is not in {folder} and download is false: set "
                       f"`download: true` in the config (torchvision downloads it), or put its files in {folder}/raw")
