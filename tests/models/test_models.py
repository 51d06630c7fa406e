"""Tests for lth.models: shapes, parameter counts from the papers, seeded RNG-isolated init."""

import math
import re

import pytest
import torch
from torch import nn

from lth.core.errors import LTHError
from lth.models import MODELS, build_model, output_layer_name

CIFAR = (3, 32, 32)
MNIST = (1, 28, 28)
STANDARD = {  # the shape each model is normally used with
    "mlp1d": (40,),
    "lenet_300_100": MNIST,
    "conv2": CIFAR,
    "conv4": CIFAR,
    "conv6": CIFAR,
    "resnet20": CIFAR,
    "vgg16": CIFAR,
    "vgg19": CIFAR,
    "linear": (40,),
    "mod_mlp": (40,),  # one-hot pairs of a modulus p = 20
    "mod_transformer": (40,),
    "encoder": (40,),
}
ALL = list(STANDARD)


def n_params(model, kind=None):
    return sum(p.numel() for m in model.modules() if kind is None or isinstance(m, kind)
               for p in m.parameters(recurse=False))


def n_weights(model):
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d)))


# Hand counts: (weights, biases) per layer, written from the papers' descriptions.
def linear(i, o):
    return i * o, o


def conv(i, o, k=3, bias=True):
    return i * o * k * k, (o if bias else 0)


def bn(c):
    return 0, 2 * c


def total(layers):
    return sum(w + b for w, b in layers), sum(w for w, _ in layers)


def conv_net_layers(widths, c_in, side, classes):
    layers, c = [], c_in
    for w in widths:
        layers += [conv(c, w), conv(w, w)]
        c, side = w, side // 2
    return layers + [linear(c * side * side, 256), linear(256, 256), linear(256, classes)]


def resnet_layers(c_in, width, classes):
    layers, f_in = [conv(c_in, width, bias=False), bn(width)], width
    for f in (width, 2 * width, 4 * width):
        for _ in range(3):
            layers += [conv(f_in, f, bias=False), bn(f), conv(f, f, bias=False), bn(f)]
            if f != f_in:
                layers += [conv(f_in, f, k=1, bias=False), bn(f)]
            f_in = f
    return layers + [linear(4 * width, classes)]


def vgg_layers(plan, c_in, classes):
    layers, c = [], c_in
    for f in plan:
        layers += [conv(c, f), bn(f)]
        c = f
    return layers + [linear(512, classes)]


VGG16 = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
VGG19 = [64, 64, 128, 128, 256, 256, 256, 256, 512, 512, 512, 512, 512, 512, 512, 512]
EXPECTED = {  # (all parameters, prunable weights) on the STANDARD shape with 10 classes
    "mlp1d": total([linear(40, 100), linear(100, 100), linear(100, 10)]),
    "lenet_300_100": total([linear(784, 300), linear(300, 100), linear(100, 10)]),
    "conv2": total(conv_net_layers([64], 3, 32, 10)),
    "conv4": total(conv_net_layers([64, 128], 3, 32, 10)),
    "conv6": total(conv_net_layers([64, 128, 256], 3, 32, 10)),
    "resnet20": total(resnet_layers(3, 16, 10)),
    "vgg16": total(vgg_layers(VGG16, 3, 10)),
    "vgg19": total(vgg_layers(VGG19, 3, 10)),
    "linear": (400, 400),  # bias-free 40 -> 10
    "mod_mlp": (70_656, 70_656),  # embedding 20x128 shared, 256x256 hidden, 256x10 out, no biases
    "mod_transformer": (51_786, 51_200),  # biases of q, k, v, projections, MLP and output: 586
    "encoder": (102_730, 101_568),
}


def test_hand_counts_match_published_figures():
    # Frankle & Carbin 2019 Table 1 / Fig. 2 and OpenLTH's own model tests.
    assert EXPECTED["lenet_300_100"] == (266_610, 266_200)
    assert EXPECTED["conv2"][1] == 4_300_992  # "4.3M"; conv weights 38,592 ("38K")
    assert EXPECTED["conv4"][1] == 2_425_024  # "2.4M"
    assert EXPECTED["resnet20"][0] == 272_474
    assert EXPECTED["vgg16"][0] == 14_728_266
    assert EXPECTED["vgg19"][0] == 20_040_522


