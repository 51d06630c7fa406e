"""The report's headline: down to which density the ticket matches dense, decided by a rule with a
statistical basis (not by a noisy dip of a mean), stated on the page with its n.

The rule: at each level, the 95 % t-interval over seeds of ticket minus dense, paired by seed. The
ticket matches dense down to the sparsest level at which, and at every denser one, the lower bound
is above -1 point: a non-inferiority test at a 1-point margin (one-sided 2.5 %) per level, tested
from dense downwards and stopped at the first failure (fixed-sequence testing, so that many levels
need no multiple-comparison correction). With one seed there is no interval: the point estimate
stands in, and the page says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from lth.plan.variants import DENSE
from lth.report.stats import (
    CHAIN_HEADS,
    CONFIDENCE,
    CONTROLS,
    Estimate,
    by_level,
    interval,
    pct,
    points,
    pruned_levels,
    t_factor,
    variants,
    versus,
    wr,
)
from lth.report.tables import Results

MARGIN = 0.01  # one point of test accuracy


@dataclass(frozen=True)
class Step:
    """One level tested: the variant minus dense there, and whether the level passed the rule."""

    level: int
    weights_remaining: float  # NaN when the variant has no run at this level
    vs_dense: Estimate
    passed: bool


@dataclass
class Headline:
    """The headline's claim and its numbers: `steps` walked by the rule, `at` where they are shown."""

    variant: str
    dense_mean: float
    dense_std: float
    seeds: int  # dense runs
    steps: list[Step]  # from the first pruned level down to the first that fails (or the last)
    at: Step  # where the numbers are taken: the matched level, else the first with the variant's runs
    control: str | None = None  # the stronger control at `at`'s level
    vs_control: Estimate = Estimate(0)
    controls_there: int = 0  # how many controls ran at `at`'s level

    @property
    def matched(self) -> Step | None:
        """The sparsest level matching dense (None: not even the first pruned level)."""
        passed = [s for s in self.steps if s.passed]
        return passed[-1] if passed else None

    @property
    def stop(self) -> Step | None:
        """The level that ended the walk (None: every level present passed)."""
        return self.steps[-1] if not self.steps[-1].passed else None

    @property
    def one_seed_levels(self) -> list[int]:
        return [s.level for s in self.steps if s.vs_dense.n == 1]

    @property
    def basis(self) -> str:
        """"interval", "point" (one seed everywhere: no interval), "mixed", or "none" (nothing paired)."""
        tested = [s for s in self.steps if s.vs_dense.n > 0]
        if not tested:
            return "none"
        if all(s.vs_dense.n == 1 for s in tested):
            return "point"
        return "mixed" if self.one_seed_levels else "interval"

    @property
    def n_text(self) -> str:
        ns = sorted({s.vs_dense.n for s in [*self.steps, self.at] if s.vs_dense.n > 0})
        if not ns:
            return "no seed has both a dense and a pruned run"
        if len(ns) == 1:
            return f"n = {ns[0]} seed{'s' if ns[0] > 1 else ''}"
        return f"n = {ns[0]}-{ns[-1]} seeds per level"


def passes(e: Estimate, margin: float = MARGIN) -> bool:
    """The interval's lower bound above -margin; with one seed, the point estimate instead."""
    if e.n == 0:
        return False
    return (e.lo if e.has_interval else e.mean) > -margin


def _step(summary: pd.DataFrame, variant: str, level: int, margin: float) -> Step:
    runs = summary[(summary["variant"] == variant) & (summary["level"] == level)]
    e = versus(summary, variant, level, DENSE)
    return Step(level, runs["weights_remaining"].mean(), e, passes(e, margin))


def headline(summary: pd.DataFrame, margin: float = MARGIN, kind: str = "imp") -> Headline | None:
    """The ticket (else the first chain present) against dense by the rule above, and against its
    stronger control where the headline's numbers are taken. None if nothing was pruned.
    `kind`: the experiment's (a one-shot sweep's levels are walked in the order of density)."""
    present = variants(summary)
    variant = next((v for v in CHAIN_HEADS if v in present), present[0] if present else None)
    if variant is None:
        return None
    stats = by_level(summary)
    dense = stats[stats["level"] == 0].iloc[0]
    steps = []
    levels = pruned_levels(summary, kind)
    for level in levels:  # a level without the variant's runs stops the walk
        steps.append(_step(summary, variant, level, margin))
        if not steps[-1].passed:
            break
    passed = [s for s in steps if s.passed]
    first = next(lv for lv in levels if ((summary["variant"] == variant) & (summary["level"] == lv)).any())
    at = passed[-1] if passed else _step(summary, variant, first, margin)
    head = Headline(variant, dense["mean"], dense["std"], int(dense["seeds"]), steps, at)
    there = stats[(stats["level"] == at.level) & stats["variant"].isin(CONTROLS)]
    if variant == "ticket" and not there.empty:
        head.control = there.sort_values("mean", ascending=False, kind="stable")["variant"].iloc[0]
        head.vs_control = versus(summary, variant, at.level, head.control)
        head.controls_there = len(there)
    return head


def _at(step: Step) -> str:
    where = f" ({wr(step.weights_remaining)} % weights remaining)" if pd.notna(step.weights_remaining) else ""
    return f"level {step.level}{where}"


def _why(step: Step, variant: str) -> str:
    """Why `step` failed the rule, in words."""
    if pd.isna(step.weights_remaining):
        return f"level {step.level} has no {variant} runs"
    if step.vs_dense.n == 0:
        return f"at {_at(step)} no seed has both a {variant} and a dense run"
    bound = "95 % CI's lower bound" if step.vs_dense.has_interval else "point estimate (one seed)"
    return f"at {_at(step)} the {bound} of {variant} − dense is {points(_bound(step.vs_dense))} points"


