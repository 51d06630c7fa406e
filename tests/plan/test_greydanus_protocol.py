"""The settings Greydanus 2020's MNIST-1D lottery-ticket notebook needs, each against a reference written
here from the notebook's own rule: the sequential batches `x[(t * 100) % N:][:100]`, raw (unnormalised)
inputs, a module's weight and bias ranked together dropping int(s x n), and pruning the previous density's
weights at an earlier iteration (its checkpoint of step 1000)."""

import copy

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from lth.core.errors import LTHError
from lth.data.splits import load_splits
from lth.plan import plan_of
from lth.plan.layout import TENSORS_FILE, RunKey, dataset_dir
from lth.pruning.select import keep_density
from lth.store import artifacts
from lth.training.loop import Segment, train
from lth.training.order import BatchOrder
from lth.training.schedule import lr_at

from conftest import tiny


@pytest.mark.parametrize("n, batch", [(4000, 100), (450, 100), (7, 3)])
def test_sequential_batches_are_the_notebooks_slices_whatever_the_seed(n, batch):
    x = torch.arange(n)
    for seed in (0, 5):
        order = BatchOrder(n, batch, seed, "sequential")
        for t in range(3 * n // batch + 4):
            assert torch.equal(order(t), x[(t * batch) % n:][:batch]), (t, seed)


def test_an_unknown_data_order_is_named():
    with pytest.raises(LTHError, match="training.data_order: 'random' is not one of shuffled, sequential"):
        BatchOrder(10, 2, 0, "random")


def test_sequential_training_is_plain_sgd_over_the_slices(context):
    """One dense run against a hand loop: same theta_0, SGD on x[(t * B) % N:][:B], mean cross-entropy."""
    ctx = context({"training": {"optimizer": "sgd", "momentum": 0.0, "lr": 0.05, "batch_size": 64,
                                "iterations": 30, "eval_every": 30, "data_order": "sequential"},
                   "dataset": {"name": "mnist1d", "val_size": 500, "normalise": False}})
    training, splits = ctx.plan.settings.training, ctx.splits()
    model, reference = ctx.new_model(0), ctx.new_model(0)
    reference.load_state_dict(copy.deepcopy(model.state_dict()))
    train(model, ctx.full_mask(model), splits, training, Segment(0, 30, lambda t: lr_at(training, t), data_seed=3))
    n = len(splits.y_train)
    for t in range(30):
        x, y = splits.x_train[(t * 64) % n:][:64], splits.y_train[(t * 64) % n:][:64]
        reference.zero_grad()
        F.cross_entropy(reference(x), y).backward()
        with torch.no_grad():
            for p in reference.parameters():
                p -= 0.05 * p.grad
    for (name, got), want in zip(model.state_dict().items(), reference.state_dict().values()):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6, msg=name)


def test_raw_inputs_are_the_datasets_own(data_dir):
    raw = load_splits("mnist1d", data_dir, val_size=500, normalise=False)
    normalised = load_splits("mnist1d", data_dir, val_size=500)
    stored = load_file(dataset_dir(data_dir, "mnist1d") / TENSORS_FILE)
    assert torch.equal(raw.x_test, stored["x_test"].float())
    assert not torch.equal(normalised.x_test, raw.x_test)
    assert abs(float(normalised.x_train.mean())) < 1e-4


