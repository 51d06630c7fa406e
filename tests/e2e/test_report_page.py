"""Stage 7 end to end: the real report notebook on a tiny finished workflow run (HTML with embedded
figures and the headline table, headless Chromium with a full-page screenshot, `snakemake --report`,
a run by hand with transfer targets, pages that say what is missing from partial results, clear
failures on bad input). The report's pieces on small tables: tests/report/test_report.py."""

import base64
import csv
import os
import platform
import re
import shutil
import struct
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
import yaml

import test_workflow
from conftest import missing_tool, paired_interval

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "lth_report.ipynb"
FIGURES = ["accuracy", "differences", "early_stop", "curves", "layer_density"]
SCREENSHOTS = Path("/tmp/report-screenshots")  # copies of the screenshots, to look at by eye
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
    """The headline computed straight from summary.csv with scipy, independently of lth.report: per
    level, the 95 % t-interval of ticket minus dense paired by seed; matched while its lower bound is
    above -1 point (the point estimate with one seed)."""
    acc: dict = {}
    for r in csv.DictReader(summary_csv.open()):
        if not r.get("target"):
            acc[int(r["level"]), r["variant"], int(r["seed"])] = float(r["test_accuracy"])
    seeds = sorted({s for _, _, s in acc})
    levels = sorted({level for level, v, _ in acc if v == "ticket"})
    matched = None
    for level in levels:
        pairs = [s for s in seeds if (level, "ticket", s) in acc and (0, "dense", s) in acc]
        mean, lo, _ = paired_interval([acc[level, "ticket", s] for s in pairs], [acc[0, "dense", s] for s in pairs])
        if not (lo if len(pairs) > 1 else mean) > -0.01:
            break
        matched = level
    at = matched or levels[0]

    def mean(level, variant):
        values = [acc[level, variant, s] for s in seeds if (level, variant, s) in acc]
        return sum(values) / len(values)

    return {"seeds": len(seeds), "matched": matched, "level": at, "dense": mean(0, "dense"),
            "ticket": mean(at, "ticket"), "random_prune": mean(at, "random_prune")}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, data_dir):
    """A finished tiny workflow run, up to its report (dataset generated once per session)."""
    workdir = tmp_path_factory.mktemp("report")
    config = {"data_dir": str(data_dir), "results_dir": str(workdir / "results"), "paths_outside_project": True,
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
        assert "<svg" in (reports / "tiny" / f"tiny-{name}.svg").read_text()  # named by experiment and figure
    assert (reports / "tiny.ipynb").exists()  # the executed notebook is kept

    summary_csv = tiny_run / "results" / "tiny" / "summary.csv"
    want = expected_headline(summary_csv)
    header, *rows = page.tables["table-headline"]
    rows = {r[0]: dict(zip(header, r)) for r in rows}
    assert rows["dense"]["test accuracy (%)"] == f"{100 * want['dense']:.2f}"
    assert rows["ticket"]["level"] == str(want["level"])
    assert rows["ticket"]["test accuracy (%)"] == f"{100 * want['ticket']:.2f}"
    assert rows["random_prune"]["ticket minus it (points)"] == f"{100 * (want['ticket'] - want['random_prune']):+.2f}"
    assert re.fullmatch(r"\[[-+]\d+\.\d\d, [-+]\d+\.\d\d\]", rows["random_prune"]["ticket minus it: 95 % CI"])
    assert all(0 < float(r["test accuracy (%)"]) <= 100 for r in rows.values())

    text = (reports / "tiny.html").read_text()
    claim = "ticket matches dense down to" if want["matched"] else "ticket is not shown to match dense at any"
    assert re.search(f"<strong>{claim}[^<]*</strong> \\([^)]*n = {want['seeds']} seeds", text)
    header, *published = page.tables["table-published"]
    assert len(published) == 4 and "ours minus paper (points)" in header
    assert re.search(r"diamonds: the paper(&#x27;|')s published numbers \(4 points: \w+, \w+\)\.</figcaption>", text)
    assert "A test paper" in text and "tickets win" in text
    assert re.search(r"Left out, as they do not apply here:</em> [^<]*pruning methods compared; transfer", text)
    assert not re.search(r"<h2[^>]*>[^<]*(Pruning methods compared|Transfer)", text)  # those sections left out
    assert re.search(r"Dataset sha256: <code>[0-9a-f]{64}</code>", text)
    kernel = re.search(rf"Report kernel: Python {re.escape(platform.python_version())} in <code>([^<]+)</code>", text)
    assert kernel and os.path.realpath(kernel[1]) == os.path.realpath(sys.prefix)  # ours (a linked .venv too)
    assert not re.search(r"<script[^>]+src=", text)  # self-contained: nothing fetched when opened
    link = re.search(r'<a download="tiny_summary.csv" href="data:text/csv;base64,([^"]+)"', text)
    assert link and base64.b64decode(link.group(1)) == summary_csv.read_bytes()  # the data travels with the page


def full_page_screenshot(driver, path: Path) -> None:
    """The whole page as one PNG (Chromium's DevTools capture beyond the window), also copied to
    SCREENSHOTS for a person to look at."""
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}})
    path.write_bytes(base64.b64decode(shot["data"]))
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, SCREENSHOTS / path.name)


