"""Instability to SGD noise and linear mode connectivity (Frankle, Dziugaite, Roy, Carbin 2020,
"Linear Mode Connectivity and the Lottery Ticket Hypothesis").

For each rewind point k and each chosen level (0: the dense network; L: the level-L ticket of
the ticket chain), two copies start from the dense run's theta_k under that level's mask and
train to the end of the budget with different data orders (their SGD noise). The test error is
evaluated along the straight line between the two trained copies (lth.analyses.interpolate); the error
barrier is its maximum minus the mean of the endpoints, and a network is stable at k when the
barrier is under `threshold` (2 percentage points, the paper's rule).

Its table has one row per (seed, level, k, point on the path), with the barrier of that path.
"""

from __future__ import annotations

from lth.plan.job import Job
from lth.plan.layout import RunKey
from lth.plan.variants import DENSE

NAME = "instability"
COPIES = ("a", "b")


def check(s: dict, where: str) -> None:
    """Rewind points inside the budget, levels the ticket chain has, a path of 3 or more points."""
    from lth.core.errors import LTHError
    from lth.plan.variants import chains

    o, at = s[NAME], f"{where}: {NAME}"
    if s["kind"] != "imp":
        raise LTHError(f"{at}: needs the ticket chain of kind imp, not kind {s['kind']!r}")
    late = [k for k in o["rewind_points"] if k >= s["training"]["iterations"]]
    if late:
        raise LTHError(f"{at}.rewind_points: {late} beyond the training budget (training.iterations = "
                       f"{s['training']['iterations']})")
    if not 0 < o["threshold"] < 1:
        raise LTHError(f"{at}.threshold: {o['threshold']!r} is not in (0, 1) (a test-error barrier, as a fraction)")
    if o["points"] < 3:
        raise LTHError(f"{at}.points: an interpolation needs at least 3 points (the two ends and one between), "
                       f"got {o['points']}")
    beyond = [lv for lv in o["levels"] if lv > s["pruning"]["levels"]]
    if beyond:
        raise LTHError(f"{at}.levels: {beyond} beyond pruning.levels = {s['pruning']['levels']}")
    if any(o["levels"]) and "ticket" not in chains(s["variants"]):
        raise LTHError(f"{at}.levels: a level above 0 needs the ticket chain: add 'ticket' to variants")


def jobs(plan) -> list[Job]:
    s, o = plan.settings, plan.settings[NAME]
    out = []
    for seed in s.seeds:
        out += [Job("rewind", seed, k=k) for k in o.rewind_points if k]
        out += [Job("probe", seed, level, NAME, k=k) for level in o.levels for k in o.rewind_points]
    return out


def runs(job: Job) -> list[RunKey]:
    return [RunKey(job.seed, job.level, f"k{job.k}-{c}", analysis=NAME) for c in COPIES]


def inputs(plan, job: Job) -> list:
    """theta_k (k = 0: theta_0, an output of the dense job) and, for a ticket, its level's job."""
    L = plan.layout
    out = [L.metrics(RunKey(job.seed, 0, DENSE)), L.rewind(job.seed, job.k)]
    if job.level:
        out.append(plan.level_done(job.level, "ticket", job.seeds))
    return list(dict.fromkeys(out))


def train(ctx, job: Job) -> list[dict]:
    """The two copies: theta_k under the level's mask, each with its own data order."""
    from lth.core.seeding import derive_seed
    from lth.jobs.runs import train_and_mark
    from lth.jobs.start import Start, schedule
    from lth.pruning import masks
    from lth.store import artifacts

    plan = ctx.plan
    L = plan.layout

    def start_of(key):
        model = ctx.new_model(job.seed)
        artifacts.load_weights(model, L.rewind(job.seed, job.k))
        if job.level:
            ticket = L.mask(RunKey(job.seed, job.level, "ticket"))
            mask = ctx.load(ticket)
            masks.check_mask(model, mask, str(ticket))
        else:
            mask = ctx.full_mask(model)
        masks.apply_mask(model, mask)
        return Start(model, mask, job.k, schedule(plan.settings.training, "full"),
                     derive_seed(job.seed, "data", NAME, key.variant))

    return train_and_mark(ctx, job, runs(job), start_of)


def compute(plan) -> list[dict]:
    import torch

    from lth.analyses.interpolate import barrier, path
    from lth.jobs import Context
    from lth.store import artifacts

    ctx, o, rows = Context(plan, torch.device("cpu")), plan.settings[NAME], []
    for job in plan.probes(NAME):
        if job.stage != "probe":
            continue
        a, b = (artifacts.load_tensors(plan.layout.final(k)) for k in runs(job))
        points = path(ctx.new_model(job.seed), a, b, ctx.splits(), points=o.points, seed=job.seed)
        height = barrier([p["test_error"] for p in points])
        rows += [{"experiment": plan.experiment, "seed": job.seed, "level": job.level, "k": job.k, **p,
                  "barrier": height, "stable": height < o.threshold} for p in points]
    return rows


def figure(table):
    """Barrier vs rewind point (symmetric log axis, so k = 0 shows), one line per level."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.2), layout="constrained")
    ax = fig.add_subplot()
    per = table.drop_duplicates(["seed", "level", "k"]).groupby(["level", "k"])["barrier"].agg(["mean", "std"])
    for level, rows in per.reset_index().groupby("level"):
        label = "dense" if level == 0 else f"ticket, level {level}"
        ax.errorbar(rows["k"], 100 * rows["mean"], yerr=100 * rows["std"].fillna(0), marker="o", capsize=3,
                    label=label)
    positive = sorted(k for k in table["k"].unique() if k > 0)
    ax.set_xscale("symlog", linthresh=positive[0] if positive else 1)
    ax.set_xticks(sorted(table["k"].unique()), [str(k) for k in sorted(table["k"].unique())])
    ax.minorticks_off()
    ax.axhline(2, color="C3", linestyle=":", label="2 points: the stability threshold")
    ax.set_xlabel("rewind point k (iterations; symmetric log axis)")
    ax.set_ylabel("error barrier (percentage points)")
    ax.set_title("Instability: the test-error barrier between two copies trained from theta_k")
    ax.legend(fontsize="small")
    return fig


def caption(table) -> str:
    n = table["seed"].nunique()
    return (f"Figure I. Error barrier along the linear path between two copies trained from the dense run's "
            f"theta_k under the same mask with different data orders, per rewind point k and level (mean ± std "
            f"over {n} seed(s); {table['alpha'].nunique()} points per path; BatchNorm statistics recomputed at "
            f"interior points). Below the dotted line (2 points) the network is stable (Frankle et al. 2020).")


def overview(table):
    """Per level and rewind point: the barrier (mean ± std over seeds, in points), how many seeds'
    paths are stable."""
    paths = table.drop_duplicates(["seed", "level", "k"])
    rows = []
    for (level, k), g in paths.groupby(["level", "k"]):
        spread = 100 * g["barrier"].std() if len(g) > 1 else 0.0
        rows.append({"level": level, "k": k, "barrier (points)": f"{100 * g['barrier'].mean():.2f} ± {spread:.2f}",
                     "stable paths": f"{int(g['stable'].astype(str).eq('True').sum())} of {len(g)}"})
    import pandas as pd

    return pd.DataFrame(rows)
