"""Recovery of planted sparse two-layer ReLU networks by IHT: exact-support rate vs density and samples.

    .venv/bin/python benchmarks/iht_recovery.py [--seeds 5] [--densities 0.05 0.1 0.2 0.4] [--samples 200 500 1000]

For each density, number of training samples and seed, `lth.training.modes.planted.make_planted` draws a teacher
(dim 20, hidden 10 by default: s = density * 200 nonzeros, Gaussian inputs, noiseless) and
`lth.training.modes.planted.fit_iht` recovers it with a budget of s weights, in two formulations of
Fridovich-Keil & Pilanci 2025 (arXiv:2509.20323):

- convex:     their theorem's setting: fixed gates whose generators cover the planted activation
              patterns, plus `--decoys` random ones (default: as many as the teacher has units, so
              the student is twice as wide and must find which units are real);
- sequential: their experiments': the ReLU network itself, gates from the current weights, from
              zero with random gates for empty units; knows nothing of the teacher.

A run has recovered the support when the student's mask, units matched to the teacher's, equals the
planted support; "exact" adds every weight within 1e-4. Prints a markdown table. A benchmark, not
a test: it always exits 0. About a minute on 2 CPU cores with the defaults.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from lth.training.modes.planted import covering_generators, fit_iht, make_planted, recovery


def run(formulation: str, density: float, samples: int, seed: int, args) -> dict:
    data = make_planted(seed, samples, 500, args.dim, args.hidden, density)
    generators = covering_generators(data, args.decoys, seed) if formulation == "convex" else None
    fit = fit_iht(data, density, steps=args.steps, warmup=args.warmup, ramp=args.ramp, seed=seed,
                  generators=generators)
    return {**recovery(fit["W"], fit["mask"], data["W"]), "steps": fit["steps"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 per cell")
    p.add_argument("--densities", type=float, nargs="+", default=[0.05, 0.1, 0.2, 0.4])
    p.add_argument("--samples", type=int, nargs="+", default=[200, 500, 1000], help="training set sizes")
    p.add_argument("--formulations", nargs="+", default=["convex", "sequential"], choices=["convex", "sequential"])
    p.add_argument("--dim", type=int, default=20)
    p.add_argument("--hidden", type=int, default=10)
    p.add_argument("--decoys", type=int, default=10, help="random generators besides the planted ones (convex)")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--warmup", type=int, default=0, help="dense iterations before projecting (paper: 0)")
    p.add_argument("--ramp", type=int, default=0, help="iterations of the cubic density ramp (paper: 0)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest at these sizes)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    started = time.perf_counter()
    print(f"dim {args.dim}, hidden {args.hidden}, {args.seeds} seeds, <= {args.steps} steps, decoys {args.decoys}, "
          f"warmup {args.warmup}, ramp {args.ramp}\n")
    print("| formulation | density | s | samples | support recovered | exact (err < 1e-4) "
          "| median max-abs error | median Jaccard | median steps |")
    print("|---|---|---|---|---|---|---|---|---|")
    for formulation in args.formulations:
        for density in args.densities:
            for samples in args.samples:
                rs = [run(formulation, density, samples, seed, args) for seed in range(args.seeds)]
                ok = sum(r["support_recovered"] for r in rs)
                exact = sum(r["support_recovered"] and r["weight_error"] < 1e-4 for r in rs)
                print(f"| {formulation} | {density:g} | {round(density * args.dim * args.hidden)} | {samples} "
                      f"| {ok}/{len(rs)} | {exact}/{len(rs)} "
                      f"| {statistics.median(r['weight_error'] for r in rs):.1e} "
                      f"| {statistics.median(r['support_overlap'] for r in rs):.2f} "
                      f"| {statistics.median(r['steps'] for r in rs):.0f} |", flush=True)
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
