"""Training speed of the lth engine against a conventional DataLoader + pruning-hook loop, on CPU.

    .venv/bin/python benchmarks/train_speed.py [--iterations N] [--repeats R] [--threads T]

For mlp1d (MNIST-1D) and lenet_300_100 (MNIST-shaped data) this times N optimiser steps of

- engine:   `lth.training.loop.train` under a random 50%-pruned mask (data as tensors, one indexing op
            per batch, pruned weights re-zeroed by `MaskEnforcer` after each step);
- baseline: the same model, mask and Adam trained the usual way: a per-example `TensorDataset`
            in a `DataLoader(shuffle=True, num_workers=0)`, the mask applied with
            `torch.nn.utils.prune.custom_from_mask` (a forward pre-hook computes weight_orig * mask).

`train` evaluates on val+test before the loop (not timed by us) and once more at the end of the
loop (eval_every = N), and its summary evaluates the training set after the loop (not timed).
The engine rate is N / (train_seconds - one evaluation), the evaluation being timed separately
on the same splits; the rate with that evaluation included is printed too. For context the
baseline is also timed with `torch.optim.Adam(fused=True)` (column "base fusedAdam"): the hook
leaves pruned weights' gradients exactly 0, so Adam's exp_avg_sq is half zeros, and torch's
unfused sqrt is several times slower on zeros on some CPUs (here: AMD EPYC, MKL build).

MNIST cannot be downloaded here, so lenet_300_100 trains on random images of MNIST's shape
(55,000 train / 5,000 val / 10,000 test, 1x28x28, 10 classes): speed does not depend on pixels.
It is a benchmark, not a test: it always exits 0.
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
from torch.nn.utils import prune
from torch.utils.data import DataLoader, TensorDataset

from lth.core.parts import DATASETS
from lth.data.fetch import fetch
from lth.data.splits import Splits, load_splits
from lth.models import build_model
from lth.plan.settings import resolve
from lth.pruning.masks import full_mask
from lth.training import evaluation, loop, schedule

SEED = 0
GOAL = 2.0


# --------------------------------------------------------------------------------------- setup


def mnist1d_splits(data_dir: Path) -> Splits:
    fetch("mnist1d", data_dir)
    return load_splits("mnist1d", data_dir, val_size=500)


def synthetic_mnist_splits() -> Splits:
    """Random float32 images with MNIST's shape and split sizes (real MNIST needs a download)."""
    g = torch.Generator().manual_seed(SEED)

    def part(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.randn(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g)

    (xt, yt), (xv, yv), (xs, ys) = part(55_000), part(5_000), part(10_000)
    return Splits(info=DATASETS["mnist"], x_train=xt, y_train=yt, x_val=xv, y_val=yv, x_test=xs, y_test=ys)


def random_mask(model: torch.nn.Module, density: float = 0.5) -> dict[str, torch.Tensor]:
    """Exactly `density` of every prunable weight kept, positions drawn at random (seeded)."""
    g = torch.Generator().manual_seed(SEED + 1)
    mask = {}
    for name, m in full_mask(model).items():
        keep = torch.zeros(m.numel(), dtype=torch.bool)
        keep[torch.randperm(m.numel(), generator=g)[: round(density * m.numel())]] = True
        mask[name] = keep.view_as(m)
    return mask


# --------------------------------------------------------------------------------------- runs


def run_engine(case: dict, iterations: int) -> dict[str, float]:
    """Seconds of `train`'s loop (final evaluation included) and of one evaluation, timed separately."""
    training = resolve({"dataset": {"name": case["dataset"]}, "model": {"name": case["model"]},
                        "training": {**case["training"], "iterations": iterations,
                                     "eval_every": iterations}})["training"]
    model = build_model(case["model"], case["splits"].info.input_shape, 10, seed=SEED, **case["options"])
    seg = loop.Segment(start=0, stop=iterations, lr=lambda t: schedule.lr_at(training, t), data_seed=SEED,
                         label=f"bench {case['model']}")
    started = time.perf_counter()
    result = loop.train(model, case["mask"], case["splits"], training, seg)
    call = time.perf_counter() - started
    loop_s = result["summary"]["train_seconds"]  # loop + the final val/test evaluation
    s = case["splits"]
    t0 = time.perf_counter()
    # what the loop's final evaluation does (val, then test)
    evaluation.evaluate(model, s.x_val, s.y_val), evaluation.evaluate(model, s.x_test, s.y_test)
    eval_s = time.perf_counter() - t0
    return {"loop": loop_s, "eval": eval_s, "call": call}


def run_baseline(case: dict, iterations: int, fused: bool = False) -> dict[str, float]:
    """Seconds of the conventional loop: per-example DataLoader, pruning hooks, Adam (`fused`: fused=True)."""
    s, tr = case["splits"], case["training"]
    model = build_model(case["model"], s.info.input_shape, 10, seed=SEED, **case["options"])
    modules = dict(model.named_modules())
    for name, m in case["mask"].items():
        prune.custom_from_mask(modules[name.rsplit(".", 1)[0]], "weight", m)
    optimizer = torch.optim.Adam(model.parameters(), lr=tr["lr"], **({"fused": True} if fused else {}))
    loader = DataLoader(TensorDataset(s.x_train, s.y_train), batch_size=tr["batch_size"], shuffle=True,
                        num_workers=0, drop_last=True, generator=torch.Generator().manual_seed(SEED))
    model.train()
    t = 0
    started = time.perf_counter()
    while t < iterations:
        for xb, yb in loader:
            loss = F.cross_entropy(model(xb), yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            t += 1
            if t == iterations:
                break
    return {"loop": time.perf_counter() - started}


# --------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--iterations", type=int, default=500, help="optimiser steps per timed run (default 500)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs of each, alternating (default 3)")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads for both (default 1)")
    p.add_argument("--data-dir", type=Path, default=None, help="where to fetch MNIST-1D (default: a temp dir)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    N, R = args.iterations, args.repeats

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = args.data_dir or Path(tmp)
        cases = [
            {"model": "mlp1d", "options": {"hidden": 100}, "dataset": "mnist1d", "splits": mnist1d_splits(data_dir),
             "training": {"optimizer": "adam", "lr": 1e-2, "batch_size": 100}, "note": "MNIST-1D"},
            {"model": "lenet_300_100", "options": {}, "dataset": "mnist", "splits": synthetic_mnist_splits(),
             "training": {"optimizer": "adam", "lr": 1.2e-3, "batch_size": 60},
             "note": "synthetic MNIST-shaped random data"},
        ]
    print(f"torch {torch.__version__}, CPU, {torch.get_num_threads()} thread(s); {N} iterations x {R} repeats; "
          f"random 50%-pruned mask on every prunable weight; Adam")
    print("lenet_300_100 uses SYNTHETIC random images of MNIST's shape (55,000 x 1x28x28, 10 classes): "
          "MNIST cannot be downloaded here, and speed does not depend on pixel values.\n")

    rows = []
    for case in cases:
        model = build_model(case["model"], case["splits"].info.input_shape, 10, seed=SEED, **case["options"])
        case["mask"] = random_mask(model)
        warm = min(20, N)  # untimed warm-up (first optimiser steps, allocator, lazy imports)
        run_engine(case, warm), run_baseline(case, warm), run_baseline(case, warm, fused=True)
        eng, base, fused = [], [], []
        for _ in range(R):
            eng.append(run_engine(case, N))
            base.append(run_baseline(case, N))
            fused.append(run_baseline(case, N, fused=True))
        e_loop = statistics.median(N / (r["loop"] - r["eval"]) for r in eng)
        e_incl = statistics.median(N / r["loop"] for r in eng)
        e_eval = statistics.median(r["eval"] for r in eng)
        b = statistics.median(N / r["loop"] for r in base)
        bf = statistics.median(N / r["loop"] for r in fused)
        rows.append((case, e_loop, e_incl, e_eval, b, bf))

    head = (f"{'model':<14} {'batch':>5} {'engine it/s':>12} {'(+1 eval)':>10} {'eval s':>7} {'baseline it/s':>14} "
            f"{'ratio':>6} {'base fusedAdam':>15} {'ratio_f':>7}")
    print(head)
    print("-" * len(head))
    for case, e_loop, e_incl, e_eval, b, bf in rows:
        print(f"{case['model']:<14} {case['training']['batch_size']:>5} {e_loop:>12.1f} {e_incl:>10.1f} "
              f"{e_eval:>7.3f} {b:>14.1f} {e_loop / b:>6.2f} {bf:>15.1f} {e_loop / bf:>7.2f}   ({case['note']})")
    print("\nengine it/s: N / (loop seconds - one val+test evaluation timed separately); (+1 eval): evaluation "
          "left in; ratio = engine it/s / baseline it/s; medians of the repeats.")
    print("base fusedAdam, ratio_f: the same baseline with torch.optim.Adam(fused=True). The pruning hook leaves the "
          "pruned weights' gradients\nexactly 0, so half of Adam's exp_avg_sq stays 0, and torch's unfused "
          "sqrt is much slower on zeros on some CPUs;\nthe fused kernel is not, so that column shows how much "
          "of the ratio comes from that effect.")
    for case, e_loop, e_incl, _, b, bf in rows:
        if case["model"] == "lenet_300_100":
            print(f"lenet_300_100 batch {case['training']['batch_size']}: engine/baseline speed ratio = "
                  f"{e_loop / b:.2f} (goal >= {GOAL:g}; {e_incl / b:.2f} with one evaluation included; "
                  f"{e_loop / bf:.2f} against the baseline with fused Adam)")
    return 0


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # a benchmark: report, never fail the caller
        print(f"train_speed: error: {type(e).__name__}: {e}", file=sys.stderr)
    sys.exit(0)
