"""Claims as checks (lth.report.claims): each kind of claim on a synthetic summary whose answer is known
(held, not shown, contradicted), its interval against scipy's, and the seeds that would settle it against
a search written here; and the config's claims checked against the experiment (lth.plan.reference)."""

import math

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats

from lth.core.errors import LTHError
from lth.plan.config import load as load_config
from lth.report import claims
from lth.report.tables import Results

from conftest import paired_interval, tiny

SEEDS = range(6)


def _summary(shift: dict[tuple[str, int], float], noise: dict[tuple[str, int], float]) -> pd.DataFrame:
    """Dense at 0.60 test accuracy; each (variant, level) at 0.60 + shift, plus seeded noise of its scale."""
    rng = np.random.default_rng(0)
    rows = [{"seed": s, "level": 0, "variant": "dense", "weights_remaining": 1.0, "test_accuracy": 0.60,
             "early_stop_iteration": 400} for s in SEEDS]
    for (variant, level), d in shift.items():
        wr = {1: 0.5, 2: 0.2, 3: 0.1}[level]
        for s in SEEDS:
            rows.append({"seed": s, "level": level, "variant": variant, "weights_remaining": wr,
                         "test_accuracy": 0.60 + d + noise.get((variant, level), 0.002) * rng.standard_normal(),
                         "early_stop_iteration": 400 - 100 * level + rng.integers(-5, 5)})
    return pd.DataFrame(rows).assign(experiment="x")


SUMMARY = _summary({("ticket", 1): 0.01, ("ticket", 2): 0.03, ("ticket", 3): 0.05,
                    ("random", 1): 0.0, ("random", 2): -0.02, ("random", 3): -0.08},
                   {("random", 1): 0.03})


def _results(claim_list, summary=SUMMARY, root="/nowhere"):
    from pathlib import Path

    return Results(root=Path(root), experiment="x", summary=summary, transfer=summary.iloc[:0],
                   density=pd.DataFrame(), config={}, reference={"citation": "A 2020", "claims": claim_list})


def _one(claim, **kw):
    return claims.evaluate(_results([{"claim": "c", "source": "Fig. 1", **claim}], **kw)).iloc[0]


def test_a_held_claim_has_scipys_paired_interval_clear_of_the_margin():
    row = _one({"variant": "ticket", "versus": "dense", "at": 0.1, "margin": 0.02})
    ticket = SUMMARY[(SUMMARY.variant == "ticket") & (SUMMARY.level == 3)].sort_values("seed").test_accuracy
    dense = SUMMARY[SUMMARY.level == 0].sort_values("seed").test_accuracy
    mean, lo, hi = paired_interval(list(ticket), list(dense))
    assert (row.ours, row.lo, row.hi) == pytest.approx((mean, lo, hi))
    assert row.verdict == "held" and row.seeds == 6 and row["where"] == "10 % of the weights"


def test_a_claim_the_results_refute_is_contradicted_and_one_they_cannot_decide_is_not_shown():
    assert _one({"variant": "random", "versus": "dense", "at": 0.1})["verdict"] == "contradicted"
    row = _one({"variant": "random", "versus": "dense", "at": 0.5})
    assert row.verdict == "not shown"
    # the seeds that would settle it: the fewest n with t(n-1) * sd / sqrt(n) < |mean|, searched here
    d = SUMMARY[(SUMMARY.variant == "random") & (SUMMARY.level == 1)].sort_values("seed").test_accuracy.to_numpy() - 0.6
    n = next(n for n in range(7, 100_000) if stats.t.ppf(0.975, n - 1) * d.std(ddof=1) / math.sqrt(n) < abs(d.mean()))
    assert row.settle == str(n)


def test_less_is_the_other_side_and_a_number_is_a_fixed_bar():
    # tickets stop early: 100 iterations per level sooner than dense
    assert _one({"variant": "ticket", "versus": "dense", "at": 0.1, "metric": "early_stop_iteration",
                 "direction": "less", "margin": -250})["verdict"] == "held"
    assert _one({"variant": "ticket", "versus": "dense", "at": 0.1, "metric": "early_stop_iteration",
                 "direction": "less", "margin": -350})["verdict"] == "contradicted"
    assert _one({"variant": "ticket", "versus": 0.64, "at": 0.1})["verdict"] == "held"
    assert _one({"variant": "ticket", "versus": 0.66, "at": 0.1})["verdict"] == "contradicted"


def test_a_range_holds_only_where_every_level_holds():
    assert _one({"variant": "ticket", "versus": "dense", "between": [0.1, 0.5]})["verdict"] == "held"
    row = _one({"variant": "ticket", "versus": "random", "between": [0.1, 0.5], "margin": 0.02})
    assert row.verdict == "not shown" and row["where"] == "50 % of the weights"  # 0.01 - 0.0 at 50 %: noisy
    row = _one({"variant": "ticket", "versus": "dense", "between": [0.1, 0.5], "margin": 0.02})
    assert row.verdict == "contradicted" and row["where"] == "50 % of the weights"


