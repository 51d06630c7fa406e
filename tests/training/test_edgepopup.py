"""Edge-popup (lth.training.modes.edgepopup): frozen random weights, trained scores, exact masks, resumable."""

import math
import types

import pytest
import torch
from torch import nn
from torch.func import functional_call

from lth.core.errors import LTHError
from lth.models import build_model
from lth.models.init import signed_kaiming_constant
from lth.plan.settings import resolve
from lth.pruning.masks import layer_kinds
from lth.store import artifacts
from lth.training.evaluation import evaluate
from lth.training.loop import Segment, train
from lth.training.modes.edgepopup import EdgePopup, keep_count

from conftest import tiny


def _training(**changes):
    return resolve(tiny({"training": {"batch_size": 50, "eval_every": 10, **changes}})).training


def _images(n=200, classes=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(n, 1, 8, 8, generator=g), torch.randint(0, classes, (n,), generator=g)
    return types.SimpleNamespace(x_train=x, y_train=y, x_val=x[:50], y_val=y[:50], x_test=x[:50], y_test=y[:50])


def _resnet(seed=0):
    """ResNet-20 at width 2: BatchNorm (affine, running stats), shortcuts, a Linear head; tiny."""
    model = build_model("resnet20", (1, 8, 8), 4, seed=seed, width=2)
    return model, list(layer_kinds(model))


def _small_bn(seed=0):
    """Conv + BatchNorm + ReLU + pool + Linear on (1, 8, 8): the BatchNorm case, cheap."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(64, 4))
    return model, list(layer_kinds(model))


def test_training_moves_the_scores_and_never_the_frozen_weights():
    model, names = _resnet()
    params = {k: v.clone() for k, v in model.named_parameters()}
    buffers = {k: v.clone() for k, v in model.named_buffers()}
    ep = EdgePopup(model, names, 0.3, torch.Generator().manual_seed(1))
    scores = {n: s.detach().clone() for n, s in ep.named_scores().items()}
    assert [p for p in ep.parameters()] == list(ep.scores)  # the optimiser sees the scores only
    assert not any(p.requires_grad for p in model.parameters())
    # SGD with momentum and weight decay: it would move any weight it were given
    training = _training(optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=5e-4)
    train(ep, {}, _images(), training, Segment(0, 10, lambda t: 0.1, data_seed=0))
    for k, v in model.named_parameters():
        assert torch.equal(v, params[k]), k  # weights, biases and BatchNorm affine, bitwise
    assert not torch.equal(model.bn.running_mean, buffers["bn.running_mean"])  # BN statistics do update
    for n, s in ep.named_scores().items():
        assert not torch.equal(s, scores[n]), n


@pytest.mark.parametrize("density", [0.05, 0.3, 0.5, 0.9])
def test_mask_keeps_exactly_round_density_per_layer_the_largest_scores(density):
    model, names = _resnet()
    ep = EdgePopup(model, names, density, torch.Generator().manual_seed(0))
    mask, params = ep.mask(), dict(model.named_parameters())
    assert list(mask) == names
    for n, s in ep.named_scores().items():
        k = max(1, round(density * params[n].numel()))
        assert int(mask[n].sum()) == k == keep_count(params[n].numel(), density), n
        assert mask[n].dtype == torch.bool and mask[n].shape == params[n].shape
        kept, dropped = s.detach().abs()[mask[n]], s.detach().abs()[~mask[n]]
        assert dropped.numel() == 0 or kept.min() >= dropped.max()
    tiny_layer = nn.Sequential(nn.Linear(3, 1))  # 3 weights at 5%: round gives 0, one is kept
    assert int(EdgePopup(tiny_layer, ["0.weight"], 0.05, torch.Generator()).mask()["0.weight"].sum()) == 1


def test_ties_keep_the_lower_index_and_scores_start_kaiming_uniform():
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    ep = EdgePopup(model, ["0.weight", "2.weight"], 0.5, torch.Generator().manual_seed(0))
    bound = 1 / math.sqrt(4)  # kaiming_uniform_(a=sqrt(5)): U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert ep.scores[0].abs().max() <= bound
    with torch.no_grad():
        ep.scores[0].fill_(-0.2)
    assert ep.mask()["0.weight"].flatten().tolist() == [True] * 6 + [False] * 6
    again = EdgePopup(nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)), ["0.weight", "2.weight"], 0.5,
                      torch.Generator().manual_seed(0))
    assert torch.equal(again.scores[1], ep.scores[1])  # a function of the generator alone


def test_straight_through_gradient_is_the_papers():
    """d loss/d|s| = d loss/d(w m) * w for every edge, kept or pruned; d/ds adds sign(s) (through |s|)."""
    model, names = _resnet(seed=3)
    model.eval()
    ep = EdgePopup(model, names, 0.4, torch.Generator().manual_seed(2))
    data = _images(16)
    loss = nn.functional.cross_entropy(ep(data.x_train), data.y_train)
    loss.backward()
    params, mask = dict(model.named_parameters()), ep.mask()
    effective = {n: (params[n] * mask[n]).requires_grad_(True) for n in names}
    ref_loss = nn.functional.cross_entropy(functional_call(model, effective, (data.x_train,)), data.y_train)
    grads = torch.autograd.grad(ref_loss, [effective[n] for n in names])
    assert torch.equal(loss.detach(), ref_loss.detach())
    for n, s, g in zip(names, ep.scores, grads):
        assert torch.allclose(s.grad, g * params[n] * s.detach().sign(), rtol=1e-5, atol=1e-9), n
        assert (s.grad[~mask[n]] != 0).any(), n  # pruned edges get a gradient too


def test_ticket_is_a_plain_model_computing_the_same():
    model, names = _resnet()
    ep = EdgePopup(model, names, 0.5, torch.Generator().manual_seed(0))
    train(ep, {}, _images(), _training(), Segment(0, 10, lambda t: 0.01, data_seed=0))
    ep.eval()
    net = ep.ticket()
    x = _images(seed=1).x_train[:20]
    assert torch.equal(net(x), ep(x))
    params = dict(net.named_parameters())
    for n, m in ep.mask().items():
        assert torch.all(params[n][~m] == 0) and torch.equal(params[n][m], dict(model.named_parameters())[n][m])
    assert all(p.requires_grad for p in net.parameters())


def _separable(seed, n, d=10, classes=4):
    """Gaussian inputs labelled by the argmax of a fixed linear map: linearly separable, chance 1/4."""
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(seed))
    return x, (x @ torch.randn(d, classes, generator=torch.Generator().manual_seed(99))).argmax(1)


def test_edge_popup_learns_what_a_random_subnetwork_cannot():
    (xt, yt), (xv, yv), (xs, ys) = _separable(0, 1000), _separable(1, 200), _separable(2, 500)
    splits = types.SimpleNamespace(x_train=xt, y_train=yt, x_val=xv, y_val=yv, x_test=xs, y_test=ys)
    model = nn.Sequential(nn.Linear(10, 64, bias=False), nn.ReLU(), nn.Linear(64, 64, bias=False), nn.ReLU(),
                          nn.Linear(64, 4, bias=False))
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        signed_kaiming_constant(m, g)
    ep = EdgePopup(model, ["0.weight", "2.weight", "4.weight"], 0.5, torch.Generator().manual_seed(0))
    _, random_subnet = evaluate(ep, xs, ys)  # the random weights at density 0.5, a random mask
    result = train(ep, {}, splits, _training(batch_size=100, eval_every=100), Segment(0, 200, lambda t: 0.01, 0))
    assert random_subnet < 0.45
    assert result["summary"]["test_accuracy"] > 0.85


def test_resumed_run_ends_with_bitwise_the_same_scores(tmp_path):
    training = _training(optimizer="adam", lr=0.01, checkpoint_every=10)
    data = _images()

    steps = []

    def run(checkpoint, interrupt_at=None):
        model, names = _small_bn()
        ep = EdgePopup(model, names, 0.3, torch.Generator().manual_seed(5))
        steps.clear()

        def lr(t):
            if t == interrupt_at:
                raise KeyboardInterrupt
            steps.append(t)
            return 0.01
        return ep, train(ep, {}, data, training, Segment(0, 40, lr, data_seed=2, checkpoint=checkpoint,
                                                          fingerprint="ep"))

    ref, ref_result = run(None)
    ckpt = tmp_path / "resume.pt"
    with pytest.raises(KeyboardInterrupt):
        run(ckpt, interrupt_at=25)
    assert artifacts.load_checkpoint(ckpt)["iteration"] == 20
    resumed, result = run(ckpt)
    assert steps == list(range(20, 40))  # only the iterations after the checkpoint
    for a, b in zip(ref.scores, resumed.scores):
        assert torch.equal(a, b)
    for (k, a), b in zip(ref.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k  # BatchNorm running statistics as well
    assert result["curves"] == ref_result["curves"]
    assert all(torch.equal(ref.mask()[n], resumed.mask()[n]) for n in ref.names)


@pytest.mark.parametrize("density", [0, 1, -0.1, 1.5, float("nan")])
def test_density_outside_the_open_unit_interval_is_refused(density):
    model, names = _resnet()
    with pytest.raises(LTHError, match=f"density must be in \\(0, 1\\), got {density!r}"):
        EdgePopup(model, names, density, torch.Generator())


def test_unknown_parameter_names_are_refused():
    with pytest.raises(LTHError, match="no such parameters"):
        EdgePopup(nn.Sequential(nn.Linear(2, 2)), ["fc.weight"], 0.5, torch.Generator())
