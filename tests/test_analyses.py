"""Analyses that train runs of their own, as stages of the plan: instability (lth.analyses.instability)."""

import csv

import pytest

from conftest import tiny
from lth import analyses
from lth.errors import LTHError
from lth.layout import RunKey
from lth.plan import plan_of
from lth.results import read_record

INSTABILITY = {"variants": ["ticket"], "pruning": {"levels": 1}, "analyses": ["instability"],
               "training": {"iterations": 40, "eval_every": 20},
               "instability": {"rewind_points": [0, 10], "levels": [0, 1], "points": 5}}


def test_instability_trains_two_copies_per_point_and_level_and_tables_their_path(context):
    ctx = context(INSTABILITY)
    plan = ctx.plan
    probes = plan.probes("instability")
    assert [(j.stage, j.level, j.k) for j in probes] == [("rewind", 0, 10), ("probe", 0, 0), ("probe", 0, 10),
                                                        ("probe", 1, 0), ("probe", 1, 10)]
    ticket_job = plan.with_runs(type(probes[0])("level", 0, 1, "ticket"))
    assert plan.done(ticket_job) in plan.inputs(probes[3])["runs"]  # a ticket's copies wait for its level
    for job in plan.jobs() + probes:
        ctx.run(job)
    rows = list(csv.DictReader(analyses.run(plan, "instability").open()))
    assert len(rows) == 2 * 2 * 5
    for row in rows:
        assert float(row["barrier"]) >= 0 and row["stable"] in ("True", "False")
    for job in probes[1:]:
        a, b = (read_record(plan.layout.metrics(RunKey(0, job.level, f"k{job.k}-{c}", analysis="instability")))
                for c in "ab")
        path = [r for r in rows if (int(r["level"]), int(r["k"])) == (job.level, job.k)]
        assert float(path[0]["test_accuracy"]) == a["summary"]["test_accuracy"]  # the ends are the copies
        assert float(path[-1]["test_accuracy"]) == b["summary"]["test_accuracy"]
        assert a["curves"][0]["iteration"] == job.k  # each copy trains from theta_k
        if job.level:
            assert a["weights_remaining"] == pytest.approx(0.5, abs=0.1)


@pytest.mark.parametrize("change, message", [
    ({"rewind_points": [0, 40]}, "instability.rewind_points: [40] beyond the training budget"),
    ({"threshold": 2}, "instability.threshold: 2 is not in (0, 1)"),
    ({"points": 2}, "instability.points: an interpolation needs at least 3 points"),
    ({"levels": [3]}, "instability.levels: [3] beyond pruning.levels = 1"),
])
def test_bad_instability_settings_are_one_line(change, message):
    settings = tiny({**INSTABILITY, "instability": {**INSTABILITY["instability"], **change}})
    with pytest.raises(LTHError, match=message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")
                       .replace(")", r"\)")):
        plan_of("x", settings, "/tmp/nowhere")
