"""End-to-end speed of the default workflow: wall time vs. time spent inside training loops.

Runs `snakemake --cores all` on config/config.yaml into a fresh temporary results folder (datasets
fetched too) and prints the run's wall time, the number of training jobs, the sum of the training
loops' times (summary.csv's train_seconds, over all runs) and their ratio. The difference is
process start-up (importing torch), data loading, evaluation outside the loop and scheduling.
Goals (issue 3): wall <= 10 min (5 ideal), wall / training-loop sum <= 1.5.

With `--against REV`, the workflow of git revision REV (a clone of this repository checked out at
REV, its `lth` package first on PYTHONPATH, this environment otherwise) runs too, alternating with
this tree's `--repeats` times, in one invocation: the median walls and their ratio are printed,
whether the two trees' trained weights and masks are bitwise the same, and whether their
summary.csv and layer_density.csv tables are (every column but the seconds). `--configfile F`
runs that config (a path inside the repository, the same in both trees) instead of the default,
e.g. `.test/config/config.yaml`: every variant, a transfer target and a one-shot sweep.

    uv run python benchmarks/workflow_speed.py [--cores N] [--keep DIR] [--against REV] [--repeats N]
                                               [--configfile F]
"""

from __future__ import annotations

import argparse
import csv
import filecmp
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(tree: Path, work: Path, cores: str, src: Path | None = None, configfile: str | None = None) -> dict:
    """One run of the workflow of `tree` (its default config, or `configfile`) into `work`: wall time,
    runs, jobs, loop times."""
    results, data = work / "results", work / "data"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env["PYTHONPATH"] = str(src or tree / "src")
    cmd = ["snakemake", "--cores", cores, *(["--configfile", configfile] if configfile else []), "--config",
           "paths_outside_project=True", f"results_dir={results}", f"data_dir={data}",
           f"reports_dir={work / 'reports'}"]
    started = time.perf_counter()
    subprocess.run(cmd, cwd=tree, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    rows = [r for f in results.glob("*/summary.csv") for r in csv.DictReader(f.open())]
    jobs = sum(1 for f in results.glob("*/logs/*.log") if f.stem.split("-")[0].rstrip("0123456789")
               in ("dense", "rewind", "level", "controls", "transfer", "probe"))
    return {"wall": wall, "runs": len(rows), "jobs": jobs, "loops": sum(float(r["train_seconds"]) for r in rows),
            "results": results}


def same_tensors(a: Path, b: Path) -> tuple[int, int]:
    """(tensor files compared, those that differ) between two results folders."""
    files = sorted(p.relative_to(a) for p in a.rglob("*.safetensors"))
    return len(files), sum(not (b / f).exists() or not filecmp.cmp(a / f, b / f, shallow=False) for f in files)


def same_tables(a: Path, b: Path) -> tuple[int, list[str]]:
    """(tables compared, those that differ) between two results folders: every experiment's summary.csv
    and layer_density.csv, every column but the seconds (wall and training times)."""
    def rows(path: Path) -> list[dict]:
        return [{k: v for k, v in r.items() if not k.endswith("seconds")} for r in csv.DictReader(path.open())]

    files = sorted(p.relative_to(a) for name in ("summary.csv", "layer_density.csv") for p in a.glob(f"*/{name}"))
    return len(files), [str(f) for f in files if not (b / f).exists() or rows(a / f) != rows(b / f)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cores", default="all")
    ap.add_argument("--keep", help="folder to use and keep (default: a temporary one)")
    ap.add_argument("--against", metavar="REV", help="also run the workflow of git revision REV, alternating")
    ap.add_argument("--repeats", type=int, default=1, help="runs of each tree (fresh folders each time)")
    ap.add_argument("--configfile", help="run this config (a path in the repository) instead of the default")
    args = ap.parse_args()
    work = Path(args.keep or tempfile.mkdtemp(prefix="lth-bench-"))
    trees = {"this tree": (ROOT, None)}
    if args.against:
        clone = work / "against"
        subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
        subprocess.run(["git", "-C", str(clone), "checkout", "--quiet", args.against], check=True)
        trees[args.against] = (clone, clone / "src")
    measured: dict[str, list[dict]] = {name: [] for name in trees}
    for i in range(args.repeats):
        for name, (tree, src) in trees.items():
            folder = work / f"{name.replace(' ', '_')}-{i}"
            shutil.rmtree(folder, ignore_errors=True)
            measured[name].append(run(tree, folder, args.cores, src, args.configfile))
    print(f"{args.configfile or 'default'} workflow, {args.cores} cores, {args.repeats} run(s) of each tree, "
          "alternating")
    for name, ms in measured.items():
        wall, loops = statistics.median(m["wall"] for m in ms), statistics.median(m["loops"] for m in ms)
        print(f"{name}: {ms[0]['runs']} training runs in {ms[0]['jobs']} training jobs")
        each = ", ".join(f"{m['wall']:.1f}" for m in ms)
        print(f"  wall time (median)            {wall:8.1f} s  (runs: {each})")
        print(f"  sum of training-loop times    {loops:8.1f} s")
        print(f"  wall / training-loop sum      {wall / loops:8.2f}    (goal <= 1.5)")
    if args.against:
        ours, theirs = (statistics.median(m["wall"] for m in measured[n]) for n in trees)
        print(f"speed-up of this tree over {args.against}: {theirs / ours:.2f}x (ratio of the median walls)")
        n, differ = same_tensors(measured[args.against][0]["results"], measured["this tree"][0]["results"])
        print(f"trained weights and masks: {n} files compared, {differ} differ")
        n, differ = same_tables(measured[args.against][0]["results"], measured["this tree"][0]["results"])
        print(f"summary and layer-density tables (all but the seconds): {n} compared, {len(differ)} differ"
              + (f": {', '.join(differ)}" if differ else ""))
    if not args.keep:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
