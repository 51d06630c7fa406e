"""Early-bird tickets (You et al. 2020): the distance, the stopping rule, an untouched trajectory, channel masks."""

import pytest
import torch
from torch import nn

from lth.analyses.earlybird_detector import Detector, EarlyBird, channel_groups, channel_mask, hamming, select_channels
from lth.core.errors import LTHError
from lth.models import build_model
from lth.pruning import masks
from lth.training.features import slimming_penalty
from lth.training.loop import Segment, train
from lth.training.schedule import lr_at


def shifted(start, n=100, width=50):
    """One layer of n entries, `width` consecutive ones from `start`: masks a and b differ in 2|a - b| places."""
    m = torch.zeros(n, dtype=torch.bool)
    m[start:start + width] = True
    return {"w": m}


def test_hamming_on_hand_examples():
    a = {"x": torch.tensor([True, False, True, False]), "y": torch.tensor([[True, True, True], [False, False, False]])}
    b = {"x": torch.tensor([True, True, True, False]), "y": torch.tensor([[True, False, True], [False, False, True]])}
    assert hamming(a, a) == 0.0
    assert hamming(a, b) == hamming(b, a) == 3 / 10  # one of 4 in x, two of 6 in y: over all layers together
    assert hamming(a, {k: ~v for k, v in a.items()}) == 1.0
    assert hamming(shifted(0), shifted(7)) == 14 / 100
    with pytest.raises(LTHError, match="different layers"):
        hamming(a, {"x": a["x"]})
    with pytest.raises(LTHError, match="different layers"):
        hamming({"x": torch.ones(4, dtype=torch.bool)}, {"x": torch.ones(2, 2, dtype=torch.bool)})


def test_detector_fires_at_the_first_mask_within_threshold_of_the_whole_window():
    # window 3, threshold 0.1: distance 2|a - b| / 100 < 0.1 needs every shift to the 3 previous below 5
    starts = [0, 10, 20, 22, 24, 26, 27, 28, 29]
    d = Detector(window=3, threshold=0.1)
    fired = [d.add(100 * i, shifted(s)) for i, s in enumerate(starts)]
    # i=5: 6 from 20 (0.12); i=6: 5 from 22, exactly 0.1, not below; i=7: at most 4 from 24 (0.08)
    assert fired == [False] * 7 + [True, False]
    assert d.fired_at == 700
    assert d.distances == [(100, 0.2), (200, 0.4), (300, 0.44), (400, 0.28), (500, 0.12), (600, 0.1),
                           (700, 0.08), (800, 0.06)]


def test_detector_needs_a_full_window_and_never_fires_on_masks_that_keep_moving():
    still = Detector(window=4, threshold=0.1)
    assert [still.add(i, shifted(3)) for i in range(7)] == [False] * 4 + [True, False, False]
    assert still.fired_at == 4 and all(dist == 0.0 for _, dist in still.distances)
    moving = Detector(window=2, threshold=0.1)
    assert not any(moving.add(i, shifted(5 * i % 50)) for i in range(30))  # 5 a step: 0.1 to the last one
    assert moving.fired_at is None and min(dist for _, dist in moving.distances) == 0.1
    with pytest.raises(LTHError, match="after iteration 29"):
        moving.add(29, shifted(0))
    with pytest.raises(LTHError, match="other layers"):
        moving.add(30, {"v": torch.ones(100, dtype=torch.bool)})


@pytest.mark.parametrize("kw, message", [
    ({"threshold": 1.5}, r"early-bird threshold must be in \(0, 1\), got 1.5"),
    ({"threshold": 0}, r"threshold must be in \(0, 1\), got 0"),
    ({"threshold": True}, "threshold"),
    ({"window": 0}, "window must be a positive integer, got 0"),
    ({"window": 2.0}, "window must be a positive integer"),
])
def test_bad_threshold_or_window_is_refused(kw, message):
    with pytest.raises(LTHError, match=message):
        Detector(**kw)


