"""The plan: the runs and jobs of an experiment, what each reads, fingerprinted stage folders."""

import json
from dataclasses import replace

import pytest

from lth.core.errors import LTHError
from lth.plan import Job, Plan, plan_of
from lth.plan.job import patterns
from lth.plan.layout import RunKey

from conftest import tiny

ALL = ["ticket", "reinit", "random_prune", "lr_rewind", "finetune"]


def plan(changes=None, root="results/x"):
    return plan_of("x", tiny(changes), root, {"data_dir": "data"})


def test_runs_in_table_order_seed_by_seed():
    p = plan({"variants": ALL, "seeds": [0, 1],
              "transfer": {"targets": {"t": {"dataset": {"name": "mnist1d", "options": {"seed": 43}}}}, "levels": [2]}})
    runs = p.runs()
    assert runs[:6] == [RunKey(0, 0, "dense"), *(RunKey(0, 1, v) for v in ALL)]
    assert runs[11:15] == [RunKey(0, 0, "dense", "t"), *(RunKey(0, 2, v, "t") for v in
                                                         ("ticket_transfer", "mask_transfer", "random_prune"))]
    assert len(runs) == 2 * (1 + 2 * 5 + 4) and len(set(runs)) == len(runs)


def test_jobs_hold_every_seed_keep_controls_off_the_chain_and_read_only_what_they_need():
    p = plan({"variants": ALL, "rewind_iteration": 20, "seeds": [0, 1], "pruning": {"levels": 5}})
    stages = [str(j) for j in p.jobs()]
    assert stages[:7] == ["dense seed 0", "theta_k seed 0 k=20", "dense seed 1", "theta_k seed 1 k=20",
                          "ticket chain level 1, seeds 0, 1", "lr_rewind chain level 1, seeds 0, 1",
                          "finetune chain level 1, seeds 0, 1"]
    assert stages[-2:] == ["ticket chain controls levels 1-4, seeds 0, 1", "ticket chain controls levels 5-5, seeds 0, 1"]
    ticket, finetune = p.job("level", level=2, chain="ticket"), p.job("level", level=2, chain="finetune")
    assert p.job_runs(ticket) == [RunKey(0, 2, "ticket"), RunKey(1, 2, "ticket")]  # the chain: only its head
    controls = p.job("controls", level=1, chain="ticket", to=4)
    assert p.job_runs(controls)[:4] == [RunKey(s, 1, v) for s in (0, 1) for v in ("reinit", "random_prune")]
    assert len(p.job_runs(controls)) == 4 * 2 * 2
    L = p.layout
    previous = {c: p.outputs(p.job("level", 0, 1, c))[0] for c in ("ticket", "finetune")}
    assert p.inputs(ticket)["runs"] == [previous["ticket"], L.rewind(0, 20), L.rewind(1, 20)]
    assert p.inputs(finetune)["runs"] == [previous["finetune"]]  # no theta_k: it never rewinds
    assert p.inputs(controls)["runs"] == [p.level_done(level, "ticket", (0, 1)) for level in range(1, 5)] + [
        L.rewind(0, 20), L.rewind(1, 20)]  # the masks of its levels, not the next level's
    assert all(previous["ticket"] not in p.inputs(j)["runs"] for j in p.jobs() if j.stage == "controls" and j.level > 1)
    assert previous["ticket"].name.startswith("level01-ticket-") and previous["ticket"].parent.name == "jobs"
    assert p.inputs(p.job("level", 1, 1, "ticket"))["runs"][:2] == [L.metrics(RunKey(s, 0, "dense")) for s in (0, 1)]
    with pytest.raises(LTHError, match="seed 7 is not one of the plan's seeds"):
        p.job("level", 7, 1, "ticket")


def fps(changes=None):
    return plan(changes).layout.fingerprints


@pytest.mark.parametrize("changes", [
    {"pruning": {"rates": {"fc": 0.3, "output": 0.1}}}, {"rewind_iteration": 50}, {"pruning": {"strategy": "global"}},
    {"pruning": {"score": "random"}}, {"variants": ALL}, {"seeds": [0, 5]}, {"pruning": {"levels": 9}},
])
def test_the_dense_stage_does_not_depend_on_pruning_rewinding_or_which_runs_exist(changes):
    assert fps(changes)["dense"] == fps()["dense"]


@pytest.mark.parametrize("changes, changed", [
    ({"pruning": {"rates": {"fc": 0.3, "output": 0.1}}}, "imp"), ({"rewind_iteration": 50}, "imp"),
    ({"pruning": {"score": "random"}}, "imp"), ({"training": {"lr": 0.02}}, "dense"),
    ({"model": {"options": {"hidden": 33}}}, "dense"), ({"pruning": {"exclude": ["linear1"]}}, "dense"),
])
def test_what_a_stage_depends_on_changes_its_fingerprint_and_those_downstream(changes, changed):
    before, after = fps(), fps(changes)
    assert before["imp"] != after["imp"]
    assert (before["dense"] != after["dense"]) == (changed == "dense")


def test_levels_seeds_and_variants_do_not_change_the_imp_stage_and_defaults_spelt_out_change_nothing():
    assert fps({"pruning": {"levels": 9}, "seeds": [3], "variants": ["ticket"]})["imp"] == fps()["imp"]
    spelt = {"pruning": {"score": "magnitude", "strategy": "layerwise", "global_rate": 0.2, "exclude": []},
             "kind": "imp", "rewind_iteration": 0, "dataset": {"split_seed": 0, "options": {}}}
    assert fps(spelt) == fps()


