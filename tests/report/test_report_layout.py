"""The report with many methods or densities (#33): the layout rule, small multiples and the overview
on a synthetic 10-method sweep, legends outside the axes, tables labelled by density, a sweep's
headline in densities with its moving-average rule, and huge sweeps paginated (the page in a
browser: tests/e2e/test_report_page.py)."""

import importlib
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
from matplotlib.transforms import Bbox

from lth import report
from lth.report import panels
from lth.report.headline import headline, headline_text, match_table, rule_text, smoothed_differences
from lth.report.stats import wr

from conftest import paired_interval, synthetic_sweep

methods = importlib.import_module("lth.report.methods")  # the module (lth.report.methods is its function)
figures = importlib.import_module("lth.report.figures")
WEIGHTS = "weights remaining (%)"


@pytest.fixture(scope="module")
def sweep10(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sweep10")
    synthetic_sweep(folder, methods=10, densities=5, seeds=3)
    return pd.read_csv(folder / "summary.csv")


def sweep(tmp_path, **kw) -> pd.DataFrame:
    synthetic_sweep(tmp_path, **kw)
    return pd.read_csv(tmp_path / "summary.csv")


def test_the_layout_is_decided_from_the_counts():
    assert [len(p) for p in panels.grid(10).pages] == [10] and panels.grid(10).cols == 4  # 4 + 4 + 2
    assert panels.grid(5).cols == 3 and panels.grid(8).cols == 4 and panels.grid(2).cols == 2
    big = panels.grid(100)  # 12 panels a page (4 x 3), the rest on further pages
    assert [len(p) for p in big.pages] == [12] * 8 + [4] and sum(big.pages, []) == list(range(100))
    assert panels.split(list(range(12)), 10) == [list(range(6)), list(range(6, 12))]  # even, order kept
    assert panels.page_names("methods", 3) == ["methods", "methods-2", "methods-3"]
    assert all(panels.grid(n).size(len(p))[0] <= panels.PAGE_WIDTH for n in (1, 3, 10, 100)
               for p in panels.grid(n).pages)


def rendered(fig):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig).draw()
    return fig


def legends(fig):
    out = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    return out + list(fig.legends)


def assert_no_legend_over_an_axes(fig):
    """Every legend's box (in display pixels) is disjoint from every visible axes' box."""
    rendered(fig)
    r = fig.canvas.get_renderer()
    boxes = legends(fig)
    assert boxes, "a figure with lines and no legend"
    for leg in boxes:
        lb = leg.get_window_extent(r)
        for ax in fig.axes:
            if ax.get_visible():
                ab = ax.get_window_extent(r)
                assert not Bbox.intersection(lb, ab) or Bbox.intersection(lb, ab).width * \
                    Bbox.intersection(lb, ab).height < 1.0, (ax.get_title(), leg)
    assert fig.get_figwidth() <= panels.PAGE_WIDTH + 1e-9


def test_a_10_method_sweep_draws_every_method_in_its_panel_with_its_controls_on_shared_axes(sweep10):
    figs = list(methods.plot_methods(sweep10))
    panels = [ax for f in figs for ax in f.axes if ax.get_visible()]
    assert [ax.get_title() for ax in panels] == [f"m{i:02d}" for i in range(10)]
    for ax in panels:
        m = ax.get_title()
        labels = {line.get_label() for line in ax.get_lines()}
        assert {m, f"{m}-shuffle", f"{m}-reinit"} <= labels
        mine = next(line for line in ax.get_lines() if line.get_label() == m)
        want = sweep10[sweep10["variant"] == m].groupby("level")["test_accuracy"].mean().sort_index(ascending=False)
        assert np.allclose(mine.get_ydata(), 100 * want.to_numpy())  # the method's own numbers
    assert len({ax.get_xlim() for ax in panels}) == 1 and len({ax.get_ylim() for ax in panels}) == 1
    for fig in figs:
        assert_no_legend_over_an_axes(fig)


def test_the_overview_gives_each_method_a_distinct_colour_and_its_legend_outside(sweep10):
    figs = list(methods.plot_overview(sweep10))
    drawn_methods = []
    for fig in figs:
        for ax in fig.axes:
            lines = [line for line in ax.get_lines() if line.get_label().startswith("m")]
            colours = [tuple(np.round(line.get_color(), 4)) for line in lines]
            assert len(set(colours)) == len(colours)  # no two methods share a colour in one axes
            drawn_methods += [line.get_label() for line in lines]
        assert_no_legend_over_an_axes(fig)
    assert sorted(drawn_methods) == [f"m{i:02d}" for i in range(10)]  # controls are Figure M's


def imp_summary() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    rows = [{"experiment": "x", "seed": s, "level": lv, "variant": v, "weights_remaining": 0.8 ** lv,
             "test_accuracy": 0.9 - 0.01 * lv * (v != "ticket") + 0.005 * rng.standard_normal(),
             "early_stop_iteration": 100 + 10 * lv}
            for s in range(3) for lv in range(6)
            for v in (["dense"] if lv == 0 else ["ticket", "reinit", "random_prune"])]
    return pd.DataFrame(rows)


def test_no_figure_of_an_imp_report_has_a_legend_over_its_data():
    s = imp_summary()
    head = headline(s)
    transfer = s[s["level"] > 0].assign(target="digits")
    for fig in (figures.plot_accuracy(s), figures.plot_differences(s, head), figures.plot_early_stop(s),
                figures.plot_transfer(transfer, {"digits": 0.1})):
        assert_no_legend_over_an_axes(fig)


