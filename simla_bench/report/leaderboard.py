"""The leaderboard model: rows = objective sets (x data fraction), columns =
each task's primary metric (or every metric with ``detail``), each cell the
mean ± std over seeds, the best per column, and against a baseline row the
delta and a paired-bootstrap significance mark, and per task whether the
column can tell rows apart at all (:mod:`simla_bench.report.sensitivity`:
the best row against the ``none``/``shuffled`` control rows, and the minimum
detectable effect).

Rows come in the order of the records (the run's config order, see
:mod:`simla_bench.report.records`); ``sort`` (``report --sort TASK``) orders
them by one column instead, best first.

An ``n/a`` cell (an n/a record: the row's model lacks what the task needs)
holds no value: it is kept apart (:func:`not_applicable_cells`), so no mean,
best mark or comparison ever counts it.

Significance uses the stored per-example scores of the column's metric: for
the seeds both rows have, the scores are averaged over those seeds per
example, then :func:`~simla_bench.report.bootstrap.paired_bootstrap` compares
the two rows.  Columns without per-example scores get a delta but no mark.
"""

from __future__ import annotations

import difflib
import math
import statistics
from dataclasses import dataclass, field

from simla_bench.errors import UserError
from simla_bench.report.bootstrap import compare_rows, per_example_by_seed
from simla_bench.report.sensitivity import Sensitivity, assess


class UnknownBaselineError(UserError):
    """--baseline names no row of the leaderboard."""


@dataclass(frozen=True)
class RowInfo:
    row_key: str
    label: str
    objectives: tuple[str, ...]
    data_fraction: float
    control: str | None = None  # "none" / "shuffled" on a control row (``run --controls``)


@dataclass(frozen=True)
class Column:
    task: str
    metric: str
    direction: str  # "higher" | "lower"
    primary: bool

    @property
    def title(self) -> str:
        return f"{self.task} {self.metric}"

    @property
    def sign(self) -> float:
        """+1 when higher is better, -1 when lower is: ``sign * (a - b) > 0`` means a is better."""
        return 1.0 if self.direction == "higher" else -1.0


@dataclass
class Stat:
    mean: float
    std: float
    n: int
    values: list[float]
    best: bool = False
    delta: float | None = None
    p_value: float | None = None
    significant: bool = False


@dataclass
class Leaderboard:
    rows: list[RowInfo]
    columns: list[Column]
    cells: dict[tuple[str, Column], Stat]
    baseline: RowInfo | None = None
    n_boot: int = 0
    alpha: float = 0.05
    seeds: list[int] = field(default_factory=list)
    #: per task: can the column tell rows apart (best row vs the controls, MDE); :mod:`.sensitivity`
    sensitivity: Sensitivity | None = None
    #: built with ``detail`` (every metric; the renderers add the per-column sensitivity table)
    detail: bool = False
    #: ``(row_key, column) -> {model, missing, hint}`` of the n/a cells (:func:`not_applicable_cells`)
    not_applicable: dict[tuple[str, Column], dict] = field(default_factory=dict)

    def stat(self, row: RowInfo, col: Column) -> Stat | None:
        return self.cells.get((row.row_key, col))

    def na(self, row: RowInfo, col: Column) -> dict | None:
        """Why the cell is n/a (the row's model lacks what the task needs), else None."""
        return self.not_applicable.get((row.row_key, col))


def _direction(record: dict, metric: str) -> str:
    d = record.get("directions", {}).get(metric, "higher")
    return "lower" if d == "lower" else "higher"


def _rows(records: list[dict]) -> list[RowInfo]:
    rows: dict[str, RowInfo] = {}
    for r in records:
        if r["row_key"] not in rows:
            rows[r["row_key"]] = RowInfo(r["row_key"], r["row"], tuple(r["objectives"]),
                                         float(r.get("data_fraction", 1.0)), r.get("control"))
    labels = [r.label for r in rows.values()]
    out = []
    for row in rows.values():  # same label, different config: tell them apart
        if labels.count(row.label) > 1:
            row = RowInfo(row.row_key, f"{row.label} [{row.row_key[:6]}]", row.objectives, row.data_fraction,
                          row.control)
        out.append(row)
    return out


def _columns(records: list[dict], detail: bool) -> list[Column]:
    cols: dict[tuple[str, str], Column] = {}
    for r in records:
        metrics = [r["primary_metric"]] + (sorted(m for m in r["metrics"] if m != r["primary_metric"]) if detail else [])
        for m in metrics:
            cols.setdefault((r["task"], m), Column(r["task"], m, _direction(r, m), m == r["primary_metric"]))
    return list(cols.values())


