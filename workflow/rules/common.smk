# Config validation and the plans of the experiments. Everything here runs when the workflow is
# parsed, before any job starts (and imports no torch): a bad config stops the run naming the key
# and the value. Each experiment's plan (lth.plan.imp) says which jobs exist, what each reads and
# writes; the rules below only ask it.

import json
import os
import shlex
import sys
from pathlib import Path

from lth.data import pins
from lth.core.errors import LTHError
from lth.core.gpus import visible_gpus
from lth.core.parts import ANALYSES, EXPERIMENT_KINDS
from lth.plan.layout import TENSORS_FILE, tensors_file
from lth.plan import Plan, check_results_folder, plan_of
from lth.plan.job import patterns
from lth.plan.config import load as load_config
from lth.store.tracking import resolve_uri

# Rules run the lth, dvc and python of the interpreter that runs Snakemake, not whatever PATH finds
# first: its folder leads PATH in every rule's shell, so `.venv/bin/snakemake`, `uv run snakemake`, an
# activated environment and a cluster's jobs all work alike.
shell.prefix(
    "set -euo pipefail; export PATH="
    + shlex.quote(os.path.dirname(sys.executable))
    + ':"$PATH"; '
)

# The repository: this file is in workflow/rules/.
PROJECT = Path(str(workflow.current_basedir)).parents[1].as_posix()


def config_error(message):
    sys.exit(f"lth config error: {message}")


try:
    _, _SETTINGS = load_config(
        config,
        f"{PROJECT}/workflow/schemas/config.schema.yaml",
        ", ".join(map(str, workflow.configfiles)) or "config",
    )
except LTHError as exc:
    config_error(exc)
# Folders normalised: `results/` and `results` are one folder (and one set of rule parameters).
DATA = os.path.normpath(config["data_dir"])
RESULTS = os.path.normpath(config["results_dir"])
TRACKING = config["tracking"]
TRACKING_URI = resolve_uri(TRACKING["uri"], ".") if TRACKING["enabled"] else None
LIVE_TRACKING = bool(TRACKING_URI) and TRACKING["live"]


