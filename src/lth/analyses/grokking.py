"""Grokking tickets (Minegishi, Iwasawa, Matsuo 2023, "Grokking Tickets: Lottery Tickets Accelerate
Grokking"): how soon does each run generalise?

From every run's curves (test accuracy logged every `training.eval_every` iterations): the first
iteration at which the training accuracy (the mean over the iterations since the last evaluation)
reaches 100 % (memorisation), the first at which the test accuracy reaches 95 % (generalisation),
and the delay between them. The speed-up of a run is the dense network's iterations to 95 % test
accuracy divided by its own, at the same seed. A run that never reaches 95 % has none.
"""

from __future__ import annotations

from lth.plan.variants import DENSE

NAME = "grokking"
TARGET = 0.95


def first(curves: list[dict], key: str, at_least: float) -> int | None:
    return next((c["iteration"] for c in curves[1:] if c[key] is not None and c[key] >= at_least), None)


def compute(plan) -> list[dict]:
    from lth.store.results import read_record

    rows, dense_t95 = [], {}
    for key in plan.runs():
        record = read_record(plan.layout.metrics(key))
        curves = record["curves"]
        fit, t95 = first(curves, "train_accuracy", 1.0), first(curves, "test_accuracy", TARGET)
        if key.level == 0:
            dense_t95[key.seed] = t95
        rows.append({"experiment": plan.experiment, "seed": key.seed, "level": key.level, "variant": key.variant,
                     "weights_remaining": record["weights_remaining"],
                     "iterations_to_fit": fit, "iterations_to_95": t95,
                     "delay": t95 - fit if t95 is not None and fit is not None else None,
                     "final_test_accuracy": curves[-1]["test_accuracy"]})
    for row in rows:
        dense = dense_t95.get(row["seed"])
        row["speedup"] = dense / row["iterations_to_95"] if dense and row["iterations_to_95"] else None
    return rows


def figure(table):
    """Iterations to 95 % test accuracy per run (mean over seeds; a run that never got there is not drawn)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 4.2), layout="constrained")
    ax = fig.add_subplot()
    per = table.groupby(["variant", "level"], sort=False).agg(
        t95=("iterations_to_95", "mean"), fit=("iterations_to_fit", "mean"), w=("weights_remaining", "mean")
    ).reset_index()
    labels = [DENSE if r.level == 0 else f"{r.variant} ({100 * r.w:.0f} %)" for r in per.itertuples()]
    ax.barh(labels, per["t95"], color=["0.4" if lv == 0 else "C0" for lv in per["level"]], label="to 95 % test")
    ax.scatter(per["fit"], labels, color="C3", zorder=5, label="to 100 % train (memorised)")
    ax.set_xscale("log")
    ax.invert_yaxis()
    ax.set_xlabel("iterations (log scale)")
    ax.set_title("Grokking: iterations to generalise, per mask (mean over seeds)")
    ax.legend(fontsize="small")
    return fig


def caption(table) -> str:
    return ("Figure G. Iterations to reach 95 % test accuracy (bars) and 100 % training accuracy (dots) for the "
            "dense network and each mask trained from initialisation (Minegishi et al. 2023: a grokking ticket, "
            "the magnitude mask of the generalised network, generalises sooner than the dense network and than "
            "masks taken at memorisation, random or at initialisation).")


def overview(table):
    per = table.groupby(["variant", "level"], sort=False).agg(
        weights=("weights_remaining", "mean"), fit=("iterations_to_fit", "mean"), to_95=("iterations_to_95", "mean"),
        reached=("iterations_to_95", lambda v: f"{int(v.notna().sum())} of {len(v)}"),
        speedup=("speedup", "mean"), final=("final_test_accuracy", "mean"))
    return per.reset_index().round(3)
