"""What the report notebook shows and how the workflow runs it: figures and tables as HTML that
the export keeps as is, an LTHError as one line, then papermill and a self-contained HTML page
(`python -m lth.report`, the workflow's report rule)."""

from __future__ import annotations

import base64
import html
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lth.core.errors import LTHError
from lth.report.interactive import table_html
from lth.report.figures import save_figure
from lth.report.panels import page_names

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    import pandas as pd
    from matplotlib.figure import Figure


def figure_html(png: bytes, name: str, caption: str) -> str:
    """An embedded figure the HTML export keeps as is: the image travels inside the report."""
    data = base64.b64encode(png).decode()
    return (f'<figure id="fig-{name}" class="lth-figure" style="margin: 1em 0">'
            f'<img src="data:image/png;base64,{data}" alt="{html.escape(caption)}" style="max-width: 100%">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def download_html(path: str | Path, name: str, what: str) -> str:
    """A link that downloads `path` from inside the page (a data: URI): the numbers travel with the
    report wherever it is opened or sent, which a relative link to the results folder would not."""
    data = Path(path).read_bytes()
    rows = max(data.count(b"\n") - 1, 0)
    return (f'<p id="download-{name}">Data: <a download="{html.escape(name)}" '
            f'href="data:text/csv;base64,{base64.b64encode(data).decode()}">{html.escape(name)}</a> '
            f"({html.escape(what)}, {rows} rows, embedded in this page; "
            f"from <code>{html.escape(str(path))}</code>)</p>")


def code_html(text: str, name: str) -> str:
    """A block of text shown as written (monospace, indentation kept), which a Markdown code block in
    the exported page is not."""
    return (f'<pre id="code-{name}" class="lth-code" style="font-family: monospace; font-size: 0.85em; '
            f'background: #f6f6f6; padding: 0.6em; overflow-x: auto">{html.escape(text)}</pre>')


def show_figure(fig: Figure, name: str, caption: str, outdir: str | Path | None = None, experiment: str = "") -> None:
    from IPython.display import HTML, display

    display(HTML(figure_html(save_figure(fig, name, outdir, experiment), name, caption)))


def show_figures(figs: Iterable[Figure], name: str, caption: Callable[[int, int], str],
                 outdir: str | Path | None = None, experiment: str = "") -> int:
    """A figure of several pages (lth.report.panels): page i as `<name>-<i>` (the first as `name`),
    each with `caption(i, pages)`. Returns the number of pages."""
    figs = list(figs)
    for i, (fig, page) in enumerate(zip(figs, page_names(name, len(figs)))):
        show_figure(fig, page, caption(i + 1, len(figs)), outdir, experiment)
    return len(figs)


def show_download(path: str | Path, name: str, what: str) -> None:
    from IPython.display import HTML, display

    display(HTML(download_html(path, name, what)))


def show_code(text: str, name: str) -> None:
    from IPython.display import HTML, display

    display(HTML(code_html(text, name)))


def show_table(table: pd.DataFrame, name: str) -> None:
    from IPython.display import HTML, display

    display(HTML(table_html(table, name)))


def show_markdown(text: str) -> None:
    from IPython.display import Markdown, display

    if text:  # an empty section shows nothing rather than an empty block
        display(Markdown(text))


def plain_errors() -> None:
    """In a notebook, show an LTHError as its one line (which file, what is wrong) instead of a traceback."""
    from IPython import get_ipython

    def one_line(shell, etype, value, tb, tb_offset=None):
        stb = [f"{etype.__name__}: {value}"]
        shell._showtraceback(etype, value, stb)  # what showtraceback() does with a formatted traceback
        return stb

    shell = get_ipython()
    if shell is not None:
        shell.set_custom_exc((LTHError,), one_line)


# The lab template without what it fetches from the network (require.js, MathJax, Mermaid): the
# report opens offline with nothing to load and no script to fail.
TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
"""


def export_html(notebook: str | Path, out: str | Path, title: str = "") -> Path:
    """A self-contained HTML page of an executed notebook, without the code cells."""
    import jinja2
    import nbformat
    from nbconvert import HTMLExporter

    from lth.core.files import atomic_path

    nb = nbformat.read(str(notebook), as_version=4)
    if title:
        nb.metadata["title"] = title
    exporter = HTMLExporter(extra_loaders=[jinja2.DictLoader({"lth_report.html.j2": TEMPLATE})],
                            template_file="lth_report.html.j2", exclude_input=True, exclude_input_prompt=True,
                            exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(nb)
    with atomic_path(out) as tmp:
        tmp.write_text(body, encoding="utf-8")
        tmp.chmod(0o644)  # a page to share, not the private temporary file's 0600
    return Path(out)


def run(notebook: str, executed: str, html_out: str, parameters: dict[str, Any]) -> None:
    """Execute the notebook with papermill in this interpreter's environment, then export it."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    for out in (executed, html_out):
        Path(out).parent.mkdir(parents=True, exist_ok=True)
    try:
        papermill.execute_notebook(notebook, executed, parameters=parameters, kernel_name="python3",
                                   progress_bar=False)
    except PapermillExecutionError as exc:
        raise LTHError(f"{notebook} failed on {parameters.get('results')} ({exc.ename}: {exc.evalue}); "
                       f"the executed notebook is {executed}") from None
    export_html(executed, html_out, title=f"lth report: {parameters.get('experiment') or Path(html_out).stem}")


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m lth.report", description=run.__doc__)
    p.add_argument("--notebook", required=True)
    p.add_argument("--executed", required=True, help="where the executed notebook is kept (.ipynb)")
    p.add_argument("--html", required=True)
    p.add_argument("--results", required=True)
    p.add_argument("--experiment", default="")
    p.add_argument("--figures-dir", default="")
    p.add_argument("--config-json", default="")
    args = p.parse_args(argv)
    try:
        run(args.notebook, args.executed, args.html,
            {"results": args.results, "experiment": args.experiment, "figures_dir": args.figures_dir,
             "config_json": args.config_json})
    except LTHError as exc:
        print(f"lth report: error: {exc}", file=sys.stderr)
        return 2
    print(args.html)
    return 0
