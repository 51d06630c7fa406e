"""Stage 7, the report: its numbers and checks on small tables, then the real notebook on a tiny
finished workflow run (HTML with embedded figures and the headline table, headless Chromium,
`snakemake --report`, a run by hand with transfer targets, clear failures on bad input)."""

import base64
import csv
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
import yaml

import test_workflow

from lth import report
from lth.errors import LTHError

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "lth_report.ipynb"
FIGURES = ["accuracy", "early_stop", "curves", "layer_density"]
PUBLISHED = [{"weights_remaining": 1.0, "ticket": 0.60, "random_prune": 0.55},
             {"weights_remaining": 0.5, "ticket": 0.62, "random_prune": 0.50}]
TINY = {**test_workflow.TINY, "training": {"lr": 0.01, "iterations": 100, "eval_every": 25},
        "variants": ["ticket", "reinit", "random_prune"],
        "reference": {"citation": "A test paper", "findings": ["tickets win"], "published": PUBLISHED}}


def env():
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}


def snakemake(workdir, *args):
    cmd = ["snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(workdir), "--cores", "2", *map(str, args)]
    return subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=600)


def summary_rows(variant_acc: dict, seeds=(0, 1)) -> pd.DataFrame:
    """A summary table: {(level, variant): [accuracy per seed]}; level L keeps 0.5**L of the weights."""
    rows = [{"experiment": "x", "seed": s, "level": level, "variant": v, "weights_remaining": 0.5 ** level,
             "test_accuracy": accs[i], "early_stop_iteration": 100}
            for (level, v), accs in variant_acc.items() for i, s in enumerate(seeds)]
    return pd.DataFrame(rows)


# --- numbers and checks, on small tables ----------------------------------------------------------

def test_published_numbers_of_both_preset_formats_and_none_normalise_alike():
    by_sparsity = report.normalise_published({"published": [{"weights_remaining": 0.5, "ticket": 0.7,
                                                             "random_prune": 0.6}]})
    by_point = report.normalise_published({"published": [{"variant": "ticket", "weights_remaining": 0.5,
                                                          "test_accuracy": 0.7},
                                                         {"variant": "random_prune", "weights_remaining": 0.5,
                                                          "test_accuracy": 0.6}],
                                           "dense_test_accuracy": {"mean": 0.9, "std": 0.01}})
    assert sorted(map(tuple, by_sparsity.values.tolist())) == [("random_prune", 0.5, 0.6), ("ticket", 0.5, 0.7)]
    assert ("dense", 1.0, 0.9) in map(tuple, by_point.values.tolist()) and len(by_point) == 3
    assert report.normalise_published(None).empty and report.normalise_published({"findings": ["x"]}).empty
    for preset in (ROOT / "config" / "presets").glob("*.yaml"):  # every preset's reference is readable
        for exp in yaml.safe_load(preset.read_text())["experiments"].values():
            report.normalise_published(exp.get("reference"))


def test_headline_is_the_last_level_before_the_ticket_first_drops_a_point_below_dense():
    summary = summary_rows({(0, "dense"): [0.80, 0.82],
                            (1, "ticket"): [0.81, 0.81], (1, "random_prune"): [0.78, 0.80],
                            (2, "ticket"): [0.80, 0.81], (2, "random_prune"): [0.70, 0.72],
                            (3, "ticket"): [0.75, 0.77], (3, "random_prune"): [0.60, 0.60],
                            (4, "ticket"): [0.81, 0.81], (4, "random_prune"): [0.50, 0.50]})  # recovers: not "stays"
    head = report.headline(summary)
    assert (head.variant, head.level, head.within, head.baseline) == ("ticket", 2, True, "random_prune")
    assert head.weights_remaining == 0.25 and head.dense_mean == pytest.approx(0.81)
    assert head.difference == pytest.approx(0.805 - 0.71)
    assert head.sparsest_level == 4 and "back within one point as sparse as 6.25 % (level 4)" in \
        report.headline_text(head)
    table = report.headline_table(summary, head)
    assert table["variant"].tolist() == ["dense", "ticket", "random_prune"]
    assert table["test accuracy (%)"].tolist() == ["81.00", "80.50", "71.00"]
    assert table["ticket minus it (points)"].tolist() == ["-0.50", "+0.00", "+9.50"]
    worse = report.headline(summary_rows({(0, "dense"): [0.9, 0.9], (1, "ticket"): [0.5, 0.5]}))
    assert not worse.within and worse.level == 1 and worse.baseline is None
    assert "more than one point below dense already" in report.headline_text(worse)


