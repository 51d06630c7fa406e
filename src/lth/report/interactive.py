"""Tables a reader can sort and search in the exported page, offline: the HTML is written here (not
by pandas) so that a wide table sits in its own scroll container with its first column and header
kept in view, a column group (a method and its controls) gets a header cell over its columns, and
a small script of our own, carried in the page (no library, nothing fetched), sorts a column on a
click of its header (numbers as numbers: "61.9 ± 1.1" by 61.9) and hides the rows that do not hold
the text typed in the search box."""

from __future__ import annotations

import html

import pandas as pd

STYLE = """<style>
.lth-table-wrap { max-width: 100%; max-height: 36em; overflow: auto; margin: 0.4em 0 1em 0; }
.lth-table-wrap table.lth-table { border-collapse: collapse; font-size: 0.85em; }
.lth-table-wrap th, .lth-table-wrap td { padding: 0.2em 0.6em; white-space: nowrap; text-align: right; }
.lth-table-wrap thead th { position: sticky; top: 0; background: #fff; z-index: 1; }
.lth-table-wrap thead tr.lth-groups + tr th { top: 1.6em; }
.lth-table-wrap tr > :first-child { position: sticky; left: 0; background: #fff; text-align: left; }
.lth-table-wrap thead tr > :first-child { z-index: 2; }
.lth-table-wrap th.lth-group { text-align: center; border-bottom: 1px solid #888; }
.lth-table-wrap th[data-col] { cursor: pointer; }
.lth-table-wrap th[aria-sort=ascending]::after { content: " \\25B2"; }
.lth-table-wrap th[aria-sort=descending]::after { content: " \\25BC"; }
.lth-table-wrap tbody tr:nth-child(even) > * { background: #f5f5f5; }
.lth-table-tools { font-size: 0.85em; margin-top: 0.6em; }
</style>"""

# Sets up every table in a .lth-table-wrap once, however many times the script appears in the page.
SCRIPT = """<script>
(function () {
  function value(text) {
    var t = text.replace(/\\u2212/g, "-").trim();
    var m = t.match(/^[+-]?\\d+(\\.\\d+)?(e[+-]?\\d+)?/i);
    return m ? parseFloat(m[0]) : null;
  }
  function setup(wrap) {
    if (wrap.dataset.lthReady) return;
    wrap.dataset.lthReady = "1";
    var table = wrap.querySelector("table"), body = table.tBodies[0];
    var heads = table.tHead.rows[table.tHead.rows.length - 1].cells;
    Array.prototype.forEach.call(heads, function (th, col) {
      th.dataset.col = col;
      th.title = "sort by this column";
      th.addEventListener("click", function () {
        var up = th.getAttribute("aria-sort") !== "ascending";
        Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", up ? "ascending" : "descending");
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = a.cells[col].textContent, y = b.cells[col].textContent, vx = value(x), vy = value(y);
          var c = (vx !== null && vy !== null) ? vx - vy : (vx !== null ? -1 : (vy !== null ? 1 : x.localeCompare(y)));
          return up ? c : -c;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
    var box = document.getElementById(wrap.dataset.search), count = document.getElementById(wrap.dataset.count);
    if (box) box.addEventListener("input", function () {
      var q = box.value.toLowerCase(), n = 0;
      Array.prototype.forEach.call(body.rows, function (r) {
        var hit = r.textContent.toLowerCase().indexOf(q) >= 0;
        r.style.display = hit ? "" : "none";
        n += hit ? 1 : 0;
      });
      if (count) count.textContent = n + " of " + body.rows.length + " rows";
    });
  }
  Array.prototype.forEach.call(document.querySelectorAll(".lth-table-wrap"), setup);
})();
</script>"""


def _cell(value) -> str:
    return "" if value is None or (isinstance(value, float) and pd.isna(value)) else html.escape(str(value))


def table_html(table: pd.DataFrame, name: str) -> str:
    """`table` as a sortable, searchable HTML table (id `table-<name>`) in a scroll container; the
    column groups of `table.attrs["groups"]` ([(label, columns), ...]) as a header row above it."""
    tid = f"table-{name}"
    groups = table.attrs.get("groups")
    head = ""
    if groups:
        head += '<tr class="lth-groups">' + "".join(
            f'<th class="lth-group" colspan="{n}">{html.escape(label)}</th>' if label else f'<th colspan="{n}"></th>'
            for label, n in groups) + "</tr>"
    head += "<tr>" + "".join(f"<th>{html.escape(str(c))}</th>" for c in table.columns) + "</tr>"
    body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>"
                   for row in table.itertuples(index=False, name=None))
    rows = len(table)
    tools = (f'<div class="lth-table-tools"><label>Search: <input type="search" id="{tid}-search" '
             f'class="lth-search" placeholder="filter rows"></label> <span id="{tid}-count">{rows} rows</span>; '
             f"click a column's header to sort by it.</div>")
    return (f"{STYLE}{tools}"
            f'<div class="lth-table-wrap" id="{tid}-wrap" data-search="{tid}-search" data-count="{tid}-count">'
            f'<table id="{tid}" class="lth-table"><thead>{head}</thead><tbody>{body}</tbody></table></div>'
            f"{SCRIPT}")
