"""What each stage's job does (the stages are lth.plan.imp's): one function per stage, composed of
the pieces of this package. A job holds a lock while it runs: the same job started again meanwhile
(a rerun after Snakemake was killed, whose jobs ran on) waits for it, then keeps what it finished.
"""

from __future__ import annotations

from typing import Any

from lth.core.parts import ANALYSES, TRAINING_MODES
from lth.core.lockfile import exclusive
from lth.jobs.prune import prune_level
from lth.jobs.replay import replay_dense
from lth.jobs.runs import train_and_mark, train_run
from lth.plan.job import Job
from lth.plan.layout import RunKey
from lth.store import artifacts
from lth.store.results import finished


def run(ctx, job: Job) -> list[dict[str, Any]]:
    """Run `job` (`ctx`: lth.jobs.context.Context); the records of the runs it trained or had finished."""
    job = job if job.runs else ctx.plan.with_runs(job)
    with exclusive(ctx.plan.layout.lock(f"{job.name}-{ctx.plan.fingerprint(job)}"), str(job)):
        return STAGES[job.stage](ctx, job)


def dense(ctx, job: Job) -> list[dict[str, Any]]:
    """The dense run of a seed (level 0), from theta_0 for the whole budget."""
    return [train_run(ctx, job, key) for key in ctx.plan.job_runs(job)]


def rewind(ctx, job: Job) -> list[dict[str, Any]]:
    """theta_k: the dense run replayed to iteration k."""
    model, _ = replay_dense(ctx, job.seed, job.k, label=str(job))
    artifacts.save_tensors(ctx.plan.layout.rewind(job.seed, job.k), model.state_dict())
    return []


def level(ctx, job: Job) -> list[dict[str, Any]]:
    """One pruning round of a chain for every seed: prune its mask (unless its head run finished under
    it before, or its training mode finds its own), then train the job's runs (the chain's head; kind
    oneshot: also its controls)."""
    for seed in job.seeds:
        head = RunKey(seed, job.level, job.chain)
        if TRAINING_MODES[ctx.plan.variant(head).train].fixed_mask and finished(ctx.plan.layout, head) is None:
            prune_level(ctx, seed, job.level, job.chain)
    return train_and_mark(ctx, job)


def probe(ctx, job: Job) -> list[dict[str, Any]]:
    """The runs an analysis trains for itself (its registered `train` hook, lth.core.parts.ANALYSES)."""
    return ANALYSES[job.chain].hook("train")(ctx, job)


STAGES = {"dense": dense, "rewind": rewind, "level": level, "controls": train_and_mark,
          "transfer": train_and_mark, "probe": probe}
