"""Rendering a :class:`~simla_bench.report.leaderboard.Leaderboard`: a rich
table for the terminal, and Markdown, CSV, JSON or LaTeX text for files.

Cell text: ``mean ± std`` (``± std`` only with more than one seed), then
against the baseline ``(+delta)`` with ``*`` where the paired bootstrap says
p < alpha.  The best value of each column is bold.

An ``n/a`` cell (the row's model lacks a capability the task needs) reads
``n/a`` in every format, never a number: one line per such row names the
tasks and the missing capabilities (under the rich/Markdown table, a LaTeX
comment); CSV gives it ``status`` ``n/a`` and the ``missing`` capabilities,
JSON ``{"status": "n/a", "model", "missing", "hint"}``.

Sensitivity (:mod:`simla_bench.report.sensitivity`): a column whose best row
does not beat the ``none`` control beyond noise gets ``†`` on its header and
one footnote line under the table (rich caption, Markdown, a LaTeX row under
the rule); CSV and JSON carry the figures as fields; without a ``none`` row
the table says so in one line.  With ``detail`` the rich and Markdown tables
are followed by the per-column sensitivity table (:func:`sensitivity_rows`).
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from simla_bench.report.leaderboard import Column, Leaderboard, RowInfo, Stat
from simla_bench.report.sensitivity import MARK, p_text

FORMATS = ("markdown", "csv", "json", "latex")


def cell_text(stat: Stat | None, pm: str = "±") -> str:
    if stat is None:
        return "–"
    text = f"{stat.mean:.2f}" + (f" {pm} {stat.std:.2f}" if stat.n > 1 else "")
    if stat.delta is not None:
        text += f" ({stat.delta:+.2f}{'*' if stat.significant else ''})"
    return text


# ------------------------------------------------------------ n/a cells (the model lacks what the task needs)
NA = "n/a"


def cell_or_na(board: Leaderboard, row: RowInfo, col: Column, pm: str = "±") -> str:
    """``n/a`` for a cell the row's model cannot run, else :func:`cell_text`."""
    return NA if board.na(row, col) is not None else cell_text(board.stat(row, col), pm)


def na_lines(board: Leaderboard) -> list[str]:
    """One line per row with n/a cells: its tasks and the capabilities its model lacks."""
    by_row: dict[str, tuple[RowInfo, list[str], set[str], str]] = {}
    for row in board.rows:
        for col in board.columns:
            na = board.na(row, col)
            if na is None:
                continue
            _, tasks, missing, model = by_row.setdefault(row.row_key, (row, [], set(), na.get("model", "")))
            if col.task not in tasks:
                tasks.append(col.task)
            missing.update(na.get("missing", ()))
    return [f"{NA}: {row.label}{'' if model in ('', row.label) else f' ({model})'} does not run {', '.join(tasks)}: "
            f"the model lacks {', '.join(sorted(missing))}; left out of every mean and comparison"
            for row, tasks, missing, model in by_row.values()]


def _na_csv(board: Leaderboard) -> list[tuple[RowInfo, Column, dict]]:
    return [(row, col, na) for row in board.rows for col in board.columns if (na := board.na(row, col)) is not None]


def legend(board: Leaderboard) -> str:
    seeds = len(board.seeds)
    parts = [f"mean ± std over seeds ({seeds} seed{'s' if seeds != 1 else ''}: {', '.join(map(str, board.seeds))})",
             "bold = best per column"]
    if board.baseline is not None:
        parts.append(f"(delta) vs baseline '{board.baseline.label}'; * = paired bootstrap p < {board.alpha:g} "
                     f"({board.n_boot} resamples over test examples)")
    return "; ".join(parts)


def _header(col: Column, board: Leaderboard | None = None) -> str:
    arrow = "↑" if col.direction == "higher" else "↓"
    return f"{col.title} {arrow}" + (f" {MARK}" if _marked(board, col) else "")


# ------------------------------------------------------------ sensitivity (controls, marks, MDE)
def _marked(board: Leaderboard | None, col: Column) -> bool:
    return bool(board is not None and board.sensitivity is not None and board.sensitivity.marked(col))