@pytest.fixture(scope="module")
def standard_models():
    return {name: build_model(name, shape, 10, seed=0) for name, shape in STANDARD.items()}


def test_registry_names():
    assert set(MODELS) == set(ALL)


@pytest.mark.parametrize("name", ALL)
def test_param_counts(standard_models, name):
    model = standard_models[name]
    assert (n_params(model), n_weights(model)) == EXPECTED[name]
    assert n_params(model) == sum(p.numel() for p in model.parameters())  # no stray parameters


@pytest.mark.parametrize("name", ALL)
def test_forward_shape_and_output_layer(standard_models, name):
    model = standard_models[name]
    assert model(torch.randn(3, *STANDARD[name])).shape == (3, 10)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    out = output_layer_name(model)
    assert model.get_submodule(out) is linears[-1]
    assert linears[-1].out_features == 10
    assert f"{out}.weight" in dict(model.named_parameters())


@pytest.mark.parametrize("name", ALL)
def test_only_allowed_parameterised_layers(standard_models, name):
    for m in standard_models[name].modules():
        if list(m.parameters(recurse=False)):
            assert isinstance(m, (nn.Linear, nn.Conv2d, nn.BatchNorm2d)), type(m)


@pytest.mark.parametrize("name", ALL)
def test_num_classes_sets_output(name):
    model = build_model(name, STANDARD[name], 7, seed=0)
    assert model.get_submodule(output_layer_name(model)).out_features == 7
    assert model(torch.randn(2, *STANDARD[name])).shape == (2, 7)


@pytest.mark.parametrize("name", ALL)
def test_seed_determinism_and_global_rng_untouched(name):
    rng = torch.get_rng_state()
    a = build_model(name, STANDARD[name], 10, seed=1).state_dict()
    b = build_model(name, STANDARD[name], 10, seed=1).state_dict()
    c = build_model(name, STANDARD[name], 10, seed=2).state_dict()
    assert torch.equal(rng, torch.get_rng_state())
    assert a.keys() == b.keys() == c.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    for k, v in a.items():  # every random tensor differs between seeds (the linear model starts at zero)
        if k.endswith("weight") and name != "linear":
            assert not torch.equal(v, c[k]), k


