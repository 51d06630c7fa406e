"""End-to-end speed of the default workflow: wall time vs. time spent inside training loops.

Runs `snakemake --cores all` on config/config.yaml into a fresh temporary results folder and
prints the run's wall time, the sum of the training loops' times (summary.csv's train_seconds,
over all runs) and their ratio. The difference is process start-up (importing torch), data
loading, evaluation outside the loop and scheduling. Goals (issue 3): wall <= 10 min (5 ideal),
wall / training-loop sum <= 1.5.

    uv run python benchmarks/workflow_speed.py [--cores N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cores", default="all")
    ap.add_argument("--keep", help="results folder to use and keep (default: a temporary one)")
    args = ap.parse_args()
    work = Path(args.keep or tempfile.mkdtemp(prefix="lth-bench-"))
    results, data = work / "results", work / "data"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    cmd = ["snakemake", "--cores", args.cores, "--config", "paths_outside_project=True", f"results_dir={results}",
           f"data_dir={data}",
           f"reports_dir={work / 'reports'}"]
    started = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    rows = [r for f in results.glob("*/summary.csv") for r in csv.DictReader(f.open())]
    loops = sum(float(r["train_seconds"]) for r in rows)
    jobs = sum(1 for _ in results.glob("*/logs/*.log"))  # one log per training job
    print(f"default workflow, {args.cores} cores: {len(rows)} training runs in {jobs} training jobs")
    print(f"wall time                     {wall:8.1f} s  (goal <= 600 s, ideal <= 300 s)")
    print(f"sum of training-loop times    {loops:8.1f} s")
    print(f"wall / training-loop sum      {wall / loops:8.2f}    (goal <= 1.5)")
    if not args.keep:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
