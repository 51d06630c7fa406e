"""The Snakemake workflow, run for real on tiny configs in temporary folders."""

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
REQUIRED = ["experiment", "seed", "level", "variant", "weights_remaining", "test_accuracy", "best_val_accuracy",
            "early_stop_iteration", "train_accuracy", "wall_seconds"]
TINY = {
    "dataset": {"name": "mnist1d", "val_size": 500},
    "model": {"name": "mlp1d", "options": {"hidden": 32}},
    "training": {"lr": 0.01, "iterations": 200, "eval_every": 50},
    "pruning": {"rates": {"fc": 0.5, "output": 0.25}, "levels": 2},
    "variants": ["ticket", "reinit", "random_prune", "lr_rewind", "finetune"],
    "seeds": [0, 1],
}


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
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)
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
    exp = {**TINY, "variants": ["ticket", "reinit"], "seeds": [0], "pruning": {**TINY["pruning"], "levels": 6},
           "training": {**TINY["training"], "iterations": 600}}
    config = write_config(tmp_path, {"tiny": exp})
    results = tmp_path / "results" / "tiny" / "seed0"
    proc = snakemake(tmp_path, "--configfile", config, background=True)
    deadline = time.time() + 300
    # level 3 running means Snakemake has recorded levels 1 and 2 as finished
    while not (results / "level03" / "ticket.json").exists() and time.time() < deadline:
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C
    proc.wait(timeout=120)
    done = {results / f"level0{level}" / "ticket.json": None for level in (1, 2)}
    done = {p: p.stat().st_mtime_ns for p in done}
    assert not (results / "level06" / "ticket.json").exists()
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


def test_changed_settings_of_an_existing_experiment_are_refused(tmp_path):
    import json

    from lth.settings import claim_results_folder, resolve

    claim_results_folder(tmp_path / "results" / "tiny", resolve(json.loads(json.dumps(TINY))))
    same = snakemake(tmp_path, "-n", "--configfile", write_config(tmp_path))
    assert same.returncode == 0, same.stderr
    changed = {**TINY, "training": {**TINY["training"], "lr": 0.05}}
    run = snakemake(tmp_path, "-n", "--configfile", write_config(tmp_path, {"tiny": changed}))
    assert run.returncode != 0
    assert "holds results of other settings (changed: training" in run.stdout + run.stderr


@pytest.mark.parametrize("preset", sorted(p.name for p in (ROOT / "config" / "presets").glob("*.yaml")))
def test_every_preset_plans(tmp_path, preset):
    run = subprocess.run(["snakemake", "-n", "--cores", "2", "--configfile", f"config/presets/{preset}",
                          "--config", f"results_dir={tmp_path}/results", f"data_dir={tmp_path}/data"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"})
    assert run.returncode == 0, run.stdout + run.stderr
    assert "rule dense" in run.stdout or "dense" in run.stdout


def test_a_preset_that_does_not_exist_is_named(tmp_path):
    run = snakemake(tmp_path, "-n", "--configfile", ROOT / "config" / "presets" / "nope.yaml")
    assert run.returncode != 0 and "nope.yaml" in run.stdout + run.stderr
