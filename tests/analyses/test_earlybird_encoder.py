"""Structured early-bird tickets of a transformer (EarlyBERT, Chen et al. 2021): the encoder's heads and
feed-forward neurons as units, checked against hand-computed attention and MLP; the unit selection; the
detector on unit masks; a tiny training run on the grammar with the observer; the analysis' config check."""

import math
import types

import pytest
import torch
import torch.nn.functional as F

from lth.analyses.earlybird_detector import (
    EarlyBird,
    hamming,
    ranked_units,
    select_units,
    unit_mask,
    unit_scores,
    weights_of_units,
)
from lth.core.errors import LTHError
from lth.models import build_model
from lth.pruning import masks


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def encoder(seed=0, dim=12, heads=3, layers=2, shape=(6, 5), classes=4):
    return build_model("encoder", shape, classes, seed=seed, dim=dim, heads=heads, layers=layers)


def zero_unit(model, unit):
    with torch.no_grad():
        params = dict(model.named_parameters())
        for name, dim, start, stop in unit.slices:
            params[name].narrow(dim, start, stop - start).zero_()


def test_units_cover_every_head_and_ffn_parameter_exactly_once():
    model = encoder()
    units = model.units()
    params = dict(model.named_parameters())
    covered = {n: torch.zeros(p.shape, dtype=torch.long) for n, p in params.items()}
    for u in units:
        for name, dim, start, stop in u.slices:
            covered[name].narrow(dim, start, stop - start).add_(1)
    per_unit = {"q", "k", "v", "proj", "fc1", "fc2"}
    for name, c in covered.items():
        module, kind = name.rsplit(".", 1)[0].rsplit(".", 1)[-1], name.rsplit(".", 1)[1]
        once = module in per_unit and not (module in ("proj", "fc2") and kind == "bias")
        assert bool((c == (1 if once else 0)).all()), name
    for b in range(2):
        heads = [u for u in units if u.layer == f"blocks.{b}" and u.kind == "head"]
        neurons = [u for u in units if u.layer == f"blocks.{b}" and u.kind == "neuron"]
        assert [u.index for u in heads] == [0, 1, 2] and [u.index for u in neurons] == list(range(48))
    assert len(units) == 2 * (3 + 48)
    assert units[4].slices == (("blocks.0.fc1.weight", 0, 1, 2), ("blocks.0.fc1.bias", 0, 1, 2),
                               ("blocks.0.fc2.weight", 1, 1, 2))


def attention_by_hand(block, x, without=None):
    """The attention sub-layer x + proj(attn(ln x)) computed head by head, leaving head `without` out."""
    d = x.shape[-1]
    dh = d // block.heads
    h = F.layer_norm(x, (d,))
    out = x + block.proj.bias
    for g in range(block.heads):
        if g == without:
            continue
        rows = slice(g * dh, (g + 1) * dh)
        q, k, v = (h @ m.weight[rows].T + m.bias[rows] for m in (block.q, block.k, block.v))
        weights = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(dh), dim=-1)
        out = out + (weights @ v) @ block.proj.weight[:, rows].T
    return out


def mlp_by_hand(block, x, without=None):
    """x + fc2(relu(fc1(ln x))) with neuron `without` left out."""
    keep = [j for j in range(block.fc1.out_features) if j != without]
    hidden = F.relu(F.layer_norm(x, (x.shape[-1],)) @ block.fc1.weight[keep].T + block.fc1.bias[keep])
    return x + hidden @ block.fc2.weight[:, keep].T + block.fc2.bias