# What the page shows, read in the browser: its text, each figure's image and where things sit.
PAGE_SCRIPT = """
const top = e => e.getBoundingClientRect().top + window.scrollY;
const figures = Array.from(document.querySelectorAll('figure')).map(f => {
  const i = f.querySelector('img');
  return {id: f.id, complete: i.complete, natural: i.naturalWidth, width: i.getBoundingClientRect().width,
          height: i.getBoundingClientRect().height, top: top(f), bottom: top(f) + f.getBoundingClientRect().height};
});
const appendix = Array.from(document.querySelectorAll('h2')).find(h => h.id.startsWith('Appendix'));
const claim = Array.from(document.querySelectorAll('strong')).find(s => s.textContent.startsWith('ticket '));
return {text: document.body.innerText, figures: figures, appendix: appendix ? top(appendix) : null,
        config: top(document.getElementById('code-config')), headline: claim ? top(claim) : null,
        headlineText: claim ? claim.parentElement.innerText : '', height: document.documentElement.scrollHeight};
"""


@pytest.mark.slow
def test_the_report_renders_in_headless_chromium_and_shows_the_headline_figures_and_appendix(tiny_run, tmp_path):
    screenshot = tmp_path / "tiny-report.png"
    with tempfile.TemporaryDirectory() as profile:
        driver = chromium(1280, profile, height=1024)
        try:
            driver.get((tiny_run / "reports" / "tiny.html").as_uri())
            assert driver.execute_script("return document.readyState") == "complete"
            page = driver.execute_script(PAGE_SCRIPT)
            full_page_screenshot(driver, screenshot)
            log = driver.get_log("browser")
        finally:
            driver.quit()
    assert [entry for entry in log if entry["level"] == "SEVERE"] == []
    assert sorted(f["id"] for f in page["figures"]) == sorted(f"fig-{f}" for f in FIGURES)
    for f in page["figures"]:
        assert f["complete"] and f["natural"] > 0 and f["width"] > 0 and f["height"] > 0, f["id"]
    want = expected_headline(tiny_run / "results" / "tiny" / "summary.csv")
    assert f"n = {want['seeds']} seeds" in page["headlineText"] and "95 % CI" in page["headlineText"]
    assert "How this is decided:" in page["text"] and "t-distribution" in page["text"]
    first, last = min(f["top"] for f in page["figures"]), max(f["bottom"] for f in page["figures"])
    assert page["headline"] < first  # the headline first, then the figures,
    assert last < page["appendix"] < page["config"]  # then the appendix, which holds the config
    assert page["text"].index("rewind_iteration") > page["text"].index("Appendix")  # no YAML above it
    assert "Data: tiny_summary.csv" in page["text"]
    width, height = struct.unpack(">II", screenshot.read_bytes()[16:24])  # the PNG's size: the whole page
    assert width > 1200 and height >= page["height"] > 1024  # the window less its scroll bar


@pytest.mark.slow
def test_snakemake_report_collects_the_figures_and_the_summary_and_rule_all_asks_for_the_report(tiny_run):
    out = tiny_run / "snakemake-report.html"
    run = snakemake(tiny_run, "--configfile", tiny_run / "config.yaml", "--report", out)
    assert run.returncode == 0, run.stdout + run.stderr
    text = out.read_text()
    for name in FIGURES:
        assert f'"labels": {{"experiment": "tiny", "figure": "{name}"}}' in text
    assert "tiny.html" in text
    # summary.csv too, embedded (workflow/rules/summary.smk flags it with report())
    assert '"labels": {"experiment": "tiny", "table": "summary.csv"}' in text
    assert "data:text/csv;charset=utf8;filename=summary.csv;base64," in text
    (tiny_run / "reports" / "tiny.html").unlink()
    plan = snakemake(tiny_run, "--configfile", tiny_run / "config.yaml", "-n")  # the default target
    assert plan.returncode == 0 and re.search(r"\breport\s+1\b", plan.stdout), plan.stdout + plan.stderr


def papermill(*args):
    return subprocess.run([str(Path(sys.executable).parent / "papermill"), str(NOTEBOOK), *map(str, args),
                           "--no-progress-bar"], env=env(), capture_output=True, text=True, timeout=300)


