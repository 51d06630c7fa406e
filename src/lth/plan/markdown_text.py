"""Free text (a schema's description, a preset's comment or claim) as Markdown that shows it as written,
for the pages written from the code (lth.plan.config_doc, lth.plan.preset_doc). Torch-free."""

from __future__ import annotations

from typing import Any


def plain(value: Any) -> str:
    """One line; outside `code spans`, brackets and `<` escaped, so that `x[-1]` is no link and
    `<iteration>` no HTML tag (both renderers, the site's and a Git host's, read them so)."""
    parts = " ".join(str(value).split()).split("`")
    for i in range(0, len(parts), 2):
        parts[i] = parts[i].replace("[", "\\[").replace("]", "\\]").replace("<", "&lt;")
    return "`".join(parts)


def cell(value: Any) -> str:
    """A table cell: plain text, pipes escaped."""
    return plain(value).replace("|", "\\|")
