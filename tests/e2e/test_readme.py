"""The commands of README.md and of the documentation (docs/**/*.md) run as written: each shell block
is parsed, and the cheap commands are run (on a tiny copy of the demo settings and the tiny
experiment); the rest are checked to exist."""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import copy_project, sh_lines, tiny, typed

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def pages():
    """README.md and every page of the documentation site's sources."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def blocks(page):
    """The ```sh blocks of a page, each as its list of commands (conftest.sh_lines). The guides' tests
    (test_dvc.py, test_slurm.py, test_tracking_workflow.py) run theirs from here."""
    return [sh_lines(block) for block in re.findall(r"^[ \t]*```sh\n(.*?)```", page.read_text(), re.S | re.M)]


def commands(*paths):
    """Every command of the ```sh blocks of these pages (default: all of them)."""
    return [cmd for page in (paths or pages()) for block in blocks(page) for cmd in block]


def run(cmd, cwd, **env):
    """A README command without its `uv run` (the tests already run in the locked environment)."""
    argv = shlex.split(typed(cmd))
    full_env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1", **env}
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=900, env=full_env)


def test_the_pages_have_commands():
    """The blocks moved from README.md into the documentation are still found."""
    found = commands()
    assert "make run" in found and "make test" in found
    assert any(c.startswith("uv run lth retrain") for c in found)
    assert any(c.startswith("uv run papermill") for c in found)
    assert any(c.startswith("uv run snakemake --profile profiles/slurm") for c in found)
    assert "uv run snakemake --touch --forceall runs" in found


def test_every_command_is_known():
    targets = set(re.findall(r"^([a-z-]+):", (ROOT / "Makefile").read_text(), re.M))
    for cmd in commands():
        argv = shlex.split(cmd.split("&&")[0])
        argv = argv[2:] if argv[:2] == ["uv", "run"] else argv
        if argv[0] == "make":
            assert argv[1] in targets, cmd
        elif argv[0] == "lth":
            help_text = run(f"lth {argv[1]} --help", ROOT).stdout
            for flag in (a for a in argv[2:] if a.startswith("--")):
                assert flag in help_text, (cmd, flag)
        elif argv[0] == "python":
            assert (ROOT / argv[1]).is_file(), cmd
        else:
            assert argv[0] in ("snakemake", "papermill", "dvc", "git", "mlflow", "pytest"), cmd


@pytest.mark.slow
def test_the_by_hand_block_runs_as_written(tmp_path):
    """`lth fetch/train/prune/retrain` on config/demo.yaml, made tiny (same keys, smaller numbers)."""
    (tmp_path / "config").mkdir()
    demo = yaml.safe_load((ROOT / "config" / "demo.yaml").read_text())
    demo["model"]["options"]["hidden"], demo["training"]["iterations"] = 16, 100
    (tmp_path / "config" / "demo.yaml").write_text(yaml.safe_dump(demo))
    block = [c for c in commands(ROOT / "docs" / "guides" / "by-hand.md") if c.startswith("uv run lth ")]
    assert [shlex.split(c)[3] for c in block] == ["fetch", "train", "prune", "retrain"]
    for cmd in block:
        done = run(cmd, tmp_path)
        assert done.returncode == 0, (cmd, done.stderr)
    assert "weights remaining" in done.stdout and (tmp_path / "data" / "mnist1d" / "tensors.safetensors").exists()


@pytest.mark.slow
def test_the_workflow_and_report_blocks_run_as_written(tmp_path):
    """The snakemake commands (as dry runs where they would train a preset) and the papermill one."""
    project = tmp_path / "project"
    copy_project(project)
    (project / "config" / "config.yaml").write_text(
        yaml.safe_dump({"tracking": {"enabled": False}, "experiments": {"mnist1d_mlp": tiny({"seeds": [0]})}}))
    # the extension guides' commands need the files their pages add: tests/docs/test_extend_guides.py runs them
    for cmd in commands(*[page for page in pages() if "extend" not in page.relative_to(ROOT).parts]):
        if not cmd.startswith("uv run snakemake") or "slurm" in cmd or cmd.endswith(" version"):
            continue
        if "--configfile config/presets" in cmd and " -n " not in cmd:
            cmd = cmd.replace("snakemake", "snakemake -n", 1)  # a preset would train for hours
        done = run(cmd, project)
        assert done.returncode == 0, (cmd, done.stdout[-2000:], done.stderr[-2000:])
    papermill = next(c for c in commands() if c.startswith("uv run papermill"))
    done = run(papermill, project)
    assert done.returncode == 0, (papermill, done.stderr[-3000:])
    assert (project / "out.ipynb").exists() and (project / "report.html").exists()
