"""The how-to guides of docs/extend run as written.

Each guide's fenced blocks say what to do with them:
    ```python title="src/lth/x/y.py"```           a new file: written (it must not exist yet)
    ```python title="src/lth/core/parts.py (append)"```   lines appended to a file that exists
    ```yaml title="config/x.yaml"```               a new config file: written
    ```sh```                                        commands, one a line, run in order (`uv run `
                                                    dropped: the tests run in the project's environment)
    ```text```                                      output shown to the reader: not run
A test copies the project to a temporary folder (conftest.copy_project: what a commit would hold), applies one
guide's blocks there, runs its commands with the copy's src first on PYTHONPATH and this interpreter's
folder first on PATH, runs tests/test_architecture.py on the copy, regenerates the configuration reference
and runs its test there (the new part and its keys documented), and checks that the part it adds took
effect (a part registered but never used would leave the runs as they were). Nothing is added to the
project itself.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import copy_project, sh_lines, typed

ROOT = Path(__file__).resolve().parents[2]
GUIDES = ROOT / "docs" / "extend"
PAGES = ["score", "model", "dataset", "training-mode", "analysis", "experiment-kind"]
FENCE = re.compile(r"^```(?P<lang>[\w-]*)(?P<attrs>[^\n]*)\n(?P<body>.*?)^```[ \t]*$", re.M | re.S)
TITLE = re.compile(r'^\s*title="(?P<title>[^"]*)"\s*$')
PATH = r"[A-Za-z0-9_][A-Za-z0-9_./-]*"
APPEND = re.compile(rf"^(?P<path>{PATH}) \(append\)$")
NEW = re.compile(rf"^(?P<path>{PATH})$")
SHOWN = {"text", "console"}  # untitled blocks of output, not run


def blocks(page: str) -> list[tuple[str, str | None, str]]:
    """(language, title or None, body) of every fenced block of a guide, in order."""
    text = (GUIDES / f"{page}.md").read_text()
    out = []
    for m in FENCE.finditer(text):
        attrs = m["attrs"].strip()
        title = TITLE.match(attrs)
        if attrs and not title:
            raise AssertionError(f"{page}.md: a block's attributes are not one title=\"...\": {attrs!r}")
        out.append((m["lang"], title["title"] if title else None, m["body"]))
    return out


def kind(lang: str, title: str | None) -> str:
    """What a block is: "new", "append", "sh" or "shown"; AssertionError for anything else."""
    if title is None:
        if lang == "sh":
            return "sh"
        if lang in SHOWN:
            return "shown"
        raise AssertionError(f"an untitled ```{lang} block: give it a title (a file) or make it sh or text")
    if lang not in ("python", "yaml"):
        raise AssertionError(f"a titled ```{lang} block ({title!r}): only python and yaml blocks write files")
    if APPEND.match(title):
        return "append"
    if NEW.match(title):
        return "new"
    raise AssertionError(f"title {title!r} is neither a file path nor '<path> (append)'")


@pytest.mark.parametrize("page", PAGES)
def test_every_block_is_of_a_known_kind(page):
    found = [kind(lang, title) for lang, title, _ in blocks(page)]
    assert "new" in found and "sh" in found, f"{page}.md: no file to write or no command to run"
    for lang, title, body in blocks(page):
        if lang == "python":
            compile(body, title or page, "exec")  # a syntax error fails here, before any run


def apply(page: str, project: Path) -> list[str]:
    """Write and append the guide's files in `project`; return its commands."""
    commands = []
    for lang, title, body in blocks(page):
        what = kind(lang, title)
        if what == "sh":
            commands += sh_lines(body)
        elif what == "new":
            path = project / title
            assert not path.exists(), f"{page}.md: {title} is written as a new file but the project has it"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(body)
        elif what == "append":
            path = project / APPEND.match(title)["path"]
            assert path.exists(), f"{page}.md: {title}: the project has no such file to append to"
            with path.open("a") as f:
                f.write("\n" + body)
    return commands


