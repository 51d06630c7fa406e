"""DVC: data.dvc pins the datasets' bytes; results are versioned per experiment and shared through a remote.

The round trip runs for real: a sharer's repository trains a tiny experiment, versions it and pushes it
to a DVC remote in a temporary folder; a colleague's fresh clone pulls it and regenerates the summary
and the report without training anything. DVC never sees the user's own remote or configs.
"""

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lth.data import pins

from conftest import copy_project, typed
from test_readme import blocks

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PINNED = "mnist1d/tensors.safetensors"
TINY = {
    "dataset": {"name": "mnist1d", "val_size": 500},
    "model": {"name": "mlp1d", "options": {"hidden": 32}},
    "training": {"lr": 0.01, "iterations": 200, "eval_every": 50},
    "pruning": {"rates": {"fc": 0.5, "output": 0.25}, "levels": 2},
    "variants": ["ticket", "reinit"],
    "seeds": [0],
}
TRAINING_RULES = {"dense", "level", "transfer"}
GUIDE = ROOT / "docs" / "guides" / "dvc.md"


@pytest.fixture
def env(tmp_path):
    """This environment's tools first on PATH; DVC offline, with its global/system configs and site cache in tmp."""
    dvc = tmp_path / "dvc-home"
    return {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1",
            "DVC_GLOBAL_CONFIG_DIR": str(dvc / "global"), "DVC_SYSTEM_CONFIG_DIR": str(dvc / "system"),
            "DVC_SITE_CACHE_DIR": str(dvc / "site")}


def sh(cwd, cmd, env, check=True, timeout=300):
    run = subprocess.run(cmd, cwd=cwd, env=env, shell=isinstance(cmd, str), capture_output=True, text=True,
                         timeout=timeout)
    if check:
        assert run.returncode == 0, f"{cmd}\n{run.stdout}\n{run.stderr}"
    return run


def git(cwd, *args, env=None):
    return sh(cwd, ["git", "-c", "user.name=test", "-c", "user.email=test@example.com", "-c", "commit.gpgsign=false",
                    *args], env or os.environ)


def snapshot_project(dest: Path) -> Path:
    """A git repository holding the project as a commit of ROOT's working tree would (conftest.copy_project)."""
    copy_project(dest)
    git(dest, "init", "-q")
    git(dest, "add", "-A")
    git(dest, "commit", "-qm", "project")
    return dest


def mtimes(*folders) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for folder in folders for p in folder.rglob("*") if p.is_file()}


def job_counts(dry_run_output: str) -> dict[str, int]:
    """The first 'Job stats' table of a Snakemake dry run: rule -> number of jobs."""
    block = dry_run_output.split("Job stats:", 1)[1].split("total", 1)[0]
    return {rule: int(n) for rule, n in re.findall(r"^(\w+)\s+(\d+)\s*$", block, re.M)}


