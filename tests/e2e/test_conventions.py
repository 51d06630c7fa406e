"""The workflow by the Snakemake catalog's conventions: lint clean but for the findings the Snakefile lists
with their reason, and the .test config planned (every config key documented: tests/plan/test_config_doc.py)."""

import os
import re
import subprocess
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}


def snakemake(*args):
    return subprocess.run(["snakemake", "--configfile", ".test/config/config.yaml", *args], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=600)


def test_lint_finds_only_what_the_snakefile_lists_with_its_reason():
    run = snakemake("--lint")
    findings = set(re.findall(r"^    \* (.+?)[.:]*$", run.stdout + run.stderr, re.M))
    assert findings == {"Specify a conda environment or container for each rule"}, run.stdout + run.stderr
    assert "Specify a conda environment or container for each rule" in (ROOT / "Snakefile").read_text()


def test_the_test_config_plans(tmp_path):
    run = snakemake("-n", "--config", f"results_dir={tmp_path}/r", f"data_dir={tmp_path}/d",
                    f"reports_dir={tmp_path}/p", "paths_outside_project=True")
    assert run.returncode == 0, run.stderr
    for rule in ("dense", "level", "transfer", "analysis", "summary", "report"):
        assert re.search(rf"^\s*{rule}\s+\d+", run.stdout, re.M), rule


def test_the_snakefiles_are_formatted_by_snakefmt():
    run = subprocess.run(["snakefmt", "--check", "Snakefile", "workflow/"], cwd=ROOT, env=ENV, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