def run_guide(page: str, project: Path) -> None:
    """Apply the guide in a copy of the project at `project`, run its commands, then the layering test
    (the guide's new modules import only the packages their place allows)."""
    commands = apply(page, copy_project(project)) + [
        "pytest -q tests/test_architecture.py",  # the new modules import only what their package may
        "python -m lth.plan.config_doc --write config/README.md",  # the reference documents the new part
        "pytest -q tests/plan/test_config_doc.py"]
    env = {**os.environ, "PYTHONPATH": str(project / "src"),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    for line in commands:
        args = shlex.split(typed(line))
        if args[0] == "pytest":  # the copy's tests, without a cache folder in it
            args += ["-p", "no:cacheprovider"]
        done = subprocess.run(args, cwd=project, env=env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, f"{page}.md: `{line}` failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"


def rows(path: Path) -> list[dict]:
    assert path.exists(), f"{path} was not written"
    return list(csv.DictReader(path.open()))


def settings(project: Path, experiment: str) -> dict:
    return json.loads((project / "results" / experiment / "settings.json").read_text())["settings"]


def tensor_shapes(path: Path) -> dict[str, list[int]]:
    """The shapes in a safetensors file, read from its header (no torch needed)."""
    with path.open("rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
    return {name: t["shape"] for name, t in header.items() if name != "__metadata__"}


def check_score(project: Path) -> None:
    s = settings(project, "fisher_mnist1d")
    assert s["pruning"]["score"] == "fisher" and s["pruning"]["batch"] == 256
    fisher, magnitude = (rows(project / "results" / e / "summary.csv") for e in ("fisher_mnist1d", "magnitude_mnist1d"))
    assert {(r["level"], r["variant"]) for r in fisher} == {("0", "dense")} | {
        (str(lv), v) for lv in (1, 2, 3) for v in ("ticket", "random_prune")}
    # the same dense run, other masks: the score really ranked the weights (not magnitude's ranking)
    pruned = [p.name for p in (project / "results" / "fisher_mnist1d").iterdir() if p.name.startswith("imp-")]
    assert pruned and not (project / "results" / "magnitude_mnist1d" / pruned[0]).exists()
    from safetensors.numpy import load_file

    run = Path("seed0") / "level01" / "ticket" / "mask.safetensors"
    a = load_file(next((project / "results" / "fisher_mnist1d").glob("imp-*")) / run)
    b = load_file(next((project / "results" / "magnitude_mnist1d").glob("imp-*")) / run)
    assert any((a[n] != b[n]).any() for n in a), "the fisher ticket's mask is magnitude's"
    assert len(magnitude) == len(fisher)


def check_model(project: Path) -> None:
    s = settings(project, "deep_mlp_mnist1d")
    assert s["model"] == {**s["model"], "name": "deep_mlp", "options": {"width": 48, "depth": 4}}
    dense = next((project / "results" / "deep_mlp_mnist1d").glob("dense-*")) / "seed0"
    shapes = tensor_shapes(dense / "final.safetensors")
    width, depth, inputs, classes = 48, 4, 40, 10
    expected = inputs * width + width + (depth - 1) * (width * width + width) + width * classes + classes
    assert sum(math.prod(v) for v in shapes.values()) == expected
    assert shapes["output.weight"] == [classes, width]
    table = rows(project / "results" / "deep_mlp_mnist1d" / "summary.csv")
    assert [r["level"] for r in table if r["variant"] == "ticket"] == ["1", "2", "3"]


def check_dataset(project: Path) -> None:
    s = settings(project, "teacher_imp")
    assert s["dataset"]["name"] == "teacher"
    data = list((project / "data").glob("teacher-*/tensors.safetensors"))
    assert len(data) == 1, "the teacher dataset was not generated once, under its options' folder"
    shapes = tensor_shapes(data[0])
    assert shapes["x_train"] == [2000, 20] and shapes["x_test"] == [1000, 20] and shapes["y_train"] == [2000]
    table = rows(project / "results" / "teacher_imp" / "summary.csv")
    dense = next(r for r in table if r["variant"] == "dense")
    assert float(dense["test_accuracy"]) > 0.5, "the dense network did not learn the teacher (chance: 0.25)"


def check_training_mode(project: Path) -> None:
    s = settings(project, "prune_once_sweep")
    assert s["oneshot"]["methods"]["once"]["train"] == "prune_once"
    table = rows(project / "results" / "prune_once_sweep" / "summary.csv")
    once = {r["level"]: float(r["weights_remaining"]) for r in table if r["variant"] == "once"}
    assert set(once) == {"2000", "500"}
    for level, remaining in once.items():  # the mode's mask, read back from the run: at its density
        assert abs(remaining - int(level) / 10000) < 0.01, (level, remaining)
    assert {r["variant"] for r in table} == {"dense", "once", "gmp", "lth"}


def check_analysis(project: Path) -> None:
    table = rows(project / "results" / "init_magnitude_mnist1d" / "analysis-init_magnitude.csv")
    assert list(table[0]) == ["experiment", "variant", "seed", "level", "layer", "weights_remaining",
                              "kept_init_magnitude", "all_init_magnitude", "ratio", "same_sign"]
    layers = ["linear1.weight", "linear2.weight", "linear3.weight"]
    assert [(r["seed"], r["level"], r["layer"]) for r in table] == [
        (str(seed), str(level), layer) for seed in (0, 1) for level in (1, 2, 3) for layer in layers]
    assert all(0 < float(r["weights_remaining"]) < 1 and 0 <= float(r["same_sign"]) <= 1 for r in table)
    assert all(float(r["ratio"]) > 0 for r in table)


def check_experiment_kind(project: Path) -> None:
    s = settings(project, "dense_seeds")
    assert s["kind"] == "dense_only"
    table = rows(project / "results" / "dense_seeds" / "summary.csv")
    assert sorted((r["seed"], r["level"], r["variant"]) for r in table) == [
        (str(seed), "0", "dense") for seed in range(4)]
    assert not list((project / "results" / "dense_seeds").glob("imp-*/seed*")), "a pruned run was trained"


CHECKS = {"score": check_score, "model": check_model, "dataset": check_dataset,
          "training-mode": check_training_mode, "analysis": check_analysis, "experiment-kind": check_experiment_kind}


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES)
def test_guide_runs_as_written(page, tmp_path):
    project = tmp_path / "project"
    run_guide(page, project)
    CHECKS[page](project)
