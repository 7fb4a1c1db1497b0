"""The HTML report (``report --format html``) and the HTML form of ``compare``:
one self-contained page each, readable offline.

Self-contained: inline CSS, no script, no link or reference to the network;
the leaderboard plot is an embedded PNG and each example's images are small
JPEG thumbnails (:mod:`simla_bench.report.thumbnails`), all as ``data:`` URIs.
Every piece of text (row labels, questions, answers, file names, notes) goes
through :func:`html.escape`.

The report holds, in order: the leaderboard (the same cells, bold best,
``(+delta)``/``*`` against ``--baseline``, ``†`` headers, the n/a and
sensitivity lines under it, and with ``--detail`` the sensitivity table), the
plot, and per task the :mod:`~simla_bench.report.compare` table of every row
against the *reference row*: the ``--baseline`` row when one is given, else the
``none (control)`` row when the run has one (what pretraining changed, example
by example), else the first row.  A cell whose examples cannot be read (no
saved predictions, a task without a per-example view, an n/a cell) is one
line in its place, not an error.
"""

from __future__ import annotations

import html
from typing import Any, Callable, Mapping, Sequence

from simla_bench.errors import UserError
from simla_bench.interfaces import Example
from simla_bench.report.compare import Comparison, compare_rows, shown, side_text
from simla_bench.report.export import (
    SENSITIVITY_HEAD, _header, cell_or_na, legend, na_lines, sensitivity_lines, sensitivity_rows)
