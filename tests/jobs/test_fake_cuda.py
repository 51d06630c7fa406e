"""The engine's device-sensitive paths on a GPU that is not there: under torch's FakeTensorMode a
tensor on "cuda" has a shape and a device but no values, and mixing it with a CPU tensor in one
operation raises as a real GPU would. What runs here: every variant's start state, masks applied and
kept, every pruning score's forward part, the stacked models' forward, interpolation and transfer
weights. What reads values (a mask's counts, a sort, a backward pass) cannot run under fake tensors:
those parts run on the CPU by design (the pruning step) or on a GPU (benchmarks/gpu_check.py)."""

import copy
from types import SimpleNamespace

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode, unset_fake_temporarily

from lth.analyses.interpolate import interpolate
from lth.core.registry import Part
from lth.jobs import Context
from lth.jobs.prune import score_contexts
from lth.jobs.start import start_state
from lth.jobs.transfer import load_source_weights, target_mask
from lth.models import build_model, output_layer_name
from lth.plan import Job, plan_of
from lth.plan.layout import RunKey
from lth.pruning import ScoreContext, masks
from lth.pruning.scores import bingo, grasp, magnitude, random, snip, synflow
from lth.store import artifacts
from lth.training.batched import StackedModel

from conftest import tiny

CUDA = torch.device("cuda")
ALL = ["ticket", "reinit", "random_prune", "lr_rewind", "finetune"]


def fake():
    return FakeTensorMode(allow_non_fake_inputs=True)


def on_cuda(tensors) -> bool:
    return all(t.device.type == "cuda" for t in tensors)


@pytest.fixture(scope="module")
def finished(tmp_path_factory, data_dir):
    """A tiny experiment trained on the CPU up to level 1 of every chain, with theta_k and a transfer target."""
    root = tmp_path_factory.mktemp("fake-cuda")
    changes = {"variants": ALL, "rewind_iteration": 20, "pruning": {**tiny()["pruning"], "levels": 1},
               "transfer": {"targets": {"t43": {"dataset": {"name": "mnist1d", "val_size": 500,
                                                            "options": {"seed": 43}}}}}}
    plan = plan_of("exp", tiny(changes), root / "exp", {"data_dir": str(data_dir)})
    plan.write()
    ctx = Context(plan, torch.device("cpu"))
    ctx.run(Job("dense", 0))
    ctx.run(Job("rewind", 0, k=20))
    for chain in ("ticket", "lr_rewind", "finetune"):
        ctx.run(plan.job("level", 0, 1, chain))
    return plan


@pytest.fixture
def cuda_context(finished, monkeypatch):
    """A job context on "cuda" whose tensor files are read (checked, on the CPU) before the fake GPU is on."""
    read = {str(p): artifacts.read_checked(p) for p in finished.layout.root.rglob("*.safetensors")}
    monkeypatch.setattr(artifacts, "read_checked", lambda path: {k: v.clone() for k, v in read[str(path)].items()})
    monkeypatch.setattr("lth.jobs.start.random_mask",  # counts a mask's values: the CPU's part
                        lambda template, key: {n: torch.ones(m.shape, dtype=torch.bool) for n, m in template.items()})

    def build_outside(*args, **kwargs):  # a model is made on the CPU (fake ones cannot move), then moved
        with unset_fake_temporarily():
            return build_model(*args, **kwargs)

    monkeypatch.setattr("lth.jobs.context.build_model", build_outside)
    return Context(finished, CUDA)


@pytest.mark.parametrize("key", [RunKey(0, 0, "dense"), *[RunKey(0, 1, v) for v in ALL],
                                 *[RunKey(0, 1, v, "t43") for v in ("ticket_transfer", "mask_transfer",
                                                                     "random_prune")],
                                 RunKey(0, 0, "dense", "t43")], ids=str)
def test_every_variant_starts_with_its_weights_and_mask_on_the_gpu(cuda_context, key):
    with fake():
        start = start_state(cuda_context, key)
        assert on_cuda(start.model.parameters()) and on_cuda(start.mask.values())
        start.model(torch.zeros(4, 40, device=CUDA))  # and it runs there


