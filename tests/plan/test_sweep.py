"""The one-shot sweep (kind oneshot, lth.plan.oneshot): its plan, its masks against independent references,
the distributions and the controls, and what an experiment that grows keeps."""

import math

import pytest
import torch

from lth.core.errors import LTHError
from lth.plan import plan_of
from lth.plan.layout import RunKey
from lth.pruning import masks
from lth.pruning.distribution import erk_densities
from lth.pruning.select import keep_density, keep_globally
from lth.store import artifacts

from conftest import tiny

SWEEP = {"kind": "oneshot", "oneshot": {"densities": [0.5, 0.1], "controls": ["shuffle", "reinit"], "methods": {
    "magnitude": {}, "mag_init": {"at": "init", "distribution": "uniform"},
    "imp": {"at": "previous", "distribution": "uniform"}}}}


def sweep(oneshot=None, **changes):
    return tiny({**SWEEP, "oneshot": {**SWEEP["oneshot"], **(oneshot or {})}, **changes})


def plan(settings, root="/tmp/nowhere"):
    return plan_of("exp", settings, root)


def test_levels_are_densities_per_ten_thousand_and_jobs_wait_only_on_the_dense_run():
    p = plan(sweep())
    assert p.levels() == [5000, 1000]
    levels = [j for j in p.jobs() if j.stage == "level"]
    assert [(j.level, j.chain) for j in levels] == [(lv, m) for lv in (5000, 1000) for m in ("magnitude", "mag_init",
                                                                                              "imp")]
    dense = p.layout.metrics(RunKey(0, 0, "dense"))
    for job in levels:
        runs = p.inputs(job)["runs"]
        if job.chain == "imp" and job.level == 1000:  # IMP: its own next larger density first
            assert runs == [dense, p.done(p.with_runs(job.__class__("level", 0, 5000, "imp")))]
        else:
            assert runs == [dense]
    assert [k.variant for k in p.job_runs(levels[0])] == ["magnitude", "magnitude-shuffle", "magnitude-reinit"]


def test_a_grown_sweep_keeps_every_finished_job_and_a_changed_method_only_its_own():
    before = plan(sweep())
    grown = plan(sweep({"densities": [0.5, 0.2, 0.1]}))
    kept = set(before.jobs()) & set(grown.jobs())
    # the new density is new jobs; the others are the same jobs (same folders), except IMP's, whose chain changed
    assert {(j.level, j.chain) for j in set(before.jobs()) - kept} == {(5000, "imp"), (1000, "imp")}
    assert {j.level for j in set(grown.jobs()) - kept if j.chain != "imp"} == {2000}
    methods = {**SWEEP["oneshot"]["methods"], "mag_init": {"at": "init", "distribution": "erk"}}
    changed = plan(sweep({"methods": methods}))
    assert {j.chain for j in set(before.jobs()) - set(changed.jobs())} == {"mag_init"}
    assert before.layout.run_dir(RunKey(0, 5000, "mag_init")) != changed.layout.run_dir(RunKey(0, 5000, "mag_init"))


@pytest.mark.parametrize("oneshot, message", [
    ({"densities": [0.5, 0]}, "oneshot.densities: 0 is not a density in (0, 1)"),
    ({"densities": [1]}, "oneshot.densities: 1 is not a density in (0, 1)"),
    ({"densities": [0.12345]}, "oneshot.densities: 0.12345 is not a multiple of 0.0001"),
    ({"methods": {"s": {"score": "snip"}}}, "oneshot.methods.s.batch: score 'snip' needs a batch of training data"),
    ({"methods": {"s": {"distribution": "lognormal"}}}, "oneshot.methods.s.distribution: 'lognormal' is not one of"),
    ({"methods": {"s": {"score": "nope"}}}, "oneshot.methods.s.score: 'nope' is not one of"),
    ({"methods": {"s": {"train": "iht", "distribution": "erk"}}}, "train: iht thresholds by magnitude"),
    ({"methods": {"Bad-Name": {}}}, "oneshot.methods: 'Bad-Name' does not match"),
    ({"methods": {"ep": {"train": "edgepopup"}}}, "train: edgepopup keeps the same fraction of every layer"),
])
def test_bad_sweeps_are_one_line_errors_naming_the_key(oneshot, message):
    with pytest.raises(LTHError) as e:
        plan(sweep(oneshot))
    assert message in str(e.value) and "\n" not in str(e.value)


def test_a_data_score_in_an_imp_experiment_needs_its_batch_too():
    with pytest.raises(LTHError, match="pruning.batch: score 'grasp' needs a batch"):
        plan(tiny({"pruning": {"score": "grasp"}}))


