"""Stage 7, the report: its numbers, rule and figures on small tables (the real notebook on a finished
workflow run: tests/e2e/test_report_page.py)."""

import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats

from lth import report
from lth.core.errors import LTHError

from conftest import paired_interval

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "lth_report.ipynb"
FIGURES = ["accuracy", "differences", "early_stop", "curves", "layer_density"]
SCREENSHOTS = Path("/tmp/report-screenshots")  # copies of the screenshots, to look at by eye
PUBLISHED = [{"weights_remaining": 1.0, "ticket": 0.60, "random_prune": 0.55},
             {"weights_remaining": 0.5, "ticket": 0.62, "random_prune": 0.50}]
def env():
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}



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