def _difference(e: Estimate) -> str:
    if e.n == 0:
        return "not computable (no seed has both runs)"
    ci = f"95 % CI {interval(e)}" if e.has_interval else "one seed: no interval"
    return f"{points(e.mean)} points ({ci})"


def headline_text(head: Headline | None) -> str:
    """Markdown: the claim, its numbers with n, the control there, and why the walk stopped."""
    if head is None:
        return "Nothing was pruned yet: only the dense network is in the results."
    v, at, stop = head.variant, head.at, head.stop
    if head.matched:
        text = (f"**{v} matches dense down to {wr(at.weights_remaining)} % weights remaining** "
                f"(level {at.level}; {head.n_text}). There, {v} − dense = {_difference(at.vs_dense)}")
    elif at.level == stop.level and at.vs_dense.n:
        below = "whose lower bound is" if at.vs_dense.has_interval else "one seed,"
        text = (f"**{v} is not shown to match dense at any pruned level** ({head.n_text}): at {_at(at)}, {v} − "
                f"dense = {_difference(at.vs_dense)}, {below} below −{100 * MARGIN:g} point")
    else:
        text = (f"**{v} is not shown to match dense at any pruned level** ({head.n_text}): {_why(stop, v)}, "
                f"and the rule needs every denser level. At {_at(at)}, the first level with {v} runs, {v} − dense "
                f"= {_difference(at.vs_dense)}")
    if head.control:
        which = "the stronger control there" if head.controls_there > 1 else "the only control there"
        text += f", and {v} − {head.control} ({which}) = {_difference(head.vs_control)}"
    elif v == "ticket":
        text += f"; no control ({' or '.join(CONTROLS)}) ran at level {at.level}"
    spread = f"mean ± std {pct(head.dense_std)}, {head.seeds} seeds" if head.seeds > 1 else "one seed, no spread"
    text += f". Dense: {pct(head.dense_mean)} % test accuracy ({spread})."
    if stop is not None and head.matched:
        text += f" Below it, {_why(stop, v)}, below −{100 * MARGIN:g}." if stop.vs_dense.n else \
            f" Below it, {_why(stop, v)}, so the claim stops there."
    return text


def _bound(e: Estimate) -> float:
    return e.lo if e.has_interval else e.mean


def rule_text(head: Headline | None) -> str:
    """Markdown: how the headline is decided, in the terms its basis allows."""
    if head is None:
        return ""
    v, m = head.variant, f"{100 * MARGIN:g} point"
    if head.basis == "point":
        return (f"*How this is decided:* with one seed there is no spread, so **no confidence interval can be "
                f"computed**; this falls back to the point estimate ({v} − dense above −{m} at the level and at "
                f"every denser one), which cannot tell a real drop from noise. More seeds give the claim a "
                f"statistical basis.")
    n = min((s.vs_dense.n for s in head.steps if s.vs_dense.n > 1), default=0)
    t = f" (with n = {n}, the mean ± {t_factor(n):.2f} standard errors)" if n else ""
    text = (f"*How this is decided:* at each level, {v} − dense test accuracy is paired by seed (a seed's runs "
            f"share their initialisation) and its {100 * CONFIDENCE:g} % confidence interval taken from the "
            f"t-distribution over the seeds{t}. {v} matches dense "
            f"down to the sparsest level at which, and at every denser one, the interval's lower bound is above "
            f"−{m}: a non-inferiority test with a {m} margin (one-sided, {50 * (1 - CONFIDENCE):g} %), applied "
            f"from dense downwards and stopped at the first failure, so testing many levels needs no correction.")
    if head.basis == "mixed":
        levels = ", ".join(map(str, head.one_seed_levels))
        text += f" At level(s) {levels} only one seed has both runs: no interval, the point estimate stands in."
    return text


def headline_table(summary: pd.DataFrame, head: Headline) -> pd.DataFrame:
    """Every variant at the headline's level beside dense: accuracy, and differences paired by
    seed with their 95 % intervals, in points."""
    stats = by_level(summary)
    level = head.at.level
    table = pd.concat([stats[stats["level"] == 0]] + [stats[(stats["level"] == level) & (stats["variant"] == v)]
                                                      for v in variants(summary)])
    rows = []
    for r in table.itertuples():
        own = DENSE if r.level == 0 else r.variant
        vs_dense = versus(summary, own, int(r.level), DENSE) if r.level else None
        ref = head.at.vs_dense if r.level == 0 else (None if r.variant == head.variant
                                                      else versus(summary, head.variant, level, r.variant))
        rows.append({"variant": r.variant, "level": r.level, "weights remaining (%)": wr(r.weights_remaining),
                     "test accuracy (%)": pct(r.mean), "std (%)": pct(r.std), "seeds": r.seeds,
                     "minus dense (points)": points(vs_dense.mean) if vs_dense else points(0.0),
                     "minus dense: 95 % CI": interval(vs_dense) if vs_dense else "",
                     f"{head.variant} minus it (points)": points(ref.mean) if ref else points(0.0),
                     f"{head.variant} minus it: 95 % CI": interval(ref) if ref else ""})
    return pd.DataFrame(rows)


def title(results: Results, head: Headline | None) -> str:
    """Markdown: the report's title, its headline and the rule behind it."""
    return "\n\n".join(filter(None, [f"# {results.experiment}: lottery-ticket report", headline_text(head),
                                     rule_text(head)]))