def test_earlybird_leaves_training_bitwise_untouched_and_draws_masks_of_the_exact_density(context):
    ctx = context({"training": {"iterations": 200}})
    training = ctx.plan.settings.training

    def run(observer_of=None):
        model = ctx.new_model(3)
        mask = masks.full_mask(model)
        observer = observer_of(model, mask) if observer_of else None
        seg = Segment(0, 200, lambda t: lr_at(training, t), data_seed=4)
        result = train(model, mask, ctx.splits(), training, seg, observe=observer)
        return model, result

    ref_model, ref = run()
    drawn, made, weights = [], {}, {}

    def watched(model, mask):
        eb = made["eb"] = EarlyBird(model, mask, density=0.2, every=20, window=3, threshold=0.3)
        made["total"] = sum(m.numel() for m in mask.values())

        def observe(t, x, y):
            eb(t, x, y)
            if eb.last_at == t:
                drawn.append((t, masks.density(eb.last), eb.last))
                weights[t] = {n: p.detach().clone() for n, p in model.named_parameters() if n in mask}
        return observe

    model, result = run(watched)
    for k, v in ref_model.state_dict().items():
        assert torch.equal(v, model.state_dict()[k]), k
    assert result["curves"] == ref["curves"]

    eb, total = made["eb"], made["total"]
    assert [t for t, _, _ in drawn] == list(range(20, 200, 20))  # t = 0 and the end are never observed
    assert all(d == round(0.2 * total) / total for _, d, _ in drawn)
    assert all(int(m.sum()) >= 1 for _, _, last in drawn for m in last.values())
    assert [t for t, _ in eb.distances] == list(range(40, 200, 20))
    for (t, _, m), (_, _, prev) in zip(drawn[1:], drawn):
        assert dict(eb.distances)[t] >= hamming(m, prev)  # the max over the window includes the last one
    fires = [t for i, (t, dist) in enumerate(eb.distances) if i >= 2 and dist < 0.3]
    assert fires and eb.fired_at == fires[0]  # the first draw with a full window all within 0.3
    assert masks.density(eb.ticket) == round(0.2 * total) / total
    assert all(torch.equal(eb.ticket[k], v) for k, v in dict((t, m) for t, _, m in drawn)[eb.fired_at].items())
    for t, _, m in drawn:  # each draw is the global top 20 % of |w| at that iteration, computed here by hand
        names = list(m)
        flat = torch.cat([weights[t][n].abs().flatten() for n in names])
        keep = torch.zeros_like(flat, dtype=torch.bool)
        keep[flat.argsort(descending=True, stable=True)[: round(0.2 * total)]] = True
        hand = dict(zip(names, keep.split([weights[t][n].numel() for n in names])))
        assert all(hand[n].any() for n in names)  # every layer keeps some: the floor of one changes nothing
        assert all(torch.equal(m[n].flatten(), hand[n]) for n in names), t


def snapshot(model):
    return ({k: v.clone() for k, v in model.state_dict().items()},
            {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None},
            [m.training for m in model.modules()], torch.get_rng_state())


def tiny_resnet(seed=0):
    return build_model("resnet20", (3, 8, 8), 10, seed=seed, width=4)