def sensitivity_lines(board: Leaderboard) -> list[str]:
    """The lines under the table: one per marked column, or the "no controls" line."""
    return board.sensitivity.lines() if board.sensitivity is not None else []


def _num(value: float | None, fmt: str = ".2f") -> str:
    return "–" if value is None else format(value, fmt)


def _vs(cmp) -> str:
    """A control's mean, and the best row's difference from it with its p-value."""
    if cmp is None:
        return "–"
    p = "" if cmp.p_value is None else f", {p_text(cmp.p_value)}"
    return f"{cmp.mean:.2f} ({cmp.diff:+.2f}{p})"


SENSITIVITY_HEAD = ["column", "best row", "best", "none (best − none, p)", "shuffled (best − shuffled, p)", "MDE",
                    "seeds", "seed std", "separates"]


def sensitivity_rows(board: Leaderboard) -> list[list[str]]:
    """The ``--detail`` table: per task, the best row against the controls and the MDE."""
    if board.sensitivity is None or not board.sensitivity.has_controls:
        return []
    out = []
    for s in board.sensitivity.columns.values():
        none = s.none
        out.append([f"{s.task} {s.metric}", s.best_row, f"{s.best:.2f}", _vs(none), _vs(s.shuffled), _num(s.mde),
                    str(s.n_seeds), f"{s.seed_std:.2f}" if s.seed_std_rows else "unknown (1 seed)",
                    "–" if s.separates is None else ("yes" if s.separates else f"no {MARK}")])
    return out


def _markdown_sensitivity(board: Leaderboard) -> str:
    rows = sensitivity_rows(board)
    if not board.detail or not rows:
        return ""
    lines = ["| " + " | ".join(SENSITIVITY_HEAD) + " |",
             "|" + "|".join(["---", "---"] + ["---:"] * (len(SENSITIVITY_HEAD) - 2)) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\ncolumn sensitivity (best non-control row vs the controls; MDE at 80% power, two-sided 5%):\n\n" + \
        "\n".join(lines) + "\n"


def rich_sensitivity(board: Leaderboard):
    """The ``--detail`` sensitivity table for the terminal (None when there is nothing to show)."""
    from rich.markup import escape
    from rich.table import Table

    rows = sensitivity_rows(board)
    if not board.detail or not rows:
        return None
    table = Table(title="column sensitivity", caption="best non-control row vs the controls; MDE = minimum "
                  "detectable effect at 80% power, two-sided 5% (docs/results.md)")
    for i, head in enumerate(SENSITIVITY_HEAD):
        table.add_column(head, justify="left" if i < 2 else "right")
    for r in rows:
        table.add_row(*[escape(x) for x in r])
    return table


def to_markdown(board: Leaderboard) -> str:
    head = ["objectives"] + [_header(c, board) for c in board.columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * len(board.columns)) + "|"]
    for row in board.rows:
        cells = [row.label + (" (baseline)" if board.baseline and row.row_key == board.baseline.row_key else "")]
        for col in board.columns:
            stat = board.stat(row, col)
            text = cell_or_na(board, row, col)
            cells.append(f"**{text}**" if stat is not None and stat.best else text)
        lines.append("| " + " | ".join(cells) + " |")
    notes = "".join(line + "\n" for line in [*na_lines(board), *sensitivity_lines(board)])
    return "\n".join(lines) + "\n\n" + legend(board) + "\n" + notes + _markdown_sensitivity(board)


