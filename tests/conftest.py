"""Shared fixtures: a real MNIST-1D dataset generated once per session, tiny settings, and the
independent reference of paired intervals, and a synthetic sweep's results folder; a copy of the project,
and the commands of a page's shell blocks as the tests run them."""

import copy
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

TINY = {
    "dataset": {"name": "mnist1d", "val_size": 500},
    "model": {"name": "mlp1d", "options": {"hidden": 32}},
    "training": {"optimizer": "adam", "lr": 0.01, "batch_size": 100, "iterations": 200, "eval_every": 50},
    "pruning": {"strategy": "layerwise", "rates": {"fc": 0.5, "output": 0.25}, "levels": 2},
    "seeds": [0],
}


@pytest.fixture
def one_thread():
    """Torch on one thread for the test: tiny steps on a loaded 2-core machine only contend with more
    (80 to 200 times slower measured), and a thread count is part of the determinism contract."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    from lth.data.fetch import fetch

    root = tmp_path_factory.mktemp("data")
    fetch("mnist1d", root)
    return root


def tiny(changes=None) -> dict:
    """The tiny settings with `changes` merged one level deep."""
    s = copy.deepcopy(TINY)
    for key, value in (changes or {}).items():
        if isinstance(value, dict) and isinstance(s.get(key), dict):
            s[key].update(value)
        else:
            s[key] = value
    return s


@pytest.fixture
def settings_file(tmp_path):
    """Write settings (tiny, with `changes`) to a file; return its path."""

    def write(changes=None, name="settings.json"):
        path = tmp_path / name
        path.write_text(json.dumps(tiny(changes)))
        return path

    return write


@pytest.fixture
def context(tmp_path, data_dir):
    """A job context (lth.jobs.Context, CPU) of the tiny settings with `changes`, results in tmp_path/<name>."""
    import torch

    from lth.jobs import Context
    from lth.plan import plan_of

    def make(changes=None, name="exp"):
        plan = plan_of(name, tiny(changes), tmp_path / name, {"data_dir": str(data_dir)})
        plan.write()
        return Context(plan, torch.device("cpu"))

    return make


def paired_interval(ticket: list[float], other: list[float]) -> tuple[float, float, float]:
    """Mean and 95 % t-interval of the per-seed differences, computed here with scipy directly (the
    independent reference of the report's intervals)."""
    d = np.subtract(ticket, other)
    if len(d) < 2:
        return d.mean(), np.nan, np.nan
    return (d.mean(), *stats.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=stats.sem(d)))


ROOT = Path(__file__).resolve().parents[1]


def copy_project(dest: Path) -> Path:
    """The project as a commit of its working tree would hold it, copied to `dest`: tracked files and
    untracked ones git does not ignore (in CI, a clean clone: exactly the committed files)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split("\0")
    for rel in filter(None, listed):
        src = ROOT / rel
        if src.exists() or src.is_symlink():  # a tracked file deleted in the working tree is left out
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel, follow_symlinks=False)
    return dest


def sh_lines(block: str) -> list[str]:
    """The commands of a ```sh block: continuation lines joined, comments dropped."""
    lines = (line.split(" #")[0].strip() for line in block.replace("\\\n", " ").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def typed(cmd: str) -> str:
    """A documented command as the tests run it: without its leading `uv run` (they already run in the
    locked environment, whose tools lead PATH)."""
    return cmd.removeprefix("uv run ")


def missing_tool(reason: str):
    """A test whose system tool (SLURM, Chromium) is not here: skipped on a developer's machine, failed
    under CI (CI=true), where .ci/run installs every tool, so that a CI without them cannot pass silently."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}; CI=true: .ci/run installs it")
    pytest.skip(reason)


def synthetic_sweep(folder: Path, methods: int = 10, densities: int = 5, seeds: int = 2, controls: bool = True,
                    experiment: str = "sweep") -> dict:
    """A one-shot sweep's results folder: its real plan's settings.json (tiny settings, `methods`
    random-score methods m00, m01, ..., each with shuffle and reinit controls, at `densities`
    densities from 80 % down to 0.5 %) and made-up summary.csv and layer_density.csv: accuracy falls
    with density, each method a little differently, controls lower, plus seed noise. No run records
    (the page says so). Returns the experiment's settings (the report's config_json)."""
    import pandas as pd

    from lth.plan import plan_of

    rng = np.random.default_rng(0)
    ws = np.unique(np.round(np.geomspace(0.8, 0.005, densities) * 10000).astype(int))[::-1]
    names = [f"m{i:02d}" for i in range(methods)]
    raw = tiny({"kind": "oneshot", "seeds": list(range(seeds)),
                "oneshot": {"densities": [int(w) / 10000 for w in ws], "controls": ["shuffle", "reinit"] if controls
                            else [], "methods": {m: {"score": "random", "at": "init"} for m in names}}})
    plan_of(experiment, raw, folder, {}).write()
    kinds = [(m, 0.0) for m in names] + ([(f"{m}-{c}", d) for m in names for c, d in (("shuffle", 4), ("reinit", 6))]
                                         if controls else [])
    rows = [{"experiment": experiment, "seed": s, "level": 0, "variant": "dense", "weights_remaining": 1.0,
             "test_accuracy": 0.90 + 0.004 * rng.standard_normal(), "early_stop_iteration": 300}
            for s in range(seeds)]
    for v, drop in kinds:
        slope = 3 + (names.index(v.split("-")[0]) % 7)
        for level in ws:
            w = level / 10000
            acc = 0.90 - (slope + drop) * 0.01 * max(0.0, -np.log10(w) - 0.3) ** 2
            rows += [{"experiment": experiment, "seed": s, "level": int(level), "variant": v, "weights_remaining": w,
                      "test_accuracy": acc + 0.004 * rng.standard_normal(), "early_stop_iteration": 300}
                     for s in range(seeds)]
    summary = pd.DataFrame(rows)
    summary.to_csv(folder / "summary.csv", index=False)
    density = summary[["experiment", "seed", "level", "variant"]].assign(target="", layer="fc.weight",
                                                                       density=summary["weights_remaining"])
    density.to_csv(folder / "layer_density.csv", index=False)
    return raw
