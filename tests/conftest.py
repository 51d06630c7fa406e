"""Shared fixtures: a real MNIST-1D dataset generated once per session, tiny settings, and the
independent reference of paired intervals."""

import copy
import json
import os

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


def missing_tool(reason: str):
    """A test whose system tool (SLURM, Chromium) is not here: skipped on a developer's machine, failed
    under CI (CI=true), where .ci/run installs every tool, so that a CI without them cannot pass silently."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}; CI=true: .ci/run installs it")
    pytest.skip(reason)