def test_a_transfer_target_has_its_own_fingerprint():
    t = {"transfer": {"targets": {"a": {"dataset": {"name": "mnist1d", "options": {"seed": 43}}},
                                  "b": {"dataset": {"name": "mnist1d", "options": {"seed": 44}}}}}}
    f = fps(t)
    assert f["transfer:a"] != f["transfer:b"] and fps()["imp"] == f["imp"]


def test_settings_json_round_trip_and_stale_or_unplanned_jobs_are_refused(tmp_path):
    p = plan(root=tmp_path / "x")
    p.write()
    again = Plan.from_results(tmp_path / "x")
    assert again.settings == p.settings and again.layout == p.layout and again.workflow == p.workflow
    assert again.job("level", 0, 2, "ticket", fingerprint=p.layout.fingerprints["imp"]) == p.with_runs(
        Job("level", 0, 2, "ticket"))
    with pytest.raises(LTHError, match="holds runs of other settings"):
        again.job("level", 0, 2, "ticket", fingerprint="0" * 12)
    with pytest.raises(LTHError, match="no job 'ticket chain level 3, seed 0'"):
        again.job("level", 0, 3, "ticket")
    with pytest.raises(AttributeError):
        again.settings.training.lr = 1.0  # immutable


def test_a_job_named_by_an_earlier_marker_runs_when_snakemake_deleted_it_and_is_refused_otherwise(tmp_path):
    p = plan({"seeds": [0, 1]}, root=tmp_path / "x")
    p.write()
    level = p.job("level", level=1, chain="ticket")
    # a marker of both seeds and another, deleted by Snakemake before it reruns that job: taken
    assert p.job("level", level=1, chain="ticket", runs="0badc0de").runs == "0badc0de"
    other = p.outputs(replace(level, runs="0badc0de"))[0]
    other.parent.mkdir(parents=True)
    other.write_text(json.dumps({"seed 0 level 1 ticket": "elsewhere"}))  # exists, but does not hold its runs
    with pytest.raises(LTHError, match="holds runs"):
        p.job("level", level=1, chain="ticket", runs="0badc0de")
    covering = {str(k): str(p.layout.metrics(k).relative_to(p.layout.root)) for k in p.job_runs(level)}
    other.write_text(json.dumps({**covering, "seed 2 level 1 ticket": "more"}))  # an earlier job that held more
    assert p.done(level) == other and p.job("level", level=1, chain="ticket", runs="0badc0de").runs == "0badc0de"


def test_a_results_folder_of_the_earlier_layout_is_refused_with_what_to_do(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "settings.json").write_text(json.dumps({"fingerprint": "abc", "settings": {}, "targets": {}}))
    with pytest.raises(LTHError, match="earlier version of lth .* move or delete"):
        plan(root=tmp_path / "x").write()
    with pytest.raises(LTHError, match="earlier version of lth"):
        Plan.from_results(tmp_path / "x")


def test_snakemake_patterns_are_the_layout_of_the_outputs():
    p = patterns("R/{exp}")
    assert p["level"] == ["R/{exp}/{kind}-{fp}/jobs/level{level}-{chain}-{runs}.json"]  # imp or oneshot
    assert p["controls"] == ["R/{exp}/{kind}-{fp}/jobs/controls{level}-{to}-{chain}-{runs}.json"]
    assert p["rewind"] == ["R/{exp}/dense-{fp}/seed{seed}/rewind{k}.safetensors"]
    assert p["transfer"] == ["R/{exp}/transfer-{target}-{fp}/jobs/transfer-{target}-level{level}-{runs}.json"]
    assert p["level_log"] == "R/{exp}/logs/level{level}-{chain}-{runs}-{kind}-{fp}.log"
    assert p["probe"] == ["R/{exp}/{chain}-{fp}/seed{seed}/level{level}-k{k}.json"]  # chain: the analysis
    real = plan({"variants": ["ticket", "reinit"]}, root="R/x")
    for job in (real.job("level", level=2, chain="ticket"), next(j for j in real.jobs() if j.stage == "controls")):
        wildcards = dict(exp="x", fp=real.fingerprint(job), level=f"{job.level:02d}", to=f"{job.to:02d}",
                         chain="ticket", runs=job.runs, kind="imp")
        assert str(real.outputs(job)[0]) == p[job.stage][0].format(**wildcards)
        assert p[f"{job.stage}_log"].format(**wildcards) == str(real.layout.log(f"{job.name}-imp-"
                                                                                f"{real.fingerprint(job)}"))


def test_an_earlier_controls_job_of_more_levels_covers_a_shorter_block(tmp_path):
    four = plan({"variants": ["ticket", "reinit"], "pruning": {"levels": 4}}, root=tmp_path / "x")
    (block,) = [j for j in four.jobs() if j.stage == "controls"]
    marker = four.outputs(block)[0]
    marker.parent.mkdir(parents=True)
    marker.write_text(json.dumps({str(k): str(four.layout.metrics(k).relative_to(four.layout.root))
                                  for k in four.job_runs(block)}))
    three = plan({"variants": ["ticket", "reinit"], "pruning": {"levels": 3}}, root=tmp_path / "x")
    (shorter,) = [j for j in three.jobs() if j.stage == "controls"]
    assert (shorter.level, shorter.to) == (1, 3) and three.done(shorter) == marker  # nothing to run
