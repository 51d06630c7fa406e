"""The report's headline: down to which density the ticket matches dense, decided by a rule with a
statistical basis (not by a noisy dip of a mean), stated on the page with its n.

The rule: at each level, the 95 % t-interval over seeds of ticket minus dense, paired by seed. The
ticket matches dense down to the sparsest level at which, and at every denser one, the lower bound
is above -1 point: a non-inferiority test at a 1-point margin (one-sided 2.5 %) per level, tested
from dense downwards and stopped at the first failure (fixed-sequence testing, so that many levels
need no multiple-comparison correction). With one seed there is no interval: the point estimate
stands in, and the page says so.

A one-shot sweep (lth.plan.oneshot) is walked the same way over its densities, from the largest
down, and speaks in densities (its level numbers are densities per 10,000, not rounds). A sweep of
many densities is a curve, and a pointwise walk there would stop at its first noisy point: from
SMOOTH_FROM densities on, each density's difference is first averaged, per seed, with its neighbours
(a centred moving average of `window` densities, fewer at the ends), and the rule is applied to
that average. The claim is then about the curve's local average, which a reader of the figure sees;
the page says which rule it used and, beside it, where the pointwise test would have stopped.
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
    controls_of,
    estimate,
    interval,
    levels_are_densities,
    pct,
    points,
    pruned_levels,
    seed_values,
    sweep_methods,
    t_factor,
    variants,
    versus,
    wr,
)
from lth.report.tables import Results

MARGIN = 0.01  # one point of test accuracy
SMOOTH_FROM = (10, 20)  # a sweep of at least 10 densities is averaged over 3 of them, of at least 20 over 5


@dataclass(frozen=True)
class Step:
    """One level tested: the variant minus dense there, and whether the level passed the rule."""

    level: int
    weights_remaining: float  # NaN when the variant has no run at this level
    vs_dense: Estimate  # what the rule tests: at a smoothed sweep's density, the moving average
    passed: bool
    span: tuple[float, float] | None = None  # the weights remaining the average spans (smoothed only)
    pointwise: Estimate | None = None  # the density's own difference (smoothed only)


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
    kind: str = "imp"
    controls: tuple[str, ...] = ()  # the variant's controls present anywhere in the results
    densities: int = 0  # the levels the rule could walk (a sweep: the variant's densities)

    @property
    def window(self) -> int:
        """Densities in each moving average of the rule (1: none): from how many it walks (`window`)."""
        return window(self.densities, self.kind)

    @property
    def sweep(self) -> bool:
        """A one-shot sweep: its levels are densities, and the page speaks in them."""
        return levels_are_densities(self.kind)

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


def window(densities: int, kind: str = "imp") -> int:
    """How many densities each moving average of a sweep spans: 1 (none) below SMOOTH_FROM[0]
    densities, where each is a design point of its own; 3 from there; 5 from SMOOTH_FROM[1]. IMP: 1."""
    if not levels_are_densities(kind):
        return 1
    return 5 if densities >= SMOOTH_FROM[1] else 3 if densities >= SMOOTH_FROM[0] else 1


def per_seed_differences(summary: pd.DataFrame, variant: str, levels: list[int]) -> pd.DataFrame:
    """`variant` minus dense in test accuracy, one row per seed, one column per level (NaN where a seed
    lacks either run): the material of every pointwise and averaged difference."""
    dense = seed_values(summary, DENSE, 0)
    return pd.DataFrame({lv: seed_values(summary, variant, lv) - dense for lv in levels})


def moving_averages(summary: pd.DataFrame, variant: str, levels: list[int],
                    kind: str) -> dict[int, tuple[Estimate, tuple[float, float]]]:
    """Per level of `levels`: the centred moving average of `variant` minus dense over `window`
    densities (each seed's mean difference over the window, the densities it has, then the t-interval
    over seeds) and the weights remaining at the window's two ends."""
    diffs, h = per_seed_differences(summary, variant, levels), window(len(levels), kind) // 2
    w = summary[summary["variant"] == variant].groupby("level")["weights_remaining"].mean()
    out = {}
    for i, level in enumerate(levels):
        cols = levels[max(0, i - h): i + h + 1]
        out[level] = estimate(diffs[cols].mean(axis=1, skipna=True).dropna().to_numpy()), (w[cols[0]], w[cols[-1]])
    return out


