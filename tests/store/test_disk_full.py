"""A full disk mid-run (a small tmpfs holds the results): one line naming the folder and the space
needed, nothing partial left, and the run after space is freed finishes as an uninterrupted one."""

import json
import subprocess
import sys

import pytest

from lth.plan import plan_of
from lth.plan.layout import RunKey

from conftest import tiny

CHANGES = {"training": {"iterations": 300, "eval_every": 50}, "model": {"options": {"hidden": 256}}}


@pytest.fixture
def small_fs(tmp_path):
    """A 600 kB tmpfs: room for theta_0 of the run below (about 0.6 MB of weights) but not its checkpoints."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(mnt)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)])


def _train(settings, results, data_dir):
    return subprocess.run([sys.executable, "-m", "lth", "train", "--settings", settings, "--seed", "0",
                           "--data-dir", data_dir, "--threads", "1", "--results", results],
                          capture_output=True, text=True, timeout=600)


def test_a_full_disk_stops_with_one_line_keeps_nothing_partial_and_the_next_run_finishes(
        tmp_path, small_fs, data_dir, settings_file):
    settings = settings_file(CHANGES)
    full = _train(settings, small_fs / "exp", data_dir)
    assert full.returncode == 2, full.stderr
    lines = full.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in full.stderr, full.stderr
    assert lines[0].startswith(f"lth: error: {small_fs / 'exp'}/") and "no space left on its filesystem" in lines[0]
    assert " needed, " in lines[0] and "then run again" in lines[0]
    assert not [p for p in small_fs.rglob("*") if p.name.endswith(".tmp")]  # nothing partial
    dense = RunKey(0, 0, "dense")
    layout = plan_of("exp", tiny(CHANGES), small_fs / "exp").layout
    assert not layout.final(dense).exists()

    subprocess.run(["mount", "-o", "remount,size=32m", str(small_fs)], check=True)  # space freed
    again = _train(settings, small_fs / "exp", data_dir)
    assert again.returncode == 0, again.stderr
    reference = _train(settings, tmp_path / "exp", data_dir)
    assert reference.returncode == 0, reference.stderr
    ref = plan_of("exp", tiny(CHANGES), tmp_path / "exp").layout
    assert layout.final(dense).read_bytes() == ref.final(dense).read_bytes()
    assert (json.loads(layout.metrics(dense).read_text())["curves"]
            == json.loads(ref.metrics(dense).read_text())["curves"])