def test_published_points_meet_our_nearest_level_or_none():
    summary = summary_rows({(0, "dense"): [0.80, 0.80], (1, "ticket"): [0.70, 0.72], (2, "ticket"): [0.60, 0.60]})
    published = report.normalise_published({"published": [{"weights_remaining": 1.0, "ticket": 0.79},
                                                           {"weights_remaining": 0.26, "ticket": 0.65},
                                                           {"weights_remaining": 0.01, "ticket": 0.2},
                                                           {"weights_remaining": 0.5, "lr_rewind": 0.7}]})
    table = report.comparison_table(summary, published)
    assert table["ours: weights remaining (%)"].tolist() == ["100", "25", "none near", "none near"]
    assert table["ours minus paper (points)"].tolist() == ["+1.00", "-5.00", "n/a", "n/a"]


def write_results(folder: Path, summary: pd.DataFrame) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    summary.to_csv(folder / "summary.csv", index=False)
    pd.DataFrame([{"seed": 0, "level": 0, "variant": "dense", "layer": "fc.weight", "density": 1.0}]).to_csv(
        folder / "layer_density.csv", index=False)
    return folder


HEADER = "experiment,seed,level,variant,weights_remaining,test_accuracy,early_stop_iteration\n"


@pytest.mark.parametrize("content, expected", [
    (None, "summary.csv: file not found"),
    ("", "summary.csv: not a readable CSV table"),
    ('experiment,seed\n"x,0\n', "summary.csv: not a readable CSV table"),
    ("experiment,seed,level,variant\nx,0,0,dense\n", "summary.csv: missing column(s) weights_remaining, "
                                                       "test_accuracy, early_stop_iteration"),
    (HEADER, "summary.csv: has a header but no rows"),
    (HEADER + "x,0,0,dense,1.0,0.5,100\nx,0,1,ticket,0.5,high,100\n",
     "summary.csv: line 3: test_accuracy is 'high', not a number"),
    (HEADER + "x,0,0,dense,1.0,0.5,100\nx,0,1,ticket,,0.5,100\n",
     "summary.csv: line 3: weights_remaining is an empty cell"),
    (HEADER + "x,0,1,ticket,0.5,0.5,100\n", "summary.csv: no level-0 (dense) row"),
    (HEADER + "x,0,0,dense,1.0,50.2,100\n", "summary.csv: line 2: test_accuracy = 50.2 is not a fraction in [0, 1]"),
])
def test_a_missing_or_malformed_summary_is_one_error_naming_the_file(tmp_path, content, expected):
    folder = write_results(tmp_path / "x", summary_rows({(0, "dense"): [0.8, 0.8]}))
    if content is None:
        (folder / "summary.csv").unlink()
    else:
        (folder / "summary.csv").write_text(content)
    with pytest.raises(LTHError) as error:
        report.load(folder)
    assert str(error.value).startswith(str(folder / "summary.csv"))
    assert expected in str(error.value)


def test_transfer_rows_are_split_off_and_get_their_own_table_and_figure(tmp_path):
    source = summary_rows({(0, "dense"): [0.8, 0.8], (1, "ticket"): [0.8, 0.79]})
    target = summary_rows({(0, "dense"): [0.5, 0.6], (1, "mask_transfer"): [0.4, 0.4],
                           (1, "ticket_transfer"): [0.55, 0.57]})
    summary = pd.concat([source.assign(target=""), target.assign(target="fashionmnist")])
    results = report.load(write_results(tmp_path / "x", summary), config_json="{}")
    assert len(results.summary) == len(source) and len(results.transfer) == len(target)
    table = report.transfer_table(results.transfer)
    assert table[["variant", "test accuracy (%)"]].values.tolist() == [["dense", "55.00"], ["ticket_transfer", "56.00"],
                                                                       ["mask_transfer", "40.00"]]
    assert len(report.plot_transfer(results.transfer).axes) == 1
    assert report.load(write_results(tmp_path / "y", source.assign(target=""))).transfer.empty


def test_levels_for_the_curves_spread_from_first_to_last():
    assert report.pick_levels([0, 1, 2]) == [1, 2]
    assert report.pick_levels(list(range(15))) == [1, 7, 14]


# --- the notebook on a tiny finished workflow run -------------------------------------------------

