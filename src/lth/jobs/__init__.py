"""Jobs: what one Snakemake job does in its process, composed of the small pieces of this package
(start state, the training mode, the loop, writing results, tracking).

    context    what the jobs of an experiment share in a process: plan, device, datasets, models
    stages     one function per stage (dense, rewind, level, controls, transfer, probe)
    start      the start state of a run (weights, mask, schedule) from its variant
    runs       train a run, or a group of runs together, and write it; mark a job done
    prune      the pruning step of a level job (and BINGO's observed scores)
    replay     the dense run replayed to an iteration (theta_k, observers)
    transfer   weights and masks carried into another network (transfer targets, pre-trained starts)
    device, provenance (a job's lock: lth.core.lockfile)

May import everything below it (core, plan, data, models, pruning, store, training); never
analyses, report or cli: an analysis's hooks are reached through its registry entry.
"""

from lth.jobs.context import Context
from lth.jobs.device import pick_device

__all__ = ["Context", "pick_device"]
