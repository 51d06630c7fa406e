"""The GPU check: one command for the first machine with a GPU, that writes one markdown record.

    python benchmarks/gpu_check.py --device cuda [--data-dir .gpu/data] [--out benchmarks/results]
    python benchmarks/gpu_check.py --device cpu --quick      # the same, small, on a CPU (a test runs it)

What it runs, in order (each section's figures go to the record, with how long it took):

1. The machine: GPU, driver-side versions (torch, CUDA, cuDNN), the switches a job sets
   (lth.jobs.device.configure) and what a run records of them.
2. Determinism: a small experiment (mlp1d on MNIST-1D, every variant, a rewind point k = 20, a
   transfer target, 2 seeds, 2 levels) trained twice without batching and twice with `batching: 8`,
   in fresh folders; every trained tensor (final weights and masks) compared bitwise between the two
   runs of each, and each batched run against its solo twin (the largest weight difference and test
   accuracy difference; on a CPU these are 0: bitwise; on a GPU the tolerance stated is 1 point of
   test accuracy, because kernels chosen by shape may differ in the last bits).
3. The default experiment (config/config.yaml: 189 runs of MNIST-1D's residual MLP) end to end on
   the device, its jobs in the plan's order in this process (what Snakemake runs, without
   Snakemake, which the GPU machine lacks), with `batching` as given (--default-batching), timed,
   and its summary table written.
4. benchmarks/batched_speed.py at M in 1, 16, 64, 256 for lenet_300_100 and resnet20, and its
   kernel comparison (grouped vs loop convolutions), with the Frankle & Carbin projection.
5. Memory: the peak a group of M runs allocates (torch.cuda.max_memory_allocated) against
   lth.training.batched.estimate_bytes, for lenet_300_100 and resnet20.

The GPU machine (see NOTES) has Python 3.12, torch, numpy, scipy, pandas, pyyaml, safetensors and
matplotlib, and no package registry: carry the MNIST-1D tensors generated here (`--data-dir`: the
folders data/mnist1d*, made by `lth fetch mnist1d` and the default config's targets) and the wheels of
jsonschema (jsonschema, jsonschema-specifications, referencing, rpds-py for cp312); run from the
repository root with `PYTHONPATH=src`. --quick shrinks every section (seconds on a CPU).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from lth.data.fetch import fetch  # noqa: E402
from lth.jobs import Context  # noqa: E402
from lth.jobs.device import configure, describe, pick_device  # noqa: E402
from lth.plan import plan_of  # noqa: E402
from lth.store import artifacts  # noqa: E402
from lth.store.results import read_record  # noqa: E402
from lth.store.summary import write_summary  # noqa: E402

SMALL = {
    "dataset": {"name": "mnist1d", "val_size": 500},
    "model": {"name": "mlp1d", "options": {"hidden": 32}},
    "training": {"optimizer": "adam", "lr": 0.01, "batch_size": 100, "iterations": 200, "eval_every": 50},
    "pruning": {"strategy": "layerwise", "rates": {"fc": 0.5, "output": 0.25}, "levels": 2},
    "rewind_iteration": 20,
    "variants": ["ticket", "reinit", "random_prune", "lr_rewind", "finetune"],
    "seeds": [0, 1],
    "transfer": {"targets": {"seed43": {"dataset": {"name": "mnist1d", "val_size": 500, "options": {"seed": 43}}}}},
}


class Record:
    """The markdown record: sections of text and tables, printed as they come."""

    def __init__(self):
        self.lines: list[str] = []

    def section(self, title: str) -> None:
        self.add(f"\n## {title}\n")

    def add(self, text: str) -> None:
        print(text, flush=True)
        self.lines.append(text)

    def table(self, head: list[str], rows: list[list]) -> None:
        self.add("| " + " | ".join(head) + " |\n| " + " | ".join("---" for _ in head) + " |")
        for row in rows:
            self.add("| " + " | ".join(str(c) for c in row) + " |")


def train_experiment(name: str, settings: dict, root: Path, data_dir: Path, device: torch.device,
                     batching: int) -> tuple[Context, float]:
    """Every job of an experiment in the plan's order (each waits only on earlier ones), in this process."""
    plan = plan_of(name, settings, root / name, {"data_dir": str(data_dir), "batching": batching})
    plan.write()
    for d in [plan.settings.dataset, *(t.dataset for t in plan.settings.transfer.targets.values())]:
        fetch(d.name, data_dir, options=d.options.thaw() or None)  # there already on the GPU machine: checked
    ctx = Context(plan, device)
    started = time.perf_counter()
    for job in plan.jobs():
        ctx.run(job)
    sync(device)
    write_summary(plan)
    return ctx, time.perf_counter() - started


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def tensors(plan) -> dict[str, dict[str, torch.Tensor]]:
    """Every trained tensor file of an experiment (final weights and masks), by its path in the folder."""
    root = plan.layout.root
    return {str(p.relative_to(root)): artifacts.load_tensors(p)
            for p in sorted(root.rglob("*.safetensors")) if p.name in ("final.safetensors", "mask.safetensors")}


