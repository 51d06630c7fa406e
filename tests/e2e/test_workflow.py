"""The Snakemake workflow, run for real on tiny configs in temporary folders."""

import csv
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest
import yaml

from lth.plan import plan_of

from conftest import missing_tool, tiny

ROOT = Path(__file__).resolve().parents[2]
REQUIRED = ["experiment", "seed", "level", "variant", "weights_remaining", "test_accuracy", "best_val_accuracy",
            "early_stop_iteration", "train_accuracy", "wall_seconds"]
# The shared tiny experiment (conftest.TINY), with every variant and two seeds.
TINY = tiny({"variants": ["ticket", "reinit", "random_prune", "lr_rewind", "finetune"], "seeds": [0, 1]})

def write_config(tmp_path, experiments=None, **top):
    config = {"data_dir": str(tmp_path / "data"), "results_dir": str(tmp_path / "results"),
              "experiments": experiments or {"tiny": TINY}, **top}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def snakemake(tmp_path, *args, background=False):
    cmd = ["snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(tmp_path), "--cores", "2", *map(str, args)]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    if background:
        # Ctrl-C must reach it even when the tests run in a background job (where a shell makes SIGINT ignored,
        # and an ignored signal stays ignored in every child)
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_tiny_dag_end_to_end(tmp_path):
    config = write_config(tmp_path)
    run = snakemake(tmp_path, "--configfile", config)
    assert run.returncode == 0, run.stdout + run.stderr
    results = tmp_path / "results" / "tiny"
    rows = list(csv.DictReader((results / "summary.csv").open()))
    assert list(rows[0])[: len(REQUIRED)] == REQUIRED
    assert len(rows) == 2 * (1 + 2 * 5)
    keys = {(r["seed"], r["level"], r["variant"]) for r in rows}
    assert ("0", "0", "dense") in keys and ("1", "2", "finetune") in keys and len(keys) == len(rows)
    by = {(r["seed"], r["level"], r["variant"]): r for r in rows}
    assert float(by["0", "0", "dense"]["weights_remaining"]) == 1.0
    for variant in ("ticket", "reinit", "random_prune"):  # the baselines share the ticket's sparsity
        assert by["0", "2", variant]["weights_remaining"] == by["0", "2", "ticket"]["weights_remaining"]
    assert 0.25 < float(by["0", "2", "ticket"]["weights_remaining"]) < 0.35
    assert all(0.0 < float(r["test_accuracy"]) <= 1.0 for r in rows)
    densities = list(csv.DictReader((results / "layer_density.csv").open()))
    assert len(densities) == len(rows) * 3  # mlp1d: three prunable weight matrices
    again = snakemake(tmp_path, "--configfile", config)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr


@pytest.mark.slow
def test_interrupted_run_restarts_without_redoing_finished_jobs(tmp_path):
    # levels long enough (each a few seconds) that Ctrl-C lands mid-way even on a loaded machine
    exp = {**TINY, "variants": ["ticket", "reinit"], "seeds": [0], "pruning": {**TINY["pruning"], "levels": 6},
           "training": {**TINY["training"], "iterations": 3000, "eval_every": 500}}
    config = write_config(tmp_path, {"tiny": exp})
    plan = plan_of("tiny", exp, tmp_path / "results" / "tiny")
    proc = snakemake(tmp_path, "--configfile", config, background=True)
    deadline = time.time() + 300
    # level 3 running means Snakemake has recorded levels 1 and 2 as finished
    while not plan.done(plan.job("level", 0, 3, "ticket")).exists() and time.time() < deadline:
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C
    proc.wait(timeout=120)
    done = {p: p.stat().st_mtime_ns for p in (plan.done(plan.job("level", 0, level, "ticket")) for level in (1, 2))}
    assert not plan.done(plan.job("level", 0, 6, "ticket")).exists()
    run = snakemake(tmp_path, "--configfile", config)
    assert run.returncode == 0, run.stdout + run.stderr
    assert {p: p.stat().st_mtime_ns for p in done} == done  # finished level jobs were not redone
    assert (tmp_path / "results" / "tiny" / "summary.csv").exists()


@pytest.mark.parametrize("change, expected", [
    ({"experiments": {"tiny": {**TINY, "optimiser": "adam"}}}, "'optimiser' was unexpected"),
    ({"experiments": {"tiny": {**TINY, "rewind_iteration": 900}}}, "rewind_iteration: 900 is beyond"),
    ({"experiments": {"tiny": {**TINY, "variants": ["ticket", "magic"]}}}, "variants.1: 'magic' is not one of"),
    ({"experiments": {"tiny": {**TINY, "dataset": {"name": "imagenet"}}}}, "unknown dataset 'imagenet'"),
    ({"experiments": {"tiny": {**TINY, "training": {"lr": -1}}}}, "training.lr: -1"),
    ({"experiments": {"tiny": {**TINY, "transfer": {"targets": {"d": {"dataset": {"name": "digits"}}}}}}},
     "transfer.targets.d: target inputs of shape (1, 8, 8) cannot be adapted"),
    ({"threads": 0}, "0 is less than the minimum"),
    ({"colour": "blue"}, "colour"),
])
def test_bad_config_stops_before_any_job_naming_key_and_value(tmp_path, change, expected):
    config = write_config(tmp_path, **{k: v for k, v in change.items() if k != "experiments"},
                          experiments=change.get("experiments"))
    run = snakemake(tmp_path, "--configfile", config)
    assert run.returncode != 0
    assert expected in run.stdout + run.stderr, run.stdout + run.stderr
    assert not (tmp_path / "results").exists() and not (tmp_path / "data").exists()


def planned_jobs(run) -> dict[str, int]:
    """Job counts from the table `snakemake -n` prints (none when there is nothing to be done)."""
    if "Job stats:" not in run.stdout:
        return {}
    table = run.stdout.split("Job stats:")[1].split("total")[0]
    return {line.split()[0]: int(line.split()[1]) for line in table.splitlines()[3:] if line.strip()}


@pytest.mark.slow
def test_changing_pruning_rates_reuses_the_dense_runs(tmp_path):
    small = {**TINY, "variants": ["ticket"], "pruning": {**TINY["pruning"], "levels": 1}}
    assert snakemake(tmp_path, "--configfile", write_config(tmp_path, {"tiny": small})).returncode == 0
    results = tmp_path / "results" / "tiny"
    dense = {p: p.stat().st_mtime_ns for p in results.glob("dense-*/seed*/*")}
    assert len(dense) == 2 * 4
    changed = {**small, "pruning": {**small["pruning"], "rates": {"fc": 0.3, "output": 0.2}}}
    config = write_config(tmp_path, {"tiny": changed})
    plan = snakemake(tmp_path, "-n", "--configfile", config)
    assert plan.returncode == 0, plan.stderr
    # one level job a seed: 4 runs over 2 cores give one seed a job (Plan.seeds_per_job)
    assert "dense" not in planned_jobs(plan) and planned_jobs(plan)["level"] == 2, plan.stdout
    assert snakemake(tmp_path, "--configfile", config).returncode == 0
    assert {p: p.stat().st_mtime_ns for p in results.glob("dense-*/seed*/*")} == dense  # not retrained
    assert len(list(results.glob("imp-*"))) == 2  # the runs of the old rates are kept beside the new ones
    rows = list(csv.DictReader((results / "summary.csv").open()))
    assert len(rows) == 2 * 2 and 0.65 < float(rows[1]["weights_remaining"]) < 0.75  # the new rates: 30% pruned


@pytest.mark.slow
def test_a_seed_added_later_trains_only_its_runs(tmp_path):
    one = {**TINY, "variants": ["ticket", "reinit"], "seeds": [0], "pruning": {**TINY["pruning"], "levels": 2}}
    assert snakemake(tmp_path, "--configfile", write_config(tmp_path, {"tiny": one})).returncode == 0
    results = tmp_path / "results" / "tiny"
    finished = {p: p.stat().st_mtime_ns for p in results.glob("*/seed0/**/*") if p.is_file()}
    assert len([p for p in finished if p.name == "metrics.json"]) == 1 + 2 * 2
    config = write_config(tmp_path, {"tiny": {**one, "seeds": [0, 1]}})
    plan = snakemake(tmp_path, "-n", "--configfile", config)
    assert plan.returncode == 0, plan.stderr
    jobs = planned_jobs(plan)
    assert (jobs["dense"], jobs["level"], jobs["controls"]) == (1, 2, 1), plan.stdout  # new jobs hold both seeds
    assert snakemake(tmp_path, "--configfile", config).returncode == 0
    assert {p: p.stat().st_mtime_ns for p in finished} == finished  # seed 0: nothing deleted or retrained
    rows = list(csv.DictReader((results / "summary.csv").open()))
    assert sorted((r["seed"], r["level"], r["variant"]) for r in rows if r["seed"] == "1") == sorted(
        [("1", "0", "dense")] + [("1", str(level), v) for level in (1, 2) for v in ("ticket", "reinit")])


def test_results_of_the_earlier_layout_are_refused_before_any_job(tmp_path):
    old = tmp_path / "results" / "tiny" / "settings.json"
    old.parent.mkdir(parents=True)
    old.write_text('{"fingerprint": "0123456789ab", "settings": {}, "targets": {}}')
    run = snakemake(tmp_path, "-n", "--configfile", write_config(tmp_path))
    assert run.returncode != 0
    assert "holds results of an earlier version of lth" in run.stdout + run.stderr


def test_parsing_the_workflow_imports_no_torch(tmp_path):
    config = write_config(tmp_path)
    cmd = [sys.executable, "-X", "importtime", "-m", "snakemake", "-n", "-s", str(ROOT / "Snakefile"),
           "-d", str(tmp_path), "--cores", "2", "--configfile", str(config)]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    modules = {line.rsplit("|", 1)[-1].strip() for line in run.stderr.splitlines() if line.startswith("import time:")}
    assert "lth.plan.imp" in modules and "snakemake" in modules
    assert not {m for m in modules if m == "torch" or m.startswith("torch.")}


@pytest.mark.parametrize("preset", sorted(p.name for p in (ROOT / "config" / "presets").glob("*.yaml")))
def test_every_preset_plans(tmp_path, preset):
    run = subprocess.run(["snakemake", "-n", "--cores", "2", "--configfile", f"config/presets/{preset}",
                          "--config", f"results_dir={tmp_path}/results", f"data_dir={tmp_path}/data",
                          "paths_outside_project=True"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"})
    assert run.returncode == 0, run.stdout + run.stderr
    counts = {rule: int(n) for rule, n in re.findall(r"^(\w+)\s+(\d+)$", run.stdout, re.M)}  # the job table
    assert counts.get("dense", 0) >= 1 and counts.get("summary", 0) >= 1 and counts.get("report", 0) >= 1, run.stdout


def test_a_preset_that_does_not_exist_is_named(tmp_path):
    run = snakemake(tmp_path, "-n", "--configfile", ROOT / "config" / "presets" / "nope.yaml")
    assert run.returncode != 0 and "nope.yaml" in run.stdout + run.stderr


@pytest.mark.slow
def test_a_one_shot_sweep_end_to_end_and_grown_trains_only_the_new_density(tmp_path):
    sweep = {**tiny({"training": {"iterations": 60, "eval_every": 30}}), "kind": "oneshot", "oneshot": {
        "densities": [0.5, 0.1], "controls": ["shuffle"], "methods": {
            "magnitude": {}, "snip": {"score": "snip", "at": "init", "batch": 50},
            "bingo": {"score": "bingo", "bingo": {"fraction": 0.05, "every": 5}},
            "iht": {"train": "iht", "iht": {"warmup": 10, "ramp": 20}}}}}
    config = write_config(tmp_path, {"sweep": sweep}, reports_dir=str(tmp_path / "reports"))
    run = snakemake(tmp_path, "--configfile", config)
    assert run.returncode == 0, run.stdout + run.stderr
    results = tmp_path / "results" / "sweep"
    rows = list(csv.DictReader((results / "summary.csv").open()))
    assert len(rows) == 1 + 2 * 4 * 2
    for r in rows:
        if r["level"] != "0":
            assert abs(float(r["weights_remaining"]) - int(r["level"]) / 10000) < 0.002, r
    page = (tmp_path / "reports" / "sweep.html").read_text()
    assert "Pruning methods compared" in page and (tmp_path / "reports" / "sweep" / "methods.png").exists()
    finished = {p: p.stat().st_mtime_ns for p in results.glob("oneshot-*/seed0/level*/*/metrics.json")}
    assert len(finished) == 2 * 4 * 2
    grown = {**sweep, "oneshot": {**sweep["oneshot"], "densities": [0.5, 0.1, 0.05]}}
    config = write_config(tmp_path, {"sweep": grown}, reports_dir=str(tmp_path / "reports"))
    plan = snakemake(tmp_path, "-n", "--configfile", config)
    assert plan.returncode == 0, plan.stderr
    assert "dense" not in planned_jobs(plan) and planned_jobs(plan)["level"] == 4, plan.stdout
    assert snakemake(tmp_path, "--configfile", config).returncode == 0
    assert {p: p.stat().st_mtime_ns for p in finished} == finished  # nothing finished was retrained
    assert len(list(csv.DictReader((results / "summary.csv").open()))) == 1 + 3 * 4 * 2


# ------------------------------------------------------- every way of starting the workflow (#31)
# Each rule must run the lth of the interpreter that runs Snakemake (common.smk's shell prefix), however
# Snakemake was started. Each test starts the workflow one way, with a PATH that holds another `lth`
# (a system-wide or stale install, which fails and leaves a note) and, where that way has it so, not
# the environment's bin.

ENV = Path(sys.prefix)  # the environment running the tests: its lth is the one every rule must run
ENV_BIN = Path(sys.executable).parent
# The least the workflow does: fetch, a dense run, one level of one chain, the summary.
SMALLEST = tiny({"variants": ["ticket"], "pruning": {"levels": 1}, "training": {"iterations": 100}})


def start_workflow(tmp_path, launcher, *args, targets=(), ahead=(), env=None, experiment=SMALLEST, timeout=600,
                   expect=("results/tiny/summary.csv",), **config):
    """Run `LAUNCHER TARGETS -s Snakefile -d tmp_path --configfile CONFIG ARGS` on the experiment (tracking off
    unless `config` says), with PATH = AHEAD, a folder holding another `lth`, /usr/bin, /bin, and `env` on top
    of the test's environment less any activation. Asserts that it succeeded without running the other `lth`
    and wrote `expect` (relative to tmp_path); returns the run."""
    other = tmp_path / "other-bin"
    other.mkdir()
    (other / "lth").write_text(f'#!/bin/sh\necho "$0 $*" >> {shlex.quote(str(other / "ran"))}\nexit 1\n')
    (other / "lth").chmod(0o755)
    path = ":".join(map(str, [*ahead, other, "/usr/bin", "/bin"]))
    if str(ENV_BIN) not in map(str, ahead):  # the environment is off PATH: a shell finds the other lth
        assert shutil.which("lth", path=path) == str(other / "lth")
    config_file = write_config(tmp_path, {"tiny": experiment}, **{"tracking": {"enabled": False}, **config})
    cmd = [*launcher, *targets, "-s", ROOT / "Snakefile", "-d", tmp_path, "--configfile", config_file, *args]
    activation = ("VIRTUAL_ENV", "CONDA_PREFIX", "UV_PROJECT_ENVIRONMENT", "PYTHONHOME")
    env = {**{k: v for k, v in os.environ.items() if k not in activation}, "PATH": path, **(env or {})}
    run = subprocess.run(list(map(str, cmd)), env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    log = run.stdout + run.stderr
    assert not (other / "ran").exists(), "a rule ran the other lth: " + (other / "ran").read_text() + log[-3000:]
    assert run.returncode == 0, log[-6000:]
    assert all((tmp_path / out).exists() for out in expect), log[-3000:]
    return run


@pytest.mark.slow
def test_the_environments_snakemake_runs_with_the_environment_off_path(tmp_path):
    """`.venv/bin/snakemake` from a cluster script or an IDE's run button, the environment not activated:
    every rule (tracking and the report's papermill kernel too) runs the environment's lth and python."""
    start_workflow(tmp_path, [ENV_BIN / "snakemake"], "--cores", "2", tracking={"enabled": True},
                   reports_dir=str(tmp_path / "reports"))
    assert (tmp_path / "reports" / "tiny.html").exists()
    assert (tmp_path / "results" / "tiny" / "mlflow-logged.txt").exists()


def uv_command() -> list[str] | None:
    """uv as `make run` finds it: `uv run` names itself in $UV (so under `make test`), else the uv module
    of the base interpreter or of python3 (`python3 -m uv`, which the Makefile pip-installs), else PATH's."""
    if os.environ.get("UV"):
        return [os.environ["UV"]]
    for python in dict.fromkeys(filter(None, [getattr(sys, "_base_executable", None), shutil.which("python3")])):
        found = subprocess.run([python, "-c", "import uv; print(uv.find_uv_bin())"], capture_output=True, text=True)
        if found.returncode == 0:
            return [found.stdout.strip()]
    return [shutil.which("uv")] if shutil.which("uv") else None


def environment_state() -> dict:
    """What a sync would change in the environment: its top folder, bin and site-packages (names, times)."""
    site = Path(sysconfig.get_paths()["purelib"])
    return {str(p): p.lstat().st_mtime_ns for folder in (ENV, ENV / "bin", site) for p in [folder, *folder.iterdir()]}


@pytest.mark.slow
def test_uv_run_snakemake_runs_the_environments_lth(tmp_path):
    """`uv run snakemake` (what `make run` does), PATH holding uv but not the environment: uv runs the
    project's environment (here the test's, through UV_PROJECT_ENVIRONMENT) and installs nothing."""
    uv = uv_command()
    if uv is None:
        missing_tool("uv is not installed (`make test` installs it: python3 -m pip install uv)")
    before, lock = environment_state(), (ROOT / "uv.lock").stat().st_mtime_ns
    run = start_workflow(tmp_path, [*uv, "run", "--frozen", "--no-sync", "snakemake"], "--cores", "2",
                         ahead=[Path(uv[0]).parent], env={"UV_PROJECT_ENVIRONMENT": str(ENV)})
    assert not re.search(r"^(Resolved|Prepared|Installed|Uninstalled|Audited) \d+ package", run.stderr, re.M)
    assert environment_state() == before and (ROOT / "uv.lock").stat().st_mtime_ns == lock


@pytest.mark.slow
def test_snakemake_of_an_activated_environment(tmp_path):
    """`source .venv/bin/activate; snakemake`: plain `snakemake` found on PATH, VIRTUAL_ENV set."""
    start_workflow(tmp_path, ["snakemake"], "--cores", "2", ahead=[ENV_BIN], env={"VIRTUAL_ENV": str(ENV)})
