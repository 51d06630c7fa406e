# Config validation and the helpers every rule family uses. Everything here runs when the
# workflow is parsed, before any job starts: a bad config stops the run naming key and value.

import json
import shlex
import sys
from pathlib import Path

from lth.errors import LTHError
from lth.layout import DENSE, Layout
from lth.settings import chains, check_results_folder, resolve
from lth.tracking import resolve_uri


def config_error(message):
    sys.exit(f"lth config error: {message}")


# Experiments first, with lth's one-line messages; then the whole config with Snakemake's
# validator (top-level keys and defaults), against the schema that includes the same file.
EXPERIMENTS = {}
for _name, _raw in (config.get("experiments") or {}).items():
    try:
        EXPERIMENTS[_name] = resolve(_raw, where=f"config: experiments.{_name}")
    except LTHError as exc:
        config_error(exc)
validate(config, "../schemas/config.schema.yaml")
DATA = config["data_dir"]
RESULTS = config["results_dir"]
for _name, _settings in EXPERIMENTS.items():
    try:
        check_results_folder(Path(RESULTS) / _name, _settings)
    except LTHError as exc:
        config_error(exc)


def settings_of(wildcards):
    return EXPERIMENTS[wildcards.exp]


def layout(exp):
    return Layout(Path(RESULTS) / exp)


def dataset_id(exp):
    """Folder name of an experiment's dataset under data/ (options make their own folder)."""
    from lth.datasets import dataset_dir

    d = EXPERIMENTS[exp]["dataset"]
    return dataset_dir(Path(DATA), d["name"], d["options"] or None).name


def dataset_file(wildcards):
    return f"{DATA}/{dataset_id(wildcards.exp)}/tensors.safetensors"


def runs_of(wildcards):
    """The --seeds/--levels/--variants arguments naming every run of an experiment."""
    s = EXPERIMENTS[wildcards.exp]
    return (f"--seeds {' '.join(map(str, s['seeds']))} --levels {s['pruning']['levels']} "
            f"--variants {' '.join(s['variants'])}")


def summary_csv(exp):
    return f"{RESULTS}/{exp}/summary.csv"


TRACKING = config["tracking"]
TRACKING_URI = resolve_uri(TRACKING["uri"], ".") if TRACKING["enabled"] else None
LIVE_TRACKING = bool(TRACKING_URI) and TRACKING["live"]


def tracking_store(wildcards):
    """Live tracking: the MLflow store and experiment exist before any training job starts."""
    return [f"{RESULTS}/{wildcards.exp}/mlflow-experiment.txt"] if LIVE_TRACKING else []


def run_flags(wildcards, threads):
    """Common arguments of the training commands."""
    track = f" --track {shlex.quote(TRACKING_URI)}" if LIVE_TRACKING else ""
    return (f"--settings {RESULTS}/{wildcards.exp}/settings.json --results {RESULTS}/{wildcards.exp} "
            f"--data-dir {DATA} --device {config['device']} --threads {threads}{track}")


# Only the folders the config names are wildcard values: no rule matches stray paths.
wildcard_constraints:
    exp="|".join(EXPERIMENTS) or "^$",
    seed=r"\d+",
    level=r"\d\d",
    chain="ticket|lr_rewind|finetune",