def test_structured_observer_reads_only_and_keeps_channels_at_the_density():
    model = tiny_resnet()
    x = torch.randn(6, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    y = torch.arange(6)
    nn.functional.cross_entropy(model(x), y).backward()  # grads and running statistics to keep
    eb = EarlyBird(model, masks.full_mask(model), density=0.5, every=5, window=2, structured=True)
    before = snapshot(model)
    for t in (0, 3, 5, 10, 10, 15):
        eb(t, x, y)
    after = snapshot(model)
    assert before[0].keys() == after[0].keys() and all(torch.equal(before[0][k], after[0][k]) for k in before[0])
    assert all(torch.equal(before[1][k], after[1][k]) for k in before[1]) and before[1].keys() == after[1].keys()
    assert before[2] == after[2] and torch.equal(before[3], after[3])
    # weights unchanged: every draw is the same, so the third one fires (window 2, distances 0)
    assert eb.distances == [(10, 0.0), (15, 0.0)] and eb.fired_at == 15
    expected = channel_mask(model, 0.5)
    assert eb.ticket.keys() == expected.keys() and all(torch.equal(eb.ticket[k], v) for k, v in expected.items())
    channels = select_channels(model, 0.5, eb.groups)
    total = sum(c.numel() for c in channels.values())
    assert sum(int(c.sum()) for c in channels.values()) == round(0.5 * total)


def test_resnet20_pairs_every_batchnorm_with_its_conv_including_the_shortcuts():
    groups = channel_groups(tiny_resnet())
    pairs = {g.bn: g.conv for g in groups}
    assert pairs["bn"] == "conv"
    for b in range(9):
        assert pairs[f"blocks.{b}.bn1"] == f"blocks.{b}.conv1" and pairs[f"blocks.{b}.bn2"] == f"blocks.{b}.conv2"
    for b in (3, 6):  # the stride-2 blocks: a 1x1 conv + BatchNorm shortcut
        assert pairs[f"blocks.{b}.shortcut.1"] == f"blocks.{b}.shortcut.0"
    assert len(pairs) == 1 + 9 * 2 + 2
    # only a block's inner channels are read by a conv alone; the others reach a residual sum
    readers = {g.bn: g.readers for g in groups if g.readers}
    assert readers == {f"blocks.{b}.bn1": [f"blocks.{b}.conv2"] for b in range(9)}


def test_vgg_channels_are_read_by_the_next_conv_across_pooling():
    groups = channel_groups(build_model("vgg16", (3, 32, 32), 10, seed=0))
    convs = [g.conv for g in groups]
    assert all(g.bn == g.conv.replace(".conv", ".bn") for g in groups) and len(groups) == 13
    assert [g.readers for g in groups] == [[c] for c in convs[1:]] + [[]]  # the last one feeds the Linear


@pytest.mark.parametrize("density", [0.3, 0.5, 0.9])
def test_channel_masks_prune_whole_channels_and_the_pruned_resnet_runs(density):
    model = tiny_resnet(1)
    before = snapshot(model)
    mask = channel_mask(model, density)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before[0].items())
    assert set(mask) == set(masks.full_mask(model))
    groups = channel_groups(model)
    modules = dict(model.named_modules())
    readers = {r for g in groups for r in g.readers}
    for name, m in mask.items():  # whole channels: an output-channel indicator times an input-channel one
        if m.dim() == 4:
            out_alive, in_alive = m.flatten(1).any(1), m.transpose(0, 1).flatten(1).any(1)
            assert torch.equal(m, (out_alive[:, None, None, None] & in_alive[None, :, None, None]).expand_as(m)), name
            assert in_alive.all() or name.removesuffix(".weight") in readers, name
    kept_total, total = 0, 0
    for g in groups:
        whole = mask[f"{g.conv}.weight"].flatten(1).any(1)  # filters kept (their kept input slices whole)
        assert int(whole.sum()) >= 1, g.bn
        kept_total, total = kept_total + int(whole.sum()), total + whole.numel()
        gamma = modules[g.bn].weight.detach().abs()
        if not whole.all():  # kept channels are the largest |gamma| (no ties: gamma ~ U(0, 1))
            assert gamma[whole].min() > gamma[~whole].min()
        for r in g.readers:
            assert torch.equal(mask[f"{r}.weight"].transpose(0, 1).flatten(1).any(1), whole), r
    assert kept_total == round(density * total)
    assert mask["fc.weight"].all()
    masks.apply_mask(model, mask)
    model.eval()
    x = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    out = model(x)
    assert out.shape == (4, 10) and torch.isfinite(out).all()
    # a dropped inner channel is gone: its BatchNorm shift no longer reaches the output
    g = next(g for g in groups if g.readers and not mask[f"{g.conv}.weight"].flatten(1).any(1).all())
    dropped = ~mask[f"{g.conv}.weight"].flatten(1).any(1)
    with torch.no_grad():
        modules[g.bn].bias[dropped] += 5.0
        assert torch.equal(model(x), out)


