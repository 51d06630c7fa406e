"""Structured pruning against references written here: N:M masks (lth.pruning.select.keep_n_of_m) by a hand
loop over groups, channel masks (lth.pruning.channels) against physically smaller networks built by hand
from the kept rows and columns, and bad input refused in one line each, before training."""

import copy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lth.core.errors import LTHError
from lth.models import build_model
from lth.plan import plan_of
from lth.plan.config import load
from lth.plan.layout import RunKey
from lth.pruning import ScoreContext, channels, compute_scores, masks, prune, prune_to
from lth.pruning.select import keep_n_of_m
from lth.store import artifacts

from conftest import tiny

SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


# --- N:M -----------------------------------------------------------------------------------------------

def n_of_m_by_hand(w: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """The reference: for each row, for each run of m consecutive inputs, keep the n largest |w|."""
    rows = w.reshape(w.shape[0], -1)
    keep = torch.zeros(rows.shape, dtype=torch.bool)
    for r in range(rows.shape[0]):
        for start in range(0, rows.shape[1], m):
            group = [(abs(float(rows[r, start + j])), start + j) for j in range(m)]
            for _, j in sorted(group, reverse=True)[:n]:
                keep[r, j] = True
    return keep.reshape(w.shape)


@pytest.mark.parametrize("n, m, shape", [(2, 4, (6, 16)), (1, 4, (5, 8)), (3, 8, (4, 2, 2, 4)), (1, 2, (3, 6))])
def test_n_of_m_keeps_exactly_n_of_every_group_the_n_largest(n, m, shape):
    g = torch.Generator().manual_seed(n * 10 + m)
    w = torch.randn(shape, generator=g)
    mask = {"w": torch.ones(shape, dtype=torch.bool)}
    got = keep_n_of_m(compute_scores("magnitude", {"w": w}, mask), mask, n, m)["w"]
    assert torch.equal(got, n_of_m_by_hand(w, n, m))
    assert (got.reshape(-1, m).sum(1) == n).all()  # exactly n per group: the density is n/m
    assert int(got.sum()) * m == n * w.numel()


def test_a_conv_groups_its_flattened_in_channels_x_kh_x_kw():
    g = torch.Generator().manual_seed(3)
    w = torch.randn(4, 2, 3, 3, generator=g)  # rows of 18: groups of 2 run across kernel positions and channels
    mask = {"c.weight": torch.ones(w.shape, dtype=torch.bool)}
    got = keep_n_of_m({"c.weight": w.abs()}, mask, 1, 2)["c.weight"]
    assert torch.equal(got, n_of_m_by_hand(w, 1, 2))
    with pytest.raises(LTHError, match=r"M = 4 does not divide the 18 inputs per row of 'c.weight'"):
        keep_n_of_m({"c.weight": w.abs()}, mask, 1, 4)


SWEEP = {"kind": "oneshot", "oneshot": {"densities": [0.5, 0.25], "controls": [], "methods": {
    "magnitude": {}, "nm24": {"n_of_m": [2, 4]}, "nm14": {"n_of_m": [1, 4], "at": "init"}}}}


def test_an_n_of_m_method_runs_at_its_density_alone_and_its_folder_says_n_of_m():
    p = plan_of("exp", tiny(SWEEP), "/tmp/nowhere")
    levels = [(j.level, j.chain) for j in p.jobs() if j.stage == "level"]
    assert levels == [(5000, "magnitude"), (5000, "nm24"), (2500, "magnitude"), (2500, "nm14")]
    assert p.method_levels("nm24") == [5000] and p.method_levels("magnitude") == [5000, 2500]
    plain = plan_of("exp", tiny({**SWEEP, "oneshot": {**SWEEP["oneshot"], "methods": {"nm24": {}}}}), "/tmp/x")
    assert p.layout.fingerprints["method:nm24"] != plain.layout.fingerprints["method:nm24"]
    # a method without n_of_m keeps its folder (the key is in its fingerprint only when set)
    before = plan_of("exp", tiny({**SWEEP, "oneshot": {**SWEEP["oneshot"], "methods": {"magnitude": {}}}}), "/tmp/x")
    assert p.layout.fingerprints["method:magnitude"] == before.layout.fingerprints["method:magnitude"]


def test_an_n_of_m_sweep_trains_masks_that_are_n_of_m_of_the_weights_it_scores(context):
    ctx = context(tiny({**SWEEP, "training": {"iterations": 20, "eval_every": 10}}))
    for job in ctx.plan.jobs():
        ctx.run(job)
    L = ctx.plan.layout
    final, theta0 = artifacts.load_tensors(L.final(RunKey(0, 0, "dense"))), artifacts.load_tensors(L.init(0))
    for variant, level, n, m, scored in (("nm24", 5000, 2, 4, final), ("nm14", 2500, 1, 4, theta0)):
        mask = artifacts.load_tensors(L.mask(RunKey(0, level, variant)))
        for name, got in mask.items():
            assert torch.equal(got, n_of_m_by_hand(scored[name], n, m)), (variant, name)
        trained = artifacts.load_tensors(L.final(RunKey(0, level, variant)))
        assert all((trained[k][~mask[k]] == 0).all() for k in mask)
        assert masks.density(mask) == n / m
        assert not L.run_dir(RunKey(0, 2500 if level == 5000 else 5000, variant)).exists()


def config_error(experiment) -> str:
    with pytest.raises(LTHError) as e:
        load({"experiments": {"x": experiment}}, SCHEMA, "config/mine.yaml", cwd="/tmp")
    message = str(e.value)
    assert message.startswith("config/mine.yaml: experiments.x: ") and "\n" not in message, message
    return message


def sweep_of(methods, densities=(0.5,), **changes):
    return tiny({"kind": "oneshot", "oneshot": {"densities": list(densities), "methods": methods}, **changes})


@pytest.mark.parametrize("experiment, expected", [
    (sweep_of({"nm": {"n_of_m": [4, 4]}}), "oneshot.methods.nm.n_of_m: [4, 4]: N must be below M"),
    (sweep_of({"nm": {"n_of_m": [1, 4]}}), "oneshot.methods.nm.n_of_m: [1, 4]: the method runs at density 0.25 only, "
                                           "which is not one of oneshot.densities [0.5]"),
    (sweep_of({"nm": {"n_of_m": [2, 4], "at": "previous"}}), "oneshot.methods.nm.n_of_m: [2, 4]: an N:M method runs"),
    (sweep_of({"nm": {"n_of_m": [2, 4], "distribution": "erk"}}), "distribution 'erk' would contradict it"),
    (sweep_of({"nm": {"n_of_m": [2, 4], "score": "synflow", "rounds": 100}}), "rounds: 100 would leave groups"),
    (sweep_of({"nm": {"n_of_m": [2, 4], "train": "iht", "distribution": "uniform"}}), "need train: masked"),
    (sweep_of({"nm": {"n_of_m": [2, 4]}}, pruning={"biases": True}), "biases have no rows of inputs"),
    (sweep_of({"nm": {"n_of_m": [1, 32]}}, densities=(0.03125,)), "is not a multiple of 0.0001"),
    (sweep_of({"nm": {"n_of_m": [2, 4]}}, model={"name": "mlp1d", "options": {"hidden": 30}}),
     "oneshot.methods.nm.n_of_m: [2, 4]: M = 4 does not divide layer 'linear2' (30 inputs per row"),
    (sweep_of({"nm": {"n_of_m": [2, 4]}}, model={"name": "conv2", "options": {}},
              dataset={"name": "digits", "val_size": 200}),
     "M = 4 does not divide layer 'features.0' (9 inputs per row, shape (64, 1, 3, 3)): exclude it"),
    (sweep_of({"c": {"distribution": "channels"}}, model={"name": "linear", "options": {}}),
     "oneshot.methods.c.distribution: channels: model 'linear' has no layer whose channels can be removed: 'linear' "
     "(the output layer: its outputs are never removed)"),
    (tiny({"pruning": {"strategy": "channels"}, "model": {"name": "linear", "options": {}}}),
     "pruning.strategy: channels: model 'linear' has no layer whose channels can be removed"),
    (sweep_of({"c": {"distribution": "channels"}}, densities=(0.5, 0.001)),
     "oneshot.methods.c.distribution: channels: oneshot.densities [0.001] are below 0.0"),
    (sweep_of({"c": {"distribution": "channels"}}, model={"name": "mod_transformer", "options": {"dim": 8, "heads": 2,
                                                                                                "layers": 1}},
              dataset={"name": "modular", "val_size": 10, "options": {"p": 7}}, training={"batch_size": 5}),
     "model 'mod_transformer' has no layer whose channels can be removed: 'embed' ('embed' is a Linear applied to a "
     "3-d tensor (a sequence))"),
])
def test_bad_structured_settings_are_one_line_before_training(experiment, expected):
    assert expected in config_error(experiment)


def test_structured_settings_that_fit_pass_the_check():
    ok = sweep_of({"nm": {"n_of_m": [2, 4]}, "c": {"distribution": "channels"}, "m": {}}, densities=(0.5, 0.1))
    load({"experiments": {"x": ok, "y": tiny({"pruning": {"strategy": "channels", "channel_rate": 0.3}})}},
         SCHEMA, "config/mine.yaml", cwd="/tmp")


# --- channels ------------------------------------------------------------------------------------------

def _randomise(model: nn.Module, seed: int) -> nn.Module:
    """Every bias and BatchNorm parameter and statistic random, so a removed channel still emits a constant."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)) and m.bias is not None:
                m.bias.copy_(torch.randn(m.bias.shape, generator=g))
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g))
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return model.eval()


def _pruned(name, shape, density, seed=0, **options):
    """(model, its mask pruned to `density` by channels on |w|, the masked copy)."""
    model = _randomise(build_model(name, shape, 10, seed=seed, **options), seed)
    mask = masks.full_mask(model)
    weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
    method = {"score": "magnitude", "distribution": "channels", "min_per_layer": 1, "rounds": 1}
    new = prune_to(method, density, weights, mask, lambda m: ScoreContext(model=lambda: model, input_shape=shape))
    masked = copy.deepcopy(model)
    masks.apply_mask(masked, new)
    return model, new, masked


def kept_rows(w: torch.Tensor, k: int) -> torch.Tensor:
    """The reference ranking (Li et al. 2017): the k output channels of largest L1 norm, by a plain sort."""
    norms = [(float(w[c].detach().abs().sum()), c) for c in range(w.shape[0])]
    return torch.tensor(sorted(c for _, c in sorted(norms, reverse=True)[:k]))


def rows_of(mask: torch.Tensor) -> torch.Tensor:
    return mask.reshape(mask.shape[0], -1).any(1).nonzero().squeeze(1)


def test_lenet_loses_whole_neurons_by_l1_norm_and_equals_a_smaller_lenet_built_by_hand():
    model, mask, masked = _pruned("lenet_300_100", (40,), 0.3)
    r1, r2 = rows_of(mask["fc1.weight"]), rows_of(mask["fc2.weight"])
    assert 0 < len(r1) < 300 and 0 < len(r2) < 100
    assert torch.equal(r1, kept_rows(model.fc1.weight, len(r1)))
    assert torch.equal(r2, kept_rows(model.fc2.weight, len(r2)))
    # whole rows and the matching columns: nothing else is pruned
    assert int(mask["fc1.weight"].sum()) == len(r1) * 40
    assert int(mask["fc2.weight"].sum()) == len(r2) * len(r1) and mask["fc2.weight"][r2][:, r1].all()
    assert int(mask["fc3.weight"].sum()) == 10 * len(r2)  # the output layer keeps every output
    assert abs(masks.density(mask) - 0.3) < 0.01
    small = nn.Sequential(nn.Linear(40, len(r1)), nn.ReLU(), nn.Linear(len(r1), len(r2)), nn.ReLU(),
                          nn.Linear(len(r2), 10))
    with torch.no_grad():
        small[0].weight.copy_(model.fc1.weight[r1]), small[0].bias.copy_(model.fc1.bias[r1])
        small[2].weight.copy_(model.fc2.weight[r2][:, r1]), small[2].bias.copy_(model.fc2.bias[r2])
        small[4].weight.copy_(model.fc3.weight[:, r2]), small[4].bias.copy_(model.fc3.bias)
    x = torch.randn(64, 40, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(masked(x), small(x), rtol=1e-5, atol=1e-5)


def test_conv2_loses_filters_and_the_first_linear_their_spatial_inputs_as_a_smaller_conv2_would():
    model, mask, masked = _pruned("conv2", (1, 8, 8), 0.4)
    c1, c2 = rows_of(mask["features.0.weight"]), rows_of(mask["features.2.weight"])
    f1, f2 = rows_of(mask["fc1.weight"]), rows_of(mask["fc2.weight"])
    assert torch.equal(c1, kept_rows(model.features[0].weight, len(c1)))
    assert torch.equal(c2, kept_rows(model.features[2].weight, len(c2)))
    hw = 16  # 8x8 after one 2x2 pool: conv channel c is fc1's inputs c*16 ... c*16 + 15
    cols = (c2[:, None] * hw + torch.arange(hw)).reshape(-1)

    def small(x):
        x = F.relu(F.conv2d(x, model.features[0].weight[c1], model.features[0].bias[c1], padding=1))
        x = F.relu(F.conv2d(x, model.features[2].weight[c2][:, c1], model.features[2].bias[c2], padding=1))
        x = F.max_pool2d(x, 2).flatten(1)
        x = F.relu(F.linear(x, model.fc1.weight[f1][:, cols], model.fc1.bias[f1]))
        x = F.relu(F.linear(x, model.fc2.weight[f2][:, f1], model.fc2.bias[f2]))
        return F.linear(x, model.fc3.weight[:, f2], model.fc3.bias)

    x = torch.randn(16, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(masked(x), small(x), rtol=1e-4, atol=1e-4)
    assert int(mask["fc1.weight"].sum()) == len(f1) * len(cols)


def test_mlp1d_s_residual_stream_loses_a_neuron_from_every_layer_it_joins():
    model, mask, masked = _pruned("mlp1d", (40,), 0.5, hidden=24)
    r = rows_of(mask["linear1.weight"])
    assert torch.equal(r, rows_of(mask["linear2.weight"]))  # one stream: the same neurons in both writers
    norms = model.linear1.weight.abs().sum(1) + model.linear2.weight.abs().sum(1)  # the group's L1 norm
    assert set(r.tolist()) == set(norms.argsort(descending=True)[:len(r)].tolist())

    def small(x):
        h = F.relu(F.linear(x, model.linear1.weight[r], model.linear1.bias[r]))
        h = h + F.relu(F.linear(h, model.linear2.weight[r][:, r], model.linear2.bias[r]))
        return F.linear(h, model.linear3.weight[:, r], model.linear3.bias)

    x = torch.randn(32, 40, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.testing.assert_close(masked(x), small(x), rtol=1e-5, atol=1e-5)


def test_resnet20_prunes_inner_block_channels_and_each_stage_s_stream_as_one_group():
    model, mask, masked = _pruned("resnet20", (3, 8, 8), 0.4, width=4)
    spaces = channels.structure(model, (3, 8, 8), list(mask))
    streams = [s for s in spaces if len(s.writers) > 1]
    assert sorted(sorted(s.writers) for s in streams)[0] == ["blocks.0.conv2", "blocks.1.conv2", "blocks.2.conv2",
                                                              "conv"]
    assert len(streams) == 3 and len(spaces) == 12  # 3 streams and 9 blocks' inner channels
    keep = {}  # module -> kept output channels, read off the mask
    for s in spaces:
        rows = rows_of(mask[f"{s.writers[0]}.weight"])
        for w in s.writers:
            assert torch.equal(rows_of(mask[f"{w}.weight"]), rows)
            keep[w] = rows
    bn = {n: m for n, m in model.named_modules()}

    def conv_bn(x, conv, norm, rows_in, rows_out, stride=1, relu=True):
        c = bn[conv]
        y = F.conv2d(x, c.weight[rows_out][:, rows_in], stride=stride, padding=c.padding)
        b = bn[norm]
        y = F.batch_norm(y, b.running_mean[rows_out], b.running_var[rows_out], b.weight[rows_out], b.bias[rows_out],
                         False, 0.0, b.eps)
        return F.relu(y) if relu else y

    def small(x):
        stream = keep["conv"]
        h = conv_bn(x, "conv", "bn", torch.arange(3), stream)
        for i in range(9):
            p = f"blocks.{i}"
            out_stream = keep[f"{p}.conv2"]
            stride = 2 if i in (3, 6) else 1
            inner = conv_bn(h, f"{p}.conv1", f"{p}.bn1", stream, keep[f"{p}.conv1"], stride)
            inner = conv_bn(inner, f"{p}.conv2", f"{p}.bn2", keep[f"{p}.conv1"], out_stream, relu=False)
            short = conv_bn(h, f"{p}.shortcut.0", f"{p}.shortcut.1", stream, out_stream, 2, relu=False) \
                if i in (3, 6) else h
            h, stream = F.relu(inner + short), out_stream
        return F.linear(h.mean(dim=(2, 3)), model.fc.weight[:, stream], model.fc.bias)

    x = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        torch.testing.assert_close(masked(x), small(x), rtol=1e-4, atol=1e-4)
    assert any(len(keep[f"blocks.{i}.conv1"]) < 4 for i in range(3)) and len(keep["conv"]) < 4


def test_an_excluded_layer_keeps_its_channels_and_so_does_the_stream_it_writes():
    model = build_model("mlp1d", (40,), 10, seed=0, hidden=16)
    names = list(masks.full_mask(model, exclude=["linear2"]))
    with pytest.raises(LTHError, match=r"'linear1' \('linear2' is not pruned\)"):
        channels.structure(model, (40,), names)
    lenet = build_model("lenet_300_100", (40,), 10, seed=0)
    spaces = channels.structure(lenet, (40,), list(masks.full_mask(lenet, exclude=["fc3"])))
    assert [s.writers for s in spaces] == [["fc1"]]  # fc2's neurons are read by the excluded fc3


def test_imp_s_channel_strategy_removes_its_rate_of_each_layer_s_alive_channels_per_round():
    model = _randomise(build_model("lenet_300_100", (40,), 10, seed=0), 0)
    weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
    mask, context = masks.full_mask(model), ScoreContext(model=lambda: model, input_shape=(40,))
    pruning = {"score": "magnitude", "strategy": "channels", "channel_rate": 0.2}
    kinds = masks.layer_kinds(model)
    one = prune(pruning, weights, mask, kinds, context)
    two = prune(pruning, weights, one, kinds, context)
    assert [len(rows_of(one[n])) for n in ("fc1.weight", "fc2.weight")] == [240, 80]
    assert [len(rows_of(two[n])) for n in ("fc1.weight", "fc2.weight")] == [192, 64]
    assert all(not (two[n] & ~one[n]).any() for n in two)  # nested: what is removed stays removed
    assert torch.equal(rows_of(one["fc1.weight"]), kept_rows(model.fc1.weight, 240))
    with pytest.raises(LTHError, match="pruning channels needs the model"):
        prune(pruning, weights, mask, kinds, None)
