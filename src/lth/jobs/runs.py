"""Training a job's runs: the one sequence "finished before? -> start state -> training mode ->
train -> write the run", alone (`train_run`) or several together (`train_group`, lth.training.batched),
and the marker that says a job's runs are finished (`mark_done`). Analyses that train runs of their
own use the same functions with start states of their own.
"""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Callable
from typing import Any

from lth.core.files import write_json
from lth.core.parts import TRAINING_MODES
from lth.jobs.start import Start, start_state
from lth.plan.job import Job
from lth.plan.layout import RunKey
from lth.store import artifacts
from lth.store.results import finished, write_run
from lth.training.features import unbatchable
from lth.training.loop import Segment, train


def train_run(ctx, job: Job, key: RunKey, start_of: Callable[[RunKey], Start] | None = None) -> dict[str, Any]:
    """Train run `key` from its start state (`start_of(key)`; default: its variant's,
    lth.jobs.start), or return its record if it finished before."""
    done = finished(ctx.plan.layout, key)
    if done is not None:
        return done
    started, started_at = time.perf_counter(), time.time()
    start = start_of(key) if start_of else start_state(ctx, key)
    if key.level == 0 and not key.target and not key.analysis:  # theta_0: the rewind point k = 0, the reinit reference
        artifacts.save_tensors(ctx.plan.layout.init(key.seed), start.model.state_dict())
    splits = ctx.splits(key.target)
    fp = ctx.plan.fingerprint(job)
    mode = TRAINING_MODES[start.train]
    data = {"splits": splits} if mode.info.get("data") else {}  # a mode that trains candidates first
    setup = mode.load()(start, key, ctx.plan, list(ctx.kinds(start.model)), **data)
    result = train(setup.model, setup.mask, splits, ctx.plan.settings.training, segment(ctx, key, start, fp),
                   augment=ctx.augment(splits.info), enforce=setup.enforce, features=mode.features)
    model, mask = setup.finish()
    return finish(ctx, key, model, mask, result, ctx.provenance(key.target, fp), started, started_at)


def segment(ctx, key: RunKey, start: Start, fp: str) -> Segment:
    """What run `key` trains: from its start state's iteration to the end of the budget."""
    return Segment(start=start.iteration, stop=ctx.plan.settings.training.iterations, lr=start.lr,
                   data_seed=start.data_seed, checkpoint=ctx.plan.layout.checkpoint(key), fingerprint=f"{fp}/{key}",
                   label=str(key),
                   snapshots={t: ctx.plan.layout.snapshot(key, t) for t in ctx.plan.snapshots(key)})


def finish(ctx, key: RunKey, model, mask, result, provenance, started: float, started_at: float) -> dict[str, Any]:
    """Write a trained run (and log it, with live tracking: the experiment's runs, not an analysis's);
    return its record."""
    record = write_run(ctx.plan.layout, key, model, mask, result, provenance, started, started_at)
    if ctx.track_uri and not key.analysis:
        from lth.store.tracking import log_live

        log_live(ctx.track_uri, ctx.plan, key)
    return record


def groups(ctx, keys: list[RunKey]) -> list[list[RunKey]]:
    """The runs of a job that train together (the workflow's `batching`, lth.training.batched): those
    that train under a fixed mask, in groups of at most `batching` in the job's order (a function of
    the config alone), less the runs finished before; [] when one at a time."""
    most = int(ctx.plan.workflow.get("batching", 1))
    if most < 2 or unbatchable(ctx.plan.settings.training):
        return []
    fixed = [k for k in keys if TRAINING_MODES[ctx.plan.variant(k).train].fixed_mask and not ctx.plan.snapshots(k)]
    chunks = [[k for k in fixed[i : i + most] if finished(ctx.plan.layout, k) is None]
              for i in range(0, len(fixed), most)]
    return [c for c in chunks if len(c) > 1]


def train_group(ctx, job: Job, keys: list[RunKey]) -> dict[RunKey, dict[str, Any]]:
    """Train runs `keys` of one job together (lth.training.batched.train_batched) and write each; on a
    CPU every run ends bitwise as it would alone. A run whose loss stopped being finite is reported by
    its key and left unwritten: the job then trains it alone, as without batching."""
    from lth.training.batched import train_batched

    started, started_at = time.perf_counter(), time.time()
    fp = ctx.plan.fingerprint(job)
    starts = [start_state(ctx, k) for k in keys]
    splits = ctx.splits(keys[0].target)
    name = hashlib.sha256("|".join(map(str, keys)).encode()).hexdigest()[:12]
    checkpoint = ctx.plan.layout.group_checkpoint(name, keys[0].target)
    results = train_batched([s.model for s in starts], [s.mask for s in starts], splits,
                            ctx.plan.settings.training, [segment(ctx, k, s, fp) for k, s in zip(keys, starts)],
                            keys=[str(k) for k in keys], checkpoint=checkpoint, fingerprint=f"{fp}/{name}",
                            augment=ctx.augment(splits.info))
    provenance = {**ctx.provenance(keys[0].target, fp), "batched": len(keys)}
    records = {}
    for key, start, result in zip(keys, starts, results):
        if result["diverged"]:
            print(f"lth: WARNING: {key}: loss not finite at iteration {result['diverged']['iteration']} in its "
                  f"group; the group's other runs are kept and this one trains alone", file=sys.stderr)
            continue
        records[key] = finish(ctx, key, start.model, start.mask, result, provenance, started, started_at)
    checkpoint.unlink(missing_ok=True)
    return records


def train_and_mark(ctx, job: Job, keys: list[RunKey] | None = None,
                   start_of: Callable[[RunKey], Start] | None = None) -> list[dict[str, Any]]:
    """Train a job's runs (default: the plan's; together where they can, `groups`, unless they start
    from `start_of`), then mark the job finished with the runs it holds."""
    keys = ctx.plan.job_runs(job) if keys is None else keys
    grouped = {}
    for group in groups(ctx, keys) if start_of is None else []:
        grouped.update(train_group(ctx, job, group))
    records = [grouped.get(key) or train_run(ctx, job, key, start_of) for key in keys]
    mark_done(ctx, job, keys)
    return records


def mark_done(ctx, job: Job, keys: list[RunKey]) -> None:
    """The job's marker (its Snakemake output): the runs it holds, each by its record's path."""
    root = ctx.plan.layout.root
    write_json(ctx.plan.outputs(job)[0], {str(k): str(ctx.plan.layout.metrics(k).relative_to(root)) for k in keys})
