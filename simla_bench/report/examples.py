"""A finished cell's saved predictions, opened again: its task and dataset
rebuilt from the record, and its per-example view (:class:`~simla_bench.interfaces.Example`).

Owns :func:`open_cell` (the task, built with the options the cell ran under, the
dataset source of the task, its data checked against the checksum in the record,
and the cell's predictions folder), :func:`cell_examples`, which ``report
--examples``, ``compare`` and the HTML report call, and :func:`examples_jsonl`
(``report --examples FILE``: one JSON line per row, seed, task and example).  Tasks and datasets are
found through the registry by the names the record's config gives, as the runner
finds them (this module imports no task and no dataset plugin).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from simla_bench.errors import UserError
from simla_bench.interfaces import DatasetSource, Example, Task


@dataclass
class OpenCell:
    """A cell's task (its options as recorded), dataset source and predictions folder."""

    task: Task
    data: DatasetSource
    predictions: Path
    label: str


def cell_label(record: Mapping[str, Any]) -> str:
    """``task [row] seed N`` (how a cell is named in messages)."""
    return f"{record['task']} [{record['row']}] seed {record['seed']}"


def open_cell(run_dir: Path, record: Mapping[str, Any], registry: Any = None, check_files: bool = True) -> OpenCell:
    """The cell's task, dataset source and predictions folder; one-line :class:`UserError`
    when the cell has no saved predictions, its files are missing or altered (unless
    ``check_files`` is False: ``--rescore`` scores them as they are) or its data changed
    since it ran."""
    from simla_bench.registry import get_registry
    from simla_bench.runner.keys import manifest_checksum
    from simla_bench.runner.store import RunStore

    reg = registry or get_registry()
    label = cell_label(record)
    if record.get("not_applicable"):
        raise UserError(f"cell {label} is n/a: it has no predictions")
    if not record.get("predictions"):
        raise UserError(f"cell {label} has no saved predictions",
                        hint="its task returned none, or the record predates prediction files; rerun it with "
                             "--force-row to write them")
    store = RunStore(run_dir)
    folder = store.predictions_dir(record["key"])
    problem = store.predictions_problem(record["key"], record["predictions"]) if check_files else None
    if problem:
        raise UserError(f"cell {label} in {run_dir}: {problem}", hint="rerun the run to recompute that cell")
    task_cfg = record["config"]["tasks"][record["task"]]
    task = reg.load("task", record["task"])(record["task"], task_cfg.get("options") or {})
    ds_name = task_cfg.get("dataset", "world")
    ds_cfg = record["config"]["datasets"][ds_name]
    data = reg.load("dataset", ds_cfg["source"])(ds_name, ds_cfg.get("options") or {})
    manifest = data.prepare() or {}
    recorded = (record.get("data_checksums") or {}).get(ds_name)
    if recorded is not None and manifest_checksum(manifest) != recorded:
        raise UserError(f"cell {label}: dataset '{ds_name}' is not the data the cell ran on (checksum "
                        f"{manifest_checksum(manifest)[:12]}, recorded {recorded[:12]})",
                        hint="run the command from the directory the run used, or restore that data")
    return OpenCell(task, data, folder, label)


def cell_examples(run_dir: Path, record: Mapping[str, Any], registry: Any = None) -> list[Example]:
    """The test examples of one finished cell (``record``: its JSON form, as the report
    gets it) read from ``run_dir``'s saved predictions by the task's
    :meth:`~simla_bench.interfaces.Task.examples`; one-line :class:`UserError` when the cell
    has no predictions or its task has no per-example view."""
    from simla_bench.registry import get_registry

    reg = registry or get_registry()
    cls = reg.load("task", record["task"])
    if not cls.has_examples():
        raise UserError(f"task '{record['task']}' has no per-example view (cell {cell_label(record)})",
                        hint="its Task class implements no examples() (docs/plugins.md)")
    cell = open_cell(Path(run_dir), record, reg)
    return cell.task.examples(cell.predictions, cell.data)


def example_line(record: Mapping[str, Any], ex: Example) -> dict[str, Any]:
    """One ``report --examples`` line: row, seed, task, id, prediction, value, measure."""
    return {"row": record["row"], "seed": record["seed"], "task": record["task"], "id": ex.id,
            "prediction": ex.prediction, "value": ex.value, "measure": ex.measure}


def examples_jsonl(cells: Iterable[tuple[Path, Mapping[str, Any]]],
                   registry: Any = None) -> tuple[str, int, int, list[str]]:
    """Every example of the ``(run_dir, record)`` cells that have saved predictions and a
    task with a per-example view, as JSON lines; returns (text, examples, cells, notes on
    the cells left out)."""
    from simla_bench.registry import get_registry

    reg = registry or get_registry()
    lines: list[str] = []
    used, notes = 0, []
    for run_dir, record in cells:
        if record.get("not_applicable"):
            continue
        if not record.get("predictions") or not reg.load("task", record["task"]).has_examples():
            why = "no saved predictions" if not record.get("predictions") else "its task has no per-example view"
            notes.append(f"cell {cell_label(record)} left out: {why}")
            continue
        lines += [json.dumps(example_line(record, ex), default=str) for ex in cell_examples(run_dir, record, reg)]
        used += 1
    return "".join(line + "\n" for line in lines), len(lines), used, notes
