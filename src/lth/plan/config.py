"""The workflow's config: its top level (folders, device, tracking) and its experiments, checked
when the workflow is parsed, before any job starts. Every problem is one line that names the
config file, the key and the value; nothing is hashed or imported (torch only for a config that
names layers, to check those names against the model, in lth.pruning.model_checks).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from lth.core import parts
from lth.core.errors import LTHError
from lth.core.gpus import visible_gpus
from lth.core.registry import load_target
from lth.plan import reference
from lth.plan.layout import dataset_dir, tensors_file
from lth.plan.schema import validate
from lth.plan.settings import Settings, resolve

LAYER_KINDS = ("fc", "conv", "output", "bias")  # what pruning.rates may name besides layers


def load(config: Any, schema_file: str | Path, source: str, cwd: str | Path = ".") -> tuple[dict, dict[str, Settings]]:
    """(the top level with defaults filled in, each experiment's resolved settings); LTHError otherwise."""
    if not isinstance(config, dict):
        raise LTHError(f"{source}: a config must be a mapping of keys, got {type(config).__name__}")
    check_no_credentials(config, source)
    validate(config, yaml.safe_load(Path(schema_file).read_text()), source, longest=300)
    check_paths(config, source, cwd)
    experiments = {}
    for name, raw in config["experiments"].items():
        where = f"{source}: experiments.{name}"
        experiments[name] = s = resolve(raw, where=where)
        check_layers(s, where)
        for key, dataset in [("dataset", s.dataset)] + [(f"transfer.targets.{t}.dataset", v.dataset)
                                                         for t, v in s.transfer.targets.items()]:
            check_on_disk(dataset, config, f"{where}.{key}", cwd)
    from lth.plan.pretrained import link

    experiments = link(experiments, config["experiments"], source)
    check_device(config["device"], experiments, source)
    for name, s in experiments.items():
        plan = parts.EXPERIMENT_KINDS[s.kind].load()(name, s, Path(config["results_dir"]) / name, {})
        reference.check(plan, f"{source}: experiments.{name}")
    for name, c in config["comparisons"].items():
        unknown = [e for e in c["experiments"] if e not in experiments]
        if unknown:
            raise LTHError(f"{source}: comparisons.{name}.experiments: {unknown} are not experiments of this config; "
                           f"known: {', '.join(experiments)}")
    return config, experiments


CREDENTIALS = ("username", "user", "password", "token", "credentials")
WHERE_CREDENTIALS = ("credentials belong in the environment of whoever runs the workflow (MLFLOW_TRACKING_USERNAME "
                     "and MLFLOW_TRACKING_PASSWORD, or MLFLOW_TRACKING_TOKEN), never in a config file that is "
                     "versioned and copied into the results")


def check_no_credentials(config: dict, source: str) -> None:
    """No tracking credentials in the config: neither as keys of `tracking` nor inside its URI."""
    from urllib.parse import urlsplit

    tracking = config.get("tracking")
    if not isinstance(tracking, dict):
        return
    for key in tracking:
        if str(key).lower() in CREDENTIALS:
            raise LTHError(f"{source}: tracking.{key}: {WHERE_CREDENTIALS}")
    uri = tracking.get("uri")
    if isinstance(uri, str):
        try:
            parts = urlsplit(uri)
            has_user = parts.username is not None or parts.password is not None
        except ValueError:
            has_user = "@" in uri
        if has_user:
            raise LTHError(f"{source}: tracking.uri: carries a user name or password before '@'; {WHERE_CREDENTIALS}")


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


def check_device(device: str, experiments: dict[str, Settings], source: str) -> None:
    """`device: cuda` with a GPU visible (nvidia-smi, lth.core.gpus), and each experiment's precision one
    that the device can train in (tf32: CUDA only; bf16: a GPU of compute capability 8.0 or more)."""
    gpus = visible_gpus() if device != "cpu" else []
    if device.startswith("cuda") and not gpus:
        raise LTHError(f"{source}: device: {device!r}, but no CUDA device is visible (nvidia-smi finds none): "
                       f"use device: auto (the GPU when there is one) or cpu")
    on_gpu = bool(gpus) and device != "cpu"
    for name, s in experiments.items():
        precision, where = s.training.precision, f"{source}: experiments.{name}.training.precision"
        if precision == "tf32" and not on_gpu:
            raise LTHError(f"{where}: tf32 is a CUDA format and the workflow trains on the CPU "
                           f"(device: {device}); use fp32 or bf16")
        if precision == "bf16" and on_gpu and not all(g.has_bf16 for g in gpus):
            old = next(g for g in gpus if not g.has_bf16)
            raise LTHError(f"{where}: bf16 needs a GPU of compute capability 8.0 or more; {old.name} has "
                           f"{'.'.join(map(str, old.compute_capability))} (use fp32 or tf32)")


def check_layers(s: Settings, where: str) -> None:
    """Layer-wise rates for every kind of layer the model has; named layers that exist; scores that
    must see the model (`checked_on_model`) computed on it once; N:M groups that divide every layer's rows
    and channels that can be removed (structured methods). Names and scores are checked on the built model
    (lth.pruning.model_checks, torch), only when the settings need it."""
    model = parts.MODELS[s.model.name]
    kind = parts.EXPERIMENT_KINDS[s.kind].load()
    methods = kind.pruning_methods(s)
    layerwise = any(m.get("strategy") == "layerwise" for m in methods)  # a one-shot method has no rates
    if layerwise:
        missing = [k for k in (*model.kinds, *(["bias"] if s.pruning.biases else [])) if k not in s.pruning.rates]
        named = [k for k in s.pruning.rates if k not in LAYER_KINDS]
        if missing and not named and not s.pruning.exclude:  # excluded layers may be all of a kind: checked below
            raise LTHError(f"{where}: pruning.rates: no rate for the {', '.join(missing)} layers of model "
                           f"{s.model.name!r} (rates: {dict(s.pruning.rates)})")
    on_model = [m for m in methods if parts.SCORES[m["score"]].info.get("checked_on_model")]
    structured = {key: m for key, m in kind.named_pruning_methods(s).items()
                  if m.get("n_of_m") or m.get("distribution") == "channels" or m.get("strategy") == "channels"}
    named = layerwise and any(k not in LAYER_KINDS for k in s.pruning.rates)
    if s.pruning.exclude or on_model or structured or named:
        load_target("lth.pruning.model_checks:check_layers")(s, where, layerwise, on_model, structured)


def check_on_disk(dataset, config: dict, where: str, cwd: str | Path) -> None:
    """A torchvision dataset is fetched only with `download: true`, unless its files are there."""
    part = parts.DATASETS[dataset.name]
    if not part.downloadable or config["download"]:
        return
    folder = dataset_dir(Path(cwd) / config["data_dir"], dataset.name)
    if not (Path(cwd) / tensors_file(config["data_dir"], dataset)).exists() and not (folder / "raw").exists():
        raise LTHError(f"{where}.name: {dataset.name!r} is not in {folder} and download is false: set "
                       f"`download: true` in the config (torchvision downloads it), or put its files in {folder}/raw")
