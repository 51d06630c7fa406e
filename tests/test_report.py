"""Stage 7, the report: its numbers, rule and figures on small tables, then the real notebook on a
tiny finished workflow run (HTML with embedded figures and the headline table, headless Chromium
with a full-page screenshot, `snakemake --report`, a run by hand with transfer targets, pages that
say what is missing from partial results, clear failures on bad input)."""

import base64
import csv
import json
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

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats

import test_workflow

from lth import report
from lth.errors import LTHError

ROOT = Path(__file__).resolve().parents[1]
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
    loose = report.normalise_published({"published": [{"weights_remaining": 50, "ticket": {"mean": 70.0, "std": 1},
                                                      "note": "x", "exact": True}]})  # percentages, {mean}
    assert loose.values.tolist() == [["ticket", 0.5, 0.7]]
    for preset in (ROOT / "config" / "presets").glob("*.yaml"):  # every preset's reference is readable
        for exp in yaml.safe_load(preset.read_text())["experiments"].values():
            report.normalise_published(exp.get("reference"))


def diamonds(fig) -> list[tuple[float, float]]:
    """The (x, y) of every published-number marker drawn on a figure's first axes."""
    return [tuple(xy) for c in fig.axes[0].collections if c.get_label().endswith("(paper)") for xy in c.get_offsets()]


def test_the_published_numbers_are_drawn_as_diamonds_whenever_the_reference_has_them():
    summary = summary_rows({(0, "dense"): [0.80, 0.80], (1, "ticket"): [0.70, 0.72]})
    for preset in (ROOT / "config" / "presets").glob("*.yaml"):
        for exp in yaml.safe_load(preset.read_text())["experiments"].values():
            published = report.normalise_published(exp.get("reference"))
            drawn = diamonds(report.plot_accuracy(summary, published))
            assert sorted(drawn) == sorted(zip(100 * published["weights_remaining"], 100 * published["test_accuracy"]))
            caption = report.accuracy_caption(summary, published)
            assert ("diamonds" in caption) == (not published.empty), (preset.name, caption)
    assert diamonds(report.plot_accuracy(summary, report.normalise_published({}))) == []


def paired_interval(ticket: list[float], other: list[float]) -> tuple[float, float, float]:
    """Mean and 95 % t-interval of the per-seed differences, computed here with scipy directly."""
    d = np.subtract(ticket, other)
    if len(d) < 2:
        return d.mean(), np.nan, np.nan
    return (d.mean(), *stats.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=stats.sem(d)))


def test_an_interval_is_the_t_interval_over_seeds_and_one_seed_has_none():
    e = report.estimate([0.01, 0.02, 0.03])
    assert (e.n, e.mean) == (3, pytest.approx(0.02))
    assert (e.lo, e.hi) == pytest.approx(stats.t.interval(0.95, 2, loc=0.02, scale=0.01 / np.sqrt(3)))
    one = report.estimate([0.5])
    assert one.n == 1 and one.mean == 0.5 and not one.has_interval and np.isnan(one.lo)
    assert report.estimate([]).n == 0


DENSE = [0.800, 0.810, 0.805]  # three seeds


