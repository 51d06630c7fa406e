"""The device a job trains on: the CUDA reproducibility switches, GPU slots (at most N jobs a GPU, every
GPU used), the memory a group of runs needs against what the device can give, and what a run records.
No GPU here: torch.cuda's answers are faked; the real GPU check is benchmarks/gpu_check.py."""

import multiprocessing
import os

import pytest
import torch

from lth.core.errors import LTHError
from lth.jobs import device
from lth.models import build_model
from lth.training import precision
from lth.training.batched import memory


@pytest.fixture
def switches():
    """Put torch's global switches back as they were."""
    saved = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark,
             torch.are_deterministic_algorithms_enabled(), torch.backends.cuda.matmul.allow_tf32,
             torch.backends.cudnn.allow_tf32, os.environ.get("CUBLAS_WORKSPACE_CONFIG"))
    yield
    (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark, algorithms,
     torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, workspace) = saved
    torch.use_deterministic_algorithms(algorithms)
    os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
    if workspace is not None:
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = workspace


@pytest.mark.parametrize("wanted, tf32", [("fp32", False), ("tf32", True), ("bf16", False)])
def test_a_cuda_job_turns_on_every_determinism_switch_and_its_precision(switches, monkeypatch, wanted, tf32):
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: None)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = not tf32
    device.configure(torch.device("cuda", 0), wanted)
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    assert torch.are_deterministic_algorithms_enabled()
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == device.CUBLAS_WORKSPACE
    assert torch.backends.cuda.matmul.allow_tf32 == tf32 and torch.backends.cudnn.allow_tf32 == tf32


def test_a_cpu_job_leaves_the_cuda_switches_alone(switches):
    torch.backends.cudnn.benchmark = True
    device.configure(torch.device("cpu"), "fp32")
    assert torch.backends.cudnn.benchmark and not torch.are_deterministic_algorithms_enabled()


def test_what_a_device_cannot_train_in_is_one_line_naming_the_key(monkeypatch):
    with pytest.raises(LTHError, match=r"^training.precision: tf32 is a CUDA format; cpu has none"):
        precision.check_precision(torch.device("cpu"), "tf32")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda d=None: "Tesla V100")
    with pytest.raises(LTHError, match=r"^training.precision: bf16 needs a GPU .* Tesla V100 does not"):
        precision.check_precision(torch.device("cuda", 0), "bf16")
    precision.check_precision(torch.device("cpu"), "bf16")  # CPU autocast computes in bfloat16


def test_cuda_without_a_gpu_is_refused():
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    with pytest.raises(LTHError, match="device cuda: no CUDA device is visible"):
        device.pick_device("cuda")
    assert device.pick_device("auto") == torch.device("cpu")


def _take(folder, gpus, per, taken, release):
    taken.put(device.take_slot(folder, gpus, per, wait=0.05))
    release.get()  # hold the slot until told (a queue of its own: never its own answer read back)


def test_gpu_slots_spread_jobs_over_every_gpu_and_make_the_next_wait(tmp_path):
    """Four jobs on a 2-GPU machine, 2 slots a GPU: each GPU's first slot before any second; a fifth
    waits until one ends, then takes its slot."""
    ctx = multiprocessing.get_context("fork")

    def start():
        taken, release = ctx.Queue(), ctx.Queue()
        p = ctx.Process(target=_take, args=(tmp_path, 2, 2, taken, release))
        p.start()
        return p, taken, release

    jobs, held = [], []
    for _ in range(4):
        jobs.append(start())
        held.append(jobs[-1][1].get(timeout=120))
    assert sorted(held) == [0, 0, 1, 1] and held[:2] == [0, 1]  # the second job goes to the other GPU
    waiting = start()
    with pytest.raises(Exception):
        waiting[1].get(timeout=1)  # every slot is held
    p, _, release = jobs[1]
    release.put("end")
    p.join(timeout=120)
    assert waiting[1].get(timeout=120) == held[1]  # the freed GPU
    for p, _, release in [*jobs[:1], *jobs[2:], waiting]:
        release.put("end")
        p.join(timeout=120)


def test_a_job_asking_for_cuda_gets_a_slot_of_a_visible_gpu(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    taken = []
    monkeypatch.setattr(device, "take_slot", lambda folder, gpus, per, wait=2.0: taken.append((gpus, per)) or 2)
    assert device.pick_device("cuda", tmp_path, jobs_per_gpu=2) == torch.device("cuda", 2)
    assert device.pick_device("auto", tmp_path) == torch.device("cuda", 2) and taken == [(3, 2), (3, 1)]
    assert device.pick_device("cuda:1", tmp_path) == torch.device("cuda", 1)  # a GPU named: no slot taken
    assert device.pick_device("cpu", tmp_path) == torch.device("cpu") and len(taken) == 2


def test_the_memory_check_counts_what_the_allocator_holds_unused(monkeypatch):
    gib = 2**30
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda d=None: (2 * gib, 80 * gib))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda d=None: 10 * gib)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda d=None: 3 * gib)
    assert memory.available_bytes(torch.device("cuda", 0)) == 9 * gib  # 2 free + 7 cached by the allocator
    model = build_model("lenet_300_100", (1, 28, 28), 10, seed=0)
    need = memory.estimate_bytes(model, 1, 60, "adam", (1, 28, 28))
    monkeypatch.setattr(memory, "estimate_bytes", lambda *a: 8 * gib)
    assert memory.check_fits(model, 4, 60, "adam", (1, 28, 28), torch.device("cuda", 0)) == 8 * gib
    monkeypatch.setattr(memory, "estimate_bytes", lambda *a: 12 * gib)
    with pytest.raises(LTHError, match=r"^batching: a group of 4 runs .* needs about 12.00 GiB .* has 9.00 GiB free"):
        memory.check_fits(model, 4, 60, "adam", (1, 28, 28), torch.device("cuda", 0))
    assert need > 0


def test_the_activation_count_sees_functional_operations_and_residual_sums():
    """A residual network's forward makes more than its layers' outputs: the activation count includes the
    sums and functional ReLUs a layer hook would miss (resnet20: each block adds its shortcut)."""
    net = build_model("resnet20", (3, 32, 32), 10, seed=0)
    layers = []
    hooks = [m.register_forward_hook(lambda m, i, o: layers.append(o[:1].numel()))
             for m in net.modules() if not list(m.children())]
    net.eval()(torch.zeros(1, 3, 32, 32))
    for h in hooks:
        h.remove()
    assert memory.activation_bytes(net, (3, 32, 32)) > 4 * (sum(layers) + 3 * 32 * 32)


def test_a_run_records_its_device_and_precision():
    record = device.describe(torch.device("cpu"))
    assert record == {"device": "cpu"}
