"""Training: the loop (loop, order, schedule, evaluation, optim), what a step may add (features,
adversarial), how a run keeps its mask (modes: masked, iht, edgepopup), and the batched trainer
that trains many runs of one model in one step (batched).

May import lth.core, plan, data, models, pruning and store; never jobs, analyses or report.
"""
