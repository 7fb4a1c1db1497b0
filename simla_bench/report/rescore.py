"""``report --rescore``: every cell's metrics recomputed from its saved predictions
with its task's scorer, compared with the record, and re-scored under the other
versions of the task's score options (VQA's ``vqa_eval``, grounding's ``iou``).

A cell is re-scored through :meth:`~simla_bench.interfaces.Task.score_predictions`
(the built-in tasks call their :meth:`~simla_bench.interfaces.Task.score_files` on
each split's files); the metrics it returns must equal the record's exactly.
Cells that are n/a, have no predictions, or whose task cannot re-score are counted
as skipped, not as differences.  The other versions are the ``choices`` of each
score option the task records (``ScoreOption.record``) whose name is also a task
option: the cell's own value is the one that must match, the others are shown.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from simla_bench.errors import UserError
from simla_bench.report.examples import cell_label, open_cell


@dataclass
class CellRescore:
    """One cell re-scored: its label, the differing metrics and any other-version scores."""

    label: str
    key: str
    differences: list[tuple[str, float | None, float | None]] = field(default_factory=list)  # metric, recorded, now
    altered: str | None = None
    versions: list[tuple[str, str, str, float, float]] = field(default_factory=list)  # option, value, metric, own, other

    def line(self) -> str:
        """One line naming the cell and what differs."""
        if self.altered and self.altered.endswith("is missing"):
            return f"cell {self.label} ({self.key}): {self.altered}, not re-scored"
        shown = [f"{m} {now!r} (recorded {rec!r})" if now is not None and rec is not None
                 else f"{m} {'not re-scored' if now is None else 'not in the record'}"
                 for m, rec, now in self.differences[:3]]
        more = f", and {len(self.differences) - 3} more" if len(self.differences) > 3 else ""
        note = f"; {self.altered} since the run" if self.altered else ""
        return f"cell {self.label} ({self.key}): {', '.join(shown)}{more}{note}"


@dataclass
class RescoreResult:
    cells: list[CellRescore] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count

    @property
    def differing(self) -> list[CellRescore]:
        return [c for c in self.cells if c.differences]


def records_of(run_dirs: Iterable[str | Path]) -> list[tuple[Path, dict]]:
    """``(run_dir, record)`` of every valid record, in each directory's report order,
    a cell key found in several directories kept once (the first)."""
    from simla_bench.report.records import load_run_dirs

    out, seen = [], set()
    for path in run_dirs:
        for record in load_run_dirs([path]).records:
            if record["key"] not in seen:
                seen.add(record["key"])
                out.append((Path(path), record))
    return out


def _skip_reason(record: dict, registry: Any) -> str | None:
    if record.get("not_applicable"):
        return "n/a"
    if not record.get("predictions"):
        return "no predictions"
    if not registry.load("task", record["task"]).rescores():
        return "task cannot re-score"
    return None


def rescore_cell(run_dir: Path, record: dict, registry: Any) -> CellRescore:
    """Re-score one cell (its own score options, then each other version)."""
    from simla_bench.runner.store import RunStore

    cell = open_cell(run_dir, record, registry, check_files=False)
    out = CellRescore(cell_label(record), record["key"])
    out.altered = RunStore(run_dir).predictions_problem(record["key"], record["predictions"])
    if out.altered and out.altered.endswith("is missing"):  # nothing to score: the cell differs
        out.differences.append(("predictions", None, None))
        return out
    if out.altered:
        out.altered = out.altered.replace("prediction file ", "file ").replace(" (sha256 differs)", "")
    try:
        now = cell.task.score_predictions(cell.predictions, cell.data)
    except UserError as exc:
        raise UserError(f"cell {out.label}: {exc.message}", hint=exc.hint) from None
    recorded = record["metrics"]
    for metric, value in now.items():
        if metric not in recorded or recorded[metric] != value:
            out.differences.append((metric, recorded.get(metric), value))
    split = record["primary_metric"].split("/")[0] + "/"
    for opt in type(cell.task).score_options:
        if not (opt.record and opt.choices and opt.name in cell.task.options):
            continue
        own = cell.task.options[opt.name]
        for value in opt.choices:
            if value == own:
                continue
            other = cell.task.score_predictions(cell.predictions, cell.data, **{opt.name: value})
            out.versions += [(opt.name, f"{own} -> {value}", m, now[m], v) for m, v in other.items()
                             if m.startswith(split) and m in now]
    return out


def rescore_runs(run_dirs: Iterable[str | Path], registry: Any = None) -> RescoreResult:
    """Re-score every cell of the run directories that can be."""
    from simla_bench.registry import get_registry

    reg = registry or get_registry()
    result = RescoreResult()
    for run_dir, record in records_of(run_dirs):
        reason = _skip_reason(record, reg)
        if reason:
            result.skipped[reason] = result.skipped.get(reason, 0) + 1
            continue
        result.cells.append(rescore_cell(run_dir, record, reg))
    return result