def test_the_headline_is_where_the_interval_of_ticket_minus_dense_stops_clearing_minus_one_point():
    summary = summary_rows({(0, "dense"): DENSE,
                            (1, "ticket"): [0.802, 0.811, 0.806], (1, "random_prune"): [0.79, 0.80, 0.80],
                            (2, "ticket"): [0.799, 0.808, 0.805], (2, "random_prune"): [0.76, 0.79, 0.77],
                            (2, "reinit"): [0.78, 0.78, 0.79],
                            (3, "ticket"): [0.790, 0.805, 0.803], (3, "random_prune"): [0.70, 0.71, 0.70],
                            (4, "ticket"): [0.801, 0.811, 0.806]}, seeds=(0, 1, 2))  # back up: not "down to"
    head = report.headline(summary)
    assert (head.variant, head.matched.level, head.stop.level, head.basis) == ("ticket", 2, 3, "interval")
    assert head.matched.weights_remaining == 0.25 and head.dense_mean == pytest.approx(0.805)
    for level in (1, 2, 3):  # the rule, by scipy: lower bound above -1 point at 1 and 2, not at 3
        ticket = summary[(summary.level == level) & (summary.variant == "ticket")]["test_accuracy"].tolist()
        mean, lo, hi = paired_interval(ticket, DENSE)
        step = head.steps[level - 1]
        assert (step.vs_dense.mean, step.vs_dense.lo, step.vs_dense.hi) == pytest.approx((mean, lo, hi))
        assert step.passed == (lo > -0.01) == (level < 3)
    # the mean at level 3 is within a point (-0.57): the old rule would have gone on; the interval does not
    assert -0.01 < head.steps[2].vs_dense.mean < 0 and head.steps[2].vs_dense.lo < -0.01
    # the stronger control at level 2 is reinit (78.3 against 77.3), paired by seed
    assert head.control == "reinit" and head.controls_there == 2
    assert (head.vs_control.mean, head.vs_control.lo, head.vs_control.hi) == pytest.approx(
        paired_interval([0.799, 0.808, 0.805], [0.78, 0.78, 0.79]))
    text = report.headline_text(head)
    assert "**ticket matches dense down to 25 % weights remaining** (level 2; n = 3 seeds)" in text
    assert "ticket − reinit (the stronger control there) = +2.07 points (95 % CI [" in text
    assert "Below it, at level 3 (12.5 % weights remaining) the 95 % CI's lower bound" in text
    rule = report.rule_text(head)
    assert "95 % confidence interval" in rule and "t-distribution" in rule and "n = 3" in rule
    table = report.headline_table(summary, head)
    assert table["variant"].tolist() == ["dense", "ticket", "reinit", "random_prune"]
    assert table["test accuracy (%)"].tolist() == ["80.50", "80.40", "78.33", "77.33"]
    assert table["ticket minus it (points)"].tolist() == ["-0.10", "+0.00", "+2.07", "+3.07"]
    assert table["ticket minus it: 95 % CI"].iloc[0] == "[{:+.2f}, {:+.2f}]".format(
        *(100 * x for x in paired_interval([0.799, 0.808, 0.805], DENSE)[1:]))


def test_a_mean_within_a_point_with_a_wide_interval_does_not_match():
    summary = summary_rows({(0, "dense"): [0.80, 0.82], (1, "ticket"): [0.805, 0.80],  # mean -0.75 points
                            (1, "random_prune"): [0.70, 0.72]})
    head = report.headline(summary)
    assert head.matched is None and head.at.level == 1 and head.control == "random_prune"
    text = report.headline_text(head)
    assert text.startswith("**ticket is not shown to match dense at any pruned level** (n = 2 seeds): at level 1")
    assert "whose lower bound is below −1 point" in text and "the only control there" in text


def test_with_one_seed_there_is_no_interval_and_the_page_says_it_falls_back_to_the_point_estimate():
    summary = summary_rows({(0, "dense"): [0.80], (1, "ticket"): [0.795], (1, "reinit"): [0.70],
                            (2, "ticket"): [0.78], (2, "reinit"): [0.60]}, seeds=(0,))
    head = report.headline(summary)
    assert (head.basis, head.matched.level, head.n_text) == ("point", 1, "n = 1 seed")
    assert "-0.50 points (one seed: no interval)" in report.headline_text(head)
    assert "no confidence interval can be computed" in report.rule_text(head)
    assert "falls back to the point estimate" in report.rule_text(head)
    assert report.headline_table(summary, head)["minus dense: 95 % CI"].tolist() == ["", "none (1 seed)",
                                                                                    "none (1 seed)"]


def test_a_level_without_runs_stops_the_claim_and_a_missing_control_is_said():
    summary = summary_rows({(0, "dense"): DENSE, (1, "ticket"): [0.802, 0.811, 0.806],
                            (3, "ticket"): [0.802, 0.811, 0.806]}, seeds=(0, 1, 2))
    head = report.headline(summary)
    assert head.matched.level == 1 and head.stop.level == 2 and head.control is None
    text = report.headline_text(head)
    assert "Below it, level 2 has no ticket runs, so the claim stops there." in text
    assert "no control (random_prune or reinit) ran at level 1" in text
    first_missing = report.headline(summary[summary.level != 1])
    assert first_missing.matched is None and first_missing.at.level == 3
    assert "level 1 has no ticket runs, and the rule needs every denser level" in report.headline_text(first_missing)
    assert report.headline(summary_rows({(0, "dense"): [0.8, 0.8]})) is None


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


