"""How the report lays out its figures, decided from what is drawn (how many methods, how many
variants each), never per preset: a figure that fits 24 lines in one axes and a 24-entry legend over
the data cannot be read, and one that grows with the data would run off the page.

The rule (no matplotlib here, so that it is cheap to test):
- a figure is at most PAGE_WIDTH inches wide: at the page's DPI it fits a 1300-pixel-wide window,
  and it is never scaled down, so its text stays legible;
- lines in one axes: at most MAX_LINES (tab10's colours less its grey, dense's; each distinct); more are split
  into groups of at most MAX_LINES, one axes each, with the same axes limits;
- one panel per method with its controls (small multiples) when a sweep has two or more methods
  and controls: up to MAX_COLS panels a row, the rows balanced, at most MAX_ROWS rows a figure;
- more panels than a figure holds go on further figures (pages), named `<name>`, `<name>-2`, ...
- every legend sits outside the axes (lth.report.figures.legend_outside).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

PAGE_WIDTH = 10.0  # inches; x DPI = 1200 px, inside the report's content width at a 1300-px window
DPI = 120  # of the embedded PNGs
MAX_LINES = 9  # per axes: tab10's distinct colours less grey (lth.report.methods.PALETTE)
MAX_COLS, MAX_ROWS = 4, 3  # small multiples per figure
MAX_STACKED = 3  # overview panels stacked in one figure
PANEL = (PAGE_WIDTH / MAX_COLS, 2.1)  # a small multiple's size in inches (width, height)


@dataclass(frozen=True)
class Grid:
    """Panels on pages: `pages[i]` are the indices of the panels drawn on figure i, `cols` a row."""

    cols: int
    pages: list[list[int]]

    def rows(self, panels: int) -> int:
        """The rows a page of `panels` panels takes."""
        return math.ceil(panels / self.cols)

    def size(self, panels: int) -> tuple[float, float]:
        """The figure size in inches of a page of `panels` panels: full width for a full row, narrower
        for fewer panels (never below 6.5 in, the legend's width); a row's height each, and room for the legend
        above."""
        return min(PAGE_WIDTH, max(6.5, PANEL[0] * self.cols + 0.4)), PANEL[1] * self.rows(panels) + 0.9


def grid(n: int, max_cols: int = MAX_COLS, max_rows: int = MAX_ROWS) -> Grid:
    """`n` panels as balanced rows of at most `max_cols` (5 -> 3 + 2, 8 -> 4 + 4, 10 -> 4 + 4 + 2), at
    most `max_rows` rows a page; more go on further pages."""
    if n <= 0:
        return Grid(1, [])
    rows_needed = math.ceil(n / max_cols)
    cols = math.ceil(n / rows_needed)
    per_page = cols * max_rows
    pages = [list(range(i, min(i + per_page, n))) for i in range(0, n, per_page)]
    return Grid(cols, pages)


def split(items: list, size: int = MAX_LINES) -> list[list]:
    """`items` in the fewest groups of at most `size`, as even as they can be (12 -> 6 + 6, not 10 + 2),
    order kept."""
    if not items:
        return []
    k = math.ceil(len(items) / size)
    per = math.ceil(len(items) / k)
    return [items[i:i + per] for i in range(0, len(items), per)]


def stacked(groups: int) -> list[list[int]]:
    """Overview panels (one per group of lines) per figure: at most MAX_STACKED a figure."""
    return [list(range(i, min(i + MAX_STACKED, groups))) for i in range(0, groups, MAX_STACKED)]


def page_names(name: str, pages: int) -> list[str]:
    """A figure's name per page: `name` for the first (what the workflow and older reports use), then
    `name-2`, `name-3`, ..."""
    return [name if i == 0 else f"{name}-{i + 1}" for i in range(pages)]


def markers(points: int) -> dict:
    """Markers on a line of `points` points only while they stay apart: a 98-density curve reads
    better as a line."""
    return {"marker": "o", "markersize": 3} if points <= 30 else {"marker": None}
