"""Lottery tickets in linear models (Elesedy, Kanade, Teh 2020, "Lottery Tickets in Linear Models:
An Analysis of Iterative Magnitude Pruning"): on a synthetic sparse problem with a known support
(the `sparse_linear` dataset), does IMP find the true features, and how does its ticket's error
compare with the dense solution and with the lasso at the same sparsity?

Per seed and level, for the ticket (kind imp: the ticket chain; kind oneshot: each method): the
features it keeps (a feature is kept when any of its weights is: logistic regression has two rows
of class logits), precision and recall against the true support, whether it is exactly the true
support, and its test error (mean squared error, or 0-1 error for logistic regression); beside it,
the lasso solution with the same number of features and its least-squares refit, and the dense
least-squares (or logistic) solution (lth.analyses.lasso, on the data of lth.data.sparse_linear).
"""

from __future__ import annotations

from lth.plan.variants import DENSE

NAME = "linear_support"


def check(s: dict, where: str) -> None:
    from lth.core.errors import LTHError

    if s["dataset"]["name"] != "sparse_linear":
        raise LTHError(f"{where}: {NAME}: needs the sparse_linear dataset (whose true support is known)")


def compute(plan) -> list[dict]:
    from lth.analyses.lasso import dense_reference, lasso_reference, support_metrics
    from lth.data.sparse_linear import DEFAULTS, ground_truth
    from lth.data.splits import load_splits
    from lth.plan.layout import RunKey
    from lth.store import artifacts
    from lth.store.results import read_record

    s, rows = plan.settings, []
    d = s.dataset
    options = {**DEFAULTS, **d.options.thaw()}
    task, beta = options["task"], ground_truth(options)
    splits = load_splits(d.name, plan.data_dir, val_size=d.val_size, split_seed=d.split_seed,
                         options=d.options.thaw() or None, normalise=d.normalise)
    x_train, y_train = splits.x_train.double(), splits.y_train
    x_test, y_test = splits.x_test.double(), splits.y_test
    dense = dense_reference(x_train, y_train, x_test, y_test, task)
    runs = [(seed, DENSE, RunKey(seed, 0, DENSE)) for seed in s.seeds]
    runs += [(seed, v, RunKey(seed, level, v)) for v in plan.ticket_chains() for seed in s.seeds
             for level in plan.method_levels(v)]
    lassos = {}
    for seed, variant, key in runs:
        level = key.level
        record = read_record(plan.layout.metrics(key))
        w = artifacts.load_tensors(plan.layout.final(key))["linear.weight"].double()
        kept = w.abs().sum(0)  # a feature is kept if any of its weights is
        found = support_metrics(kept, beta)
        k = int((kept != 0).sum())
        error = record["summary"]["test_loss"] if task == "regression" else 1 - record["summary"]["test_accuracy"]
        if k not in lassos:  # the same data for every seed: one lasso per number of features
            lassos[k] = lasso_reference(x_train, y_train, x_test, y_test, k, task)
        lasso = lassos[k]
        rows.append({"experiment": plan.experiment, "seed": seed, "level": level, "variant": variant,
                     "features_kept": k,
                     "weights_remaining": record["weights_remaining"], "support_exact": found["exact"],
                     "precision": found["precision"], "recall": found["recall"], "ticket_test_error": error,
                     "lasso_features": lasso["nonzeros"], "lasso_test_error": lasso["test_error"],
                     "lasso_refit_test_error": lasso.get("refit_test_error"),
                     "dense_solution_test_error": dense["test_error"],
                     "true_support": int((beta != 0).sum()), "task": task})
    return rows


def figure(table):
    """Test error vs features kept (ticket, lasso, refit lasso, dense solution), and the ticket's
    precision and recall of the true support."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.2), layout="constrained")
    left, right = fig.subplots(1, 2)
    first = next(v for v in table["variant"] if v != DENSE)
    per = (table[table["variant"].isin([DENSE, first])].groupby("level").mean(numeric_only=True)
           .sort_values("features_kept", ascending=False))
    for column, label in (("ticket_test_error", f"{first} (IMP)"), ("lasso_test_error", "lasso, same features"),
                          ("lasso_refit_test_error", "lasso support, refit")):
        left.plot(per["features_kept"], per[column], marker="o", label=label)
    left.axhline(per["dense_solution_test_error"].iloc[0], color="0.4", linestyle="--", label="dense solution")
    left.axvline(table["true_support"].iloc[0], color="C3", linestyle=":", label="true support size")
    left.set_xscale("log")
    left.set_yscale("log")
    left.invert_xaxis()
    left.set_xlabel("features kept (log scale)")
    left.set_ylabel("test error" + (" (MSE)" if table["task"].iloc[0] == "regression" else " (0-1)"))
    left.legend(fontsize="small")
    right.plot(per["features_kept"], per["precision"], marker="o", label="precision")
    right.plot(per["features_kept"], per["recall"], marker="s", label="recall")
    right.axvline(table["true_support"].iloc[0], color="C3", linestyle=":")
    right.set_xscale("log")
    right.invert_xaxis()
    right.set_xlabel("features kept (log scale)")
    right.set_ylabel("of the true support")
    right.legend(fontsize="small")
    return fig


def caption(table) -> str:
    exact = table.groupby("level")["support_exact"].apply(lambda v: v.astype(str).eq("True").mean())
    hits = [int(lv) for lv, share in exact.items() if share == 1]
    found = (f"levels {hits} keep exactly the true support in every seed" if hits
             else "no level keeps exactly the true support in every seed")
    return (f"Figure L. IMP on a sparse linear problem with {table['true_support'].iloc[0]} true features: the "
            f"ticket's test error beside the lasso with as many features (and its refit) and the dense solution, "
            f"and how much of the true support the ticket keeps; {found} (mean over seeds).")


def overview(table):
    exact = ("support_exact", lambda v: (v.astype(str) == "True").mean())
    per = table.groupby(["variant", "level"], sort=False).agg(
        features=("features_kept", "mean"), exact=exact, precision=("precision", "mean"), recall=("recall", "mean"),
        ticket=("ticket_test_error", "mean"), lasso=("lasso_test_error", "mean"),
        refit=("lasso_refit_test_error", "mean"), dense=("dense_solution_test_error", "mean"))
    return per.reset_index().round(4)
