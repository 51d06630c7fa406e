# Config validation and the plans of the experiments. Everything here runs when the workflow is
# parsed, before any job starts (and imports no torch): a bad config stops the run naming the key
# and the value. Each experiment's plan (lth.plan) says which jobs exist, what each reads and
# writes; the rules below only ask it.

import os
import sys
from pathlib import Path

from lth.errors import LTHError
from lth.layout import tensors_file
from lth.plan import Plan, check_results_folder, plan_of
from lth.config import load as load_config
from lth.tracking import resolve_uri
from lth.variants import SOURCE


def config_error(message):
    sys.exit(f"lth config error: {message}")


try:
    _, _SETTINGS = load_config(config, f"{workflow.basedir}/workflow/schemas/config.schema.yaml",
                               ", ".join(map(str, workflow.configfiles)) or "config")
except LTHError as exc:
    config_error(exc)
DATA = os.path.normpath(config["data_dir"])  # normalised: `results/` and `results` are one folder
RESULTS = os.path.normpath(config["results_dir"])
TRACKING = config["tracking"]
TRACKING_URI = resolve_uri(TRACKING["uri"], ".") if TRACKING["enabled"] else None
LIVE_TRACKING = bool(TRACKING_URI) and TRACKING["live"]
# What every job of the workflow reads from settings.json besides the experiment itself.
WORKFLOW = {"data_dir": DATA, "device": config["device"], "pins": f"{workflow.basedir}/data.dvc",
            "tracking_uri": TRACKING_URI, "live_tracking": LIVE_TRACKING}

PLANS = {}
for _name, _settings in _SETTINGS.items():
    try:
        PLANS[_name] = plan_of(_name, _settings, f"{RESULTS}/{_name}", WORKFLOW)
        check_results_folder(f"{RESULTS}/{_name}")
    except LTHError as exc:
        config_error(exc)
EXPERIMENTS = list(PLANS)
# settings.json follows the config even without Snakemake's job records (a fresh clone after
# `dvc pull`): rewritten when it differs; the training jobs read it as an `ancient` input.
for _plan in PLANS.values():
    if _plan.layout.settings.exists() and _plan.recorded() != _plan.record():
        _plan.write()

PATTERNS = Plan.patterns(f"{RESULTS}/{{exp}}")


def settings_json(exp):
    return str(PLANS[exp].layout.settings)


def summary_csv(exp):
    return PATTERNS["summary"].format(exp=exp)


def experiment_root(wildcards):
    return f"{RESULTS}/{wildcards.exp}"


def planned_job(stage, wildcards):
    """The plan's job for a rule's wildcards (refused if they name another settings fingerprint)."""
    keys = ("seed", "level", "chain", "target", "k", "runs")
    key = {k: wildcards[k] for k in keys if k in wildcards.keys()}
    try:
        return PLANS[wildcards.exp].job(stage, fingerprint=wildcards.fp, **key)
    except LTHError as exc:
        config_error(exc)


def job_inputs(stage):
    """Input function of a training rule: the plan's inputs of the job. The settings and the dataset
    files are `ancient`: rewriting settings.json (an experiment grew) or re-fetching the same pinned
    data never retrains a finished run; changed settings get new fingerprinted folders instead."""

    def inputs(wildcards):
        plan = PLANS[wildcards.exp]
        wanted = plan.inputs(planned_job(stage, wildcards))
        return {"settings": ancient(settings_json(wildcards.exp)), "data": [ancient(str(p)) for p in wanted["data"]],
                "runs": [str(p) for p in wanted["runs"]], "tracking": tracking_store(wildcards)}

    return inputs


def tracking_store(wildcards):
    """Live tracking: the MLflow store and experiment exist before any training job starts."""
    return [f"{RESULTS}/{wildcards.exp}/mlflow-experiment.txt"] if LIVE_TRACKING else []


# Only the folders the plans name are wildcard values: no rule matches stray paths, and every
# value that reaches a command line is a name or a number of these forms.
wildcard_constraints:
    exp="|".join(EXPERIMENTS) or "^$",
    fp=r"[0-9a-f]{12}",
    seed=r"\d+",
    level=r"\d\d",
    k=r"\d+",
    runs=r"[0-9a-f]{8}",
    chain="|".join(sorted({v.chain for v in SOURCE.values()})),
    target=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
