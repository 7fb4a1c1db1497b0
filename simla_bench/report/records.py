"""Loading cell records from one or more run directories.

Records with the same cell key are the same result: they are kept once (the
first directory given wins).  Corrupt records are reported and skipped, never
used.  Records are ordered by each directory's manifest (row order as the latest
run's config lists them, then rows only earlier runs had; then seed, then
task order), so tables list rows in the order of the experiment (e.g. SIMLA
Table 1's cumulative sequence), and each row under its latest label.  When the records of
one row came from different data or code (:mod:`simla_bench.report.provenance`),
a warning says so.

Records are read as :class:`~simla_bench.runner.record.CellRecord` (validated);
:class:`LoadedRecords` hands the tables their JSON form (plain dicts).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from simla_bench.errors import UserError
from simla_bench.report.provenance import mixed_provenance
from simla_bench.runner.record import CellRecord
from simla_bench.runner.store import RunStore


@dataclass
class LoadedRecords:
    records: list[dict]
    warnings: list[str] = field(default_factory=list)
    duplicates: int = 0


def order_records(records: list[CellRecord], row_order: list[str] | None = None,
                  task_order: list[str] | None = None) -> list[CellRecord]:
    rows = list(row_order or [])
    tasks = list(task_order or [])
    for r in records:
        if r.row_key not in rows:
            rows.append(r.row_key)
        if r.task not in tasks:
            tasks.append(r.task)
    return sorted(records, key=lambda r: (rows.index(r.row_key), r.seed, tasks.index(r.task)))


def load_run_dirs(paths: Iterable[str | Path]) -> LoadedRecords:
    paths = [Path(p) for p in paths]
    if not paths:
        raise UserError("no run directory given", hint="pass one or more RUN_DIRs, e.g. runs/default")
    seen: dict[str, CellRecord] = {}
    warnings: list[str] = []
    row_order: list[str] = []
    row_labels: dict[str, str] = {}  # row key -> its label in the latest run that ran it
    row_controls: dict[str, str] = {}  # row key -> "none"/"shuffled" where a run made it a control row
    task_order: list[str] = []
    duplicates = 0
    finished: dict[str, int] = {}  # record key -> when its file was written
    for path in paths:
        if not path.is_dir():
            raise UserError(f"run directory '{path}' does not exist", hint="pass the --out directory of a `simla-bench run`")
        store = RunStore(path)
        store.check_compatible()
        manifest = store.read_manifest() or {}
        for row in manifest.get("rows", []):
            if row.get("row_key") and row["row_key"] not in row_order:
                row_order.append(row["row_key"])
                if row.get("row"):
                    row_labels[row["row_key"]] = row["row"]
                if row.get("control"):
                    row_controls[row["row_key"]] = row["control"]
        for cell in manifest.get("cells", []):
            if cell.get("task") and cell["task"] not in task_order:
                task_order.append(cell["task"])
        for file, read in store.iter_records():
            if read.problem:
                warnings.append(f"skipping corrupt record {file}: {read.problem} (rerun `simla-bench run` to recompute it)")
                continue
            record = read.record
            key = record.key
            if key in seen:
                duplicates += 1
                continue
            if record.row_key in row_labels:  # a renamed row shows its current name
                record.row = row_labels[record.row_key]
            if record.row_key in row_controls:  # a reused cell of a control row is a control's
                record.control = row_controls[record.row_key]
            seen[key] = record
            try:  # written atomically: the file's time is when the cell finished
                finished[key] = Path(file).stat().st_mtime_ns
            except OSError:
                finished[key] = 0
    if not seen:
        raise UserError(f"no finished cells in {', '.join(map(str, paths))}", hint="run `simla-bench run --out DIR` first")
    kept, superseded = newest_per_cell(list(seen.values()), finished)
    if superseded:
        warnings.append(f"{superseded} older record(s) of the same row, seed and task (made before a change to a "
                        "task's code, options or data) are not shown; the newest of each is")
    records = [r.to_json() for r in order_records(kept, row_order, task_order)]
    warnings += mixed_provenance(records)
    return LoadedRecords(records, warnings, duplicates)


def newest_per_cell(records: list[CellRecord], finished: dict[str, int] | None = None) -> tuple[list[CellRecord], int]:
    """One record per (row, seed, task): the newest (by ``created``, then by
    ``finished[key]``, the time its file was written) of those whose keys differ
    only on the task side (same pretraining, another task version, options or
    data); returns them and how many were left out."""
    finished = finished or {}

    def when(r: CellRecord) -> tuple[str, int]:
        return r.created, finished.get(r.key, 0)

    newest: dict[tuple, CellRecord] = {}
    for r in records:
        cell = (r.row_key, r.seed, r.task)
        if cell not in newest or when(r) >= when(newest[cell]):
            newest[cell] = r
    return list(newest.values()), len(records) - len(newest)
