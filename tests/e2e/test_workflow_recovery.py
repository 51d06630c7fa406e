"""The workflow under hostile or careless use: config strings never reach a shell, growing an
experiment trains only what is new, damaged results are recomputed exactly, and a failed
regeneration keeps the previous tables."""

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from lth.plan import plan_of
from lth.plan.layout import RunKey

from test_workflow import TINY, planned_jobs, snakemake, write_config

TRAINING = {"dense", "rewind", "level", "controls", "transfer"}
TARGET = {"t43": {"dataset": {"name": "mnist1d", "options": {"seed": 43}}}}


def small(**changes):
    return {**TINY, "seeds": [0], "variants": ["ticket"], "pruning": {**TINY["pruning"], "levels": 1}, **changes}


def rows(path):
    """The summary's rows without the seconds columns."""
    return [{k: v for k, v in r.items() if not k.endswith("seconds")} for r in csv.DictReader(open(path))]


def plan_only(tmp_path, exp, **top):
    run = snakemake(tmp_path, "-n", "--configfile", write_config(tmp_path, {"x": exp}, **top))
    assert run.returncode == 0, run.stdout + run.stderr
    return planned_jobs(run)


@pytest.mark.slow
def test_growing_an_experiment_plans_only_the_new_jobs_and_shrinking_it_none(tmp_path):
    base = small(variants=["ticket", "reinit"])
    assert snakemake(tmp_path, "--configfile", write_config(tmp_path, {"x": base})).returncode == 0
    grown = {
        "a level": (small(variants=["ticket", "reinit"], pruning={**base["pruning"], "levels": 2}),
                    {"level": 1, "controls": 1}),
        "a seed": ({**base, "seeds": [0, 1]}, {"dense": 1, "level": 1, "controls": 1}),
        "a variant": ({**base, "variants": ["ticket", "reinit", "random_prune"]}, {"controls": 1}),
        "a target": ({**base, "transfer": {"targets": TARGET}}, {"transfer": 2}),  # the dense's and level 1's
    }
    for what, (exp, expected) in grown.items():
        jobs = plan_only(tmp_path, exp)
        assert {k: v for k, v in jobs.items() if k in TRAINING} == expected, (what, jobs)
    # train the grown variant set, then go back: nothing to train, the old runs were kept
    results = tmp_path / "results" / "x"
    stamp = {p: p.stat().st_mtime_ns for p in results.rglob("metrics.json")}
    grown_config = write_config(tmp_path, {"x": grown["a variant"][0]})
    assert snakemake(tmp_path, "--configfile", grown_config).returncode == 0
    assert {p: p.stat().st_mtime_ns for p in stamp} == stamp  # ticket and reinit were not retrained
    assert len(rows(results / "summary.csv")) == 1 + 3
    assert not set(plan_only(tmp_path, base)) & TRAINING  # removing a variant trains nothing


@pytest.mark.slow
def test_removing_a_seed_trains_nothing_and_keeps_its_runs(tmp_path):
    both = small(variants=["ticket", "reinit"], seeds=[0, 1], rewind_iteration=20,
                 pruning={**TINY["pruning"], "levels": 2})
    assert snakemake(tmp_path, "--configfile", write_config(tmp_path, {"x": both})).returncode == 0
    results = tmp_path / "results" / "x"
    stamp = {p: p.stat().st_mtime_ns for p in results.rglob("metrics.json")}
    one = write_config(tmp_path, {"x": {**both, "seeds": [0]}})
    # the jobs of both seeds cover those of seed 0; their set of inputs changed, so Snakemake reruns
    # them (at the first or second run): they train nothing and write their markers again
    runs = [snakemake(tmp_path, "--configfile", one) for _ in range(3)]
    for run in runs:
        assert run.returncode == 0, run.stdout + run.stderr
    assert "Nothing to be done" in runs[-1].stdout + runs[-1].stderr
    assert {p: p.stat().st_mtime_ns for p in stamp} == stamp  # nothing retrained, seed 1's runs kept
    assert {r["seed"] for r in rows(results / "summary.csv")} == {"0"}