def differ(a: dict, b: dict) -> tuple[int, int, float]:
    """(files compared, files not bitwise equal, the largest absolute difference of any tensor)."""
    worst, unequal = 0.0, 0
    for path, ta in a.items():
        tb = b[path]
        same = all(torch.equal(ta[k], tb[k]) for k in ta)
        unequal += not same
        for k in ta:
            if ta[k].is_floating_point():
                worst = max(worst, (ta[k].double() - tb[k].double()).abs().max().item())
    return len(a), unequal, worst


def accuracy_gap(a, b) -> float:
    """The largest test-accuracy difference between the runs of two plans of the same experiment."""
    gaps = [abs(read_record(a.layout.metrics(k))["summary"]["test_accuracy"]
                - read_record(b.layout.metrics(k))["summary"]["test_accuracy"]) for k in a.runs()]
    return max(gaps)


def machine(record: Record, device: torch.device) -> None:
    record.section("1. The machine")
    configure(device, "fp32")
    record.table(["what", "value"], [["date", datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")],
                                     ["python", platform.python_version()], ["torch", torch.__version__],
                                     *[[k, v] for k, v in describe(device).items()]])


def determinism(record: Record, device: torch.device, data_dir: Path, work: Path, quick: bool) -> None:
    record.section("2. Determinism: the same experiment twice, without and with batching")
    settings = {**SMALL, **({"seeds": [0], "pruning": {**SMALL["pruning"], "levels": 1}} if quick else {})}
    runs = {}
    for batching in (1, 8):
        for copy in ("a", "b"):
            ctx, seconds = train_experiment("small", settings, work / f"b{batching}{copy}", data_dir, device,
                                            batching)
            runs[batching, copy] = (ctx.plan, seconds)
    rows = []
    for batching in (1, 8):
        n, unequal, worst = differ(tensors(runs[batching, "a"][0]), tensors(runs[batching, "b"][0]))
        rows.append([f"batching {batching}: run a vs run b", n, unequal, f"{worst:.3g}", "bitwise",
                     f"{runs[batching, 'a'][1]:.1f} s"])
    n, unequal, worst = differ(tensors(runs[1, "a"][0]), tensors(runs[8, "a"][0]))
    gap = accuracy_gap(runs[1, "a"][0], runs[8, "a"][0])
    rows.append(["batching 8 vs batching 1 (members vs solo)", n, unequal, f"{worst:.3g}",
                 "bitwise on a CPU; test accuracy within 1 point on a GPU", f"largest accuracy gap {100 * gap:.2f} pt"])
    record.table(["compared", "tensor files", "not equal", "largest difference", "expected", "time / note"], rows)
    same = all(r[2] == 0 for r in rows[:2])
    within = gap <= 0.01 and (device.type != "cpu" or rows[2][2] == 0)
    record.add(f"\nVerdict: repeated runs {'bitwise identical' if same else 'DIFFER'}; batched vs solo "
               f"{'within the tolerance' if within else 'OUTSIDE the tolerance'}.")


def default_experiment(record: Record, device: torch.device, data_dir: Path, work: Path, batching: int,
                       quick: bool) -> None:
    record.section(f"3. The default experiment end to end (batching {batching})")
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    name, settings = next(iter(config["experiments"].items()))
    if quick:
        settings = {**settings, "seeds": [0], "pruning": {**settings["pruning"], "levels": 1},
                    "training": {**settings["training"], "iterations": 100}, "transfer": {}}
    ctx, seconds = train_experiment(name, settings, work / "default", data_dir, device, batching)
    plan = ctx.plan
    rows = [read_record(plan.layout.metrics(k)) for k in plan.runs()]
    last = max(k.level for k in plan.runs())
    tickets = [r["summary"]["test_accuracy"] for r in rows if r["level"] == last and r["variant"] == "ticket"
               and not r["target"]]
    dense = [r["summary"]["test_accuracy"] for r in rows if r["level"] == 0 and not r["target"]]
    record.table(["runs", "jobs", "wall time", "loops (sum)", "dense test acc.", f"ticket at level {last}"],
                 [[len(rows), len(plan.jobs()), f"{seconds:.1f} s",
                   f"{sum(r['summary']['train_seconds'] for r in rows):.1f} s",
                   f"{100 * sum(dense) / len(dense):.1f} %", f"{100 * sum(tickets) / len(tickets):.1f} %"]])


def speed(record: Record, device: torch.device, quick: bool) -> None:
    import batched_speed

    record.section("4. Batched training speed (benchmarks/batched_speed.py)")
    members = ["1", "4"] if quick else ["1", "16", "64", "256"]
    models = ["lenet_300_100"] if quick else ["lenet_300_100", "resnet20"]
    for argv in (["--device", device.type, "--members", *members, "--models", *models,
                  *(["--budget", "0.5", "--max-steps", "3"] if quick else ["--budget", "6"])],
                 ["--kernels", "--device", device.type, "--models", "lenet_300_100",
                  *(["--repeats", "1"] if quick else ["resnet20", "--repeats", "3"])]):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            batched_speed.main(argv)
        record.add("```\n$ benchmarks/batched_speed.py " + " ".join(argv) + "\n" + out.getvalue().rstrip() + "\n```")


def memory(record: Record, device: torch.device, quick: bool) -> None:
    from lth.training.batched import estimate_bytes, train_batched
    from lth.training.loop import Segment
    from lth.training.schedule import lr_at

    from batched_speed import CASES, make_splits, member, settings

    record.section("5. Peak memory against the estimate")
    rows = []
    for name in ("lenet_300_100",) if quick else ("lenet_300_100", "resnet20"):
        splits = make_splits(name, Path(tempfile.gettempdir()), device)
        for m in ([1, 2] if quick else [1, 16, 64]):
            models, masks = zip(*(member(name, k, device) for k in range(m)))
            training = settings(name, 2)
            estimate = estimate_bytes(models[0], m, training["batch_size"], training["optimizer"],
                                      CASES[name]["shape"])
            if device.type == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats(device)
                base = torch.cuda.memory_allocated(device)
            segs = [Segment(0, 2, lambda t, tr=training: lr_at(tr, t), data_seed=k) for k in range(m)]
            train_batched(list(models), list(masks), splits, training, segs, memory_check=False)
            peak = torch.cuda.max_memory_allocated(device) - base if device.type == "cuda" else None
            rows.append([name, m, f"{estimate / 2**20:.0f} MiB",
                         f"{peak / 2**20:.0f} MiB" if peak is not None else "(no GPU: not measured)",
                         f"{estimate / peak:.2f}" if peak else ""])
            del models, masks
    record.table(["model", "M", "estimate", "peak allocated", "estimate / peak"], rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--data-dir", type=Path, default=ROOT / "data", help="holds the MNIST-1D tensors (fetched)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    ap.add_argument("--default-batching", type=int, default=8)
    ap.add_argument("--quick", action="store_true", help="every section small (a CPU test)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    device = pick_device(args.device)
    record = Record()
    record.add(f"# GPU check: {describe(device).get('gpu', str(device))}\n\n`python benchmarks/gpu_check.py "
               f"{' '.join(argv if argv is not None else sys.argv[1:])}` at commit {commit()}")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lth-gpu-check-") as tmp:
        work = Path(tmp)
        for part in (lambda: machine(record, device),
                     lambda: determinism(record, device, args.data_dir, work, args.quick),
                     lambda: default_experiment(record, device, args.data_dir, work, args.default_batching,
                                                args.quick),
                     lambda: speed(record, device, args.quick),
                     lambda: memory(record, device, args.quick)):
            section = time.perf_counter()
            part()
            record.add(f"\n({time.perf_counter() - section:.0f} s)")
    record.add(f"\nIn all: {time.perf_counter() - started:.0f} s.")
    args.out.mkdir(parents=True, exist_ok=True)
    name = describe(device).get("gpu", device.type).replace(" ", "-")
    path = args.out / f"gpu-check-{datetime.now(timezone.utc):%Y%m%d-%H%M}-{name}.md"
    path.write_text("\n".join(record.lines) + "\n")
    print(f"record: {path}")
    return 0


def commit() -> str:
    try:
        return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip() or "unknown"
    except OSError:
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