def test_erk_matches_a_bisection_reference_and_keeps_the_density():
    shapes = {"a": (64, 40), "b": (64, 64), "c": (10, 64), "conv": (16, 3, 3, 3)}
    got = erk_densities(shapes, 0.1)
    sizes = {n: math.prod(s) for n, s in shapes.items()}

    def total(eps):  # the reference: densities min(1, eps * sum/prod), bisected on eps
        return sum(min(1.0, eps * sum(s) / sizes[n]) * sizes[n] for n, s in shapes.items())

    lo, hi = 0.0, 1e6
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if total(mid) < 0.1 * sum(sizes.values()) else (lo, mid)
    for n, s in shapes.items():
        assert got[n] == pytest.approx(min(1.0, lo * sum(s) / sizes[n]), rel=1e-9)
    saturated = erk_densities({"big": (100, 100), "tiny": (2, 2)}, 0.5)
    assert saturated["tiny"] == 1.0  # a layer that would keep more than all of it stays dense
    assert saturated["big"] * 10000 + 4 == pytest.approx(0.5 * 10004)


def test_global_selection_is_topk_and_never_empties_a_layer_unless_allowed():
    g = torch.Generator().manual_seed(0)
    mask = {"a": torch.ones(30, 20, dtype=torch.bool), "b": torch.ones(5, 30, dtype=torch.bool)}
    scores = {"a": torch.rand(30, 20, generator=g) + 1, "b": torch.rand(5, 30, generator=g)}  # b all below a
    new = keep_globally(scores, mask, 100, min_per_layer=0)
    assert int(new["b"].sum()) == 0 and int(new["a"].sum()) == 100
    flat = torch.cat([scores["a"].flatten(), scores["b"].flatten()])
    assert torch.equal(torch.cat([new["a"].flatten(), new["b"].flatten()]), flat >= flat.topk(100).values[-1])
    guarded = keep_globally(scores, mask, 100, min_per_layer=2)
    assert int(guarded["b"].sum()) == 2 and int(guarded["a"].sum()) == 98
    assert guarded["b"].flatten()[scores["b"].flatten().topk(2).indices].all()
    uniform = keep_density(scores, mask, 0.2, "uniform")
    assert masks.counts(uniform) == {"a": 120, "b": 30}


def _run_all(ctx):
    for job in ctx.plan.jobs():
        ctx.run(job)


def test_sweep_masks_match_references_and_the_controls_keep_what_they_should(context):
    ctx = context(sweep(training={"iterations": 40, "eval_every": 20}))
    _run_all(ctx)
    p, L = ctx.plan, ctx.plan.layout
    dense = RunKey(0, 0, "dense")
    final, theta0 = artifacts.load_tensors(L.final(dense)), artifacts.load_tensors(L.init(0))
    names = list(artifacts.load_tensors(L.mask(dense)))
    total = sum(final[n].numel() for n in names)
    for level in (5000, 1000):
        d = level / 10000
        # magnitude after training, global: the top round(d * N) |w| of the dense run's final weights
        got = artifacts.load_tensors(L.mask(RunKey(0, level, "magnitude")))
        flat = torch.cat([final[n].abs().flatten() for n in names])
        keep = torch.zeros_like(flat, dtype=torch.bool)
        keep[torch.sort(flat, descending=True, stable=True).indices[:round(d * total)]] = True
        assert torch.equal(torch.cat([got[n].flatten() for n in names]), keep)
        # magnitude at init, uniform: each layer keeps round(d * n) of its largest |theta_0|
        init = artifacts.load_tensors(L.mask(RunKey(0, level, "mag_init")))
        for n in names:
            k = round(d * theta0[n].numel())
            assert int(init[n].sum()) == k
            assert theta0[n].abs()[init[n]].min() >= theta0[n].abs()[~init[n]].max()
        for method in ("magnitude", "mag_init", "imp"):
            head = artifacts.load_tensors(L.mask(RunKey(0, level, method)))
            shuffled = artifacts.load_tensors(L.mask(RunKey(0, level, f"{method}-shuffle")))
            reinit = artifacts.load_tensors(L.mask(RunKey(0, level, f"{method}-reinit")))
            assert masks.counts(shuffled) == masks.counts(head) and any(
                not torch.equal(shuffled[n], head[n]) for n in names)
            assert all(torch.equal(reinit[n], head[n]) for n in names)
            for variant in (method, f"{method}-shuffle", f"{method}-reinit"):
                key = RunKey(0, level, variant)
                w, m = artifacts.load_tensors(L.final(key)), artifacts.load_tensors(L.mask(key))
                assert all((w[n][~m[n]] == 0).all() for n in names)  # pruned weights exactly zero
    # IMP at 10% pruned its own 50% ticket's trained weights: its mask lies inside that one
    imp50 = artifacts.load_tensors(L.mask(RunKey(0, 5000, "imp")))
    imp10 = artifacts.load_tensors(L.mask(RunKey(0, 1000, "imp")))
    assert all(not (imp10[n] & ~imp50[n]).any() for n in names)
    assert p.variant(RunKey(0, 1000, "imp-reinit")).weights == "fresh"