def test_one_seed_or_no_runs_are_said_so():
    one = SUMMARY[SUMMARY.seed == 0]
    row = _one({"variant": "ticket", "versus": "dense", "at": 0.1}, summary=one)
    assert row.verdict == "not shown" and "one seed" in row.settle
    assert _one({"variant": "ticket", "versus": "dense", "at": 0.01})["verdict"] == "not run"  # no level near 1 %


def test_an_analysis_claim_reads_its_table_paired_by_seed(tmp_path):
    pd.DataFrame([{"seed": s, "variant": v, "level": 1, "iterations_to_95": t + s}
                  for s in SEEDS for v, t in (("grok", 1000), ("dense", 3000), ("random", 990))]
                 ).to_csv(tmp_path / "analysis-grokking.csv", index=False)
    base = {"analysis": "grokking", "metric": "iterations_to_95", "where": {"variant": "grok"}, "direction": "less"}
    assert _one({**base, "versus_where": {"variant": "dense"}}, root=tmp_path)["verdict"] == "held"
    assert _one({**base, "versus_where": {"variant": "random"}}, root=tmp_path)["verdict"] == "contradicted"
    assert _one({**base, "versus": 2000}, root=tmp_path)["verdict"] == "held"
    with pytest.raises(LTHError, match="no column 'iterations_to_99'"):
        _one({**base, "metric": "iterations_to_99", "versus": 1}, root=tmp_path)


def test_the_printed_table_and_line_count_the_verdicts():
    r = _results([{"claim": "a", "source": "s1", "variant": "ticket", "versus": "dense", "at": 0.1, "published": 0.094},
                  {"claim": "b", "source": "s2", "variant": "random", "versus": "dense", "at": 0.1}])
    table = claims.claims_table(r)
    assert list(table["verdict"]) == ["held", "contradicted"]
    assert table["ours (95 % interval)"][0].startswith("+5") and "points [" in table["ours (95 % interval)"][0]
    assert claims.claims_text(r).startswith("2 claims of A 2020: 1 held, 1 contradicted.")


CLAIM = {"claim": "ticket beats dense", "source": "Fig. 3", "variant": "ticket", "versus": "dense", "at": 0.5}


def _config(tmp_path, reference, **experiment):
    return {"results_dir": "results", "experiments": {"e": tiny({"reference": reference, **experiment})}}


@pytest.mark.parametrize("reference, message", [
    ({"claims": [{**CLAIM, "variant": "tickt"}]}, "e.reference.claims[0].variant: 'tickt' is not a variant of "
                                                  "this experiment; it trains: dense, random_prune, reinit, ticket"),
    ({"claims": [{**CLAIM, "versus": "random"}]}, "e.reference.claims[0].versus: 'random' is not a variant"),
    ({"claims": [{**CLAIM, "metric": "accuracy"}]}, "e.reference.claims[0].metric: 'accuracy' is not a column of "
                                                    "summary.csv"),
    ({"claims": [{**CLAIM, "at": 0.01}]}, "e.reference.claims[0].at: 0.01 weights remaining is no level of this "
                                          "experiment (its levels keep 0.5-0.75, 0.25-0.562)"),
    ({"claims": [{**CLAIM, "analysis": "grokking", "versus": 3}]}, "e.reference.claims[0].analysis: 'grokking' is "
                                                                   "not one of this experiment's analyses"),
    ({"claims": [{k: v for k, v in CLAIM.items() if k != "versus"}]}, "e.reference.claims[0]: no versus"),
    ({"protocol": [{"choice": "batch order", "paper": "fixed", "ours": "fixed"}]},
     "e: reference.protocol.0: 'source' is a required property"),
])
def test_a_claim_the_experiment_cannot_answer_is_one_line_naming_it(tmp_path, reference, message):
    with pytest.raises(LTHError) as e:
        load_config(_config(tmp_path, reference), "workflow/schemas/config.schema.yaml", "c.yaml", tmp_path)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_an_unknown_data_order_is_named_when_the_config_is_read(tmp_path):
    config = _config(tmp_path, {}, training={**tiny()["training"], "data_order": "fixed"})
    with pytest.raises(LTHError, match=r"e: training.data_order: 'fixed' is not one of \['shuffled', 'sequential'\]"):
        load_config(config, "workflow/schemas/config.schema.yaml", "c.yaml", tmp_path)


def test_every_presets_claims_are_checked_when_it_loads():
    from pathlib import Path

    for path in sorted(Path("config/presets").glob("*.yaml")):
        config = yaml.safe_load(path.read_text())
        config["download"] = True  # what a preset that downloads is checked with
        load_config(config, "workflow/schemas/config.schema.yaml", str(path), ".")