def parallel_training_jobs():
    """How many training jobs run at once: a cluster's (or `--jobs`) job count, else Snakemake's cores
    over each job's threads; at most the GPU slots when the jobs train on GPUs (lth.jobs.device). The
    plans group seeds by it when runs train one at a time (lth.plan.imp.Plan.seeds_per_job).
    """
    if workflow.nodes:
        return int(workflow.nodes)
    parallel = max(1, (workflow.cores or 1) // config["threads"])
    gpus = visible_gpus() if config["device"] != "cpu" else []
    return min(parallel, len(gpus) * config["jobs_per_gpu"]) if gpus else parallel


# What every job of the workflow reads from settings.json besides the experiment itself: as the
# config gives it, relative to the working folder, so that a colleague's clone records the same
# (the tracking URI is resolved by each job, from the same folder and environment).
WORKFLOW = {
    "data_dir": DATA,
    "device": config["device"],
    "pins": os.path.relpath(f"{PROJECT}/data.dvc"),
    "tracking_uri": TRACKING["uri"],
    "live_tracking": LIVE_TRACKING,
    "threads": config["threads"],
    "batching": config["batching"],
    "jobs_per_gpu": config["jobs_per_gpu"],
    "parallel_jobs": parallel_training_jobs(),
}

# settings.json follows the config even without Snakemake's job records (a fresh clone after
# `dvc pull`): rewritten when it differs; the training jobs read it as an `ancient` input.
PLANS = {}
for _name, _settings in _SETTINGS.items():
    try:
        PLANS[_name] = _plan = plan_of(_name, _settings, f"{RESULTS}/{_name}", WORKFLOW)
        _recorded = _plan.recorded()
        check_results_folder(_plan.layout.root, _recorded)
        if _recorded is not None and _recorded != _plan.record():
            _plan.write()
    except LTHError as exc:
        config_error(exc)
EXPERIMENTS = list(PLANS)

PATTERNS = patterns(f"{RESULTS}/{{exp}}")


def settings_json(exp):
    return str(PLANS[exp].layout.settings)


def summary_csv(exp):
    return PATTERNS["summary"].format(exp=exp)


def experiment_root(wildcards):
    return f"{RESULTS}/{wildcards.exp}"


def planned_job(stage, wildcards):
    """The plan's job for a rule's wildcards (refused if they name another settings fingerprint)."""
    keys = ("seed", "level", "chain", "target", "k", "runs", "to")
    key = {k: wildcards[k] for k in keys if k in wildcards.keys()}
    try:
        return PLANS[wildcards.exp].job(stage, fingerprint=wildcards.fp, **key)
    except LTHError as exc:
        config_error(exc)


def job_inputs(stage):
    """Input function of a training rule: the plan's inputs of the job. The settings and the dataset
    files are `ancient`: rewriting settings.json (an experiment grew) or re-fetching the same pinned
    data never retrains a finished run; changed settings get new fingerprinted folders instead.
    """

    def inputs(wildcards):
        plan = PLANS[wildcards.exp]
        wanted = plan.inputs(planned_job(stage, wildcards))
        return {
            "settings": ancient(settings_json(wildcards.exp)),
            "data": [ancient(str(p)) for p in wanted["data"]],
            "runs": [str(p) for p in wanted["runs"]],
            "tracking": tracking_store(wildcards),
        }

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
    level=r"\d{2,4}",
    to=r"\d{2,4}",
    k=r"\d+",
    runs=r"[0-9a-f]{8}",
    chain="|".join(
        sorted(
            {j.chain for p in PLANS.values() for j in p.jobs() + p.probes() if j.chain}
        )
    )
    or "^$",
    kind="|".join(sorted(EXPERIMENT_KINDS)),
    target=r"[A-Za-z0-9][A-Za-z0-9_.-]*",


# --- datasets (fetch.smk, versioning.smk) -------------------------------------------------------


def data_error(message):
    sys.exit(f"lth data error: {message}")


try:
    DATA_PINS = pins.load(f"{PROJECT}/data.dvc")
except LTHError as exc:
    data_error(exc)


def datasets_of(exp):
    """Dataset settings an experiment uses: its source, then its transfer targets."""
    s = PLANS[exp].settings
    return [s.dataset] + [t.dataset for t in s.transfer.targets.values()]


# Every dataset the config uses: folder name -> dataset settings.
DATASETS_USED = {
    tensors_file(DATA, d).parent.name: d
    for exp in EXPERIMENTS
    for d in datasets_of(exp)
}


def fetch_options(wildcards):
    d = DATASETS_USED[wildcards.dataset]
    return " ".join(
        shlex.quote(f"--option={k}={json.dumps(v)}")
        for k, v in sorted(d.options.thaw().items())
    )


# --- analyses, reports, versioning ----------------------------------------------------------------


def analysis_csv(exp, name):
    return PATTERNS["analysis"].format(exp=exp, analysis=name)


REPORTS = os.path.normpath(config["reports_dir"])
REPORT_NOTEBOOK = f"{PROJECT}/notebooks/lth_report.ipynb"


def report_html(exp):
    return f"{REPORTS}/{exp}.html"


def commit_pinned(files, verified=False):
    """Commands that put the dataset files tracked through data.dvc into the DVC cache (`dvc status`
    clean; `dvc push` uploads them, and a colleague's `dvc pull` needs no fetch). They are checked
    against their pins first, unless the caller just did: `dvc commit` must never re-pin other bytes.
    """
    files = " ".join(
        shlex.quote(str(f)) for f in dict.fromkeys(files) if DATA_PINS.tracked(f)
    )
    if not files:
        return ""
    commit = f"DVC_NO_ANALYTICS=1 dvc --wait-for-lock commit --quiet --force --no-relink {files} && "
    if verified:
        return commit
    pins_file, data = shlex.quote(str(DATA_PINS.file)), shlex.quote(DATA)
    return f"lth verify --pins {pins_file} --data-dir {data} {files} && {commit}"


def commit_pinned_data(wildcards):
    """`commit_pinned` for an experiment's datasets (the dvc_add rule)."""
    return commit_pinned(tensors_file(DATA, d) for d in datasets_of(wildcards.exp))


# --- training rules (train.smk) --------------------------------------------------------------------


def train_resources(stage):
    """What a training job asks a cluster for: one GPU, 4 GB, and minutes of runtime: 20 per run it
    holds, at least 120, doubled on a retry. A site with other speeds sets `runtime` per rule
    (docs/guides/slurm.md).
    """

    def runtime(wildcards, attempt):
        runs = len(PLANS[wildcards.exp].job_runs(planned_job(stage, wildcards)))
        return attempt * max(120, 20 * runs)

    return dict(mem_mb=4000, gpu=1, runtime=runtime)


def job_command(stage):
    """`lth job STAGE`: its output goes to the job's log, one line per job to the terminal."""
    return (
        f"lth job {stage} --results {{params.root:q}} {{params.key}} "
        "--fingerprint {wildcards.fp} --threads {threads} --log {log:q}"
    )


def write_settings(exp, log):
    """The `settings` rule: record the experiment's plan, for its jobs to read."""
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    Path(log).write_text(f"{PLANS[exp].write()}\n")