def test_rounds_fall_exponentially_to_the_exact_density(context):
    from lth.pruning import ScoreContext, prune_to

    g = torch.Generator().manual_seed(1)
    weights = {"a": torch.randn(40, 30, generator=g), "b": torch.randn(10, 40, generator=g)}
    mask = {n: torch.ones_like(w, dtype=torch.bool) for n, w in weights.items()}
    seen = []

    def context_for(m):
        seen.append(masks.density(m))
        return ScoreContext()

    method = {"score": "magnitude", "distribution": "global", "min_per_layer": 1, "rounds": 4}
    out = prune_to(method, 0.0625, weights, mask, context_for)
    assert sum(int(m.sum()) for m in out.values()) == round(0.0625 * 1600)
    assert seen == pytest.approx([1.0, 0.5, 0.25, 0.125], abs=1e-3)  # 0.0625 ** (r / 4)


def test_biases_are_pruned_when_asked_as_greydanus_does(context):
    ctx = context(sweep({"densities": [0.3], "controls": [], "methods": {"imp": {"at": "previous",
                                                                               "distribution": "uniform"}}},
                        pruning={"biases": True}, training={"iterations": 20, "eval_every": 10}))
    _run_all(ctx)
    L = ctx.plan.layout
    mask = artifacts.load_tensors(L.mask(RunKey(0, 3000, "imp")))
    final = artifacts.load_tensors(L.final(RunKey(0, 3000, "imp")))
    assert {"linear1.bias", "linear2.bias", "linear3.bias"} <= set(mask)
    for name in ("linear1.bias", "linear2.bias", "linear3.bias"):
        assert int(mask[name].sum()) == round(0.3 * mask[name].numel())
        assert (final[name][~mask[name]] == 0).all()
    assert ctx.plan.layout.fingerprints["dense"] != plan_of("x", sweep(), "/tmp/x").layout.fingerprints["dense"]


def _resnet20_at_init():
    """(the weights of ResNet-20 at init, its full mask, the score contexts under a mask)."""
    from lth.models import build_model
    from lth.pruning import ScoreContext

    model = build_model("resnet20", (3, 32, 32), 10, seed=0)
    weights = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def context_for(m):
        def masked():
            model.load_state_dict(weights)
            masks.apply_mask(model, m)
            return model
        return ScoreContext(model=masked, input_shape=(3, 32, 32))

    return weights, masks.full_mask(model), context_for


def test_synflow_s_iterated_rounds_prune_no_layer_of_resnet20_away_where_one_round_does():
    """Layer collapse (Tanaka et al. 2020) at 0.5 % of the weights, with no per-layer floor: one round of
    SynFlow empties whole layers; its 100 rounds keep every layer, the 1x1 shortcut convolutions included."""
    from lth.pruning import prune_to

    weights, mask, context_for = _resnet20_at_init()
    method = {"score": "synflow", "distribution": "global", "min_per_layer": 0}
    iterated = prune_to({**method, "rounds": 100}, 0.005, weights, mask, context_for)
    assert sum(int(m.sum()) for m in iterated.values()) == round(0.005 * sum(m.numel() for m in mask.values()))
    assert all(int(m.sum()) >= 1 for m in iterated.values())
    assert any("shortcut" in n or "downsample" in n for n in iterated)  # the 1x1 convolutions are among them
    once = prune_to({**method, "rounds": 1}, 0.005, weights, mask, context_for)
    assert any(int(m.sum()) == 0 for m in once.values())


def test_the_per_layer_floor_keeps_every_layer_that_one_shot_magnitude_would_empty():
    from lth.pruning import prune_to

    weights, mask, context_for = _resnet20_at_init()
    method = {"score": "magnitude", "distribution": "global", "min_per_layer": 1, "rounds": 1}
    out = prune_to(method, 0.005, weights, mask, context_for)
    assert sum(int(m.sum()) for m in out.values()) == round(0.005 * sum(m.numel() for m in mask.values()))
    assert all(int(m.sum()) >= 1 for m in out.values())
    bare = prune_to({**method, "min_per_layer": 0}, 0.005, weights, mask, context_for)
    assert any(int(m.sum()) == 0 for m in bare.values())  # without the floor it empties some layer