def smoothed_differences(summary: pd.DataFrame, variant: str, kind: str = "imp") -> pd.DataFrame:
    """`variant` minus dense at each of its densities as the sweep's rule sees it (`window`): the
    moving average's mean and interval; the columns of lth.report.stats.differences."""
    w = summary[summary["variant"] == variant].groupby("level")["weights_remaining"].mean()
    rows = [{"level": level, "weights_remaining": w[level], "n": e.n, "mean": e.mean, "lo": e.lo, "hi": e.hi}
            for level, (e, _) in moving_averages(summary, variant, _levels(summary, variant, kind), kind).items()]
    return pd.DataFrame(rows, columns=["level", "weights_remaining", "n", "mean", "lo", "hi"])


def _levels(summary: pd.DataFrame, variant: str, kind: str) -> list[int]:
    """The levels the rule walks: IMP's every level (one lost stops the walk); a sweep's densities at
    which `variant` ran, the largest first (a density a method does not run at, an N:M method's
    others, is no evidence either way)."""
    levels = pruned_levels(summary, kind)
    if not levels_are_densities(kind):
        return levels
    ran = set(summary.loc[summary["variant"] == variant, "level"])
    return [lv for lv in levels if lv in ran]


def headline(summary: pd.DataFrame, margin: float = MARGIN, kind: str = "imp",
             variant: str | None = None) -> Headline | None:
    """The ticket (else the first chain present; a sweep's first method) against dense by the rule
    above, and against its stronger control where the headline's numbers are taken. None if nothing
    was pruned. `kind`: the experiment's (a one-shot sweep's levels are walked in the order of
    density, averaged when there are many); `variant`: another method's headline."""
    present = sweep_methods(summary) if levels_are_densities(kind) else variants(summary)
    if variant is None:
        variant = next((v for v in CHAIN_HEADS if v in present), present[0] if present else None)
    if variant is None:
        return None
    stats = by_level(summary)
    dense = stats[stats["level"] == 0].iloc[0]
    levels = _levels(summary, variant, kind)
    smoothed = moving_averages(summary, variant, levels, kind) if window(len(levels), kind) > 1 else {}
    steps = []
    for level in levels:  # IMP: a level without the variant's runs stops the walk
        step = _step(summary, variant, level, margin)
        if level in smoothed:
            e, span = smoothed[level]
            step = Step(level, step.weights_remaining, e, passes(e, margin), span, step.vs_dense)
        steps.append(step)
        if not step.passed:
            break
    passed = [s for s in steps if s.passed]
    first = next(lv for lv in levels if ((summary["variant"] == variant) & (summary["level"] == lv)).any())
    at = passed[-1] if passed else (steps[0] if steps and steps[0].level == first
                                    else _step(summary, variant, first, margin))
    ctrls = controls_of(summary, variant, kind)
    head = Headline(variant, dense["mean"], dense["std"], int(dense["seeds"]), steps, at, kind=kind,
                    controls=tuple(ctrls), densities=len(levels))
    there = stats[(stats["level"] == at.level) & stats["variant"].isin(ctrls)]
    if not there.empty:
        head.control = there.sort_values("mean", ascending=False, kind="stable")["variant"].iloc[0]
        head.vs_control = versus(summary, variant, at.level, head.control)
        head.controls_there = len(there)
    return head


def _at(step: Step, sweep: bool = False) -> str:
    """Where a step is, in the reader's terms: IMP's level and its density; a sweep's density alone
    (its level number is that density per 10,000)."""
    where = f"{wr(step.weights_remaining)} % weights remaining" if pd.notna(step.weights_remaining) else ""
    if sweep:
        return where
    return f"level {step.level}" + (f" ({where})" if where else "")


def _span(step: Step) -> str:
    """The densities a step's moving average spans, in words ("" when it has none)."""
    if step.span is None:
        return ""
    hi, lo = (wr(x) for x in step.span)
    return f" (averaged over the densities from {hi} to {lo} %)" if hi != lo else ""


def _why(step: Step, variant: str, sweep: bool = False) -> str:
    """Why `step` failed the rule, in words."""
    if pd.isna(step.weights_remaining):
        return f"level {step.level} has no {variant} runs"
    if step.vs_dense.n == 0:
        return f"at {_at(step, sweep)} no seed has both a {variant} and a dense run"
    bound = "95 % CI's lower bound" if step.vs_dense.has_interval else "point estimate (one seed)"
    what = f"{variant} − dense{_span(step)}"
    return f"at {_at(step, sweep)} the {bound} of {what} is {points(_bound(step.vs_dense))} points"


