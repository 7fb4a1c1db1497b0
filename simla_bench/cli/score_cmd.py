"""``simla-bench score TASK``: score an official-format predictions file against official annotations.

The command knows no task: ``TASK`` is looked up in the registry and its
:meth:`~simla_bench.interfaces.Task.score_files` does the scoring, with the
options the task declares in :attr:`~simla_bench.interfaces.Task.score_options`
(each becomes ``--<name>``), so a third-party task that implements the method
gets ``score`` too.  Every task's command takes ``--predictions``,
``--annotations``, ``--allow-missing`` and ``--json``.  Prints a rich table;
``--json`` also writes the numbers to a file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from simla_bench.cli.common import SimlaGroup, console, err_console, writable_file, write_text
from simla_bench.errors import DataError, UserError


class ScoreGroup(SimlaGroup):
    """``score``'s subcommands: one per registered task, built from the task's declarations when named."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        from simla_bench.registry import get_registry

        return get_registry().names("task")

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        from simla_bench.registry import get_registry

        registry = get_registry()
        if ("task", name) not in registry:
            return None  # click: "No such command"
        return _task_command(name, registry.get("task", name))

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The task list without loading any task (the registration summaries)."""
        from simla_bench.registry import get_registry

        rows = [(e.name, e.summary) for e in get_registry().list("task")]
        if rows:
            with formatter.section("Tasks"):
                formatter.write_dl(rows)


def _task_command(name: str, entry: Any) -> click.Command:
    """The ``score NAME`` command: the common options and the task's own (the class is loaded here)."""
    cls = entry.load()
    params: list[click.Parameter] = [
        click.Option(["--predictions", "-p"], required=True, type=click.Path(path_type=Path),
                     help="Predictions in the task's official submission format."),
        click.Option(["--annotations", "-a"], required=True, type=click.Path(path_type=Path),
                     help="The task's official annotations."),
    ]
    if not cls.scores_files():
        raise UserError(f"task '{name}' (distribution '{entry.plugin.dist_name}') does not score prediction files",
                        hint="its Task class implements no score_files (docs/plugins.md, 'Scoring prediction files')")
    declared = tuple(cls.score_options)
    for opt in declared:
        kind: Any = click.Path(path_type=Path) if opt.path else (click.Choice(opt.choices) if opt.choices else None)
        params.append(click.Option([f"--{opt.name.replace('_', '-')}", opt.name], type=kind, default=opt.default,
                                   multiple=opt.multiple, show_default=opt.default is not None, help=opt.help))
    params += [
        click.Option(["--allow-missing"], is_flag=True, help="Score ids without a prediction as wrong instead of failing."),
        click.Option(["--json", "json_path"], type=click.Path(path_type=Path),
                     help="Also write the numbers to this JSON file (missing folders are created)."),
    ]

    def callback(predictions: Path, annotations: Path, allow_missing: bool, json_path: Path | None,
                 **options: Any) -> None:
        _score(name, cls(name), declared, predictions, annotations, allow_missing, json_path, options)

    doc = (cls.score_files.__doc__ or "").strip().splitlines()[0] if cls.score_files.__doc__ else ""
    return click.Command(name, params=params, callback=callback,
                         help=f"Score a predictions file for {name} with its official metric. {doc}".strip())


def _score(name: str, task: Any, declared: tuple, predictions: Path, annotations: Path, allow_missing: bool,
           json_path: Path | None, options: dict[str, Any]) -> None:
    for path in (predictions, annotations):
        if not path.exists():
            raise DataError(f"file not found: {path}", "check the path")
    if json_path is not None:  # before scoring: a path that cannot be written fails first
        writable_file(json_path, "the --json file", "--json")
    scores = task.score_files(predictions, annotations, allow_missing=allow_missing, **options)
    table = Table(title=escape(f"{name}: {predictions.name}"))
    table.add_column("metric", style="bold cyan")
    table.add_column("value", justify="right")
    for metric, value in scores.metrics.items():
        table.add_row(escape(metric), repr(value))  # e.g. question types come from the annotations
    console.print(table)
    if scores.missing:
        err_console.print(f"[yellow]warning:[/] {scores.missing} id(s) had no prediction and were scored as wrong",
                          highlight=False)
    if json_path is not None:
        payload = {"task": name, "predictions": str(predictions), "annotations": str(annotations),
                   "metrics": scores.metrics, "missing": scores.missing}
        payload.update({opt.name: options[opt.name] for opt in declared if opt.record})
        write_text(json_path, json.dumps(payload, indent=2) + "\n", "the --json file", "--json")


@click.group("score", cls=ScoreGroup, subcommand_metavar="TASK [OPTIONS]")
def score_command() -> None:
    """Score a predictions file for TASK with the task's official metric
    (`simla-bench score TASK --help` lists the task's options).

    \b
    Examples:
      simla-bench score vqa -p results.json -a v2_mscoco_val2014_annotations.json
      simla-bench score vqa -p results.json -a anns.json --vqa-eval current
      simla-bench score nlvr2 -p dev_predictions.csv -a dev.json --json nlvr2.json
      simla-bench score retrieval -p scores_i2t.npy -a coco_test.json
      simla-bench score grounding -p boxes.json -a 'refs(unc).p' --instances instances.json
    """


COMMANDS = [score_command]