def test_each_transfer_target_has_its_own_y_axis_and_its_chance_line():
    transfer = pd.concat([summary_rows({(0, "dense"): [0.9, 0.9], (1, "ticket_transfer"): [0.88, 0.9]}).assign(
        target="digits"), summary_rows({(0, "dense"): [0.3, 0.32], (1, "ticket_transfer"): [0.25, 0.27]}).assign(
        target="hundred")])
    config = {"transfer": {"targets": {"hundred": {"dataset": {"name": "cifar100"}}}}}  # digits: named as its dataset
    chance = report.chance_levels(config, ["digits", "hundred", "unknown"])
    assert chance == {"digits": 0.1, "hundred": 0.01}
    # classes that depend on the dataset's options; a regression has no chance accuracy
    config = {"transfer": {"targets": {"topic": {"dataset": {"name": "grammar", "options": {"task": "topic"}}},
                                       "mod": {"dataset": {"name": "modular", "options": {"p": 7}}},
                                       "reg": {"dataset": {"name": "sparse_linear"}}}}}
    assert report.chance_levels(config, ["topic", "mod", "reg"]) == {"topic": 0.25, "mod": 1 / 7}
    fig = report.plot_transfer(transfer, chance)
    for ax, level in zip(fig.axes, (10.0, 1.0)):
        lines = [line for line in ax.get_lines() if line.get_label().startswith("chance")]
        assert len(lines) == 1 and lines[0].get_ydata()[0] == level
        assert ax.get_ylim()[0] <= level  # the chance line is in view
    assert fig.axes[0].get_ylim() != fig.axes[1].get_ylim()  # not shared
    assert not fig.axes[0].get_shared_y_axes().joined(fig.axes[0], fig.axes[1])
    assert "dotted: chance (1 / classes) on digits, hundred" in report.transfer_caption(transfer, chance)


def test_the_difference_panels_show_ticket_minus_dense_and_minus_each_control_with_intervals():
    summary = summary_rows({(0, "dense"): [0.80, 0.82], (1, "ticket"): [0.81, 0.82], (1, "reinit"): [0.70, 0.72],
                            (1, "random_prune"): [0.75, 0.76], (2, "ticket"): [0.80, 0.81],
                            (2, "reinit"): [0.60, 0.65], (2, "random_prune"): [0.70, 0.70]})
    fig = report.plot_differences(summary, report.headline(summary))
    dense_ax, control_ax = fig.axes
    labels = [line.get_label() for line in control_ax.get_lines() if not line.get_label().startswith("_")]
    assert labels == ["ticket − random_prune", "ticket − reinit"]
    for ax in fig.axes:
        assert any(list(line.get_ydata()) == [0, 0] for line in ax.get_lines())  # the zero line
        assert any(c.get_segments() for c in ax.collections)  # error bars: the intervals
    assert any(list(line.get_ydata()) == [-1, -1] for line in dense_ax.get_lines())  # the headline's margin
    reinit = next(line for line in control_ax.get_lines() if line.get_label() == "ticket − reinit")
    assert list(reinit.get_ydata()) == pytest.approx([100 * 0.105, 100 * 0.18])
    d = report.differences(summary, "ticket", "reinit")
    assert (d["lo"].iloc[0], d["hi"].iloc[0]) == pytest.approx(paired_interval([0.81, 0.82], [0.70, 0.72])[1:])
    no_reinit = summary[summary.variant != "reinit"]
    assert "Not in the results, so not drawn: reinit." in report.differences_caption(no_reinit,
                                                                                     report.headline(no_reinit))
    one = summary[summary.seed == 0]
    assert not any(c.get_segments() for ax in report.plot_differences(one).axes for c in ax.collections)
    assert "with one seed no interval can be computed" in report.differences_caption(one, report.headline(one))


def test_layers_pruned_alike_stay_visible_in_the_layer_density_figure():
    density = pd.DataFrame([{"seed": 0, "level": level, "variant": "dense" if level == 0 else "ticket",
                             "layer": layer, "density": rate ** level}
                            for level in range(3) for layer, rate in (("fc1", 0.5), ("fc2", 0.5), ("out", 0.8))])
    summary = summary_rows({(0, "dense"): [0.8], (1, "ticket"): [0.8], (2, "ticket"): [0.8]}, seeds=(0,))
    ax = report.plot_layer_density(density, summary).axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    fc1, fc2 = lines["fc1"], lines["fc2 (same as fc1)"]  # the legend says which coincide
    assert list(fc1.get_ydata()) == list(fc2.get_ydata())
    assert all(a != b for a, b in zip(fc1.get_xdata(), fc2.get_xdata()))  # side by side, not on top
    assert fc1.get_marker() != fc2.get_marker() and fc1.get_linewidth() > fc2.get_linewidth()


