"""The documentation site builds as `make docs` builds it (mkdocs build --strict), its generated pages are
there, and a broken link, a broken anchor or an API reference that does not resolve fails the build with
the page and the link named."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PACKAGES = [p.name for p in sorted((ROOT / "src" / "lth").iterdir()) if (p / "__init__.py").is_file()]


def test_make_docs_is_a_strict_mkdocs_build():
    recipe = re.search(r"^docs:.*\n\t(.+)$", (ROOT / "Makefile").read_text(), re.M).group(1)
    assert recipe.endswith("mkdocs build --strict"), recipe


def build(project, site):
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "NO_MKDOCS_2_WARNING": "1",
           "PYTHONPATH": str(project / "src")}
    return subprocess.run([str(BIN / "mkdocs"), "build", "--strict", "--site-dir", str(site)], cwd=project, env=env,
                          capture_output=True, text=True, timeout=600)


def copy_of_the_docs(tmp_path):
    """docs/ and mkdocs.yml copied (to break them), the code and config they are written from linked."""
    project = tmp_path / "project"
    project.mkdir()
    shutil.copytree(ROOT / "docs", project / "docs")
    shutil.copy(ROOT / "mkdocs.yml", project)
    for name in ("src", "config", "workflow", "README.md", "benchmarks", "Makefile"):
        (project / name).symlink_to(ROOT / name)
    return project


def test_the_site_builds_strictly_with_every_generated_page(tmp_path):
    done = build(ROOT, tmp_path / "site")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    site = tmp_path / "site"
    config = (site / "reference" / "configuration" / "index.html").read_text()
    assert "rewind_iteration" in config and "pruning.sap.beta" in config and "mask_overlap" in config
    assert "frankle2019_lenet" in (site / "presets" / "index.html").read_text()
    assert "lth scorecard" in (site / "reference" / "cli" / "index.html").read_text()
    for package in PACKAGES:  # every package has its API page, with its modules' functions
        page = (site / "reference" / "api" / package / "index.html").read_text()
        assert f"lth.{package}" in page and ("doc-function" in page or "doc-class" in page), package


@pytest.mark.parametrize("breakage, named", [
    ("See [the missing page](nowhere.md).", ["concepts.md", "nowhere.md"]),
    ("See [a missing section](getting-started.md#no-such-section).", ["concepts.md", "#no-such-section"]),
    ("::: lth.no_such_module", ["concepts.md", "lth.no_such_module"]),
])
def test_a_broken_link_or_api_reference_fails_naming_the_page_and_the_link(tmp_path, breakage, named):
    project = copy_of_the_docs(tmp_path)
    page = project / "docs" / "concepts.md"
    page.write_text(page.read_text() + f"\n\n{breakage}\n")
    done = build(project, tmp_path / "site")
    assert done.returncode != 0
    for word in named:
        assert word in done.stdout + done.stderr, (word, done.stderr[-2000:])