def test_random_scores_pruned_globally_keep_every_layer_at_the_density():
    from lth.pruning import ScoreContext, compute_scores

    g = torch.Generator().manual_seed(3)
    mask = {"a": torch.ones(100, 40, dtype=torch.bool), "b": torch.ones(10, 100, dtype=torch.bool)}
    s = compute_scores("random", None, mask, ScoreContext(generator=lambda: g))
    kept = keep_globally(s, mask, 2500)
    assert abs(int(kept["a"].sum()) - 2000) <= 1 and abs(int(kept["b"].sum()) - 500) <= 1


def test_an_iht_method_ends_at_its_density_and_its_controls_train_on_its_mask(context):
    ctx = context(sweep({"densities": [0.2], "methods": {"iht": {"train": "iht", "distribution": "uniform",
                                                                "iht": {"warmup": 10, "ramp": 20}}}},
                        training={"iterations": 60, "eval_every": 20}))
    _run_all(ctx)
    L = ctx.plan.layout
    head = artifacts.load_tensors(L.mask(RunKey(0, 2000, "iht")))
    weights = artifacts.load_tensors(L.final(RunKey(0, 2000, "iht")))
    for name, m in head.items():
        assert int(m.sum()) == round(0.2 * m.numel())  # uniform: every layer at the density
        assert (weights[name][~m] == 0).all() and int((weights[name] != 0).sum()) == int(m.sum())
    shuffled = artifacts.load_tensors(L.mask(RunKey(0, 2000, "iht-shuffle")))
    assert masks.counts(shuffled) == masks.counts(head)
    reinit = artifacts.load_tensors(L.mask(RunKey(0, 2000, "iht-reinit")))
    assert all(torch.equal(reinit[n], head[n]) for n in head)


def test_a_method_at_an_iteration_scores_the_dense_run_replayed_to_it(context):
    ctx = context(sweep({"densities": [0.3], "controls": [], "methods": {"memo": {"at": 20}}},
                        training={"iterations": 40, "eval_every": 20}))
    p, L = ctx.plan, ctx.plan.layout
    assert [(j.stage, j.k) for j in p.jobs()][:2] == [("dense", 0), ("rewind", 20)]
    (job,) = [j for j in p.jobs() if j.stage == "level"]
    assert L.rewind(0, 20) in p.inputs(job)["runs"]
    _run_all(ctx)
    theta = artifacts.load_tensors(L.rewind(0, 20))
    got = artifacts.load_tensors(L.mask(RunKey(0, 3000, "memo")))
    names = list(got)
    flat = torch.cat([theta[n].abs().flatten() for n in names])
    keep = torch.zeros_like(flat, dtype=torch.bool)
    keep[torch.sort(flat, descending=True, stable=True).indices[:round(0.3 * len(flat))]] = True
    assert torch.equal(torch.cat([got[n].flatten() for n in names]), keep)
    with pytest.raises(LTHError, match="oneshot.methods.memo.at: iteration 40 is beyond the training budget"):
        plan(sweep({"methods": {"memo": {"at": 40}}}, training={"iterations": 40}))


def test_an_edgepopup_method_keeps_the_frozen_weights_under_its_exact_density(context):
    """Strong tickets: the run's weights are theta_0's (here signed Kaiming constant) bitwise where kept,
    zero elsewhere, every layer at the density; the controls train on its mask."""
    ctx = context(sweep({"densities": [0.3], "controls": ["shuffle"],
                         "methods": {"ep": {"train": "edgepopup", "distribution": "uniform"}}},
                        model={"init": "signed_kaiming_constant"}, training={"iterations": 40, "eval_every": 20}))
    _run_all(ctx)
    L = ctx.plan.layout
    theta_0 = artifacts.load_tensors(L.rewind(0, 0))
    mask = artifacts.load_tensors(L.mask(RunKey(0, 3000, "ep")))
    final = artifacts.load_tensors(L.final(RunKey(0, 3000, "ep")))
    for name, m in mask.items():
        assert int(m.sum()) == round(0.3 * m.numel())
        assert torch.equal(final[name][m], theta_0[name][m]) and (final[name][~m] == 0).all()
        magnitudes = theta_0[name].abs().unique()  # signed constant: one magnitude per layer, both signs
        assert len(magnitudes) == 1 and math.isclose(magnitudes.item(), math.sqrt(2 / theta_0[name][0].numel()),
                                                      rel_tol=1e-6)
        assert (theta_0[name] > 0).any() and (theta_0[name] < 0).any()
    untouched = [k for k in theta_0 if k not in mask]  # biases: frozen, bitwise
    assert untouched and all(torch.equal(final[k], theta_0[k]) for k in untouched)
    shuffled = artifacts.load_tensors(L.mask(RunKey(0, 3000, "ep-shuffle")))
    assert masks.counts(shuffled) == masks.counts(mask)
