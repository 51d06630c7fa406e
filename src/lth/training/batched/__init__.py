"""Batched training: M runs ("members") of one architecture trained together, one step for all.

`train_batched(models, masks, splits, training, segments, keys=...)` trains each member as
`lth.training.loop.train` would train it alone (its own initial weights, mask, data order from its
data seed, learning-rate function, iteration range, BatchNorm statistics, optimiser state) and
returns one result per member in `train`'s format (curves + summary), so that each can be written
by `lth.store.results.write_run`. The trained weights are written back into `models`, as `train` does.

How the members share a step. The model is rebuilt once with its parametrised layers replaced by
stacked ones (a leading member dimension on every parameter and buffer); the model's own forward
code runs unchanged on the members' batches laid end to end, (M*B, ...), because every layer
other than these is per example:

- Linear: a batched matmul per layer (`torch.baddbmm`), with a backward written so that each
  member's gradients are computed by the same products `F.linear`'s backward computes for one
  run. (torch.func.vmap gets the weight gradient by a transposed product instead, which differs
  in the last bit for small output layers, and was a little slower: `benchmarks/batched_speed.py
  --kernels`.)
- Conv2d: "loop" (one convolution per member on its slice of the batch) or "grouped" (one
  convolution with groups = M over the batch laid out (B, M*C, H, W), which is what vmap does).
  On CPU the loop was faster (conv4, resnet20) and is bitwise a single run's; the grouped kernel
  is not bitwise (the 3-channel input layer, 1x1 stride-2 shortcuts differ in the last bits).
- BatchNorm2d: "loop" (one `F.batch_norm` per member on its slice, with its rows of the stacked
  running statistics) or "grouped" (one call over the (B, M*C, H, W) layout with the statistics
  flattened; views, so the updates land in each member's rows). Both are bitwise a single run's,
  in training and in eval mode; the loop was a little faster on CPU.

"auto" (the default for both): loop on CPU, grouped on CUDA (one launch instead of M per layer;
not measured here: run the benchmark's --kernels on a GPU to choose).

The loss is each member's own mean loss; their sum is differentiated (a member's gradient does not
depend on the others'). With `exact_losses` (the default on CPU) each member's loss is computed by
the very call `train` makes (`loss_of` per member), so the reported losses are bitwise a single
run's too; on CUDA one batched call per step (values equal to float rounding).

The optimiser is torch.optim's functional Adam / AdamW (fused) or SGD (foreach), as in
`lth.training.optim`, called on per-member views of the stacked tensors, one call per distinct learning
rate at that step: each member's update is the one `lth.training.optim.Optimizer` computes for it alone,
and members may follow different learning-rate functions. On CUDA, while every member is at the
same step with the same rate, one call on the whole stacked tensors instead (`StackedOptimizer`).
Masks are stacked and multiplied in after every step, so pruned weights stay exactly 0.0 for every
member.

Nothing in a step waits for the device (no `.item()`); the host syncs at evaluation points only.
There a member whose losses are not finite is reported by its key and stopped: it leaves the
optimiser's calls, its BatchNorm statistics are held, the others go on unchanged. A member whose
segment is shorter stops likewise at its end. Checkpoints (stacked state, optimiser state, step,
curves, who stopped) are written at evaluation points; a job killed and restarted resumes from the
last one and ends bitwise as an uninterrupted run (CPU).

On CPU, at one thread, a member trained in a group ends bitwise equal to the same run trained
alone by `lth.training.loop.train`, whichever other members share its group (tests/training/test_batched.py).
"""

from lth.training.batched.group import train_batched
from lth.training.batched.layers import CONV_MODES, StackedModel
from lth.training.batched.memory import available_bytes, check_fits, estimate_bytes

__all__ = ["CONV_MODES", "StackedModel", "available_bytes", "check_fits", "estimate_bytes", "train_batched"]
