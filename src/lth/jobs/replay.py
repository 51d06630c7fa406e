"""The dense run replayed: from theta_0 to an iteration, over the same batches with the same kernels,
so that, on a CPU at the same thread count, it reaches bitwise the weights the dense run had there
(tested). theta_k for a rewind point k > 0, and the scores an observer accumulates while the dense
run trains (BINGO, early-bird), come from replays, so a new rewind point never retrains the dense run.
"""

from __future__ import annotations

from lth.core.seeding import derive_seed
from lth.training.loop import Segment, train
from lth.training.schedule import lr_at


def replay_dense(ctx, seed: int, stop: int, watch=None, label: str = ""):
    """The dense run of `seed` replayed to iteration `stop`. `watch(model, mask)`, if given, makes the
    observer that sees every batch (lth.training.loop.train's `observe`). Returns the model and the
    observer."""
    model = ctx.theta_0(seed)
    mask = ctx.full_mask(model)
    observer = watch(model, mask) if watch else None
    training = ctx.plan.settings.training
    seg = Segment(start=0, stop=stop, lr=lambda t: lr_at(training, t), data_seed=derive_seed(seed, "data"),
                  label=label)
    train(model, mask, ctx.splits(), training, seg, augment=ctx.augment(ctx.splits().info), observe=observer)
    return model, observer
