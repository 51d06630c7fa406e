"""How much masks share: the Jaccard overlap of the tickets of different seeds at each level, and
of one seed's tickets at different levels (Frankle & Carbin's masks found again? nested?).

For two independent random masks of densities p and q the expected overlap is pq / (p + q - pq)
(p / (2 - p) when p = q); the table gives it beside the measured one, so that "the seeds found
the same ticket" can be told apart from "both kept a lot of weights". The masks compared are the
IMP ticket chain's, or, in a one-shot sweep, each method's.
"""

from __future__ import annotations

from itertools import combinations

from lth.plan.layout import RunKey
from lth.pruning import masks
from lth.store import artifacts


def jaccard(a: dict, b: dict) -> float:
    inter = sum(int((a[n] & b[n]).sum()) for n in a)
    union = sum(int((a[n] | b[n]).sum()) for n in a)
    return inter / union if union else 1.0


def if_random(p: float, q: float) -> float:
    return p * q / (p + q - p * q) if p + q else 1.0


def compute(plan) -> list[dict]:
    s, rows = plan.settings, []
    for variant in plan.ticket_chains():
        levels = plan.method_levels(variant)  # a sweep's N:M method has one
        found = {(seed, lv): artifacts.load_tensors(plan.layout.mask(RunKey(seed, lv, variant)))
                 for seed in s.seeds for lv in levels}
        density = {key: masks.density(m) for key, m in found.items()}
        pairs = [("seeds", (a, lv), (b, lv)) for lv in levels for a, b in combinations(s.seeds, 2)]
        pairs += [("levels", (seed, a), (seed, b)) for seed in s.seeds for a, b in combinations(levels, 2)]
        for compare, x, y in pairs:
            rows.append({"experiment": plan.experiment, "variant": variant, "compare": compare,
                         "seed_a": x[0], "level_a": x[1], "seed_b": y[0], "level_b": y[1],
                         "weights_remaining_a": density[x], "weights_remaining_b": density[y],
                         "jaccard": jaccard(found[x], found[y]),
                         "jaccard_if_random": if_random(density[x], density[y])})
    return rows


def figure(table):
    """Left: the overlap of two seeds' masks per level beside two random masks'; right: one seed's
    masks across levels, as a heat map (the first variant, the first seed)."""
    import numpy as np
    from matplotlib.figure import Figure

    variant = table["variant"].iloc[0]
    t = table[table["variant"] == variant]
    fig = Figure(figsize=(11, 4.4), layout="constrained")
    left, right = fig.subplots(1, 2)
    seeds = t[t["compare"] == "seeds"]
    if not seeds.empty:
        per = seeds.groupby("level_a").agg(w=("weights_remaining_a", "mean"), j=("jaccard", "mean"),
                                           r=("jaccard_if_random", "mean"))
        left.plot(100 * per["w"], per["j"], marker="o", label=f"{variant}: two seeds (mean over pairs)")
        left.plot(100 * per["w"], per["r"], linestyle="--", color="0.4", label="two random masks")
        from matplotlib.ticker import FuncFormatter, NullFormatter

        left.set_xscale("log")
        left.invert_xaxis()
        left.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
        left.xaxis.set_minor_formatter(NullFormatter())
        left.legend(fontsize="small")
    left.set_xlabel("weights remaining (%, log scale)")
    left.set_ylabel("Jaccard overlap")
    left.set_title("Across seeds")
    levels = t[(t["compare"] == "levels") & (t["seed_a"] == t["seed_a"].min())]
    names = sorted(set(levels["level_a"]) | set(levels["level_b"]),
                   key=lambda lv: -levels.loc[(levels["level_a"] == lv), "weights_remaining_a"].max()
                   if (levels["level_a"] == lv).any() else 0)
    grid = np.eye(len(names))
    index = {lv: i for i, lv in enumerate(names)}
    for r in levels.itertuples():
        grid[index[r.level_a], index[r.level_b]] = grid[index[r.level_b], index[r.level_a]] = r.jaccard
    image = right.imshow(grid, vmin=0, vmax=1, cmap="viridis")
    right.set_xticks(range(len(names)), names, fontsize="x-small", rotation=90)
    right.set_yticks(range(len(names)), names, fontsize="x-small")
    right.set_xlabel("level")
    right.set_title(f"Across levels (seed {t['seed_a'].min()})")
    fig.colorbar(image, ax=right, label="Jaccard overlap")
    return fig


def caption(table) -> str:
    return ("Figure O. Mask similarity. Left: the Jaccard overlap of the masks two seeds found at each level, "
            "beside the overlap two independent random masks of those densities would have (dashed). Right: "
            "the overlap of one seed's masks at every pair of levels (the diagonal is 1).")