def test_init_independent_of_global_rng():
    torch.manual_seed(123)
    a = build_model("conv2", (1, 8, 8), 10, seed=5).state_dict()
    torch.rand(1000)
    b = build_model("conv2", (1, 8, 8), 10, seed=5).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_batchnorm_buffers_are_fresh():
    model = build_model("resnet20", CIFAR, 10, seed=0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            assert torch.equal(m.running_mean, torch.zeros_like(m.running_mean))
            assert torch.equal(m.running_var, torch.ones_like(m.running_var))
            assert m.num_batches_tracked.item() == 0


def test_mlp1d_matches_pytorch_default_init():
    # The same draws as nn.Linear's own reset_parameters() from a generator seeded alike.
    model = build_model("mlp1d", (40,), 10, seed=7)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(7)
        ref = [nn.Linear(40, 100), nn.Linear(100, 100), nn.Linear(100, 10)]
    for mine, theirs in zip((model.linear1, model.linear2, model.linear3), ref):
        assert torch.equal(mine.weight, theirs.weight)
        assert torch.equal(mine.bias, theirs.bias)


def test_mlp1d_forward_is_residual():
    model = build_model("mlp1d", (40,), 10, seed=0, hidden=8).eval()
    x = torch.randn(4, 40)
    h1 = torch.relu(model.linear1(x))
    h2 = h1 + torch.relu(model.linear2(h1))
    assert torch.allclose(model(x), model.linear3(h2))
    assert model.linear2.weight.shape == (8, 8)


def test_glorot_init_lenet_and_conv():
    lenet = build_model("lenet_300_100", MNIST, 10, seed=0)
    assert lenet.fc1.weight.std().item() == pytest.approx(math.sqrt(2 / (784 + 300)), rel=0.03)
    assert lenet.fc1.weight.mean().abs().item() < 1e-3
    conv4 = build_model("conv4", CIFAR, 10, seed=0)
    c = [m for m in conv4.modules() if isinstance(m, nn.Conv2d)][-1]  # 128 -> 128
    assert c.weight.std().item() == pytest.approx(math.sqrt(2 / ((128 + 128) * 9)), rel=0.03)
    for model in (lenet, conv4):
        for m in model.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                assert not m.bias.any()


@pytest.mark.parametrize("name", ["resnet20", "vgg16"])
def test_openlth_init(standard_models, name):
    model = standard_models[name]
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    big = max(convs, key=lambda m: m.weight.numel())
    fan_in = big.weight[0].numel()
    assert big.weight.std().item() == pytest.approx(math.sqrt(2 / fan_in), rel=0.03)
    fc = model.get_submodule(output_layer_name(model))
    assert fc.weight.std().item() == pytest.approx(math.sqrt(2 / fc.in_features), rel=0.15)
    bound = 1 / math.sqrt(fc.in_features)  # OpenLTH leaves PyTorch's default bias init
    assert fc.bias.abs().max().item() <= bound and fc.bias.any()
    gammas = torch.cat([m.weight for m in model.modules() if isinstance(m, nn.BatchNorm2d)])
    assert gammas.min().item() >= 0 and gammas.max().item() <= 1
    assert gammas.mean().item() == pytest.approx(0.5, abs=0.05)
    assert not torch.cat([m.bias for m in model.modules() if isinstance(m, nn.BatchNorm2d)]).any()


def test_resnet_width_option():
    model = build_model("resnet20", (3, 16, 16), 10, seed=0, width=4)
    assert model.fc.in_features == 16
    assert n_params(model) == total(resnet_layers(3, 4, 10))[0]


@pytest.mark.parametrize("name", ["mlp1d", "lenet_300_100", "conv2", "conv4", "conv6", "resnet20"])
def test_one_channel_28x28(name):
    model = build_model(name, MNIST, 10, seed=0)
    assert model(torch.randn(2, *MNIST)).shape == (2, 10)


def test_conv_flat_size_follows_shape():
    assert build_model("conv6", MNIST, 10, seed=0).fc1.in_features == 256 * 3 * 3  # 28->14->7->3
    assert build_model("conv2", (5, 20, 12), 10, seed=0).fc1.in_features == 64 * 10 * 6
    assert build_model("vgg16", (3, 64, 64), 10, seed=0).fc.in_features == 512 * 2 * 2


@pytest.mark.parametrize("name, shape", [
    ("vgg16", MNIST), ("vgg19", (3, 31, 64)), ("conv2", (40,)), ("conv6", (1, 4, 4)),
    ("resnet20", (40,)), ("conv4", (28, 28)),
])
def test_refuses_shapes_it_cannot_take(name, shape):
    with pytest.raises(LTHError, match=rf"{name}.*{re.escape(str(shape))}"):
        build_model(name, shape, 10, seed=0)


def test_unknown_name_lists_known():
    with pytest.raises(LTHError, match="resnet18") as e:
        build_model("resnet18", CIFAR, 10, seed=0)
    assert all(n in str(e.value) for n in ALL)


@pytest.mark.parametrize("name, options, word", [
    ("lenet_300_100", {"hidden": 10}, "hidden"),
    ("mlp1d", {"width": 10}, "width"),
    ("resnet20", {"depth": 56}, "depth"),
    ("mlp1d", {"hidden": 0}, "hidden"),
    ("resnet20", {"width": 2.5}, "width"),
])
def test_bad_options(name, options, word):
    with pytest.raises(LTHError, match=word):
        build_model(name, STANDARD[name], 10, seed=0, **options)


@pytest.mark.parametrize("shape, classes", [((), 10), ((0, 4), 10), ((40,), 0)])
def test_bad_shape_or_classes(shape, classes):
    with pytest.raises(LTHError, match="mlp1d"):
        build_model("mlp1d", shape, classes, seed=0)



@pytest.mark.parametrize("name", ALL)
def test_the_registered_layer_kinds_are_the_models(name):
    from lth.core.parts import MODELS
    from lth.pruning import masks

    shape = (40,) if MODELS[name].inputs == "vector" else (3, 32, 32)
    model = build_model(name, shape, 10, seed=0)
    assert sorted(set(masks.layer_kinds(model).values())) == sorted(MODELS[name].kinds)