def _difference(e: Estimate) -> str:
    if e.n == 0:
        return "not computable (no seed has both runs)"
    ci = f"95 % CI {interval(e)}" if e.has_interval else "one seed: no interval"
    return f"{points(e.mean)} points ({ci})"


def pointwise_text(head: Headline) -> str:
    """For a smoothed sweep: where the test at each density alone would have stopped, so that the
    reader sees what the average absorbed."""
    if head.window == 1 or not head.steps:
        return ""
    walked = [s for s in head.steps if s.passed]
    failing = [s for s in walked if s.pointwise is not None and not passes(s.pointwise)]
    if not walked:
        return ""
    if not failing:
        return (f" Pointwise (each density alone), every one of the {len(walked)} densities down to there passes "
                f"too.")
    return (f" Pointwise (each density alone), {len(failing)} of the {len(walked)} densities down to there fail "
            f"the test, the first at {wr(failing[0].weights_remaining)} %: single noisy points that the average "
            f"absorbs.")


def headline_text(head: Headline | None) -> str:
    """Markdown: the claim, its numbers with n, the control there, and why the walk stopped."""
    if head is None:
        return "Nothing was pruned yet: only the dense network is in the results."
    v, at, stop, sweep = head.variant, head.at, head.stop, head.sweep
    where = "density" if sweep else "pruned level"
    avg = f"{head.window}-density moving average; " if head.window > 1 else ""
    if head.matched:
        level = "" if sweep else f"level {at.level}; "
        text = (f"**{v} matches dense down to {wr(at.weights_remaining)} % weights remaining** "
                f"({level}{avg}{head.n_text}). There, {v} − dense{_span(at)} = {_difference(at.vs_dense)}")
    elif at.level == stop.level and at.vs_dense.n:
        below = "whose lower bound is" if at.vs_dense.has_interval else "one seed,"
        text = (f"**{v} is not shown to match dense at any {where}** ({avg}{head.n_text}): at {_at(at, sweep)}, "
                f"{v} − dense{_span(at)} = {_difference(at.vs_dense)}, {below} below −{100 * MARGIN:g} point")
    else:
        text = (f"**{v} is not shown to match dense at any {where}** ({avg}{head.n_text}): {_why(stop, v, sweep)}, "
                f"and the rule needs every denser {'density' if sweep else 'level'}. At {_at(at, sweep)}, the "
                f"first {'density' if sweep else 'level'} with {v} runs, {v} − dense = {_difference(at.vs_dense)}")
    if head.control:
        which = "the stronger control there" if head.controls_there > 1 else "the only control there"
        text += f", and {v} − {head.control} ({which}) = {_difference(head.vs_control)}"
    elif sweep and not head.controls:
        text += f"; the sweep has no controls of {v}"
    elif sweep:
        text += f"; no control of {v} ran at {_at(at, sweep)}"
    elif v == "ticket":
        text += f"; no control ({' or '.join(CONTROLS)}) ran at level {at.level}"
    spread = f"mean ± std {pct(head.dense_std)}, {head.seeds} seeds" if head.seeds > 1 else "one seed, no spread"
    text += f". Dense: {pct(head.dense_mean)} % test accuracy ({spread})."
    if stop is not None and head.matched:
        text += f" Below it, {_why(stop, v, sweep)}, below −{100 * MARGIN:g}." if stop.vs_dense.n else \
            f" Below it, {_why(stop, v, sweep)}, so the claim stops there."
    return text + (pointwise_text(head) if head.matched else "")


def _bound(e: Estimate) -> float:
    return e.lo if e.has_interval else e.mean