from simla_bench.report.leaderboard import Leaderboard, RowInfo
from simla_bench.report.thumbnails import Thumbnails, plot_uri

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:1.5em auto;max-width:72em;
color:#1b1f24;padding:0 1em;line-height:1.4}
h1{font-size:1.5em}h2{font-size:1.25em;margin-top:2em;border-bottom:1px solid #d0d7de}h3{font-size:1.05em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
th,td{border:1px solid #d0d7de;padding:.25em .5em;vertical-align:top}
th{background:#f3f5f7;text-align:left}td.num{text-align:right;white-space:nowrap}
tr.baseline td{background:#fbf7e8}.best{font-weight:700}
.win{color:#116329;font-weight:600}.loss{color:#a40e26;font-weight:600}
.notes{font-size:.85em;color:#444}.notes p{margin:.2em 0}
img.thumb{border:1px solid #d0d7de;margin:1px;max-width:96px;max-height:96px}
img.plot{max-width:100%;border:1px solid #d0d7de}
.missing{color:#888;font-size:.8em}
"""

#: changed examples shown per comparison in the report
REPORT_LIMIT = 10


def esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def page(title: str, body: str) -> str:
    """A whole document: the title, the inline CSS and ``body`` (already HTML)."""
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{esc(title)}</title>\n'
            f'<style>{CSS}</style>\n</head>\n<body>\n<h1>{esc(title)}</h1>\n{body}\n</body>\n</html>\n')


def table(head: Sequence[str], rows: Sequence[Sequence[str]], *, cls: str = "", row_classes: Sequence[str] = ()) -> str:
    """A table from already-escaped cells (``head`` is escaped here)."""
    out = [f'<table{f" class={chr(34)}{cls}{chr(34)}" if cls else ""}>', "<thead><tr>"]
    out += [f"<th>{esc(h)}</th>" for h in head] + ["</tr></thead>", "<tbody>"]
    for i, cells in enumerate(rows):
        rc = row_classes[i] if i < len(row_classes) and row_classes[i] else ""
        out.append(f'<tr{f" class={chr(34)}{rc}{chr(34)}" if rc else ""}>' + "".join(cells) + "</tr>")
    out += ["</tbody>", "</table>"]
    return "\n".join(out)


def notes(lines: Sequence[str]) -> str:
    return '<div class="notes">' + "".join(f"<p>{esc(line)}</p>" for line in lines) + "</div>" if lines else ""


# ------------------------------------------------------------ the leaderboard
def leaderboard_html(board: Leaderboard) -> str:
    """The leaderboard table with its marks, and the lines under it."""
    rows, classes = [], []
    for row in board.rows:
        is_base = board.baseline is not None and row.row_key == board.baseline.row_key
        cells = [f"<td>{esc(row.label)}{' (baseline)' if is_base else ''}</td>"]
        for col in board.columns:
            stat = board.stat(row, col)
            best = stat is not None and stat.best and board.na(row, col) is None
            cells.append(f'<td class="num{" best" if best else ""}">{esc(cell_or_na(board, row, col))}</td>')
        rows.append(cells)
        classes.append("baseline" if is_base else "")
    head = ["objectives"] + [_header(c, board) for c in board.columns]
    out = [table(head, rows, cls="leaderboard", row_classes=classes),
           notes([legend(board), *na_lines(board), *sensitivity_lines(board)])]
    sens = sensitivity_rows(board)
    if board.detail and sens:
        out += ["<h3>column sensitivity</h3>",
                table(SENSITIVITY_HEAD, [[f"<td>{esc(x)}</td>" for x in r] for r in sens], cls="sensitivity"),
                notes(["best non-control row vs the controls; MDE = minimum detectable effect at 80% power, "
                       "two-sided 5% (docs/results.md)"])]
    return "\n".join(out)


# ------------------------------------------------------------ comparisons
def _images(ex_a: Example, ex_b: Example, thumbs: Thumbnails) -> str:
    out = []
    for path in ex_a.images or ex_b.images:
        uri = thumbs.uri(path)
        out.append(f'<img class="thumb" src="{uri}" alt="{esc(path)}" title="{esc(path)}">' if uri
                   else f'<span class="missing">{esc(path)} (not found)</span>')
    return " ".join(out)


def comparison_html(cmp: Comparison, thumbs: Thumbnails, *, limit: int = REPORT_LIMIT) -> str:
    """One comparison: its counts (per seed when several) and its largest changes with thumbnails."""
    several = len(cmp.seeds) > 1
    lines = cmp.lines()
    changes = cmp.changes if limit <= 0 else cmp.changes[:limit]
    if len(changes) < len(cmp.changes):
        lines.append(f"the {len(changes)} largest of {len(cmp.changes)} changes")
    if not changes:
        return notes(lines + ["no example differs"])
    head = (["seed"] if several else []) + ["image", "id", "text", cmp.row_a, cmp.row_b, "truth", "b vs a"]
    rows = []
    for c in changes:
        truth = c.a.truth if c.a.truth is not None else c.b.truth
        cells = ([f'<td class="num">{c.seed}</td>'] if several else []) + [
            f"<td>{_images(c.a, c.b, thumbs)}</td>", f"<td>{esc(c.id)}</td>", f"<td>{esc(c.a.text or c.b.text)}</td>",
            f"<td>{esc(side_text(c.a))}</td>", f"<td>{esc(side_text(c.b))}</td>", f"<td>{esc(shown(truth))}</td>",
            f'<td class="{"win" if c.win else "loss"}">{"win" if c.win else "loss"}</td>']
        rows.append(cells)
    return notes(lines) + "\n" + table(head, rows, cls="compare")


def comparison_page(cmp: Comparison, *, limit: int = 30, thumbs: Thumbnails | None = None) -> str:
    """``compare --format html``: one comparison as a page."""
    title = f"{cmp.task}: {cmp.row_b} vs {cmp.row_a}"
    return page(title, comparison_html(cmp, thumbs or Thumbnails(), limit=limit))


def reference_row(board: Leaderboard) -> RowInfo:
    """The row every other row is compared with: ``--baseline``, else ``none (control)``, else the first."""
    if board.baseline is not None:
        return board.baseline
    return next((r for r in board.rows if r.control == "none"), board.rows[0])


def report_page(board: Leaderboard, records: Sequence[Mapping[str, Any]],
                load: Callable[[Mapping[str, Any]], list[Example]] | None, *, title: str = "simla-bench report",
                plot: bool = True, limit: int = REPORT_LIMIT) -> str:
    """``report --format html``: the leaderboard, the plot and the per-task comparisons
    (``load(record)``: a cell's examples; None: no comparisons)."""
    cache: dict[str, list[Example]] = {}

    def cached(record: Mapping[str, Any]) -> list[Example]:
        if record["key"] not in cache:
            cache[record["key"]] = load(record)
        return cache[record["key"]]

    thumbs = Thumbnails()
    parts = ["<h2>Leaderboard</h2>", leaderboard_html(board)]
    if plot and board.rows:
        parts += ["<h2>Plot</h2>", f'<img class="plot" src="{plot_uri(board)}" alt="leaderboard plot">']
    if load is not None and len(board.rows) > 1:
        ref = reference_row(board)
        parts.append("<h2>Examples that changed</h2>")
        parts.append(notes([f"each row against '{ref.label}' (reference: --baseline, else the none (control) row, "
                            "else the first row); a win is an example the row does better than the reference"]))
        for task in dict.fromkeys(c.task for c in board.columns):
            parts.append(f"<h3>{esc(task)}</h3>")
            for row in board.rows:
                if row.row_key == ref.row_key:
                    continue
                parts.append(f"<h4>{esc(row.label)} vs {esc(ref.label)}</h4>")
                try:
                    cmp = compare_rows(records, [ref.label, row.label], task, cached)
                except UserError as exc:
                    parts.append(notes([exc.one_line()]))
                    continue
                parts.append(comparison_html(cmp, thumbs, limit=limit))
    return page(title, "\n".join(parts))