def report_html(results: Path, out: Path) -> subprocess.CompletedProcess:
    """The report of a results folder, made the way the workflow makes it."""
    return subprocess.run([sys.executable, "-m", "lth.report", "--notebook", NOTEBOOK, "--results", results,
                           "--executed", out.with_suffix(".ipynb"), "--html", out], env=env(), capture_output=True,
                          text=True, timeout=300)


@pytest.mark.slow
def test_by_hand_on_a_copied_results_folder_with_transfer_targets(tiny_run, tmp_path):
    results = tmp_path / "results"
    shutil.copytree(tiny_run / "results" / "tiny", results)
    summary = pd.read_csv(results / "summary.csv")
    names = {"ticket": "ticket_transfer", "reinit": "mask_transfer"}  # as lth.jobs.transfer names them
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
    assert "dotted: chance (1 / classes) on digits" in executed  # the digits dataset: ten classes
    assert 'id=\\"table-published\\"' in executed  # the preset's numbers, found by experiment name
    assert {p.name for p in (tmp_path / "figs").iterdir()} == {name for f in FIGURES + ["transfer"]
                                                               for name in (f"{f}.png", f"tiny-{f}.svg")}


@pytest.mark.slow
@pytest.mark.parametrize("case, keep, says", [
    ("one seed", lambda s: s["seed"] == 0,
     ["Only one seed (0): no spread over seeds, so no confidence interval can be computed",
      "Seed(s) 1: no runs at all.", "n = 1 seed",
      "<strong>no confidence interval can be computed</strong>", "falls back to the point estimate",
      "with one seed no interval can be computed"]),
    ("no reinit", lambda s: s["variant"] != "reinit",
     ["reinit: no runs at all (the config asks for it)", "Not in the results, so not drawn: reinit."]),
    ("a level with no runs", lambda s: s["level"] != 1,
     ["Level(s) 1: no runs at all.", "level 1 has no ticket runs, and the rule needs every denser level"]),
    ("a run without its record", None,
     ["1 run(s) have no readable record (metrics.json), so their curves and provenance are left out; the "
      "first, seed 1, level 2, ticket: file not found: "]),
])
def test_a_partial_summary_still_gives_a_page_that_says_what_is_missing(tiny_run, tmp_path, case, keep, says):
    results = tmp_path / "results"
    shutil.copytree(tiny_run / "results" / "tiny", results)
    summary = pd.read_csv(results / "summary.csv", keep_default_na=False)
    if keep is not None:
        summary[keep(summary)].to_csv(results / "summary.csv", index=False)
    else:  # the summary is whole, but one run's record is gone
        from lth.plan import Plan
        from lth.plan.layout import RunKey

        Plan.from_results(results).layout.metrics(RunKey(1, 2, "ticket")).unlink()
    run = report_html(results, tmp_path / "page.html")
    assert run.returncode == 0, run.stderr
    text = (tmp_path / "page.html").read_text()
    assert "What is missing from these results:" in text
    for phrase in says:
        assert phrase in text, (case, phrase)
    page = Page(text)
    assert sorted(page.figures) == sorted(f"fig-{f}" for f in FIGURES) and "table-headline" in page.tables


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
    workflow_way = report_html(results, tmp_path / "x.html")
    assert workflow_way.returncode == 2
    last = workflow_way.stderr.strip().splitlines()[-1]
    assert last.startswith("lth report: error: ") and f"{results / 'summary.csv'}: missing column(s) variant" in last
    assert "Traceback" not in workflow_way.stderr and not (tmp_path / "x.html").exists()


# --- a sweep of many methods (#33): the real notebook on a synthetic 10-method sweep, in Chromium ---

SWEEP_SCRIPT = """
const page = document.documentElement.clientWidth;
const figures = Array.from(document.querySelectorAll('figure')).map(f => {
  const i = f.querySelector('img'), r = i.getBoundingClientRect();
  return {id: f.id, complete: i.complete, natural: i.naturalWidth, right: r.right, width: r.width};
});
const tables = Array.from(document.querySelectorAll('table.lth-table')).map(t => {
  const w = t.closest('.lth-table-wrap'), heads = t.tHead.rows[t.tHead.rows.length - 1].cells;
  return {id: t.id, header: Array.from(heads).map(h => h.textContent), wrapRight: w.getBoundingClientRect().right,
          scrolls: w.scrollWidth > w.clientWidth, rows: t.tBodies[0].rows.length};
});
const requests = performance.getEntriesByType('resource').map(r => r.name).filter(n => !n.startsWith('data:'));
return {page: page, figures: figures, tables: tables, requests: requests, text: document.body.innerText};
"""

