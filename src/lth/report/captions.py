"""The figures' captions, built from what was drawn: a caption that promises diamonds, spread or a
control the figure does not show misleads more than no caption."""

from __future__ import annotations

import pandas as pd

from lth.report.headline import MARGIN, Headline
from lth.report.stats import CONTROLS, controls


def spread(summary: pd.DataFrame) -> str:
    n = summary["seed"].nunique()
    return f"mean ± std over {n} seeds" if n > 1 else "one seed: single runs, no spread"


def accuracy_caption(summary: pd.DataFrame, published: pd.DataFrame) -> str:
    text = (f"Figure 1. Test accuracy at the end of training vs. weights remaining, one line per variant "
            f"({spread(summary)}); ")
    if published.empty:
        return text + "no published numbers in this experiment's reference."
    names = ", ".join(dict.fromkeys(published["variant"]))
    return text + f"diamonds: the paper's published numbers ({len(published)} points: {names})."


def differences_caption(summary: pd.DataFrame, head: Headline | None) -> str:
    if head is None:
        return "Figure 2. Nothing was pruned: no differences to show."
    v, n = head.variant, summary["seed"].nunique()
    present = controls(summary) if v == "ticket" else []
    text = (f"Figure 2. {v} minus dense (dotted: the −{100 * MARGIN:g}-point margin of the headline's rule)"
            + (f" and {v} minus each control present ({', '.join(present)})" if present else "")
            + " vs. weights remaining: the mean difference, paired by seed, and ")
    text += ("its 95 % t-interval over seeds as error bars (n = {n}); solid: no difference.".format(n=n) if n > 1
             else "no error bars: with one seed no interval can be computed; solid: no difference.")
    if head.window > 1:
        text += (f" Blue: the {head.window}-density moving average of the difference and its 95 % interval, "
                 f"which the headline's rule tests.")
    absent = [c for c in CONTROLS if c not in present]
    if v == "ticket" and absent:
        text += f" Not in the results, so not drawn: {', '.join(absent)}."
    return text


def early_stop_caption(summary: pd.DataFrame) -> str:
    return f"Figure 3. Iteration of minimum validation loss vs. weights remaining ({spread(summary)})."


def curves_caption(summary: pd.DataFrame, levels: list[int], shown: list[str]) -> str:
    return (f"Figure 4. Test accuracy over training iterations at levels {levels}: {', '.join(shown)} against "
            f"the dense network ({spread(summary)}).")


def layer_density_caption() -> str:
    return ("Figure 5. Fraction of each prunable layer's weights remaining at each level, per mask chain; each "
            "layer has its own marker and is offset sideways, so that layers pruned alike stay visible (the "
            "legend says which coincide).")


def transfer_caption(transfer: pd.DataFrame, chance: dict[str, float]) -> str:
    text = (f"Figure 6. Test accuracy on each transfer target vs. weights remaining ({spread(transfer)}), each "
            f"target on its own y axis")
    known = [t for t in sorted(transfer["target"].unique()) if t in chance]
    return text + (f"; dotted: chance (1 / classes) on {', '.join(known)}." if known else ".")