def find_row(rows: list[RowInfo], name: str) -> RowInfo:
    """A row by label, or by objective set (``itc,itm`` matches ``itm,itc``)."""
    for row in rows:
        if row.label == name:
            return row
    wanted = frozenset(p.strip() for p in name.split(",") if p.strip())
    matches = [r for r in rows if frozenset(r.objectives) == wanted]
    if matches:
        return max(matches, key=lambda r: r.data_fraction)
    labels = [r.label for r in rows]
    close = difflib.get_close_matches(name, labels, n=3, cutoff=0.4)
    hint = f"did you mean {' or '.join(repr(c) for c in close)}?" if close else f"rows: {'; '.join(labels)}"
    raise UnknownBaselineError(f"--baseline '{name}' names no row of this leaderboard", hint=hint)


def _sort_rows(rows: list[RowInfo], columns: list[Column], cells: dict, sort: str) -> list[RowInfo]:
    """Rows by the mean of one column, best first (rows without it last):
    ``TASK`` (its primary metric) or ``TASK:METRIC``."""
    task, _, metric = sort.partition(":")
    matches = [c for c in columns if c.task == task and (c.metric == metric if metric else c.primary)]
    if not matches:
        names = sorted({c.task for c in columns} | {f"{c.task}:{c.metric}" for c in columns})
        raise UserError(f"--sort '{sort}' names no column of this leaderboard", hint=f"columns: {', '.join(names)}")
    col = matches[0]
    present = [r for r in rows if (r.row_key, col) in cells]
    return sorted(present, key=lambda r: -col.sign * cells[(r.row_key, col)].mean) + \
        [r for r in rows if (r.row_key, col) not in cells]


def build(records: list[dict], detail: bool = False, baseline: str | None = None, n_boot: int = 2000,
          boot_seed: int = 0, alpha: float = 0.05, sort: str | None = None) -> Leaderboard:
    """The leaderboard of ``records``, rows in record order (or by ``sort``, a column)."""
    rows = _rows(records)
    columns = _columns(records, detail)
    by: dict[tuple[str, str], list[dict]] = {}
    for r in records:
        by.setdefault((r["row_key"], r["task"]), []).append(r)
    cells: dict[tuple[str, Column], Stat] = {}
    for row in rows:
        for col in columns:
            recs = [r for r in by.get((row.row_key, col.task), []) if col.metric in r["metrics"]]
            if not recs:
                continue
            values = [float(r["metrics"][col.metric]) for r in sorted(recs, key=lambda r: r["seed"])]
            std = statistics.stdev(values) if len(values) > 1 else 0.0
            cells[(row.row_key, col)] = Stat(statistics.fmean(values), std, len(values), values)
    for col in columns:
        present = [cells[(r.row_key, col)] for r in rows if (r.row_key, col) in cells]
        if not present:
            continue
        pick = max if col.direction == "higher" else min
        best = pick(s.mean for s in present)
        for s in present:
            s.best = math.isclose(s.mean, best, rel_tol=0, abs_tol=1e-9)
    base = find_row(rows, baseline) if baseline else None
    if base is not None:
        for col in columns:
            b = cells.get((base.row_key, col))
            if b is None:
                continue
            b_ex = per_example_by_seed(by.get((base.row_key, col.task), []), col.metric)
            for row in rows:
                s = cells.get((row.row_key, col))
                if s is None or row.row_key == base.row_key:
                    continue
                s.delta = s.mean - b.mean
                r_ex = per_example_by_seed(by.get((row.row_key, col.task), []), col.metric)
                compared = compare_rows(r_ex, b_ex, n_boot=n_boot, seed=boot_seed)
                if compared is None:
                    continue
                s.p_value = compared.result.p_value
                s.significant = compared.result.significant(alpha)
    seeds = sorted({r["seed"] for r in records})
    sensitivity = assess(rows, [c for c in columns if c.primary], cells, by, n_boot=n_boot, boot_seed=boot_seed,
                         alpha=alpha)
    if sort:
        rows = _sort_rows(rows, columns, cells, sort)
    return Leaderboard(rows, columns, cells, base, n_boot if base else 0, alpha, seeds, sensitivity, detail,
                       not_applicable_cells(records, columns))


def not_applicable_cells(records: list[dict], columns: list[Column]) -> dict[tuple[str, Column], dict]:
    """The n/a cells: every column of the task of an n/a record (``not_applicable``) on its
    row.  They hold no value: :func:`build` computes no mean, best, delta or sensitivity
    from them, and the renderers show ``n/a``, never a number."""
    out: dict[tuple[str, Column], dict] = {}
    for r in records:
        if r.get("not_applicable"):
            for col in columns:
                if col.task == r["task"]:
                    out[(r["row_key"], col)] = dict(r["not_applicable"])
    return out