@torch.no_grad()
@pytest.mark.parametrize("head", [0, 2])
def test_zeroing_a_head_is_attention_without_that_head(head):
    model = encoder(seed=1).double()
    block = model.blocks[1]
    with torch.no_grad():  # non-zero biases, so that the bias slices are exercised too
        for m in (block.q, block.k, block.v, block.proj, block.fc1, block.fc2):
            m.bias.normal_(0, 0.3, generator=torch.Generator().manual_seed(7))
    x = torch.randn(3, 6, 12, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    reference = mlp_by_hand(block, attention_by_hand(block, x, without=head))
    full = mlp_by_hand(block, attention_by_hand(block, x))
    assert torch.allclose(block(x), full, atol=1e-10)  # the hand computation is the block's
    unit = next(u for u in model.units() if u.layer == "blocks.1" and u.kind == "head" and u.index == head)
    zero_unit(model, unit)
    assert torch.allclose(block(x), reference, atol=1e-10)
    assert not torch.allclose(reference, full, atol=1e-3)
    # the head is gone: its queries, keys and values no longer reach the output
    dh = 4
    with torch.no_grad():
        for m in (block.q, block.k, block.v):
            m.weight[head * dh:(head + 1) * dh] = torch.randn(dh, 12, dtype=torch.float64)
    assert torch.allclose(block(x), reference, atol=1e-10)


@torch.no_grad()
def test_zeroing_a_neuron_is_the_mlp_without_that_neuron():
    model = encoder(seed=2).double()
    block = model.blocks[0]
    block.fc1.bias.normal_(0, 0.3, generator=torch.Generator().manual_seed(3))
    x = torch.randn(2, 6, 12, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    after_attention = attention_by_hand(block, x)
    j = 5
    hidden = F.relu(F.layer_norm(after_attention, (12,)) @ block.fc1.weight[j] + block.fc1.bias[j])
    assert hidden.abs().max() > 0  # the neuron fires, so removing it changes something
    unit = next(u for u in model.units() if u.layer == "blocks.0" and u.kind == "neuron" and u.index == j)
    reference = mlp_by_hand(block, after_attention, without=j)
    zero_unit(model, unit)
    assert torch.allclose(block(x), reference, atol=1e-10)


@torch.no_grad()
def test_unit_scores_are_the_norms_of_the_units_parameters():
    model = encoder(seed=3)
    units = model.units()
    scores = unit_scores(model, units)
    b = model.blocks[1]
    dh, h, j = 4, 2, 17
    rows = slice(h * dh, (h + 1) * dh)
    head = sum(float(m.weight[rows].double().square().sum() + m.bias[rows].double().square().sum())
               for m in (b.q, b.k, b.v)) + float(b.proj.weight[:, rows].double().square().sum())
    assert float(scores["blocks.1.heads"][h]) == pytest.approx(math.sqrt(head), rel=1e-12)
    neuron = float(b.fc1.weight[j].double().square().sum() + b.fc1.bias[j].double() ** 2
                   + b.fc2.weight[:, j].double().square().sum())
    assert float(scores["blocks.1.neurons"][j]) == pytest.approx(math.sqrt(neuron), rel=1e-12)
    # pruned weights count as zero
    mask = masks.full_mask(model)
    mask["blocks.1.fc2.weight"][:, j] = False
    pruned = unit_scores(model, units, mask)
    neuron -= float(b.fc2.weight[:, j].double().square().sum())
    assert float(pruned["blocks.1.neurons"][j]) == pytest.approx(math.sqrt(neuron), rel=1e-12)


@pytest.mark.parametrize("density", [0.05, 0.3, 0.5, 0.8, 1.0])
def test_unit_selection_keeps_the_stated_counts_of_each_kind(density):
    model = encoder(seed=4)
    units = model.units()
    keep = select_units(model, density, units)
    assert list(keep) == ["blocks.0.heads", "blocks.0.neurons", "blocks.1.heads", "blocks.1.neurons"]
    scores = unit_scores(model, units)
    for kind, count in (("heads", 6), ("neurons", 96)):
        kept = [keep[f"blocks.{b}.{kind}"] for b in range(2)]
        assert sum(int(k.sum()) for k in kept) == max(round(density * count), 2)
        assert all(int(k.sum()) >= 1 for k in kept)
        # by hand: each block's best, then the best of the rest over both blocks (the scores have no ties)
        per_block = [scores[f"blocks.{b}.{kind}"] for b in range(2)]
        s = torch.cat(per_block)
        forced = {b * len(per_block[0]) + int(per_block[b].argmax()) for b in range(2)}
        rest = [i for i in s.argsort(descending=True).tolist() if i not in forced]
        expected = forced | set(rest[:max(round(density * count), 2) - 2])
        assert set(torch.cat(kept).nonzero().squeeze(1).tolist()) == expected


def test_the_floor_keeps_a_head_per_block_and_ties_go_by_position():
    model = encoder(seed=5)
    units = model.units()
    with torch.no_grad():  # block 1's heads all far smaller than block 0's
        for m in (model.blocks[1].q, model.blocks[1].k, model.blocks[1].v, model.blocks[1].proj):
            m.weight.mul_(1e-3)
    keep = select_units(model, 0.5, units)  # 3 of 6 heads: the global top 3 would all be block 0's
    assert int(keep["blocks.0.heads"].sum()) == 2 and int(keep["blocks.1.heads"].sum()) == 1
    assert keep["blocks.1.heads"][unit_scores(model, units)["blocks.1.heads"].argmax()]  # that block's best
    with torch.no_grad():  # every head scores 0: the floor keeps each block's last, then the latest
        for b in model.blocks:
            for m in (b.q, b.k, b.v, b.proj):
                m.weight.zero_()
                m.bias.zero_()
    keep = select_units(model, 0.5, units)
    assert keep["blocks.0.heads"].tolist() == [False, False, True]
    assert keep["blocks.1.heads"].tolist() == [False, True, True]


def test_weight_masks_drop_whole_units_and_keep_what_the_mask_pruned():
    model = encoder(seed=6)
    units = model.units()
    mask = masks.full_mask(model, biases=True)
    mask["blocks.0.fc1.weight"][0, 0] = False  # pruned before: stays pruned
    keep = select_units(model, 0.5, units, mask)
    weights = weights_of_units(keep, units, mask)
    assert weights.keys() == mask.keys()
    assert not weights["blocks.0.fc1.weight"][0, 0]
    for b in range(2):
        heads, neurons = keep[f"blocks.{b}.heads"], keep[f"blocks.{b}.neurons"]
        rows = heads.repeat_interleave(4)
        for m in ("q", "k", "v"):
            assert torch.equal(weights[f"blocks.{b}.{m}.weight"], rows[:, None].expand(12, 12))
            assert torch.equal(weights[f"blocks.{b}.{m}.bias"], rows)
        assert torch.equal(weights[f"blocks.{b}.proj.weight"], rows[None, :].expand(12, 12))
        assert weights[f"blocks.{b}.proj.bias"].all() and weights[f"blocks.{b}.fc2.bias"].all()
        expected_fc1 = neurons[:, None].expand(48, 12).clone()
        if b == 0:
            expected_fc1[0, 0] = False
        assert torch.equal(weights[f"blocks.{b}.fc1.weight"], expected_fc1)
        assert torch.equal(weights[f"blocks.{b}.fc1.bias"], neurons)
        assert torch.equal(weights[f"blocks.{b}.fc2.weight"], neurons[None, :].expand(12, 48))
    for name in ("embed.weight", "pos.weight", "out.weight", "out.bias"):
        assert weights[name].all()
    # the masked model computes the network without the dropped units
    masks.apply_mask(model, weights)
    x = torch.randn(2, 6, 12, generator=torch.Generator().manual_seed(2))
    block = model.blocks[1]
    dropped = [h for h in range(3) if not keep["blocks.1.heads"][h]]
    with torch.no_grad():
        for h in dropped:  # even with its q, k, v back, a dropped head adds nothing: proj's columns are zero
            block.v.weight[h * 4:(h + 1) * 4] = 1.0
            block.v.bias[h * 4:(h + 1) * 4] = 1.0
        out = block(x)
        for h in dropped:
            block.v.weight[h * 4:(h + 1) * 4] = 0.0
            block.v.bias[h * 4:(h + 1) * 4] = 0.0
        assert torch.allclose(block(x), out, atol=1e-6)


def test_excluded_layers_keep_their_units_and_bad_units_are_refused():
    model = encoder(seed=7)
    mask = unit_mask(model, 0.3, exclude=["blocks.0.fc2"])
    assert mask["blocks.0.fc1.weight"].all() and "blocks.0.fc2.weight" not in mask  # block 0's neurons unranked
    assert not mask["blocks.1.fc1.weight"].all() and not mask["blocks.0.q.weight"].all()
    ranked = ranked_units(model, mask)
    assert {(u.layer, u.kind) for u in ranked} == {("blocks.0", "head"), ("blocks.1", "head"),
                                                     ("blocks.1", "neuron")}
    full = masks.full_mask(model)
    with pytest.raises(LTHError, match="no head or neuron of model Encoder"):
        EarlyBird(model, {"out.weight": full["out.weight"]}, density=0.5, every=1, structured=True)

    class Bad(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(3, 2)

        def units(self):
            return [types.SimpleNamespace(layer="", kind="head", index=0, slices=(("fc.weight", 0, 1, 3),))]

    with pytest.raises(LTHError, match="names slice 1:3 of dimension 0 of 'fc.weight'"):
        ranked_units(Bad(), ["fc.weight"])


def test_detector_fires_on_unit_masks_that_stop_changing():
    model = encoder(seed=8)
    full = masks.full_mask(model)
    # density 0.3: 2 of 6 heads, so one per block (the floor); 29 of 96 neurons
    eb = EarlyBird(model, full, density=0.3, every=10, window=3, threshold=0.01, structured=True)
    units = model.units()
    drawn = []
    b = model.blocks[0]
    for step in range(8):
        if step < 3:  # make head `step` of block 0 its largest, a different one each time, then leave it
            with torch.no_grad():
                for m in (b.q, b.k, b.v, b.proj):
                    m.weight.narrow(0 if m is not b.proj else 1, 4 * step, 4).mul_(100.0 ** (step + 1))
        eb(10 * (step + 1), None, None)
        drawn.append(eb.draw()[0])
    assert [d["blocks.0.heads"].tolist() for d in drawn[:3]] == [[True, False, False], [False, True, False],
                                                                 [False, False, True]]
    assert all(torch.equal(d[k], drawn[2][k]) for d in drawn[3:] for k in d)
    # distances over units: a head swapped in one block moves 2 of the 2 * (3 + 48) entries
    moved = 2 / len(units)
    assert hamming(drawn[1], drawn[0]) == moved
    assert eb.distances == [(20, moved), (30, moved), (40, moved), (50, moved), (60, 0.0), (70, 0.0), (80, 0.0)]
    assert eb.fired_at == 60  # the masks of 30 (head 2 kept), 40, 50, 60 agree: a full window of 3 at 0
    assert all(torch.equal(eb.ticket[k], v) for k, v in weights_of_units(drawn[5], units, full).items())


def test_structured_observer_on_a_tiny_grammar_run_zeroes_whole_heads_and_neurons():
    from lth.data.grammar import facts, make_grammar
    from lth.training.loop import Segment, train

    options = {"seq_len": 12, "n_train": 300, "n_test": 100}
    d = make_grammar("grammar", None, False, options)
    splits = types.SimpleNamespace(x_train=d["x_train"], y_train=d["y_train"], x_val=d["x_test"][:0],
                                   y_val=d["y_test"][:0], x_test=d["x_test"], y_test=d["y_test"])
    classes = facts(options)["num_classes"]
    model = build_model("encoder", tuple(d["x_train"].shape[1:]), classes, seed=0, dim=16, heads=4, layers=2)
    mask = masks.full_mask(model)
    eb = EarlyBird(model, mask, density=0.25, every=5, window=2, threshold=0.1, structured=True)
    drawn = []

    def observe(t, x, y):
        eb(t, x, y)
        if eb.last_at == t:
            drawn.append(t)

    training = {"optimizer": "adam", "weight_decay": 0.0, "lr": 3e-3, "batch_size": 50, "eval_every": 10**6,
                "checkpoint_every": 10**6}
    train(model, mask, splits, training, Segment(0, 40, lambda t: 3e-3, data_seed=0), observe=observe)
    assert drawn == [5, 10, 15, 20, 25, 30, 35]
    assert [t for t, _ in eb.distances] == drawn[1:]
    ticket = eb.ticket if eb.ticket is not None else eb.last
    assert ticket.keys() == mask.keys()
    for b in range(2):
        q = ticket[f"blocks.{b}.q.weight"].view(4, 4, 16)
        heads = q.flatten(1).any(1)
        assert torch.equal(q.flatten(1).all(1), heads)  # whole heads
        assert int(heads.sum()) == 1  # 25 % of 8 heads is 2, at least one per block: one each
        for m in ("k", "v"):
            assert torch.equal(ticket[f"blocks.{b}.{m}.weight"], ticket[f"blocks.{b}.q.weight"])
        assert torch.equal(ticket[f"blocks.{b}.proj.weight"], heads.repeat_interleave(4)[None, :].expand(16, 16))
        fc1 = ticket[f"blocks.{b}.fc1.weight"]
        neurons = fc1.any(1)
        assert torch.equal(fc1.all(1), neurons)
        assert torch.equal(ticket[f"blocks.{b}.fc2.weight"], neurons[None, :].expand(16, 64))
    heads = sum(int(ticket[f"blocks.{b}.q.weight"].view(4, 4, 16).any(2).any(1).sum()) for b in range(2))
    neurons = sum(int(ticket[f"blocks.{b}.fc1.weight"].any(1).sum()) for b in range(2))
    assert heads == round(0.25 * 8) and neurons == round(0.25 * 128)
    assert ticket["embed.weight"].all() and ticket["out.weight"].all()


GRAMMAR = {"dataset": {"name": "grammar", "val_size": 50, "options": {"seq_len": 12, "n_train": 300, "n_test": 100}},
           "model": {"name": "encoder", "options": {"dim": 16, "heads": 4, "layers": 1}},
           "variants": ["ticket"], "pruning": {"strategy": "global", "global_rate": 0.5, "levels": 2},
           "analyses": ["earlybird"], "training": {"iterations": 30, "eval_every": 15, "batch_size": 50},
           "earlybird": {"level": 2, "every": 5, "window": 2, "threshold": 0.2, "structured": True}}


def test_the_earlybird_check_accepts_a_structured_encoder_and_refuses_a_model_without_units():
    from lth.plan import plan_of

    from conftest import tiny

    plan = plan_of("x", tiny(GRAMMAR), "/tmp/nowhere")
    assert plan.settings.earlybird.structured and plan.settings.model.name == "encoder"
    with pytest.raises(LTHError, match="earlybird.structured: model 'mlp1d' has neither attention heads"):
        plan_of("x", tiny({k: v for k, v in GRAMMAR.items() if k not in ("dataset", "model")}), "/tmp/nowhere")


def test_the_structured_earlybird_analysis_runs_on_the_encoder(tmp_path):
    import csv

    from lth import analyses
    from lth.data.fetch import fetch
    from lth.jobs import Context
    from lth.plan import plan_of
    from lth.plan.layout import RunKey
    from lth.store import artifacts

    from conftest import tiny

    fetch("grammar", tmp_path / "data", options=GRAMMAR["dataset"]["options"])
    plan = plan_of("eb", tiny(GRAMMAR), tmp_path / "eb", {"data_dir": str(tmp_path / "data")})
    plan.write()
    ctx = Context(plan, torch.device("cpu"))
    for job in plan.jobs() + plan.probes("earlybird"):
        ctx.run(job)
    eb = artifacts.load_tensors(plan.layout.mask(RunKey(0, 2, "eb-init", analysis="earlybird")))
    heads = eb["blocks.0.q.weight"].view(4, 4, 16).flatten(1)
    assert torch.equal(heads.all(1), heads.any(1)) and int(heads.any(1).sum()) == 1  # 25 % of 4 heads
    neurons = eb["blocks.0.fc1.weight"]
    assert torch.equal(neurons.all(1), neurons.any(1)) and int(neurons.any(1).sum()) == 16  # 25 % of 64
    rows = list(csv.DictReader(analyses.run(plan, "earlybird").open()))
    assert [r["run"] for r in rows] == ["dense", "imp ticket", "eb-init", "eb-found"]
