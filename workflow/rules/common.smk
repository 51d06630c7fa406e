# Config validation and the helpers every rule family uses. Everything here runs when the
# workflow is parsed, before any job starts: a bad config stops the run naming key and value.

import json
import shlex
import sys
from pathlib import Path

from lth.datasets import TENSORS_FILE
from lth.errors import LTHError
from lth.layout import DENSE, Layout
from lth.settings import chains, check_results_folder, resolve, transfer_levels
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


def dataset_id(d):
    """Folder name of a dataset (settings) under data/: options make their own folder."""
    from lth.datasets import dataset_dir

    return dataset_dir(Path(DATA), d["name"], d["options"] or None).name


def tensors_file(d):
    """The file `lth fetch` writes for a dataset (settings)."""
    return f"{DATA}/{dataset_id(d)}/{TENSORS_FILE}"


def datasets_of(exp):
    """Dataset settings an experiment uses: its source, then its transfer targets."""
    s = EXPERIMENTS[exp]
    return [s["dataset"]] + [t["dataset"] for t in s["transfer"]["targets"].values()]


# Every dataset the config uses: folder name -> dataset settings.
DATASETS_USED = {dataset_id(d): d for exp in EXPERIMENTS for d in datasets_of(exp)}


def dataset_file(wildcards):
    """The tensors file of the experiment's dataset (and of the target, for a transfer job)."""
    files = [tensors_file(EXPERIMENTS[wildcards.exp]["dataset"])]
    if "target" in wildcards.keys():
        files.append(tensors_file(EXPERIMENTS[wildcards.exp]["transfer"]["targets"][wildcards.target]["dataset"]))
    return files


def settings_json(wildcards):
    """The experiment's whole resolved settings, for the commands that enumerate its runs."""
    return json.dumps(EXPERIMENTS[wildcards.exp], sort_keys=True)


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
    target=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