def pull_commands() -> list[str]:
    """The commands of `make pull`, run with this environment."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    lines = sh(ROOT, ["make", "-s", "-n", "pull", "VENV=", "UV=uv"], env).stdout.splitlines()
    return [line.replace("uv run --frozen ", "") for line in lines if line.strip()]


def guide_blocks() -> tuple[list[str], list[str]]:
    """The commands of docs/guides/dvc.md as the tests type them: (those to share an experiment, those to
    retrieve it, less `make pull`, checked to run the same commands, with only options of its own added)."""
    share, retrieve = [[typed(cmd) for cmd in block] for block in blocks(GUIDE)]
    assert retrieve[0] == "make pull" and len(retrieve) == 4, retrieve
    made = [[a for a in shlex.split(line) if "=" not in a or a.startswith("-")] for line in pull_commands()]
    assert len(made) == 3 and all(m[:len(shlex.split(c))] == shlex.split(c) for m, c in zip(made, retrieve[1:])), \
        (made, retrieve)
    return share, retrieve[1:]


def test_data_dvc_pins_the_generated_dataset(data_dir):
    p = pins.load(ROOT / "data.dvc")
    assert p.folder.resolve() == (ROOT / "data").resolve()  # where `dvc pull data.dvc` puts the files
    assert p.check(data_dir / PINNED, data_dir) == p.md5[PINNED]
    out = yaml.safe_load((ROOT / "data.dvc").read_text())["outs"][0]
    assert out["size"] == (data_dir / PINNED).stat().st_size and out["hash"] == "md5"


def test_lth_verify_refuses_a_mismatch_and_reports_unpinned_files(tmp_path, data_dir, env):
    altered = tmp_path / "data" / PINNED
    altered.parent.mkdir(parents=True)
    data = bytearray((data_dir / PINNED).read_bytes())
    data[-100] ^= 1
    altered.write_bytes(data)
    run = sh(tmp_path, ["lth", "verify", "--pins", ROOT / "data.dvc", "--data-dir", "data", f"data/{PINNED}"], env,
             check=False)
    expected = pins.load(ROOT / "data.dvc").md5[PINNED]
    assert run.returncode == 2
    assert f"data/{PINNED}" in run.stderr and expected in run.stderr and pins.md5(altered) in run.stderr

    other = tmp_path / "data" / "mnist1d-0123abcd" / "tensors.safetensors"  # mnist1d with other options
    other.parent.mkdir()
    shutil.copy(data_dir / PINNED, other)
    run = sh(tmp_path, ["lth", "verify", "--pins", ROOT / "data.dvc", "--data-dir", "data", other], env)
    assert "not pinned in data.dvc: not verified" in run.stdout


def test_a_dataset_altered_after_fetch_is_refused_by_the_first_job_that_reads_it(tmp_path, data_dir, env):
    """Pins are checked where the data are read (not at every parse): the job stops before training."""
    shutil.copytree(data_dir, tmp_path / "data")
    with open(tmp_path / "data" / PINNED, "r+b") as f:  # still a valid tensors file, other numbers
        f.seek(-100, os.SEEK_END)
        byte = f.read(1)
        f.seek(-100, os.SEEK_END)
        f.write(bytes([byte[0] ^ 1]))
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"data_dir": str(tmp_path / "data"), "results_dir": str(tmp_path / "results"),
                                      "tracking": {"enabled": False}, "experiments": {"tiny": TINY}}))
    run = sh(tmp_path, ["snakemake", "-s", ROOT / "Snakefile", "-d", tmp_path, "--cores", "1", "--configfile", config],
             env, check=False)
    out = run.stdout + run.stderr
    assert run.returncode != 0
    assert f"{tmp_path}/data/{PINNED}" in out, out
    assert pins.load(ROOT / "data.dvc").md5[PINNED] in out and pins.md5(tmp_path / "data" / PINNED) in out
    assert not list((tmp_path / "results").rglob("metrics.json"))  # nothing trained


def test_the_fetch_step_refuses_a_dataset_that_does_not_match_its_pin(tmp_path, env):
    # a copy of the workflow whose data.dvc pins other bytes than the generator writes
    project = tmp_path / "project"
    shutil.copytree(ROOT / "workflow", project / "workflow")
    shutil.copy(ROOT / "Snakefile", project)
    pinned = (ROOT / "data.dvc").read_text()
    (project / "data.dvc").write_text(pinned.replace(pins.load(ROOT / "data.dvc").md5[PINNED], "f" * 32))
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"tracking": {"enabled": False}, "experiments": {"tiny": TINY}}))
    run = sh(tmp_path, ["snakemake", f"data/{PINNED}", "-s", project / "Snakefile", "-d", tmp_path, "--cores", "1",
                        "--configfile", config], env, check=False)
    out = run.stdout + run.stderr
    assert run.returncode != 0
    assert f"data/{PINNED}: md5 {pins.load(ROOT / 'data.dvc').md5[PINNED]}, but data.dvc pins md5 {'f' * 32}" in out
    assert not (tmp_path / "data" / PINNED).exists()  # Snakemake removes the output of the failed job


@pytest.mark.slow
def test_a_colleague_pulls_shared_results_and_regenerates_reports_without_training(tmp_path, env):
    """The guide's two blocks run as written (less `uv run`), the sharer's in its project, the colleague's in a
    fresh clone: git pushes to a bare repository both share as `origin`, DVC to a remote in a folder."""
    share, retrieve = guide_blocks()
    remote, origin = tmp_path / "remote", tmp_path / "origin.git"
    sharer = snapshot_project(tmp_path / "sharer")
    # the sharer's project runs a tiny experiment as its default config
    (sharer / "config" / "config.yaml").write_text(
        yaml.safe_dump({"tracking": {"enabled": False}, "experiments": {"tiny": TINY}}))
    git(sharer, "commit", "-qam", "tiny experiment")
    git(tmp_path, "init", "-q", "--bare", origin)
    git(sharer, "remote", "add", "origin", origin)
    git(sharer, "push", "-q", "-u", "origin", "HEAD")  # `git push` of the guide pushes to its upstream
    sh(sharer, ["dvc", "remote", "add", "--local", "-d", "test", remote], env)  # never the default remote
    # the guide's `git commit`, as someone whose git knows their name, and never asks for a signature
    env_git = {**env, "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.com", "GIT_COMMITTER_NAME": "test",
               "GIT_COMMITTER_EMAIL": "test@example.com", "GIT_CONFIG_COUNT": "1",
               "GIT_CONFIG_KEY_0": "commit.gpgsign", "GIT_CONFIG_VALUE_0": "false"}

    sh(sharer, ["snakemake", "--cores", "2", "results/tiny/summary.csv"], env)  # train and summarise
    stamps = mtimes(sharer / "data", sharer / "results" / "tiny")
    version, push, commit = share
    sh(sharer, version, env)
    assert mtimes(sharer / "data", sharer / "results" / "tiny") == stamps  # nothing to retrain after versioning
    assert "as pinned in data.dvc" in (sharer / "results" / "logs" / "fetch-mnist1d.log").read_text()
    assert "up to date" in sh(sharer, ["dvc", "status"], env).stdout  # data and results as DVC recorded them
    assert git(sharer, "status", "--porcelain").stdout == "?? results/tiny.dvc\n"  # the only file to commit
    sh(sharer, push, env)
    assert any(p.is_file() for p in remote.rglob("*"))
    sh(sharer, commit.replace("<experiment>", "tiny"), env_git)
    assert git(origin, "log", "-1", "--format=%s", "--name-only").stdout.split() == \
           ["Results", "of", "tiny", "results/tiny.dvc"]  # committed and pushed

    colleague = tmp_path / "colleague"
    git(tmp_path, "clone", "-q", origin, colleague)
    sh(colleague, ["dvc", "remote", "add", "--local", "-d", "test", remote], env)
    pull, touch, run = retrieve
    sh(colleague, pull, env)
    sh(colleague, touch, env)
    plan = sh(colleague, ["snakemake", "-n"], env).stdout
    assert set(job_counts(plan)) <= {"summary", "report", "all"}, plan  # no training job planned
    done = sh(colleague, run, env)
    # what ran, from Snakemake's own log of the run
    log = Path(re.search(r"Complete [Ll]og(?:\(s\))?: (\S+)", done.stdout + done.stderr).group(1)).read_text()
    assert not any(f"rule {rule}:" in log for rule in TRAINING_RULES), log
    assert "localrule summary:" in log and "localrule report:" in log
    assert (colleague / "reports" / "tiny.html").stat().st_size > 0

    # every versioned file, the regenerated summary tables included, is byte-identical to the sharer's
    shared = sorted(p.relative_to(sharer) for p in (sharer / "results" / "tiny").rglob("*") if p.is_file())
    assert len(shared) > 20 and Path("results/tiny/summary.csv") in shared
    for rel in shared + [Path("data") / PINNED]:
        assert (colleague / rel).read_bytes() == (sharer / rel).read_bytes(), rel
    assert "up to date" in sh(colleague, ["dvc", "status"], env).stdout
    assert git(colleague, "status", "--porcelain").stdout == ""
