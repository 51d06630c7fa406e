"""Shared fixtures: a real MNIST-1D dataset generated once per session, and tiny settings."""

import copy
import json

import pytest

TINY = {
    "dataset": {"name": "mnist1d", "val_size": 500},
    "model": {"name": "mlp1d", "options": {"hidden": 32}},
    "training": {"optimizer": "adam", "lr": 0.01, "batch_size": 100, "iterations": 200, "eval_every": 50},
    "pruning": {"strategy": "layerwise", "rates": {"fc": 0.5, "output": 0.25}, "levels": 2},
    "seeds": [0],
}


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    from lth.datasets import fetch

    root = tmp_path_factory.mktemp("data")
    fetch("mnist1d", root)
    return root


@pytest.fixture
def tiny_settings():
    return copy.deepcopy(TINY)


@pytest.fixture
def settings_file(tmp_path, tiny_settings):
    """Write settings (tiny, with `changes` merged one level deep) to a file; return its path."""

    def write(changes=None, name="settings.json"):
        s = copy.deepcopy(tiny_settings)
        for key, value in (changes or {}).items():
            if isinstance(value, dict) and isinstance(s.get(key), dict):
                s[key].update(value)
            else:
                s[key] = value
        path = tmp_path / name
        path.write_text(json.dumps(s))
        return path

    return write
