"""Which sections a report has: a section that does not apply to the experiment (an IMP run's
comparison of one-shot methods, transfer without targets, a paper's claims without a paper) is left
out rather than shown with a line saying it does not apply, and the page says at its top which
sections it has, numbered as they appear."""

from __future__ import annotations

from lth.report.headline import Headline
from lth.report.methods import methods
from lth.report.tables import Results

TITLES = {
    "claims": "The paper's claims, checked, and its protocol beside ours",
    "accuracy": "Test accuracy vs. weights remaining",
    "methods": "Pruning methods compared",
    "differences": "Differences from dense, with 95 % intervals",
    "early_stop": "Early stopping vs. weights remaining",
    "curves": "Test accuracy during training",
    "layer_density": "Per-layer density across levels",
    "transfer": "Transfer",
    "analyses": "Analyses",
    "appendix": "Appendix",
}


def sections(r: Results, head: Headline | None, has_curves: bool = True) -> list[str]:
    """The keys of TITLES that apply to `r`, in page order. `has_curves`: whether any run's record
    holds a training curve (the caller knows; reading the records twice is what it avoids)."""
    sweep = methods(r.summary, r.config)
    applies = {
        "claims": bool(r.reference),
        "accuracy": True,
        "methods": len(sweep) >= 2,  # one method: Figure 1 is it beside its controls, and its table
        "differences": head is not None,
        "early_stop": bool(r.summary.loc[r.summary["level"] > 0, "early_stop_iteration"].notna().any()),
        "curves": has_curves,
        "layer_density": not r.density.empty and not sweep,  # drawn against IMP's levels, not densities
        "transfer": not r.transfer.empty,
        "analyses": bool(r.config.get("analyses")),
        "appendix": True,
    }
    return [k for k in TITLES if applies[k]]


def heading(present: list[str], key: str) -> str:
    """Markdown: the section's heading, numbered by its place among the sections present ("" if absent)."""
    if key not in present:
        return ""
    number = "" if key == "appendix" else f"{present.index(key) + 1}. "
    return f"## {number}{TITLES[key]}"


def contents(present: list[str]) -> str:
    """Markdown: one line naming the sections this report has, and what it leaves out."""
    shown = [("" if k == "appendix" else f"{i + 1}. ") + TITLES[k] for i, k in enumerate(present)]
    left = [TITLES[k].split(",")[0].lower() for k in TITLES if k not in present]
    text = f"*This report has:* {'; '.join(shown)}."
    return text + (f" *Left out, as they do not apply here:* {'; '.join(left)}." if left else "")
