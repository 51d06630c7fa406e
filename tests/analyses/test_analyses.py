"""Analyses that train runs of their own, as stages of the plan: instability (lth.analyses.instability)."""

import csv
from pathlib import Path

import pytest

from lth import analyses
from lth.core.errors import LTHError
from lth.plan import plan_of
from lth.plan.layout import RunKey
from lth.store.results import read_record

from conftest import tiny

ROOT = Path(__file__).resolve().parents[2]
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


EARLYBIRD = {"variants": ["ticket"], "pruning": {"levels": 2}, "analyses": ["earlybird"],
             "training": {"iterations": 200, "eval_every": 50},
             "earlybird": {"level": 2, "every": 10, "window": 3, "threshold": 0.1}}


def test_earlybird_draws_at_the_ticket_density_and_trains_it_beside_the_imp_ticket(context):
    from lth.analyses.earlybird import search_file
    from lth.core.files import read_json
    from lth.pruning import masks
    from lth.store import artifacts

    ctx = context(EARLYBIRD)
    plan = ctx.plan
    (job,) = plan.probes("earlybird")
    for j in plan.jobs() + [job]:
        ctx.run(j)
    found = read_json(search_file(plan, job).with_suffix(".json"))
    ticket = artifacts.load_tensors(plan.layout.mask(RunKey(0, 2, "ticket")))
    eb = artifacts.load_tensors(plan.layout.mask(RunKey(0, 2, "eb-init", analysis="earlybird")))
    assert sum(masks.counts(eb).values()) == sum(masks.counts(ticket).values())  # the IMP ticket's density
    rows = list(csv.DictReader(analyses.run(plan, "earlybird").open()))
    assert [r["run"] for r in rows] == ["dense", "imp ticket", "eb-init", "eb-found"]
    assert int(rows[1]["iterations_to_find"]) == 200 + 2 * 200
    assert int(rows[2]["iterations_to_find"]) == found["iteration"] <= 200
    found_run = read_record(plan.layout.metrics(RunKey(0, 2, "eb-found", analysis="earlybird")))
    assert found_run["curves"][0]["iteration"] == found["iteration"]  # it continues from where it was drawn
    # the rule, read back from the distances: the first draw with a full window (3 masks before it) all
    # within 0.1 fires; without one, the last draw stands in
    first = next((t for t, d in found["distances"][2:] if d < 0.1), None)
    assert found["fired"] == (first is not None)
    assert found["iteration"] == (first if first is not None else found["distances"][-1][0])


def test_adversarial_training_and_slimming_change_training_deterministically(context):
    import torch

    from lth.store import artifacts

    finals = []
    for training in ({}, {"adversarial": {"method": "fgsm", "epsilon": 0.1}},
                     {"adversarial": {"method": "pgd", "epsilon": 0.1, "steps": 3}},
                     {"adversarial": {"method": "pgd", "epsilon": 0.1, "steps": 3}}):
        ctx = context({"variants": ["ticket"], "pruning": {"levels": 0},
                       "training": {"iterations": 20, "eval_every": 10, **training}}, name=f"e{len(finals)}")
        ctx.run(ctx.plan.jobs()[0])
        finals.append(artifacts.load_tensors(ctx.plan.layout.final(RunKey(0, 0, "dense"))))
    assert not torch.equal(finals[0]["linear1.weight"], finals[1]["linear1.weight"])
    assert not torch.equal(finals[1]["linear1.weight"], finals[2]["linear1.weight"])
    assert all(torch.equal(finals[2][k], finals[3][k]) for k in finals[2])  # PGD's random starts are seeded


@pytest.mark.parametrize("change, message", [
    ({"threshold": 1.5}, "earlybird.threshold: 1.5 is not in (0, 1)"),
    ({"level": 3}, "earlybird.level: 3 is not an IMP level"),
])
def test_bad_earlybird_settings_are_one_line(change, message):
    settings = tiny({**EARLYBIRD, "earlybird": {**EARLYBIRD["earlybird"], **change}})
    with pytest.raises(LTHError, match=message.replace("(", r"\(").replace(")", r"\)")):
        plan_of("x", settings, "/tmp/nowhere")


def test_a_negative_adversarial_epsilon_is_one_line():
    with pytest.raises(LTHError, match="training.adversarial.epsilon: -0.1 is less than the minimum of 0"):
        plan_of("x", tiny({"training": {"adversarial": {"method": "fgsm", "epsilon": -0.1}}}), "/tmp/nowhere")