def to_rich(board: Leaderboard, title: str = "simla-bench leaderboard"):
    from rich.markup import escape
    from rich.table import Table

    # labels, the title (a run path) and the legend are shown verbatim, not read as rich markup
    table = Table(title=escape(title),
                  caption=escape("\n".join([legend(board), *na_lines(board), *sensitivity_lines(board)])))
    table.add_column("objectives", style="bold cyan")
    for col in board.columns:
        table.add_column(escape(_header(col, board)), justify="right")
    for row in board.rows:
        cells = [escape(row.label) + (" (baseline)" if board.baseline and row.row_key == board.baseline.row_key else "")]
        for col in board.columns:
            stat = board.stat(row, col)
            text = cell_or_na(board, row, col)
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
                "best", "delta", "p_value", "significant", *_CSV_SENSITIVITY, "status", "missing"])
    for row, col, s in _long_rows(board):
        w.writerow([row.label, ",".join(row.objectives), f"{row.data_fraction:g}", col.task, col.metric, int(col.primary),
                    col.direction, f"{s.mean:.6g}", f"{s.std:.6g}", s.n, int(s.best),
                    "" if s.delta is None else f"{s.delta:.6g}", "" if s.p_value is None else f"{s.p_value:.6g}",
                    int(s.significant), *_csv_sensitivity(board, row, col), "ok", ""])
    for row, col, na in _na_csv(board):  # n/a cells: no number at all (status n/a, the missing capabilities)
        w.writerow([row.label, ",".join(row.objectives), f"{row.data_fraction:g}", col.task, col.metric, int(col.primary),
                    col.direction, "", "", 0, 0, "", "", 0, *_csv_sensitivity(board, row, col), NA,
                    " ".join(na.get("missing", ()))])
    return buf.getvalue()


#: per row its control kind; per primary column whether it separates from ``none`` (empty: no
#: controls) and its MDE (the same on every row of the column)
_CSV_SENSITIVITY = ["control", "column_separates", "column_mde"]


def _csv_sensitivity(board: Leaderboard, row: RowInfo, col: Column) -> list[str]:
    sens = board.sensitivity.columns.get(col.task) if board.sensitivity is not None and col.primary else None
    separates = "" if sens is None or sens.separates is None else str(int(sens.separates))
    return [row.control or "", separates, "" if sens is None or sens.mde is None else f"{sens.mde:.6g}"]


def to_json_data(board: Leaderboard) -> list[dict[str, Any]]:
    out = []
    for row in board.rows:
        tasks: dict[str, dict[str, Any]] = {}
        for col in board.columns:
            s = board.stat(row, col)
            na = board.na(row, col)
            if na is not None:
                tasks.setdefault(col.task, {})[col.metric] = {"status": NA, "primary": col.primary, **na}
            if s is None:
                continue
            entry: dict[str, Any] = {"mean": s.mean, "std": s.std, "n": s.n, "values": s.values, "best": s.best,
                                     "primary": col.primary, "direction": col.direction}
            if s.delta is not None:
                entry.update(delta=s.delta, p_value=s.p_value, significant=s.significant)
            tasks.setdefault(col.task, {})[col.metric] = entry
        if board.sensitivity is not None:
            for task, entries in tasks.items():
                entries["sensitivity"] = board.sensitivity.task_json(task)
        out.append({"row": row.label, "row_key": row.row_key, "objectives": list(row.objectives),
                    "data_fraction": row.data_fraction, "control": row.control,
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
                             + (r"$^\dagger$" if _marked(board, c) else "") for c in board.columns]
    lines = [r"\begin{tabular}{" + cols + "}", r"\toprule", " & ".join(head) + r" \\", r"\midrule"]
    for row in board.rows:
        cells = [latex_escape(row.label)]
        for col in board.columns:
            s = board.stat(row, col)
            text = cell_or_na(board, row, col, pm=r"$\pm$").replace("–", "--")  # numbers only: nothing to escape
            cells.append(r"\textbf{" + text + "}" if s is not None and s.best else text)
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", *_latex_notes(board, len(board.columns) + 1), r"\end{tabular}", "% " + legend(board),
              *("% " + line for line in na_lines(board))]
    return "\n".join(lines) + "\n"


def _latex_notes(board: Leaderboard, ncols: int) -> list[str]:
    """The sensitivity lines as full-width footnote rows under the rule."""
    return [r"\multicolumn{" + str(ncols) + r"}{l}{\footnotesize "
            + latex_escape(line).replace("<", "$<$").replace(MARK, r"$^\dagger$").replace("–", "--").replace("—", "---") + r"} \\"
            for line in sensitivity_lines(board)]


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
