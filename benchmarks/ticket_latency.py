"""CPU inference latency of an experiment's tickets: dense vs masked vs sparse CSR (lth.analyses.inference).

    .venv/bin/python benchmarks/ticket_latency.py [--results results/mnist1d_mlp] [--repeats 50] [--warmup 5]
                                                  [--batches 1 256] [--threads 1]

For the dense run and every level's ticket of the experiment's first seed (its finished runs; the
default experiment of config/config.yaml unless --results says otherwise), prints a markdown table per
batch size: weights remaining, test accuracy, FLOPs kept, the median latency of a forward pass of the
dense network, of the ticket as it trains (`masked`: dense tensors holding zeros) and of the ticket
with its Linear weights as torch.sparse CSR tensors (`sparse_csr`), each median's ratio to dense, and
the CSR model's memory over dense's. The measurement is `lth.analyses.inference.table` (the analysis
`inference` writes the same to analysis-inference.csv with its own, smaller, repeats). Always exits 0
when the folder has finished runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", default=str(ROOT / "results" / "mnist1d_mlp"))
    p.add_argument("--repeats", type=int, default=50)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--batches", type=int, nargs="+", default=[1, 256])
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)

    import pandas as pd

    from lth.analyses.inference import table
    from lth.plan import Plan

    plan = Plan.from_results(args.results)
    t = pd.DataFrame(table(plan, repeats=args.repeats, warmup=args.warmup, batches=args.batches,
                           threads=args.threads))
    import torch

    print(f"{plan.experiment}, seed {int(t['seed'].iloc[0])}: median of {args.repeats} forward passes "
          f"({args.warmup} warm-up), {args.threads} thread(s), torch {torch.__version__}; ratio = over dense")
    for batch, part in t.groupby("batch"):
        wide = part.pivot_table(index=["level", "variant", "weights_remaining", "test_accuracy", "flops_kept"],
                                columns="implementation", values=["latency_ms", "latency_ratio", "memory_ratio"],
                                sort=False)
        print(f"\n### batch {batch}\n")
        print("| level | variant | weights | test acc | FLOPs kept | dense ms | masked ms (ratio) | CSR ms (ratio) "
              "| CSR memory ratio |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        dense = part.loc[part["implementation"] == "dense", "latency_ms"].iloc[0]
        for (level, variant, w, acc, flops), r in wide.iterrows():
            def cell(impl):
                ms = r.get(("latency_ms", impl))
                return "" if pd.isna(ms) else f"{ms:.3f} ({r[('latency_ratio', impl)]:.2f})"
            csr_memory = r.get(("memory_ratio", "sparse_csr"))
            print(f"| {level} | {variant} | {100 * w:.1f}% | {acc:.3f} | {flops:,} | {dense:.3f} | {cell('masked')} "
                  f"| {cell('sparse_csr')} | {'' if pd.isna(csr_memory) else f'{csr_memory:.2f}'} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