class Page(HTMLParser):
    """The figures (id -> image src) and tables (id -> rows of cell texts) of an HTML page."""

    def __init__(self, text: str):
        super().__init__()
        self.figures, self.tables, self._figure, self._table, self._cell = {}, {}, None, None, None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "figure":
            self._figure = a.get("id")
        elif tag == "img" and self._figure:
            self.figures[self._figure] = a.get("src", "")
        elif tag == "table" and a.get("id"):
            self._table = self.tables.setdefault(a["id"], [])
        elif tag == "tr" and self._table is not None:
            self._table.append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = ""

    def handle_endtag(self, tag):
        if tag == "figure":
            self._figure = None
        elif tag == "table":
            self._table = None
        elif tag in ("td", "th") and self._cell is not None:
            self._table[-1].append(self._cell.strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data


def expected_headline(summary_csv: Path) -> dict:
    """The headline computed straight from summary.csv, independently of lth.report."""
    acc: dict = {}
    for r in csv.DictReader(summary_csv.open()):
        acc.setdefault((int(r["level"]), r["variant"]), []).append(float(r["test_accuracy"]))
    mean = {k: sum(v) / len(v) for k, v in acc.items()}
    dense = mean[0, "dense"]
    levels = sorted(level for level, v in mean if v == "ticket")
    level = levels[0]
    for lv in levels:
        if mean[lv, "ticket"] < dense - 0.01:
            break
        level = lv
    return {"dense": dense, "level": level, "ticket": mean[level, "ticket"],
            "random_prune": mean[level, "random_prune"]}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, data_dir):
    """A finished tiny workflow run, up to its report (dataset generated once per session)."""
    workdir = tmp_path_factory.mktemp("report")
    config = {"data_dir": str(data_dir), "results_dir": str(workdir / "results"),
              "reports_dir": str(workdir / "reports"), "experiments": {"tiny": TINY}}
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    run = snakemake(workdir, workdir / "reports" / "tiny.html", "--configfile", workdir / "config.yaml")
    assert run.returncode == 0, run.stdout + run.stderr
    return workdir


@pytest.mark.slow
def test_the_report_embeds_every_figure_and_the_headline_table_with_real_numbers(tiny_run):
    reports = tiny_run / "reports"
    page = Page((reports / "tiny.html").read_text())
    assert sorted(page.figures) == sorted(f"fig-{f}" for f in FIGURES)  # no transfer figure without targets
    for src in page.figures.values():
        assert src.startswith("data:image/png;base64,")
        png = base64.b64decode(src.split(",", 1)[1])
        assert png.startswith(b"\x89PNG") and len(png) > 10_000
    for name in FIGURES:  # also on disk, as PNG and SVG
        assert (reports / "tiny" / f"{name}.png").read_bytes().startswith(b"\x89PNG")
        assert "<svg" in (reports / "tiny" / f"{name}.svg").read_text()
    assert (reports / "tiny.ipynb").exists()  # the executed notebook is kept

    want = expected_headline(tiny_run / "results" / "tiny" / "summary.csv")
    header, *rows = page.tables["table-headline"]
    rows = {r[0]: dict(zip(header, r)) for r in rows}
    assert rows["dense"]["test accuracy (%)"] == f"{100 * want['dense']:.2f}"
    assert rows["ticket"]["level"] == str(want["level"])
    assert rows["ticket"]["test accuracy (%)"] == f"{100 * want['ticket']:.2f}"
    assert rows["random_prune"]["ticket minus it (points)"] == f"{100 * (want['ticket'] - want['random_prune']):+.2f}"
    assert all(0 < float(r["test accuracy (%)"]) <= 100 for r in rows.values())

    text = (reports / "tiny.html").read_text()
    header, *published = page.tables["table-published"]
    assert len(published) == 4 and "ours minus paper (points)" in header
    assert "A test paper" in text and "tickets win" in text and "No transfer targets" in text
    assert re.search(r"Dataset sha256: <code>[0-9a-f]{64}</code>", text)
    assert f"Report kernel: Python {platform.python_version()} in <code>{sys.prefix}</code>" in text  # ours
    assert not re.search(r"<script[^>]+src=", text)  # self-contained: nothing fetched when opened


