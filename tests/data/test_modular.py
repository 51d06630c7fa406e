"""Modular arithmetic for grokking (Power et al. 2022; Minegishi et al. 2023): the dataset, the two
models, and a reduced grokking run."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lth.core.errors import LTHError
from lth.data.modular_arithmetic import DEFAULTS, check_options, facts, make_modular
from lth.models.modular import ModMLP, ModTransformer
from lth.pruning import masks


def data(**options):
    return make_modular("modular", None, False, options)


def pairs(x, p):
    """(a, b) per row of one-hot inputs, as a list of tuples."""
    return list(zip(x[:, :p].argmax(1).tolist(), x[:, p:].argmax(1).tolist()))


def build(cls, p, seed=0, **options):
    with torch.random.fork_rng(devices=[]):
        model = cls((2 * p,), p, **options)
    model.init_parameters(torch.Generator().manual_seed(seed))
    return model


def accuracy(model, x, y):
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


# ------------------------------------------------------------------------------------------ dataset


@pytest.mark.parametrize("p, fraction", [(23, 0.4), (5, 0.5), (7, 0.3)])
def test_every_pair_once_disjoint_exact_sizes(p, fraction):
    d = data(p=p, train_fraction=fraction)
    train, test = pairs(d["x_train"], p), pairs(d["x_test"], p)
    assert len(train) == round(fraction * p * p) and len(test) == p * p - len(train)
    assert not set(train) & set(test)
    assert sorted(train + test) == [(a, b) for a in range(p) for b in range(p)]
    for split in ("train", "test"):
        x, y = d[f"x_{split}"], d[f"y_{split}"]
        assert x.dtype == torch.float32 and x.shape[1] == 2 * p and y.dtype == torch.int64
        assert torch.equal(x[:, :p].sum(1), torch.ones(len(x))) and torch.equal(x[:, p:].sum(1), torch.ones(len(x)))
        assert set(x.unique().tolist()) == {0.0, 1.0}


@pytest.mark.parametrize("op, fn", [("+", lambda a, b, p: (a + b) % p), ("-", lambda a, b, p: (a - b) % p)])
def test_labels(op, fn):
    p = 11
    d = data(p=p, op=op)
    for split in ("train", "test"):
        want = [fn(a, b, p) for a, b in pairs(d[f"x_{split}"], p)]
        assert d[f"y_{split}"].tolist() == want
    assert min(d["y_train"].min(), d["y_test"].min()) >= 0


@pytest.mark.parametrize("options", [{}, {"p": 31, "train_fraction": 0.5}, {"p": 5, "op": "-"}])
def test_facts_match_the_data(options):
    d, f = data(**options), facts(options)
    assert tuple(d["x_train"].shape) == (f["train_size"], *f["input_shape"])
    assert f["num_classes"] == {**DEFAULTS, **options}["p"]


def test_torch_free_at_import():
    import subprocess
    import sys

    code = ("import sys, lth.data.modular_arithmetic as m; m.check_options({'p': 31}); m.facts({}); "
            "print('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_defaults_and_determinism_per_seed():
    d = data()
    assert d["x_train"].shape == (round(0.4 * 23 * 23), 46) and DEFAULTS == {"p": 23, "op": "+", "train_fraction": 0.4,
                                                                              "seed": 0}
    again, other = data(seed=0), data(seed=1)
    assert all(torch.equal(d[k], again[k]) for k in d)
    assert not torch.equal(d["x_train"], other["x_train"])
    assert torch.equal(data(op="-")["x_train"], d["x_train"])  # the split depends on p, fraction and seed only


@pytest.mark.parametrize("options, message", [
    ({"p": 21}, "modular: p must be a prime >= 3, got 21"),
    ({"p": 2}, "p must be a prime >= 3, got 2"),
    ({"p": 1}, "p must be a prime >= 3, got 1"),
    ({"p": 23.0}, "p must be a prime >= 3, got 23.0"),
    ({"p": True}, "p must be a prime >= 3, got True"),
    ({"op": "*"}, "op must be one of '+', '-', got '*'"),
    ({"train_fraction": 0}, "train fraction of 0 or 1"),
    ({"train_fraction": 1}, "train fraction of 0 or 1"),
    ({"train_fraction": 1.5}, "train_fraction must be in (0, 1)"),
    ({"train_fraction": "0.4"}, "train_fraction must be in (0, 1)"),
    ({"train_fraction": 0.0001}, "gives 0 of the 529 pairs"),
    ({"train_fraction": 0.9999}, "gives 529 of the 529 pairs"),
    ({"seed": 1.5}, "seed must be an integer, got 1.5"),
    ({"size": 3}, "unknown option(s) ['size']"),
])
def test_bad_options_refused_in_one_line(options, message):
    with pytest.raises(LTHError) as e:
        check_options(options)
    assert message in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(LTHError, match="dataset 'modular'"):
        data(**options)


# ------------------------------------------------------------------------------------------- models


@pytest.mark.parametrize("cls, kinds", [
    (ModMLP, {"embed.weight": "fc", "hidden.weight": "fc", "out.weight": "output"}),
    (ModTransformer, {"embed.weight": "fc", "pos.weight": "fc", **{f"blocks.0.{n}.weight": "fc" for n in (
        "q", "k", "v", "proj", "fc1", "fc2")}, "out.weight": "output"}),
])
def test_forward_and_prunable_layers(cls, kinds):
    model = build(cls, 23)
    x = data()["x_train"][:8]
    assert model(x).shape == (8, 23)
    assert masks.layer_kinds(model) == kinds
    for m in model.modules():  # the repository's convention: only Linear layers carry parameters here
        if list(m.parameters(recurse=False)):
            assert isinstance(m, nn.Linear), type(m)


@pytest.mark.parametrize("cls", [ModMLP, ModTransformer])
def test_init_deterministic_per_seed(cls):
    a, b, c = (build(cls, 23, seed=s).state_dict() for s in (1, 1, 2))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert all(not torch.equal(a[k], c[k]) for k in a if k.endswith("weight"))
    assert all(not v.any() for k, v in a.items() if k.endswith("bias"))


def test_init_is_normal_over_fan_in():
    mlp = build(ModMLP, 23, embed=128, hidden=256)
    for m in (mlp.embed, mlp.hidden, mlp.out):
        assert m.weight.std().item() == pytest.approx(1 / math.sqrt(m.in_features), rel=0.1)
        assert m.weight.mean().abs().item() < 0.1 / math.sqrt(m.in_features)
    tf = build(ModTransformer, 23)
    assert tf.blocks[0].q.weight.std().item() == pytest.approx(1 / 8, rel=0.1)
    assert tf.pos.weight.std().item() == pytest.approx(1 / math.sqrt(23), rel=0.5)  # 128 draws


def test_mlp_embedding_shared_and_ordered():
    model = build(ModMLP, 5, embed=4, hidden=6)
    x = data(p=5)["x_train"][:10]
    e_a, e_b = x[:, :5] @ model.embed.weight.T, x[:, 5:] @ model.embed.weight.T
    assert torch.allclose(model(x), model.out(torch.relu(model.hidden(torch.cat([e_a, e_b], 1)))))
    swapped = torch.cat([x[:, 5:], x[:, :5]], 1)
    assert not torch.allclose(model(x), model(swapped))  # (a, b) and (b, a) differ: subtraction is learnable


def test_transformer_reads_both_tokens_and_refuses_bad_heads():
    model = build(ModTransformer, 7, dim=8, heads=2, layers=2)
    x = data(p=7)["x_train"]
    assert len(model.blocks) == 2
    a_only = x.clone()
    a_only[:, :7] = torch.roll(x[:, :7], 1, dims=1)  # change a, keep b
    assert not torch.allclose(model(x), model(a_only))
    with pytest.raises(LTHError, match="dim=10 is not a multiple of heads=4"):
        ModTransformer((14,), 7, dim=10, heads=4)


@pytest.mark.parametrize("cls", [ModMLP, ModTransformer])
@pytest.mark.parametrize("shape", [(23,), (2, 23), (0,)])
def test_refuse_input_shapes(cls, shape):
    with pytest.raises(LTHError, match=r"cannot take input_shape .*\(2p,\)"):
        cls(shape, 23)


def test_pruning_the_attention_projections(one_thread):
    model = build(ModTransformer, 11, dim=16, heads=2)
    mask = masks.full_mask(model)
    for name in ("blocks.0.q.weight", "blocks.0.k.weight", "blocks.0.v.weight", "blocks.0.proj.weight"):
        mask[name][:, ::2] = False
    masks.apply_mask(model, mask)
    enforce = masks.MaskEnforcer(model, mask)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=1.0)
    d = data(p=11)
    for _ in range(3):
        opt.zero_grad()
        F.cross_entropy(model(d["x_train"]), d["y_train"]).backward()
        opt.step()
        enforce()
    params = dict(model.named_parameters())
    for name, m in mask.items():
        assert not params[name][~m].any(), name
    assert 0 < masks.density(mask) < 1


def test_the_dataset_and_its_models_are_registered():
    from lth.core import parts
    from lth.plan.facts import dataset_facts

    assert "modular" in parts.DATASETS and {"mod_mlp", "mod_transformer"} <= set(parts.MODELS)

    assert parts.DATASETS["modular"].options == DEFAULTS
    for options in ({}, {"p": 31, "train_fraction": 0.5}):
        assert dataset_facts("modular", options) == facts(options)
    for name, shape in (("mod_mlp", (46,)), ("mod_transformer", (46,))):
        from lth.models import build_model

        model = build_model(name, shape, 23, seed=0)
        assert sorted(set(masks.layer_kinds(model).values())) == sorted(parts.MODELS[name].kinds)


# ------------------------------------------------------------------------------------------ grokking


def train(model, d, lr, iterations, every=50, stop_at_test=None):
    """Full-batch AdamW (betas 0.9, 0.98, weight decay 1, as Power et al. and Minegishi et al.).

    Returns the first iteration with 100 % train accuracy, the test accuracy then, and the first
    iteration with test accuracy >= stop_at_test (None if not reached)."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1.0, betas=(0.9, 0.98))
    fit = fit_test = grok = None
    for it in range(1, iterations + 1):
        opt.zero_grad()
        F.cross_entropy(model(d["x_train"]), d["y_train"]).backward()
        opt.step()
        if it % every == 0:
            if fit is None and accuracy(model, d["x_train"], d["y_train"]) == 1.0:
                fit, fit_test = it, accuracy(model, d["x_test"], d["y_test"])
                if stop_at_test is None:
                    break
            if fit is not None and stop_at_test and accuracy(model, d["x_test"], d["y_test"]) >= stop_at_test:
                grok = it
                break
    return fit, fit_test, grok


@pytest.mark.parametrize("op", ["+", "-"])
def test_reduced_grokking_run_fits_the_training_set(op, one_thread):
    # The CI-sized preset: p=23, ModMLP(32, 128), full batch: 100 % training accuracy in a few hundred steps.
    d = data(p=23, op=op, train_fraction=0.5)
    fit, fit_test, _ = train(build(ModMLP, 23, embed=32, hidden=128), d, lr=3e-3, iterations=1000)
    assert fit is not None and fit <= 1000
    assert fit_test < 0.5  # memorised, not (yet) generalised


def test_grokking_generalises_long_after_fitting(one_thread):
    # p=31, half the table for training, lr 5e-3: train 100 % at 100 steps, test >= 95 % at 2100 (seed 0; ~3 s).
    d = data(p=31, train_fraction=0.5)
    fit, fit_test, grok = train(build(ModMLP, 31, embed=32, hidden=128), d, lr=5e-3, iterations=6000,
                                stop_at_test=0.95)
    assert fit is not None and fit_test < 0.5
    assert grok is not None and grok >= 5 * fit