def test_a_mask_from_the_cpu_is_applied_and_kept_on_gpu_weights():
    model = build_model("mlp1d", (40,), 10, seed=0, hidden=16)
    cpu_mask = masks.full_mask(model)
    with fake():
        model.to(CUDA)
        masks.apply_mask(model, cpu_mask)
        keep = masks.MaskEnforcer(model, cpu_mask)
        keep()
        assert on_cuda(keep.factors)


def test_every_score_computes_its_forward_part_on_the_gpu(cuda_context, finished, monkeypatch):
    head = RunKey(0, 1, "ticket")
    weights_path, mask_path = finished.prune_inputs(head)
    cpu_mask = artifacts.load_tensors(mask_path)  # the pruning step ranks on the CPU
    with fake():
        x, y = torch.randn(64, 40, device=CUDA), torch.randint(0, 10, (64,), device=CUDA)
        cuda_context._splits[None] = SimpleNamespace(x_train=x, y_train=y, info=Part("mnist1d", "x:y"))
        model = cuda_context.new_model(0)
        context = score_contexts(cuda_context, head, model, weights_path, {"batch": 32})(cpu_mask)
        weights = cuda_context.load(weights_path)
        assert not on_cuda(magnitude.score(weights, cpu_mask, context).values())  # scores come back to the CPU
        assert not on_cuda(random.score(weights, cpu_mask, context).values())
        for who in ("snip", "grasp"):  # their forward part; the gradients need a real device
            net, xb, yb = snip.train_copy_and_batch(context, who)
            assert on_cuda(net.parameters()) and net(xb).device.type == "cuda"
        net = copy.deepcopy(context.model()).eval()  # (synflow then takes it to float64: fake tensors cannot)
        synflow._linearize(net, cpu_mask)
        assert net(torch.ones(1, 40, device=CUDA)).device.type == "cuda"
        found = {n: torch.rand(m.shape, device=CUDA) for n, m in cpu_mask.items()}
        assert not on_cuda(bingo.score(weights, cpu_mask, ScoreContext(options={"significance": found})).values())
    assert grasp.score and synflow.score  # the modules whose forward parts ran above


@pytest.mark.parametrize("name, shape", [("mlp1d", (40,)), ("conv2", (3, 16, 16)), ("resnet20", (3, 16, 16)),
                                         ("mod_transformer", (46,)), ("encoder", (6, 8))])
def test_stacked_models_run_their_members_on_the_gpu(name, shape):
    models = [build_model(name, shape, 10, seed=s) for s in range(3)]
    with fake():
        for m in models:
            m.to(CUDA)
        stacked = StackedModel(models)  # on CUDA: grouped convolutions and batch norms
        out = stacked(torch.randn(3 * 4, *shape, device=CUDA))
        assert out.shape == (12, 10) and out.device.type == "cuda"


def test_interpolation_between_cpu_states_runs_on_the_gpu():
    a = build_model("resnet20", (3, 16, 16), 10, seed=0)
    b = build_model("resnet20", (3, 16, 16), 10, seed=1)
    between = interpolate(a.state_dict(), b.state_dict(), 0.5)
    with fake():
        a.to(CUDA)
        a.load_state_dict(between)  # (recomputing BatchNorm's statistics reads its count: a real device's work)
        assert a.eval()(torch.randn(2, 3, 16, 16, device=CUDA)).device.type == "cuda"


def test_a_ticket_transfers_its_cpu_weights_and_mask_to_a_gpu_model():
    source = build_model("mlp1d", (40,), 10, seed=0, hidden=16)
    target = build_model("mlp1d", (40,), 3, seed=1, hidden=16)  # another head
    state, mask = source.state_dict(), masks.full_mask(source)
    with fake():
        target.to(CUDA)
        head = output_layer_name(target)
        load_source_weights(target, state, head)
        new = target_mask(mask, target, head)
        masks.apply_mask(target, new)
        assert on_cuda(target.parameters())