@pytest.mark.slow
def test_the_report_renders_in_headless_chromium_without_errors(tiny_run):
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.skip("needs Debian's chromium and chromium-driver (`apt-get install chromium chromium-driver`; "
                    ".ci/run installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    with tempfile.TemporaryDirectory() as profile:
        for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}",
                     "--window-size=1280,1024"):
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
        try:
            driver.get((tiny_run / "reports" / "tiny.html").as_uri())
            assert driver.execute_script("return document.readyState") == "complete"
            images = driver.execute_script(
                "return Array.from(document.images).map(i => [i.closest('figure') && i.closest('figure').id,"
                " i.complete, i.naturalWidth, i.getBoundingClientRect().width, i.getBoundingClientRect().height])")
            log = driver.get_log("browser")
        finally:
            driver.quit()
    assert [entry for entry in log if entry["level"] == "SEVERE"] == []
    assert sorted(i[0] for i in images) == sorted(f"fig-{f}" for f in FIGURES)
    for figure, complete, natural, width, height in images:
        assert complete and natural > 0 and width > 0 and height > 0, figure


@pytest.mark.slow
def test_snakemake_report_collects_the_figures_and_rule_all_asks_for_the_report(tiny_run):
    out = tiny_run / "snakemake-report.html"
    run = snakemake(tiny_run, "--configfile", tiny_run / "config.yaml", "--report", out)
    assert run.returncode == 0, run.stdout + run.stderr
    text = out.read_text()
    for name in FIGURES:
        assert f'"labels": {{"experiment": "tiny", "figure": "{name}"}}' in text
    assert "tiny.html" in text
    (tiny_run / "reports" / "tiny.html").unlink()
    plan = snakemake(tiny_run, "--configfile", tiny_run / "config.yaml", "-n")  # the default target
    assert plan.returncode == 0 and re.search(r"\breport\s+1\b", plan.stdout), plan.stdout + plan.stderr


def papermill(*args):
    return subprocess.run([str(Path(sys.executable).parent / "papermill"), str(NOTEBOOK), *map(str, args),
                           "--no-progress-bar"], env=env(), capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_by_hand_on_a_copied_results_folder_with_transfer_targets(tiny_run, tmp_path):
    results = tmp_path / "results"
    shutil.copytree(tiny_run / "results" / "tiny", results)
    summary = pd.read_csv(results / "summary.csv")
    names = {"ticket": "ticket_transfer", "reinit": "mask_transfer"}  # as lth.transfer names them
    target = summary.assign(target="digits", test_accuracy=summary["test_accuracy"] / 2,
                            variant=summary["variant"].replace(names))
    pd.concat([summary.assign(target=""), target]).to_csv(results / "summary.csv", index=False)
    config = tmp_path / "preset.yaml"
    config.write_text(yaml.safe_dump({"experiments": {"tiny": TINY}}))
    run = papermill(tmp_path / "out.ipynb", "-p", "results", results, "-p", "figures_dir", tmp_path / "figs",
                    "-p", "configfile", config)
    assert run.returncode == 0, run.stderr
    executed = (tmp_path / "out.ipynb").read_text()
    assert 'id=\\"fig-transfer\\"' in executed and 'id=\\"table-transfer\\"' in executed
    assert 'id=\\"table-published\\"' in executed  # the preset's numbers, found by experiment name
    assert {p.name for p in (tmp_path / "figs").iterdir()} == {f"{f}.{e}" for f in FIGURES + ["transfer"]
                                                               for e in ("png", "svg")}


@pytest.mark.slow
def test_a_missing_or_malformed_summary_stops_the_notebook_naming_the_file(tiny_run, tmp_path):
    results = tmp_path / "results"
    shutil.copytree(tiny_run / "results" / "tiny", results)
    (results / "summary.csv").unlink()
    by_hand = papermill(tmp_path / "out.ipynb", "-p", "results", results)
    assert by_hand.returncode != 0
    assert f"LTHError: {results / 'summary.csv'}: file not found" in by_hand.stderr
    assert "site-packages/pandas" not in by_hand.stderr

    (results / "summary.csv").write_text("experiment,seed,level\ntiny,0,0\n")
    workflow_way = subprocess.run(
        [sys.executable, "-m", "lth.report", "--notebook", NOTEBOOK, "--results", results, "--executed",
         tmp_path / "x.ipynb", "--html", tmp_path / "x.html"], env=env(), capture_output=True, text=True, timeout=300)
    assert workflow_way.returncode == 2
    last = workflow_way.stderr.strip().splitlines()[-1]
    assert last.startswith("lth report: error: ") and f"{results / 'summary.csv'}: missing column(s) variant" in last
    assert "Traceback" not in workflow_way.stderr and not (tmp_path / "x.html").exists()