def test_global_ranking_uses_gamma_across_layers():
    model = tiny_resnet(2)
    modules = dict(model.named_modules())
    groups = channel_groups(model, trace=False)
    with torch.no_grad():
        for g in groups:
            modules[g.bn].weight.fill_(0.01)
        modules["blocks.8.bn2"].weight.fill_(1.0)  # 16 large channels in one layer
    total = sum(modules[g.bn].num_features for g in groups)
    keep = select_channels(model, (16 + len(groups) - 1) / total, groups)
    assert keep["blocks.8.bn2"].all()
    assert all(int(keep[g.bn].sum()) == 1 for g in groups if g.bn != "blocks.8.bn2")  # the floor of one each
    with pytest.raises(LTHError, match="leaves some of the 21 BatchNorm layers empty"):
        select_channels(model, 0.05, groups)


def test_models_without_batchnorm_or_with_misleading_module_order_are_refused():
    with pytest.raises(LTHError, match="need BatchNorm layers after convolutions; model ConvNet has none"):
        channel_mask(build_model("conv4", (3, 32, 32), 10, seed=0), 0.5)

    class Misleading(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(3, 4, 3, padding=1)
            self.b = nn.Conv2d(4, 4, 3, padding=1)
            self.bn = nn.BatchNorm2d(4)  # normalises a, but b comes just before it in module order
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            return self.fc(self.b(self.bn(self.a(x))).mean((2, 3)))

    with pytest.raises(LTHError, match="BatchNorm 'bn' does not read 'b'"):
        channel_mask(Misleading(), 0.5)


def test_excluded_convs_are_not_ranked_and_earlybird_arguments_are_checked():
    model = tiny_resnet()
    mask = channel_mask(model, 0.5, exclude=["conv", "blocks.0.conv2"])
    assert "conv.weight" not in mask and "blocks.0.conv2.weight" not in mask
    assert mask["blocks.0.conv1.weight"].flatten(1).any(1).any()
    full = masks.full_mask(model)
    with pytest.raises(LTHError, match=r"density must be in \(0, 1\], got 0"):
        EarlyBird(model, full, density=0, every=1)
    with pytest.raises(LTHError, match="every must be a positive integer"):
        EarlyBird(model, full, density=0.5, every=0)
    with pytest.raises(LTHError, match="threshold must be in"):
        EarlyBird(model, full, density=0.5, every=1, threshold=1.0)
    half = {k: torch.rand(v.shape, generator=torch.Generator().manual_seed(0)) < 0.5 for k, v in full.items()}
    with pytest.raises(LTHError, match="more than the mask has alive"):
        EarlyBird(model, half, density=0.9, every=1)
    with pytest.raises(LTHError, match="does not fit"):
        EarlyBird(model, {"fc.weight": torch.ones(3, dtype=torch.bool)}, density=0.5, every=1)


def test_slimming_penalty_is_the_sum_of_absolute_gammas():
    model = tiny_resnet()
    with torch.no_grad():
        model.bn.weight[0] = -0.75
    hand = sum(float(m.weight.detach().abs().sum()) for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    penalty = slimming_penalty(model)
    assert penalty.item() == pytest.approx(hand, rel=1e-6)
    penalty.backward()
    assert torch.equal(model.bn.weight.grad, torch.sign(model.bn.weight.detach()))  # the L1 subgradient
    assert model.fc.weight.grad is None
    assert slimming_penalty(build_model("conv2", (3, 8, 8), 10, seed=0)).item() == 0.0
