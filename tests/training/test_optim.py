"""lth.training.optim reproduces torch.optim bitwise, without importing torch._dynamo."""

import subprocess
import sys

import pytest
import torch

from lth.training.optim import Optimizer

SETTINGS = [
    ({"optimizer": "adam", "weight_decay": 0.0}, lambda p: torch.optim.Adam(p, lr=0.01, fused=True)),
    ({"optimizer": "adam", "weight_decay": 1e-2}, lambda p: torch.optim.Adam(p, lr=0.01, weight_decay=1e-2, fused=True)),
    ({"optimizer": "adamw", "weight_decay": 1.0}, lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=1.0, fused=True)),
    ({"optimizer": "sgd", "momentum": 0.0, "nesterov": False, "weight_decay": 0.0},
     lambda p: torch.optim.SGD(p, lr=0.01, foreach=True)),
    ({"optimizer": "sgd", "momentum": 0.9, "nesterov": False, "weight_decay": 1e-4},
     lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9, weight_decay=1e-4, foreach=True)),
    ({"optimizer": "sgd", "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4},
     lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4, foreach=True)),
]


def net(seed):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))


@pytest.mark.parametrize("training, reference", SETTINGS)
def test_updates_equal_torch_optim_bitwise_including_after_a_state_round_trip(training, reference):
    ours_net, ref_net = net(0), net(0)
    ours, ref = Optimizer(ours_net.parameters(), training), reference(ref_net.parameters())
    g = torch.Generator().manual_seed(1)
    for step in range(12):
        x, y = torch.randn(32, 8, generator=g), torch.randint(0, 3, (32,), generator=g)
        if step == 6:  # checkpoint and restore mid-way
            state = ours.state_dict()
            ours = Optimizer(ours_net.parameters(), training)
            ours.load_state_dict(state)
        for model, opt in ((ours_net, ours), (ref_net, ref)):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
        ours.step(0.01)
        ref.step()
    for a, b in zip(ours_net.parameters(), ref_net.parameters()):
        assert torch.equal(a, b)


def test_a_step_does_not_import_torch_dynamo():
    code = ("import sys, torch\nfrom lth.training.optim import Optimizer\n"
            "p = torch.nn.Linear(2, 2)\nopt = Optimizer(p.parameters(), {'optimizer': 'adam', 'weight_decay': 0})\n"
            "p(torch.ones(1, 2)).sum().backward()\nopt.step(0.1)\nprint('torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