@pytest.mark.slow
def test_no_config_string_reaches_a_shell(tmp_path):
    marks = [tmp_path / f"pwned{i}" for i in range(4)]
    hostile = {"data_dir": f"d$(touch {marks[0]})", "results_dir": f"r`touch {marks[1]}`;touch {marks[2]}",
               "reports_dir": "p'\"$HOME", "tracking": {"uri": f"sqlite:///x.db$(touch {marks[3]})"}}
    exp = small(transfer={"targets": {"t.43": TARGET["t43"]}, "levels": [1]})
    run = snakemake(tmp_path, "--configfile", write_config(tmp_path, {"x": exp}, **hostile))
    out = run.stdout + run.stderr
    assert not any(m.exists() for m in marks), out
    assert (tmp_path / hostile["results_dir"] / "x" / "summary.csv").exists(), out  # the folders are names
    assert (tmp_path / "p'\"$HOME" / "x.html").exists(), out


@pytest.mark.slow
def test_damaged_results_are_recomputed_exactly(tmp_path):
    exp = small(variants=["ticket", "reinit"], rewind_iteration=20, pruning={**TINY["pruning"], "levels": 2})
    config = write_config(tmp_path, {"x": exp})
    assert snakemake(tmp_path, "--configfile", config).returncode == 0
    results = tmp_path / "results" / "x"
    before = rows(results / "summary.csv")
    layout = plan_of("x", exp, results).layout
    final = layout.final(RunKey(0, 1, "ticket"))
    final.write_bytes(final.read_bytes()[:-40])
    lth = [str(Path(sys.executable).parent / "lth"), "verify", "--results", str(results)]
    check = subprocess.run(lth, capture_output=True, text=True, cwd=tmp_path)
    assert check.returncode == 2 and f"{final}: unreadable or corrupted" in check.stdout, check.stdout + check.stderr
    kept = {p: p.stat().st_mtime_ns for p in [layout.metrics(RunKey(0, 1, "reinit")),
                                              layout.metrics(RunKey(0, 2, "ticket")), layout.init(0)]}
    assert subprocess.run(lth + ["--delete-damaged"], capture_output=True, cwd=tmp_path).returncode == 0
    jobs = plan_only(tmp_path, exp)
    # level 1, then level 2 and the controls after it (they retrain nothing: `kept` below)
    assert {k: v for k, v in jobs.items() if k in TRAINING} == {"level": 2, "controls": 1}, jobs
    assert snakemake(tmp_path, "--configfile", config).returncode == 0
    assert {p: p.stat().st_mtime_ns for p in kept} == kept  # only the damaged run was retrained
    assert rows(results / "summary.csv") == before


@pytest.mark.slow
def test_a_failed_regeneration_keeps_the_previous_tables_and_a_damaged_one_is_rebuilt(tmp_path):
    config = write_config(tmp_path, {"x": small()}, tracking={"enabled": False})
    assert snakemake(tmp_path, "--configfile", config).returncode == 0
    results = tmp_path / "results" / "x"
    summary = (results / "summary.csv").read_text()
    layout = plan_of("x", small(), results).layout
    record = layout.metrics(RunKey(0, 1, "ticket"))
    good = record.read_text()
    record.write_text(good.replace('"level": 1', '"level": 7'))  # damaged: its checksum no longer matches
    run = snakemake(tmp_path, "--configfile", config, "--forcerun", "summary")
    assert run.returncode != 0 and "damaged run record" in run.stdout + run.stderr
    assert (results / "summary.csv").read_text() == summary  # the previous summary was put back
    record.write_text(good)
    (results / "summary.csv").write_text(summary[: len(summary) // 2])  # cut short
    run = snakemake(tmp_path, "--configfile", config)
    assert run.returncode == 0 and "summary.csv was damaged" in run.stderr
    assert (results / "summary.csv.damaged").exists()
    assert [r for r in rows(results / "summary.csv")] == [
        {k: v for k, v in r.items() if not k.endswith("seconds")} for r in csv.DictReader(summary.splitlines())]