def test_what_is_missing_is_said_one_line_each(tmp_path):
    full = summary_rows({(0, "dense"): [0.8, 0.8], (1, "ticket"): [0.8, 0.8], (1, "reinit"): [0.7, 0.7],
                         (2, "ticket"): [0.8, 0.8], (2, "reinit"): [0.7, 0.7]})
    config = json.dumps({"seeds": [0, 1], "variants": ["ticket", "reinit", "random_prune"],
                         "pruning": {"levels": 3}, "transfer": {"targets": {"digits": {}}}})
    results = report.load(write_results(tmp_path / "x", full[~((full.seed == 1) & (full.level == 2))]),
                          config_json=config)
    lines = report.missing(results)
    assert lines == [
        "random_prune: no runs at all (the config asks for it), so it is left out of every table and figure.",
        "Level(s) 3: no runs at all.",
        "ticket: seed(s) 1 missing at level(s) 2.",
        "reinit: seed(s) 1 missing at level(s) 2.",
        "Transfer target digits: no runs.",
        "8 run(s) have no readable record (metrics.json), so their curves and provenance are left out; the "
        f"first, seed 0, level 0, dense: {tmp_path / 'x' / 'settings.json'}: not found: the workflow writes it "
        "(rule settings) before any job, and `lth train` by hand"]  # this folder has no run records at all
    one = report.load(write_results(tmp_path / "y", full[full.seed == 0]), config_json=json.dumps({"seeds": [0, 1]}))
    assert report.missing(one)[:2] == [
        "Only one seed (0): no spread over seeds, so no confidence interval can be computed; the figures show "
        "single runs and the headline falls back to the point estimate.", "Seed(s) 1: no runs at all."]
    complete = report.load(write_results(tmp_path / "z", full), config_json=json.dumps({"seeds": [0, 1]}))
    assert [line for line in report.missing(complete) if "readable record" not in line] == []


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
        assert "<svg" in (reports / "tiny" / f"{name}.svg").read_text()
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
    assert "A test paper" in text and "tickets win" in text and "No transfer targets" in text
    assert re.search(r"Dataset sha256: <code>[0-9a-f]{64}</code>", text)
    assert f"Report kernel: Python {platform.python_version()} in <code>{sys.prefix}</code>" in text  # ours
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
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.skip("needs Debian's chromium and chromium-driver (`apt-get install chromium chromium-driver`; "
                    ".ci/run installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    screenshot = tmp_path / "tiny-report.png"
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
    assert "dotted: chance (1 / classes) on digits" in executed  # the digits dataset: ten classes
    assert 'id=\\"table-published\\"' in executed  # the preset's numbers, found by experiment name
    assert {p.name for p in (tmp_path / "figs").iterdir()} == {f"{f}.{e}" for f in FIGURES + ["transfer"]
                                                               for e in ("png", "svg")}


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
        from lth.layout import RunKey
        from lth.plan import Plan

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


def test_a_comparison_draws_one_line_per_experiment_from_their_summaries(tmp_path):
    from lth.report.compare import main, table

    a = summary_rows({(0, "dense"): [0.80, 0.82], (1, "ticket"): [0.70, 0.72], (2, "ticket"): [0.60, 0.62]})
    b = summary_rows({(0, "dense"): [0.50, 0.52], (1, "ticket"): [0.40, 0.42]})
    t = table({"a": a, "b": b}, "ticket")
    assert t.groupby("experiment").size().to_dict() == {"a": 3, "b": 2}
    assert t[(t.experiment == "a") & (t.level == 1)]["test_accuracy"].iloc[0] == pytest.approx(0.71)
    for name, s in (("a", a), ("b", b)):
        (tmp_path / name).mkdir()
        s.to_csv(tmp_path / name / "summary.csv", index=False)
    assert main([f"--summary={tmp_path / 'a' / 'summary.csv'}", f"--summary={tmp_path / 'b' / 'summary.csv'}",
                 f"--out={tmp_path / 'out' / 'compare-x'}"]) == 0
    assert (tmp_path / "out" / "compare-x.png").stat().st_size > 1000
    assert len(pd.read_csv(tmp_path / "out" / "compare-x.csv")) == 5
