"""The job graph of a finished experiment, regrouped: its critical path and its makespan on C cores.

Reads a finished results folder (its settings.json and each run's wall time in summary.csv) and
plans the same experiment with each `seeds_per_job` asked for (lth.plan.imp.Plan.seed_groups;
"all": every seed in one job). A job costs the wall times of the runs it holds plus a start-up
(importing torch, loading data: `--startup` seconds); a job waits for the jobs whose outputs it
reads (lth.plan's inputs). Printed per grouping: the jobs, the critical path (the longest chain of
waits: the wall time with unlimited cores) and the makespan of a list schedule on each core count,
in the workflow's priorities (chain 2, controls 1, the rest 0), as Snakemake schedules them.

    uv run python benchmarks/critical_path.py results/mnist1d_mlp --cores 2 16 --seeds-per-job all 1 2
"""

from __future__ import annotations

import argparse
import csv
import heapq
from pathlib import Path

from lth.plan import Plan, plan_of

PRIORITY = {"dense": 2, "rewind": 2, "level": 2, "controls": 1, "transfer": 0, "probe": 0}


def graph(plan: Plan, seconds: dict, startup: float) -> tuple[list, dict, dict]:
    """(jobs, job -> its duration, job -> the jobs it waits for)."""
    jobs = plan.jobs() + [j for j in plan.probes() if j not in plan.jobs()]
    made_by = {str(p): job for job in jobs for p in plan.outputs(job)}
    cost = {job: startup + sum(seconds.get(k, 0.0) for k in plan.job_runs(job)) for job in jobs}
    waits = {job: {made_by[str(p)] for p in plan.inputs(job)["runs"] if str(p) in made_by} for job in jobs}
    return jobs, cost, waits


def critical_path(jobs, cost, waits) -> float:
    finish: dict = {}

    def end(job):
        if job not in finish:
            finish[job] = cost[job] + max((end(w) for w in waits[job]), default=0.0)
        return finish[job]

    return max(end(j) for j in jobs)


def makespan(jobs, cost, waits, cores: int) -> float:
    """A list schedule: whenever a core is free, the ready job of highest priority (then plan order)."""
    order = {job: i for i, job in enumerate(jobs)}
    left = {job: len(waits[job]) for job in jobs}
    users: dict = {job: [] for job in jobs}
    for job in jobs:
        for w in waits[job]:
            users[w].append(job)
    ready = [(-PRIORITY[j.stage], order[j], j) for j in jobs if not left[j]]
    heapq.heapify(ready)
    running: list = []  # (end time, order, job)
    now, free = 0.0, cores
    while ready or running:
        while ready and free:
            _, _, job = heapq.heappop(ready)
            heapq.heappush(running, (now + cost[job], order[job], job))
            free -= 1
        now, _, done = heapq.heappop(running)
        free += 1
        for user in users[done]:
            left[user] -= 1
            if not left[user]:
                heapq.heappush(ready, (-PRIORITY[user.stage], order[user], user))
    return now


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", help="a finished experiment's results folder")
    ap.add_argument("--cores", type=int, nargs="+", default=[2, 16])
    ap.add_argument("--seeds-per-job", nargs="+", default=["all", "1"])
    ap.add_argument("--startup", type=float, default=2.2, help="seconds a job costs besides its runs")
    args = ap.parse_args()
    recorded = Plan.from_results(args.results)
    from lth.plan.layout import RunKey

    seconds = {}
    for row in csv.DictReader((Path(args.results) / "summary.csv").open()):
        key = RunKey(int(row["seed"]), int(row["level"]), row["variant"], row.get("target") or None)
        seconds[key] = float(row["wall_seconds"])
    print(f"{recorded.experiment}: {len(seconds)} runs, {sum(seconds.values()):.0f} s of training in all, "
          f"{args.startup} s start-up a job")
    print(f"{'seeds/job':>9} {'jobs':>5} {'critical path':>14} " + " ".join(f"{f'{c} cores':>10}" for c in args.cores))
    for per in args.seeds_per_job:
        workflow = {**recorded.workflow, "seeds_per_job": None if per == "all" else int(per)}
        plan = plan_of(recorded.experiment, recorded.settings.thaw(), args.results, workflow)
        jobs, cost, waits = graph(plan, seconds, args.startup)
        spans = " ".join(f"{makespan(jobs, cost, waits, c):9.0f}s" for c in args.cores)
        print(f"{per:>9} {len(jobs):>5} {critical_path(jobs, cost, waits):13.0f}s {spans}")


if __name__ == "__main__":
    main()
