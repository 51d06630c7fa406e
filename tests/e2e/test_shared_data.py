"""Two workflows with different experiments and one data folder (two users' project folders, or two
presets run from two folders), started together: both finish, the dataset is fetched once (the second
fetch waits for the first's lock and finds its file; Snakemake does not delete it before a fetch job),
and each writes its own fetch log."""

import time

import pytest
import yaml

from test_workflow import snakemake
from test_workflow_recovery import small


@pytest.mark.slow
def test_two_workflows_sharing_a_data_folder_both_finish_and_fetch_it_once(tmp_path):
    data = tmp_path / "data"
    procs = {}
    for name, seed in (("a", 0), ("b", 1)):
        folder = tmp_path / name
        folder.mkdir()
        config = {"data_dir": str(data), "paths_outside_project": True, "results_dir": str(folder / "results"),
                  "tracking": {"enabled": False}, "experiments": {f"exp_{name}": {**small(), "seeds": [seed]}}}
        (folder / "config.yaml").write_text(yaml.safe_dump(config))
        procs[name] = snakemake(folder, "--configfile", folder / "config.yaml", background=True)
    dataset = data / "mnist1d" / "tensors.safetensors"
    deadline = time.time() + 600
    while not dataset.exists() and all(p.poll() is None for p in procs.values()) and time.time() < deadline:
        time.sleep(0.01)
    assert dataset.exists(), {n: p.communicate()[0][-3000:] for n, p in procs.items()}
    first, content = dataset.stat(), dataset.read_bytes()
    for name, proc in procs.items():
        out, _ = proc.communicate(timeout=1200)
        assert proc.returncode == 0, out[-5000:]
        assert (tmp_path / name / "results" / f"exp_{name}" / "summary.csv").exists()
        assert "as pinned in data.dvc" in (tmp_path / name / "results" / "logs" / "fetch-mnist1d.log").read_text()
    # written once: a second fetch would have renamed a new file onto it (a new inode). Snakemake touches
    # an output it finds older than its job (the second workflow's fetch), harmless: training reads the
    # dataset as an `ancient` input.
    assert dataset.stat().st_ino == first.st_ino and dataset.read_bytes() == content
    assert not list((data / ".locks").iterdir())  # every lock released
    # a fetch job that runs while the file is there (another workflow wrote it after this one planned)
    # neither deletes it first (Snakemake's default for an output) nor writes it again
    again = snakemake(tmp_path / "b", "--configfile", tmp_path / "b" / "config.yaml", "--forcerun", "fetch",
                      dataset)
    assert again.returncode == 0 and "fetch" in again.stdout + again.stderr, again.stdout + again.stderr
    assert dataset.stat().st_ino == first.st_ino and dataset.read_bytes() == content