VISIBLE_COLUMN = """
const t = document.getElementById(arguments[0]);
return Array.from(t.tBodies[0].rows).filter(r => r.style.display !== 'none')
  .map(r => r.cells[arguments[1]].textContent);
"""


@pytest.fixture(scope="module")
def sweep_report(tmp_path_factory):
    """The report of a synthetic one-shot sweep of 10 methods, each with shuffle and reinit controls, made
    the way the workflow makes it (python -m lth.report, papermill, the HTML export)."""
    import json

    from conftest import synthetic_sweep

    root = tmp_path_factory.mktemp("sweep")
    config = synthetic_sweep(root / "results", methods=10, densities=6, seeds=3)
    out = root / "sweep.html"
    run = subprocess.run([sys.executable, "-m", "lth.report", "--notebook", NOTEBOOK, "--results", root / "results",
                          "--executed", root / "sweep.ipynb", "--html", out, "--figures-dir", root / "figures",
                          "--config-json", json.dumps(config)], env=env(), capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    return out


def chromium(width: int, profile: str, height: int = 1000):
    """A headless Chromium whose window is `width` x `height` CSS pixels, its browser log kept."""
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        missing_tool("needs Debian's chromium and chromium-driver (`apt-get install chromium chromium-driver`; "
                     ".ci/run installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}",
                 f"--window-size={width},{height}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)


@pytest.mark.slow
def test_a_10_method_sweep_report_shows_every_panel_and_its_tables_sort_and_search_offline(sweep_report, tmp_path):
    from selenium.webdriver.common.by import By

    text = sweep_report.read_text()
    page = Page(text)
    assert {"fig-accuracy", "fig-methods", "fig-differences", "fig-early_stop"} <= set(page.figures)
    assert "fig-layer_density" not in page.figures and re.search(r"<h2[^>]*>2\. Pruning methods compared", text)
    assert "This report has:" in text and "Not a one-shot sweep" not in text
    figures = sweep_report.parent / "figures"
    assert "<svg" in (figures / "sweep-methods.svg").read_text()  # for papers, named by experiment and figure
    assert "one panel per pruning method" in text  # its panels, one per method: tests/report/test_report_layout.py
    with tempfile.TemporaryDirectory() as profile:
        driver = chromium(1300, profile)
        try:
            driver.set_network_conditions(offline=True, latency=0, download_throughput=0, upload_throughput=0)
            driver.get(sweep_report.as_uri())
            assert driver.execute_script("return document.readyState") == "complete"
            seen = driver.execute_script(SWEEP_SCRIPT)
            densities = driver.execute_script(VISIBLE_COLUMN, "table-methods", 0)
            search = driver.find_element(By.ID, "table-methods-search")
            search.send_keys(densities[4])  # 1.38: three digits, which no "mean ± std" cell of one decimal holds
            found = driver.execute_script(VISIBLE_COLUMN, "table-methods", 0)
            search.clear()  # and every row is back once it is empty
            driver.execute_script("document.getElementById('table-methods-search').dispatchEvent(new Event('input'))")
            every = driver.execute_script(VISIBLE_COLUMN, "table-methods", 0)
            header = driver.find_elements(By.CSS_SELECTOR, "#table-methods thead tr:last-child th")
            column = next(i for i, h in enumerate(header) if h.text.startswith("m04-reinit"))
            header[column].click()
            ascending = driver.execute_script(VISIBLE_COLUMN, "table-methods", column)
            header[column].click()
            descending = driver.execute_script(VISIBLE_COLUMN, "table-methods", column)
            log = driver.get_log("browser")
        finally:
            driver.quit()
    assert [e for e in log if e["level"] == "SEVERE"] == [] and seen["requests"] == []  # nothing fetched
    for f in seen["figures"]:
        assert f["complete"] and f["natural"] > 0 and f["right"] <= seen["page"], f["id"]  # none wider than the page
    assert {t["id"] for t in seen["tables"]} >= {"table-headline", "table-matches", "table-methods"}
    for t in seen["tables"]:
        assert any("weights remaining" in h for h in t["header"]), t  # every table has its density column
        assert t["wrapRight"] <= seen["page"], t["id"]  # fits the page; what does not, scrolls inside it
    methods_table = next(t for t in seen["tables"] if t["id"] == "table-methods")
    assert methods_table["header"][0] == "weights remaining (%)" and methods_table["rows"] == 6
    assert methods_table["scrolls"] and len(methods_table["header"]) == 31  # 10 methods x 3, and the density
    assert found == [densities[4]] and len(every) == 6  # the search keeps the rows that hold the text
    values = [float(v.split(" ± ")[0]) for v in ascending]
    assert values == sorted(values) and len(values) == 6
    assert [float(v.split(" ± ")[0]) for v in descending] == sorted(values, reverse=True)