def test_structured_earlybird_draws_whole_channels_of_a_resnet_with_slimming(tmp_path, data_dir):
    """The paper's setting, small: channel masks from BatchNorm scales, network slimming's L1 penalty."""
    import torch

    from lth.data.fetch import fetch
    from lth.jobs import Context
    from lth.store import artifacts

    fetch("digits", data_dir)
    settings = tiny({**EARLYBIRD, "dataset": {"name": "digits", "val_size": 200}, "model": {"name": "resnet20",
                     "options": {"width": 4}}, "training": {"optimizer": "sgd", "lr": 0.05, "iterations": 60,
                                                            "eval_every": 30, "batch_size": 64, "bn_l1": 1e-4},
                     "pruning": {"strategy": "global", "global_rate": 0.5, "levels": 2},
                     "earlybird": {"level": 2, "every": 10, "window": 2, "threshold": 0.2, "structured": True}})
    plan = plan_of("eb", settings, tmp_path / "eb", {"data_dir": str(data_dir)})
    plan.write()
    ctx = Context(plan, torch.device("cpu"))
    for job in plan.jobs() + plan.probes("earlybird"):
        ctx.run(job)
    eb = artifacts.load_tensors(plan.layout.mask(RunKey(0, 2, "eb-init", analysis="earlybird")))
    convs = {n: m for n, m in eb.items() if m.dim() == 4}
    assert any(not m.all() for m in convs.values())
    for name, m in convs.items():  # whole channels: kept output filters x kept input channels, nothing finer
        spatial = m.flatten(2)
        assert torch.equal(spatial.all(2), spatial.any(2)), name
        pairs = spatial.any(2)
        outputs, inputs = pairs.any(1), pairs.any(0)
        assert torch.equal(pairs, outputs[:, None] & inputs[None, :]) and outputs.any(), name
    rows = list(csv.DictReader(analyses.run(plan, "earlybird").open()))
    assert [r["run"] for r in rows] == ["dense", "imp ticket", "eb-init", "eb-found"]


def test_imp_recovers_the_true_support_of_a_well_conditioned_linear_problem(tmp_path, data_dir):
    import torch

    from lth.data.fetch import fetch
    from lth.data.sparse_linear import ground_truth
    from lth.jobs import Context

    options = {"n_train": 300, "n_test": 200, "dim": 20, "support": 4, "noise": 0.05}
    fetch("sparse_linear", data_dir, options=options)
    settings = {"dataset": {"name": "sparse_linear", "val_size": 50, "options": options}, "model": {"name": "linear"},
                "training": {"optimizer": "sgd", "lr": 0.3, "batch_size": 250, "iterations": 200, "eval_every": 100},
                "kind": "oneshot", "seeds": [0], "analyses": ["linear_support"],
                "oneshot": {"densities": [0.5, 0.2], "methods": {"imp": {"at": "previous"}}}}
    plan = plan_of("lin", settings, tmp_path / "lin", {"data_dir": str(data_dir)})
    plan.write()
    ctx = Context(plan, torch.device("cpu"))
    for job in plan.jobs():
        ctx.run(job)
    from lth.store import artifacts

    w = artifacts.load_tensors(plan.layout.final(RunKey(0, 2000, "imp")))["linear.weight"][0]
    assert torch.equal(w != 0, ground_truth(options) != 0)  # exactly the true support
    rows = list(csv.DictReader(analyses.run(plan, "linear_support").open()))
    (row,) = [r for r in rows if r["level"] == "2000"]
    assert row["support_exact"] == "True" and float(row["ticket_test_error"]) < 0.01
    assert float(row["ticket_test_error"]) == pytest.approx(float(row["lasso_refit_test_error"]), rel=0.05)
    with pytest.raises(LTHError, match="support 30 is larger than the dimension 20"):
        plan_of("x", {**settings, "dataset": {**settings["dataset"], "options": {**options, "support": 30}}}, "/tmp/x")


def test_the_grokking_preset_reduced_memorises_and_its_analysis_reads_the_curves(tmp_path, data_dir):
    import torch
    import yaml

    from lth.analyses.grokking import first
    from lth.data.fetch import fetch
    from lth.jobs import Context
    from lth.store.results import read_record

    preset = yaml.safe_load((ROOT / "config" / "presets" / "grokking_tickets.yaml").read_text())
    settings = preset["experiments"]["grokking_tickets"]
    settings["dataset"]["options"] = {"p": 23, "op": "+", "train_fraction": 0.5}
    settings["training"].update(iterations=300, eval_every=50, batch_size=264)
    ticket = settings["oneshot"]["methods"]["grokking_ticket"]
    settings["oneshot"] = {"densities": [0.5], "methods": {"grokking_ticket": ticket}}
    settings["seeds"] = [0]
    fetch("modular", data_dir, options=settings["dataset"]["options"])
    plan = plan_of("grok", settings, tmp_path / "grok", {"data_dir": str(data_dir)})
    plan.write()
    ctx = Context(plan, torch.device("cpu"))
    for job in plan.jobs():
        ctx.run(job)
    dense = read_record(plan.layout.metrics(RunKey(0, 0, "dense")))
    assert dense["summary"]["train_accuracy"] == 1.0  # memorised the training pairs
    rows = list(csv.DictReader(analyses.run(plan, "grokking").open()))
    assert [r["variant"] for r in rows] == ["dense", "grokking_ticket"]
    assert int(rows[0]["iterations_to_fit"]) == first(dense["curves"], "train_accuracy", 1.0) <= 300
    curves = [{"iteration": 0, "train_accuracy": None, "test_accuracy": 0.1},
              {"iteration": 100, "train_accuracy": 0.5, "test_accuracy": 0.1},
              {"iteration": 200, "train_accuracy": 1.0, "test_accuracy": 0.96}]
    assert first(curves, "train_accuracy", 1.0) == 200 and first(curves, "test_accuracy", 0.99) is None