def rule_text(head: Headline | None) -> str:
    """Markdown: how the headline is decided, in the terms its basis allows."""
    if head is None:
        return ""
    v, m = head.variant, f"{100 * MARGIN:g} point"
    level = "density" if head.sweep else "level"
    smooth = ""
    if head.window > 1:
        smooth = (f" This sweep has {head.densities} densities of {v}, a curve rather than a few design "
                  f"points: a test at each density alone would stop at the curve's first noisy point, so each "
                  f"density's difference is first averaged, per seed, with its {head.window // 2} neighbour(s) on "
                  f"each side (a centred moving average of {head.window} densities, fewer at the ends), and the "
                  f"rule below is applied to that average: the claim is about the curve's local level, not about "
                  f"any single density. Where the test at each density alone would have stopped is given beside it.")
    if head.basis == "point":
        return (f"*How this is decided:* with one seed there is no spread, so **no confidence interval can be "
                f"computed**; this falls back to the point estimate ({v} − dense above −{m} at the {level} and at "
                f"every denser one), which cannot tell a real drop from noise. More seeds give the claim a "
                f"statistical basis.{smooth}")
    n = min((s.vs_dense.n for s in head.steps if s.vs_dense.n > 1), default=0)
    t = f" (with n = {n}, the mean ± {t_factor(n):.2f} standard errors)" if n else ""
    text = (f"*How this is decided:* at each {level}, {v} − dense test accuracy is paired by seed (a seed's runs "
            f"share their initialisation) and its {100 * CONFIDENCE:g} % confidence interval taken from the "
            f"t-distribution over the seeds{t}. {v} matches dense "
            f"down to the sparsest {level} at which, and at every denser one, the interval's lower bound is above "
            f"−{m}: a non-inferiority test with a {m} margin (one-sided, {50 * (1 - CONFIDENCE):g} %), applied "
            f"from dense downwards and stopped at the first failure, so testing many "
            f"{'densities' if head.sweep else 'levels'} needs no correction.{smooth}")
    if head.basis == "mixed":
        if head.sweep:
            where = ", ".join(f"{wr(s.weights_remaining)} %" for s in head.steps if s.vs_dense.n == 1)
            text += f" At {where} only one seed has both runs: no interval, the point estimate stands in."
        else:
            levels = ", ".join(map(str, head.one_seed_levels))
            text += f" At level(s) {levels} only one seed has both runs: no interval, the point estimate stands in."
    return text


def headline_table(summary: pd.DataFrame, head: Headline) -> pd.DataFrame:
    """Every variant at the headline's level beside dense: accuracy, and differences paired by
    seed with their 95 % intervals, in points (at that density alone, also in a smoothed sweep). A
    sweep's table has no level column: its weights remaining says it."""
    stats = by_level(summary)
    level = head.at.level
    table = pd.concat([stats[stats["level"] == 0]] + [stats[(stats["level"] == level) & (stats["variant"] == v)]
                                                      for v in variants(summary)])
    at = head.at.pointwise or head.at.vs_dense
    rows = []
    for r in table.itertuples():
        own = DENSE if r.level == 0 else r.variant
        vs_dense = versus(summary, own, int(r.level), DENSE) if r.level else None
        ref = at if r.level == 0 else (None if r.variant == head.variant
                                       else versus(summary, head.variant, level, r.variant))
        rows.append({"variant": r.variant, **({} if head.sweep else {"level": r.level}),
                     "weights remaining (%)": wr(r.weights_remaining),
                     "test accuracy (%)": pct(r.mean), "std (%)": pct(r.std), "seeds": r.seeds,
                     "minus dense (points)": points(vs_dense.mean) if vs_dense else points(0.0),
                     "minus dense: 95 % CI": interval(vs_dense) if vs_dense else "",
                     f"{head.variant} minus it (points)": points(ref.mean) if ref else points(0.0),
                     f"{head.variant} minus it: 95 % CI": interval(ref) if ref else ""})
    return pd.DataFrame(rows)


def match_table(summary: pd.DataFrame, head: Headline | None) -> pd.DataFrame:
    """A sweep of two or more methods: the headline's rule applied to each method, one row each:
    down to which density it matches dense, its difference there (with the interval), and where its
    walk ended. Empty for IMP and for a one-method sweep (the headline says it)."""
    if head is None or not head.sweep:
        return pd.DataFrame()
    names = sweep_methods(summary)
    if len(names) < 2:
        return pd.DataFrame()
    rows = []
    for m in names:
        h = headline(summary, kind=head.kind, variant=m)
        matched, stop = h.matched, h.stop
        rows.append({"method": m,
                     "matches dense down to (% weights remaining)": wr(matched.weights_remaining) if matched
                     else "not shown",
                     "there: minus dense (points)": points(h.at.vs_dense.mean),
                     "there: 95 % CI": interval(h.at.vs_dense),
                     "densities averaged": h.window,
                     "walk ends at (% weights remaining)": wr(stop.weights_remaining) if stop is not None
                     else "every density passes",
                     "seeds": h.at.vs_dense.n})
    return pd.DataFrame(rows)


def title(results: Results, head: Headline | None) -> str:
    """Markdown: the report's title, its headline and the rule behind it."""
    return "\n\n".join(filter(None, [f"# {results.experiment}: lottery-ticket report", headline_text(head),
                                     rule_text(head)]))