def _notebook_mask(weights: dict[str, torch.Tensor], module: str, sparsity: int) -> torch.Tensor:
    """Greydanus's get_mask: |cat(weight, bias)|, the int(s x n) smallest dropped, for s = sparsity / 10^4
    (in integers: the exact s the notebook means, without 1 - 0.9 = 0.0999...)."""
    flat = torch.cat([weights[f"{module}.weight"].flatten(), weights[f"{module}.bias"].flatten()]).abs()
    keep = torch.ones_like(flat, dtype=torch.bool)
    keep[torch.argsort(flat)[:sparsity * len(flat) // 10000]] = False
    return keep


def test_the_module_distribution_ranks_weight_and_bias_together_as_the_notebook_does():
    g = torch.Generator().manual_seed(0)
    weights = {"a.weight": torch.randn(30, 20, generator=g), "a.bias": torch.randn(30, generator=g) * 3,
               "b.weight": torch.randn(5, 30, generator=g), "b.bias": torch.randn(5, generator=g)}
    full = {n: torch.ones_like(w, dtype=torch.bool) for n, w in weights.items()}
    for sparsity in (1000, 3300, 5000, 9700, 9999):
        got = keep_density({n: w.abs() for n, w in weights.items()}, full, 1 - sparsity / 10000, "module")
        for module in ("a", "b"):
            flat = torch.cat([got[f"{module}.weight"].flatten(), got[f"{module}.bias"].flatten()])
            assert torch.equal(flat, _notebook_mask(weights, module, sparsity)), (module, sparsity)
    # already pruned weights stay pruned; too few left is named
    half = keep_density({n: w.abs() for n, w in weights.items()}, full, 0.5, "module")
    again = keep_density({n: w.abs() for n, w in weights.items()}, half, 0.3, "module")
    assert all(not (again[n] & ~half[n]).any() for n in weights)
    with pytest.raises(LTHError, match="module 'a' should keep"):
        keep_density({n: w.abs() for n, w in weights.items()}, half, 0.8, "module")


SWEEP = {"kind": "oneshot", "pruning": {"biases": True},
         "oneshot": {"densities": [0.6, 0.3], "controls": [], "methods": {
             "lth": {"at": "previous", "distribution": "module", "previous_iteration": 20}}}}


def test_previous_iteration_scores_the_previous_runs_weights_at_that_iteration(context):
    ctx = context(tiny({**SWEEP, "training": {"iterations": 40, "eval_every": 20}}))
    p, L = ctx.plan, ctx.plan.layout
    dense, first, second = RunKey(0, 0, "dense"), RunKey(0, 6000, "lth"), RunKey(0, 3000, "lth")
    assert p.snapshots(dense) == [20] and p.snapshots(first) == [20]
    for job in p.jobs():
        ctx.run(job)
    # the snapshot is the weights at 20: a second, shorter run from the same start ends on them
    replay = context(tiny({**SWEEP, "oneshot": {**SWEEP["oneshot"], "methods": {"m": {}}},
                           "training": {"iterations": 20, "eval_every": 20}}), name="replay")
    replay.run(replay.plan.jobs()[0])
    snapshot = artifacts.load_tensors(L.snapshot(dense, 20))
    at20 = artifacts.load_tensors(replay.plan.layout.final(RunKey(0, 0, "dense")))
    assert all(torch.equal(snapshot[n], at20[n]) for n in at20)
    # each density prunes the previous run's snapshot, module by module, inside the previous mask
    for key, source in ((first, dense), (second, first)):
        weights = artifacts.load_tensors(L.snapshot(source, 20))
        previous = artifacts.load_tensors(L.mask(source))
        got = artifacts.load_tensors(L.mask(key))
        sparsity = 10000 - key.level
        for module in ("linear1", "linear2", "linear3"):
            masked = {n: weights[n] * previous[n] for n in weights}
            flat = torch.cat([got[f"{module}.weight"].flatten(), got[f"{module}.bias"].flatten()])
            if source is dense:
                assert torch.equal(flat, _notebook_mask(masked, module, sparsity)), module
            n = flat.numel()
            assert int(flat.sum()) == n - sparsity * n // 10000
        assert all(not (got[n] & ~previous[n]).any() for n in got)
        assert not torch.equal(weights["linear1.weight"], artifacts.load_tensors(L.final(source))["linear1.weight"])


@pytest.mark.parametrize("method, message", [
    ({"at": "trained", "previous_iteration": 10}, "oneshot.methods.m.previous_iteration: 10 names an iteration"),
    ({"at": "previous", "previous_iteration": 40}, "below training.iterations = 40"),
])
def test_a_previous_iteration_that_cannot_be_is_one_line_naming_it(method, message):
    settings = tiny({**SWEEP, "oneshot": {**SWEEP["oneshot"], "methods": {"m": method}},
                     "training": {"iterations": 40}})
    with pytest.raises(LTHError) as e:
        plan_of("x", settings, "/tmp/nowhere")
    assert message in str(e.value) and "\n" not in str(e.value)
