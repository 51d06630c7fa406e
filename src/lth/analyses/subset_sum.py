"""The theory behind strong tickets, checked numerically (Pensia et al. 2020; Malach et al. 2020;
Orseau et al. 2020): a small target ReLU network is approximated by pruning a wider random network,
every target weight a subset sum of n random products (lth.analyses.subset_sum_theory). Per seed and n: the random
network's size over the target's (its over-parameterisation) and the approximation errors. The
theory says the error falls exponentially in n, so the width needed grows only logarithmically in
the accuracy. It reads no runs: it sits beside an edge-popup sweep as its theoretical counterpart.
"""

from __future__ import annotations

NAME = "subset_sum"


def compute(plan) -> list[dict]:
    from lth.analyses.subset_sum_theory import approximation_curve, make_target

    o = plan.settings[NAME]
    rows = []
    for seed in plan.settings.seeds:
        target = make_target(tuple(o.dims), seed=seed, scale=o.scale)
        for row in approximation_curve(target, ns=tuple(o.ns), seed=seed):
            rows.append({"experiment": plan.experiment, "seed": seed, "target": "x".join(map(str, o.dims)),
                         **row})
    return rows


def figure(table):
    """Approximation error vs over-parameterisation (mean over seeds, log scale)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.2), layout="constrained")
    ax = fig.add_subplot()
    per = table.groupby("n").mean(numeric_only=True).reset_index()
    for column, label, marker in (("max_output_error", "max |f(x) - g(x)| (output)", "o"),
                                  ("mean_weight_error", "mean weight error", "s")):
        ax.plot(per["overparameterisation"], per[column], marker=marker, label=label)
    for r in per.itertuples():
        ax.annotate(f"n={r.n}", (r.overparameterisation, r.max_output_error), textcoords="offset points",
                    xytext=(4, 4), fontsize="small")
    ax.set_yscale("log")
    ax.set_xlabel("random network parameters / target parameters")
    ax.set_ylabel("approximation error")
    ax.legend(fontsize="small")
    return fig


def caption(table) -> str:
    per = table.groupby("n").mean(numeric_only=True)
    first, last = per.iloc[0], per.iloc[-1]
    return (f"Figure S. A random ReLU network pruned to approximate a {table['target'].iloc[0]} target network "
            f"(subset sums of n random products per weight, Pensia et al. 2020): the output error falls from "
            f"{first.max_output_error:.2g} at n={per.index[0]} ({first.overparameterisation:.0f}x the target's "
            f"parameters) to {last.max_output_error:.2g} at n={per.index[-1]} "
            f"({last.overparameterisation:.0f}x), mean over seeds.")


def overview(table):
    return table.groupby("n").agg(overparameterisation=("overparameterisation", "mean"),
                                  max_output_error=("max_output_error", "mean"),
                                  mean_weight_error=("mean_weight_error", "mean"),
                                  max_weight_error=("max_weight_error", "mean")).reset_index().round(5)