def test_every_table_is_labelled_by_weights_remaining_one_row_per_density(sweep10):
    table = methods.methods_table(sweep10)
    assert table.columns[0] == WEIGHTS
    densities = sweep10.loc[sweep10["level"] > 0].groupby("level")["weights_remaining"].mean()
    assert list(table[WEIGHTS]) == [wr(w) for w in densities.sort_values(ascending=False)]
    fam = methods.families(sweep10)
    assert list(table.columns[1:4]) == ["m00", "m00-shuffle", "m00-reinit"]  # each method beside its controls
    assert table.attrs["groups"] == [("", 1)] + [(m, 3) for m in fam]
    first = sweep10[(sweep10["variant"] == "m03-reinit") & (sweep10["level"] == densities.index.max())]
    acc = 100 * first["test_accuracy"]
    assert table.loc[0, "m03-reinit"] == f"{acc.mean():.1f} ± {acc.std():.1f}"
    head = headline(sweep10, kind="oneshot")
    for t in (report.headline_table(sweep10, head), transfer_table_of(imp_summary())):
        assert WEIGHTS in t.columns and t[WEIGHTS].ne("").all()
    assert "level" not in report.headline_table(sweep10, head).columns  # a sweep's level is its density


def transfer_table_of(s):
    return report.transfer_table(s[s["level"] > 0].assign(target="digits"))


class Table(HTMLParser):
    def __init__(self, text):
        super().__init__()
        self.rows, self.tags, self.attrs = [], [], {}
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs.setdefault(tag, []).append(dict(attrs))
        if tag == "tr":
            self.rows.append([])

    def handle_data(self, data):
        if self.tags and self.tags[-1] in ("td", "th") and self.rows:
            self.rows[-1].append(data)

    def handle_endtag(self, tag):
        while self.tags and self.tags.pop() != tag:
            pass


def test_the_html_table_is_scrollable_grouped_searchable_and_carries_its_own_script(sweep10):
    text = report.notebook.table_html(methods.methods_table(sweep10), "methods")
    page = Table(text)
    assert any(a.get("class") == "lth-table-wrap" for a in page.attrs["div"])  # its own scroll container
    assert page.attrs["input"][0]["id"] == "table-methods-search"
    groups = [a for a in page.attrs["th"] if a.get("class") == "lth-group"]
    assert [a["colspan"] for a in groups] == ["3"] * 10
    assert page.rows[1][0] == WEIGHTS and len(page.rows) == 2 + 5
    assert "<script src" not in text and "http" not in text  # nothing to fetch


def test_a_sweep_headline_speaks_in_densities_and_its_moving_average_matches_an_independent_one(tmp_path):
    s = sweep(tmp_path, methods=2, densities=98, seeds=3)
    head = headline(s, kind="oneshot")
    text = headline_text(head)
    assert head.window == 5 and "5-density moving average" in text and "level" not in text
    assert "a centred moving average of 5 densities" in rule_text(head)
    # the reference: per seed, the mean of m00 - dense over the 5 neighbouring densities, then a t-interval
    wide = s[s["variant"] == "m00"].pivot(index="seed", columns="level", values="test_accuracy")
    dense = s[s["variant"] == "dense"].set_index("seed")["test_accuracy"]
    levels = sorted(wide.columns, reverse=True)
    diff = wide[levels].sub(dense, axis=0)
    got = smoothed_differences(s, "m00", "oneshot").set_index("level")
    for i in (0, 1, 40, 97):
        per_seed = diff[levels[max(0, i - 2): i + 3]].mean(axis=1)
        mean, lo, hi = paired_interval(per_seed.to_list(), [0.0] * len(per_seed))
        assert np.allclose(got.loc[levels[i], ["mean", "lo", "hi"]].astype(float), [mean, lo, hi])
    # the walk: every density down to the matched one passes by its average, the next fails
    passed = [st for st in head.steps if st.passed]
    assert all(got.loc[st.level, "lo"] > -0.01 for st in passed) and got.loc[head.stop.level, "lo"] <= -0.01
    assert f"down to {wr(head.matched.weights_remaining)} % weights remaining" in text
    assert set(match_table(s, head)["method"]) == {"m00", "m01"}


def test_a_sweep_of_a_few_densities_is_not_averaged(sweep10):
    head = headline(sweep10, kind="oneshot")
    assert head.window == 1 and "moving average" not in headline_text(head) + rule_text(head)


@pytest.mark.parametrize("n_methods, densities", [(40, 4), (2, 250)])
def test_hundreds_of_variants_or_densities_are_paginated_and_no_wider_than_the_page(tmp_path, n_methods, densities):
    s = sweep(tmp_path, methods=n_methods, densities=densities, seeds=2)
    figs = list(methods.plot_methods(s))
    assert len(figs) == len(panels.grid(n_methods).pages)
    assert sum(ax.get_visible() for f in figs for ax in f.axes) == n_methods
    over = list(methods.plot_overview(s))
    assert sum(len(f.axes) for f in over) == len(panels.split(list(range(n_methods)), len(methods.PALETTE)))
    for fig in figs[:1] + over[:1]:
        assert_no_legend_over_an_axes(fig)
    assert all(f.get_figwidth() <= panels.PAGE_WIDTH for f in figs + over)
    assert len(methods.methods_table(s)) == s.loc[s["level"] > 0, "level"].nunique()
