"""Model-steps per second: M runs trained one at a time (`lth.training.loop.train`) vs together
(`lth.training.batched`).

    .venv/bin/python benchmarks/batched_speed.py [--device cpu|cuda] [--threads 1] [--members 1 4 16 64 256]
                                                 [--models mlp1d lenet_300_100 conv4 resnet20] [--budget S]
    .venv/bin/python benchmarks/batched_speed.py --kernels [--device cpu|cuda]

For each model and group size M this trains M runs (their own seed, data order and random 50% mask)
for the same number of steps, first one after another with `lth.training.loop.train`, then as one group
with `lth.training.batched.train_batched`, and prints model-steps/s (runs x steps / loop seconds) of both and
their ratio. The loop seconds are `train`'s `train_seconds` (the steps plus one evaluation at the
end, on validation and test sets of 256 examples: small next to the steps), summed over the runs, and
for the group its training time. The number of steps shrinks as M grows so that each measurement
takes about --budget seconds (at least --min-steps); a combination predicted to take longer than
--skip seconds is skipped, and says so. Sequential runs are timed for at most --seq-cap of the M
runs (they are independent and alike, so the rate is the same; marked *).

Data: mlp1d trains on real MNIST-1D (generated locally); lenet_300_100 on random images of MNIST's
shape (1x28x28, 10 classes), conv4 and resnet20 on random images of CIFAR-10's shape (3x32x32), no
augmentation. Speed does not depend on pixel values, nor on the training set's size (one gather per
step), so those sets are small (6000 and 2560 examples): the summary's training-set evaluation
after each run, which is not timed, stays short.

Settings: mlp1d (hidden 100) batch 100 Adam; lenet_300_100 batch 60 Adam; conv4 and resnet20 (width
16) batch 128 SGD with momentum 0.9. On CUDA (--device cuda) every timed call is bracketed by
torch.cuda.synchronize(), and the batched defaults there are grouped convolutions and BatchNorm,
batched losses and whole-tensor optimiser steps (lth.training.batched).

The projection: Frankle & Carbin 2019's LeNet figure (5 seeds x 20 pruning levels x 3 variants =
300 runs of 50,000 iterations at batch 60 = 1.5e7 model-steps) at the best batched lenet_300_100
rate measured, and at M = 16 (about the 15 runs (5 seeds x 3 variants) that can train at once when
each pruning level needs the previous level's mask), and sequentially. Training steps only: no
evaluations, pruning or writing.

On CPU, large groups allocate tensors above glibc's mmap threshold (32 MiB at most), which are
mapped and zero-filled afresh at every step (the "sys" time): starting Python with
MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=4294967296 MALLOC_TOP_PAD_=1073741824 made
lenet_300_100 at M = 64 train 26% faster here (595 -> 750 model-steps/s), resnet20 at M = 4 10%.

--kernels: one forward+backward step (no optimiser) of M members, timed for each way of stacking
the layers: sequential (M separate models), lth.training.batched's stacked layers with Conv2d / BatchNorm2d
"loop" or "grouped", and torch.func (stack_module_state + functional_call + vmap). Medians of
--repeats alternating repeats, for the models of --models among lenet_300_100, conv4 and resnet20. It is a
benchmark, not a test: it always exits 0.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from lth.core.parts import DATASETS
from lth.data.fetch import fetch
from lth.data.splits import Splits, load_splits
from lth.models import build_model
from lth.plan.settings import resolve
from lth.pruning.masks import full_mask
from lth.training.batched import StackedModel, train_batched
from lth.training.loop import Segment, train
from lth.training.schedule import lr_at

FC_RUNS, FC_ITERATIONS = 300, 50_000  # Frankle & Carbin 2019, LeNet figure: 5 seeds x 20 levels x 3 variants

CASES = {
    "mlp1d": {"dataset": "mnist1d", "options": {"hidden": 100}, "shape": (40,),
              "training": {"optimizer": "adam", "lr": 1e-2, "batch_size": 100}, "data": "MNIST-1D"},
    "lenet_300_100": {"dataset": "mnist", "options": {}, "shape": (1, 28, 28),
                      "training": {"optimizer": "adam", "lr": 1.2e-3, "batch_size": 60}, "data": "MNIST-shaped random"},
    "conv4": {"dataset": "cifar10", "options": {}, "shape": (3, 32, 32),
              "training": {"optimizer": "sgd", "lr": 0.01, "momentum": 0.9, "batch_size": 128},
              "data": "CIFAR-shaped random"},
    "resnet20": {"dataset": "cifar10", "options": {"width": 16}, "shape": (3, 32, 32),
                 "training": {"optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4,
                              "batch_size": 128}, "data": "CIFAR-shaped random"},
}


# --------------------------------------------------------------------------------------- setup


def random_splits(dataset: str, shape: tuple[int, ...], n_train: int, device) -> Splits:
    g = torch.Generator().manual_seed(0)

    def part(n: int):
        return torch.randn(n, *shape, generator=g).to(device), torch.randint(0, 10, (n,), generator=g).to(device)

    (xt, yt), (xv, yv), (xs, ys) = part(n_train), part(256), part(256)
    return Splits(info=DATASETS[dataset], x_train=xt, y_train=yt, x_val=xv, y_val=yv, x_test=xs, y_test=ys)


def make_splits(name: str, data_dir: Path, device) -> Splits:
    case = CASES[name]
    if name == "mlp1d":
        fetch("mnist1d", data_dir)
        s = load_splits("mnist1d", data_dir, val_size=256, device=device)
        return Splits(info=s.info, x_train=s.x_train, y_train=s.y_train, x_val=s.x_val, y_val=s.y_val,
                      x_test=s.x_test[:256], y_test=s.y_test[:256])
    return random_splits(case["dataset"], case["shape"], 6000 if name == "lenet_300_100" else 2560, device)


def settings(name: str, steps: int) -> dict:
    case = CASES[name]
    return dict(resolve({"dataset": {"name": case["dataset"]}, "model": {"name": name},
                         "training": {**case["training"], "iterations": max(steps, 1), "eval_every": max(steps, 1),
                                      "checkpoint_every": 0}})["training"])


def member(name: str, k: int, device):
    """Run k: its model (seed k) and a random 50% mask (seeded by k) on every prunable weight."""
    case = CASES[name]
    model = build_model(name, case["shape"], 10, seed=k, **case["options"]).to(device)
    g = torch.Generator().manual_seed(1000 + k)
    mask = {n: (torch.rand(m.shape, generator=g) < 0.5).to(device) for n, m in full_mask(model).items()}
    return model, mask


def sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


# --------------------------------------------------------------------------------------- runs


def time_sequential(name: str, splits: Splits, runs: int, steps: int, device) -> float:
    """Loop seconds of `runs` runs trained one after another."""
    training = settings(name, steps)
    total = 0.0
    for k in range(runs):
        model, mask = member(name, k, device)
        sync(device)
        result = train(model, mask, splits, training, Segment(0, steps, lambda t: lr_at(training, t), data_seed=k))
        sync(device)
        total += result["summary"]["train_seconds"]
    return total


def time_batched(name: str, splits: Splits, m: int, steps: int, device) -> float:
    """Loop seconds of m runs trained as one group."""
    training = settings(name, steps)
    models, masks = zip(*(member(name, k, device) for k in range(m)))
    segs = [Segment(0, steps, lambda t: lr_at(training, t), data_seed=k) for k in range(m)]
    sync(device)
    results = train_batched(list(models), list(masks), splits, training, segs)
    sync(device)
    return results[0]["summary"]["train_seconds"] * m  # each member's share is the group's time / m


def speed_table(args, device, data_dir: Path) -> None:
    print(f"torch {torch.__version__}, device {device}, {torch.get_num_threads()} CPU thread(s); random 50% masks; "
          f"about {args.budget:g} s per measurement (>= {args.min_steps} steps), skip over {args.skip:g} s predicted\n")
    head = (f"{'model':<14} {'data':<20} {'batch':>5} {'M':>4} {'steps':>5} {'seq steps/s':>12} "
            f"{'batched steps/s':>16} {'ratio':>6} {'batched ms/step':>16}")
    print(head)
    print("-" * len(head))
    lenet_rates: dict[int, float] = {}
    lenet_seq: list[float] = []
    for name in args.models:
        case = CASES[name]
        splits = make_splits(name, data_dir, device)
        # warm-up (lazy imports, allocator, kernels), then the time of one sequential step
        time_sequential(name, splits, 1, 2, device)
        time_batched(name, splits, 2, 2, device)
        calib = 3
        per_step = time_sequential(name, splits, 1, calib, device) / calib
        for m in args.members:
            steps = max(args.min_steps, min(args.max_steps, int(args.budget / (m * per_step))))
            runs = min(m, args.seq_cap)
            predicted = (runs + m) * steps * per_step
            if predicted > args.skip:
                print(f"{name:<14} {case['data']:<20} {case['training']['batch_size']:>5} {m:>4}   skipped: "
                      f"~{predicted:.0f} s predicted ({steps} steps at {per_step * 1000:.0f} ms per model-step) "
                      f"> --skip {args.skip:g} s", flush=True)
                continue
            seq = runs * steps / time_sequential(name, splits, runs, steps, device)
            seconds = time_batched(name, splits, m, steps, device)
            batched = m * steps / seconds
            mark = "*" if runs < m else " "
            print(f"{name:<14} {case['data']:<20} {case['training']['batch_size']:>5} {m:>4} {steps:>5} "
                  f"{seq:>11.1f}{mark} {batched:>16.1f} {batched / seq:>6.2f} {seconds / steps * 1000:>16.1f}",
                  flush=True)
            if name == "lenet_300_100":
                lenet_rates[m] = batched
                lenet_seq.append(seq)
    print("\nsteps/s: model-steps per second (runs x steps / loop seconds); ratio = batched / sequential; "
          "* sequential timed on --seq-cap runs.")
    if lenet_rates:
        work = FC_RUNS * FC_ITERATIONS
        best = max(lenet_rates, key=lenet_rates.get)
        print(f"\nProjection, Frankle & Carbin 2019's LeNet figure: {FC_RUNS} runs (5 seeds x 20 levels x 3 "
              f"variants) x {FC_ITERATIONS:,} iterations at batch 60 = {work:.2e} model-steps; hours = "
              "model-steps / "
              "(measured model-steps/s) / 3600, training steps only (no evaluation, pruning, I/O):")
        print(f"  batched, best M = {best:>3}: {lenet_rates[best]:9.1f} model-steps/s -> "
              f"{work / lenet_rates[best] / 3600:8.2f} h on this {device}")
        if 16 in lenet_rates:
            print(f"  batched, M = 16 (the ~15 runs free at once when levels run in order): {lenet_rates[16]:9.1f} "
                  f"model-steps/s -> {work / lenet_rates[16] / 3600:8.2f} h")
        seq = statistics.median(lenet_seq)
        print(f"  sequential (median rate):  {seq:9.1f} model-steps/s -> {work / seq / 3600:8.2f} h")


# --------------------------------------------------------------------------------------- kernels


def kernel_table(args, device) -> None:
    from torch.func import functional_call, stack_module_state, vmap

    print(f"torch {torch.__version__}, device {device}, {torch.get_num_threads()} CPU thread(s); one forward+backward "
          f"step (no optimiser) of M members; medians of {args.repeats} alternating repeats\n")
    plans = [("lenet_300_100", (1, 28, 28), 60, {}, (4, 16, 64)), ("conv4", (3, 32, 32), 128, {}, (4,)),
             ("resnet20", (3, 32, 32), 128, {"width": 16}, (4,))]
    if device.type == "cuda":
        plans = [(n, s, b, o, (4, 16, 64, 256)) for n, s, b, o, _ in plans]
    for name, shape, batch, options, sizes in [p for p in plans if p[0] in args.models]:
        for m in sizes:
            models = [build_model(name, shape, 10, seed=k, **options).to(device) for k in range(m)]
            x = torch.randn(m, batch, *shape, device=device)
            y = torch.randint(0, 10, (m, batch), device=device)
            ways = {}

            def sequential():
                for k in range(m):
                    loss = F.cross_entropy(models[k](x[k]), y[k])
                    torch.autograd.grad(loss, list(models[k].parameters()))
            ways["sequential"] = sequential
            convs = any(isinstance(mod, torch.nn.Conv2d) for mod in models[0].modules())
            modes = [("loop", "loop"), ("loop", "grouped"), ("grouped", "grouped")] if convs else [("loop", "loop")]
            for conv, bn in modes:
                stacked = StackedModel(models, conv=conv, bn=bn)
                params = list(stacked.parameters())

                def run(stacked=stacked, params=params):
                    out = stacked(x.reshape(m * batch, *shape)).view(m, batch, -1)
                    loss = F.cross_entropy(out.reshape(m * batch, -1), y.reshape(-1), reduction="none")
                    torch.autograd.grad(loss.view(m, batch).mean(1).sum(), params)
                ways[f"stacked conv={conv} bn={bn}" if convs else "stacked (bmm)"] = run
            p, b = stack_module_state(models)
            base = build_model(name, shape, 10, seed=0, **options).to(device)

            def one(pp, bb, xx, yy):
                return F.cross_entropy(functional_call(base, (pp, bb), (xx,)), yy)

            def vmapped():
                torch.autograd.grad(vmap(one)(p, b, x, y).sum(), list(p.values()))
            ways["torch.func vmap"] = vmapped
            times: dict[str, list[float]] = {w: [] for w in ways}
            for w, fn in ways.items():  # warm-up
                try:
                    fn()
                except Exception as e:  # noqa: BLE001
                    print(f"{name} M={m} {w}: failed ({type(e).__name__}: {e})")
                    times.pop(w)
            for _ in range(args.repeats):
                for w in times:
                    sync(device)
                    t0 = time.perf_counter()
                    ways[w]()
                    sync(device)
                    times[w].append(time.perf_counter() - t0)
            ref = statistics.median(times["sequential"])
            for w, ts in times.items():
                t = statistics.median(ts)
                print(f"{name:<14} batch {batch:>3} M={m:<3} {w:<32} {t * 1000:9.1f} ms/step {m / t:9.1f} "
                      f"model-steps/s  x{ref / t:5.2f} vs sequential", flush=True)
            print()


# --------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu", help="cpu | cuda | auto (default cpu)")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    p.add_argument("--members", type=int, nargs="+", default=[1, 4, 16, 64, 256])
    p.add_argument("--models", nargs="+", default=list(CASES), choices=list(CASES))
    p.add_argument("--budget", type=float, default=None, help="seconds per measurement (default 6 CPU, 10 CUDA)")
    p.add_argument("--min-steps", type=int, default=3)
    p.add_argument("--max-steps", type=int, default=40)
    p.add_argument("--skip", type=float, default=None,
                   help="skip a (model, M) predicted to take longer, seconds (default 40 CPU, 120 CUDA)")
    p.add_argument("--seq-cap", type=int, default=64, help="time at most this many sequential runs (default 64)")
    p.add_argument("--kernels", action="store_true", help="compare the ways of stacking layers instead")
    p.add_argument("--repeats", type=int, default=3, help="--kernels: repeats (default 3)")
    p.add_argument("--data-dir", type=Path, default=None, help="where to generate MNIST-1D (default: a temp dir)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if cuda and args.max_steps == 40:
        args.max_steps = 50
    args.budget = args.budget if args.budget is not None else (10.0 if cuda else 6.0)
    args.skip = args.skip if args.skip is not None else (120.0 if cuda else 40.0)
    if args.kernels:
        kernel_table(args, device)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        speed_table(args, device, args.data_dir or Path(tmp))
    return 0


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # a benchmark: report, never fail the caller
        print(f"batched_speed: error: {type(e).__name__}: {e}", file=sys.stderr)
    sys.exit(0)
