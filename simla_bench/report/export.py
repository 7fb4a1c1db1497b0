"""Rendering a :class:`~simla_bench.report.leaderboard.Leaderboard`: a rich
table for the terminal, and Markdown, CSV, JSON or LaTeX text for files.

Cell text: ``mean ± std`` (``± std`` only with more than one seed), then
against the baseline ``(+delta)`` with ``*`` where the paired bootstrap says
p < alpha.  The best value of each column is bold.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from simla_bench.report.leaderboard import Column, Leaderboard, RowInfo, Stat

FORMATS = ("markdown", "csv", "json", "latex")


def cell_text(stat: Stat | None, pm: str = "±") -> str:
    if stat is None:
        return "–"
    text = f"{stat.mean:.2f}" + (f" {pm} {stat.std:.2f}" if stat.n > 1 else "")
    if stat.delta is not None:
        text += f" ({stat.delta:+.2f}{'*' if stat.significant else ''})"
    return text


def legend(board: Leaderboard) -> str:
    seeds = len(board.seeds)
    parts = [f"mean ± std over seeds ({seeds} seed{'s' if seeds != 1 else ''}: {', '.join(map(str, board.seeds))})",
             "bold = best per column"]
    if board.baseline is not None:
        parts.append(f"(delta) vs baseline '{board.baseline.label}'; * = paired bootstrap p < {board.alpha:g} "
                     f"({board.n_boot} resamples over test examples)")
    return "; ".join(parts)


def _header(col: Column) -> str:
    arrow = "↑" if col.direction == "higher" else "↓"
    return f"{col.title} {arrow}"


def to_markdown(board: Leaderboard) -> str:
    head = ["objectives"] + [_header(c) for c in board.columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * len(board.columns)) + "|"]
    for row in board.rows:
        cells = [row.label + (" (baseline)" if board.baseline and row.row_key == board.baseline.row_key else "")]
        for col in board.columns:
            stat = board.stat(row, col)
            text = cell_text(stat)
            cells.append(f"**{text}**" if stat is not None and stat.best else text)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\n" + legend(board) + "\n"


def to_rich(board: Leaderboard, title: str = "simla-bench leaderboard"):
    from rich.markup import escape
    from rich.table import Table

    # labels, the title (a run path) and the legend are shown verbatim, not read as rich markup
    table = Table(title=escape(title), caption=escape(legend(board)))
    table.add_column("objectives", style="bold cyan")
    for col in board.columns:
        table.add_column(_header(col), justify="right")
    for row in board.rows:
        cells = [escape(row.label) + (" (baseline)" if board.baseline and row.row_key == board.baseline.row_key else "")]
        for col in board.columns:
            stat = board.stat(row, col)
            text = cell_text(stat)
            cells.append(f"[bold green]{text}[/]" if stat is not None and stat.best else text)
        table.add_row(*cells)
    return table


def _long_rows(board: Leaderboard):
    for row in board.rows:
        for col in board.columns:
            stat = board.stat(row, col)
            if stat is not None:
                yield row, col, stat


def to_csv(board: Leaderboard) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["row", "objectives", "data_fraction", "task", "metric", "primary", "direction", "mean", "std", "n",
                "best", "delta", "p_value", "significant"])
    for row, col, s in _long_rows(board):
        w.writerow([row.label, ",".join(row.objectives), f"{row.data_fraction:g}", col.task, col.metric, int(col.primary),
                    col.direction, f"{s.mean:.6g}", f"{s.std:.6g}", s.n, int(s.best),
                    "" if s.delta is None else f"{s.delta:.6g}", "" if s.p_value is None else f"{s.p_value:.6g}",
                    int(s.significant)])
    return buf.getvalue()


def to_json_data(board: Leaderboard) -> list[dict[str, Any]]:
    out = []
    for row in board.rows:
        tasks: dict[str, dict[str, Any]] = {}
        for col in board.columns:
            s = board.stat(row, col)
            if s is None:
                continue
            entry: dict[str, Any] = {"mean": s.mean, "std": s.std, "n": s.n, "values": s.values, "best": s.best,
                                     "primary": col.primary, "direction": col.direction}
            if s.delta is not None:
                entry.update(delta=s.delta, p_value=s.p_value, significant=s.significant)
            tasks.setdefault(col.task, {})[col.metric] = entry
        out.append({"row": row.label, "row_key": row.row_key, "objectives": list(row.objectives),
                    "data_fraction": row.data_fraction,
                    "baseline": bool(board.baseline and row.row_key == board.baseline.row_key), "tasks": tasks})
    return out


def to_json(board: Leaderboard) -> str:
    return json.dumps(to_json_data(board), indent=2) + "\n"


_LATEX_ESCAPES = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
                  "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}"}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_ESCAPES.get(ch, ch) for ch in text)


def to_latex(board: Leaderboard) -> str:
    cols = "l" + "r" * len(board.columns)
    head = ["Objectives"] + [latex_escape(c.title) + (r" $\uparrow$" if c.direction == "higher" else r" $\downarrow$")
                             for c in board.columns]
    lines = [r"\begin{tabular}{" + cols + "}", r"\toprule", " & ".join(head) + r" \\", r"\midrule"]
    for row in board.rows:
        cells = [latex_escape(row.label)]
        for col in board.columns:
            s = board.stat(row, col)
            text = cell_text(s, pm=r"$\pm$").replace("–", "--")  # numbers only: nothing to escape
            cells.append(r"\textbf{" + text + "}" if s is not None and s.best else text)
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", "% " + legend(board)]
    return "\n".join(lines) + "\n"


def render(board: Leaderboard, fmt: str) -> str:
    if fmt == "markdown":
        return to_markdown(board)
    if fmt == "csv":
        return to_csv(board)
    if fmt == "json":
        return to_json(board)
    if fmt == "latex":
        return to_latex(board)
    raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")


__all__ = ["FORMATS", "render", "to_rich", "cell_text", "legend", "RowInfo"]
