"""``simla-bench report``: the leaderboard of one or more run directories."""

from __future__ import annotations

from pathlib import Path

import click

from rich.markup import escape

from simla_bench.cli.common import console, err_console, writable_file, write_text
from simla_bench.errors import UserError

FORMATS = ("rich", "markdown", "csv", "json", "latex", "html")


def render_report(records, *, fmt: str = "rich", detail: bool = False, baseline: str | None = None,
                  out: str | None = None, plot_path: str | None = None, n_boot: int = 2000, title: str | None = None,
                  sort: str | None = None, examples=None):
    """Build and show/export the leaderboard for ``records`` (shared with ``run``); ``examples``:
    ``load(record) -> list[Example]`` for the HTML page's per-example tables."""
    from simla_bench.report import export, leaderboard

    board = leaderboard.build(records, detail=detail, baseline=baseline, n_boot=n_boot, sort=sort)
    if fmt == "html":
        from simla_bench.report.html_page import report_page

        text = report_page(board, records, examples, title=title or "simla-bench report")
        if out:
            write_text(out, text, "the --out file", "--out")
            err_console.print(f"wrote {out}", highlight=False, markup=False)
        else:
            click.echo(text, nl=False)
    elif fmt == "rich" and out is None:
        console.print(export.to_rich(board, title=title or "simla-bench leaderboard"))
        if (table := export.rich_sensitivity(board)) is not None:
            console.print(table)
    else:
        text = export.render(board, "markdown" if fmt == "rich" else fmt)
        if out:
            write_text(out, text, "the --out file", "--out")
            err_console.print(f"wrote {out}", highlight=False, markup=False)
        else:
            click.echo(text, nl=False)
    if plot_path:
        from simla_bench.report.plot import plot

        plot(board, plot_path)
        err_console.print(f"wrote {plot_path}", highlight=False, markup=False)
    return board


@click.command("report")
@click.argument("run_dirs", nargs=-1, type=click.Path(file_okay=False))
@click.option("--detail", is_flag=True, help="Show every metric of every task, not only the primary one, and "
              "(with control rows, run --controls) each column's best row vs the controls, p and MDE.")
@click.option("--baseline", metavar="ROW", help="Row (label or objective set, e.g. itc) to compare against.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="rich", show_default=True,
              help="Table format (rich for the terminal; html: one self-contained page with the plot and "
                   "the per-example tables, docs/results.md).")
@click.option("--out", "out", type=click.Path(dir_okay=False), help="Write the table to this file instead of stdout.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), help="Also draw the leaderboard to FILE.png.")
@click.option("--bootstrap", "n_boot", type=click.IntRange(100, 1_000_000), default=2000, show_default=True,
              help="Paired bootstrap resamples for significance marks.")
@click.option("--sort", metavar="TASK[:METRIC]",
              help="Order the rows by this column, best first (default: the order the run's config lists them).")
@click.option("--rescore", is_flag=True, help="Recompute every cell's metrics from its saved predictions with the "
              "task's scorer and compare them with the record (exit 1 and one line per differing cell); also "
              "re-score under the other versions of the task's score options (VQA's vqa_eval, grounding's iou).")
@click.option("--examples", "examples_path", type=click.Path(dir_okay=False),
              help="Write one JSON line per row, seed, task and example (id, prediction, value, measure) to FILE.")
def report_command(run_dirs, detail, baseline, fmt, out, plot_path, n_boot, sort, rescore, examples_path):
    """Render the leaderboard of one or more run directories (merged; the same
    cells in several directories count once).

    \b
    Examples:
      simla-bench report runs/default
      simla-bench report runs/ablation --baseline itc --detail
      simla-bench report runs/controls --detail          # per-column sensitivity (run --controls)
      simla-bench report runs/ablation --sort retrieval
      simla-bench report runs/a runs/b --format latex --out table.tex --plot matrix.png
      simla-bench report runs/default --rescore         # re-score the saved predictions
      simla-bench report runs/default --examples examples.jsonl
    """
    from simla_bench.report.records import load_run_dirs

    if rescore:
        _rescore(run_dirs or ["runs/default"])
        return
    if examples_path:
        _examples(run_dirs or ["runs/default"], examples_path)
        return

    for path, option in ((out, "--out"), (plot_path, "--plot")):
        if path:  # before reading the runs
            writable_file(path, f"the {option} file", option)
    loaded = load_run_dirs(run_dirs or ["runs/default"])
    for w in loaded.warnings:
        err_console.print(f"[yellow]warning:[/] {escape(str(w))}", highlight=False, soft_wrap=True)
    from simla_bench.report.compare import examples_loader

    render_report(loaded.records, fmt=fmt, detail=detail, baseline=baseline, out=out, plot_path=plot_path,
                  n_boot=n_boot, sort=sort, examples=examples_loader(run_dirs or ["runs/default"]),
                  title=f"simla-bench report: {', '.join(run_dirs or ['runs/default'])}" if fmt == "html" else None)


def _rescore(run_dirs) -> None:
    """``--rescore``: one line when every cell re-scores equal, else one line per differing cell and exit 1."""
    from rich.table import Table

    from simla_bench.report.rescore import rescore_runs

    result = rescore_runs(run_dirs)
    for reason, count in result.skipped.items():
        err_console.print(f"note: {count} cell(s) not re-scored: {reason}", highlight=False, markup=False)
    versions = [(c.label, *v) for c in result.cells for v in c.versions]
    if versions:
        table = Table(title="re-scored under the other versions of the score options")
        for name in ("cell", "option", "version", "metric", "recorded", "other version", "difference"):
            table.add_column(name, justify="right" if name in ("recorded", "other version", "difference") else "left")
        for label, option, change, metric, own, other in versions:
            table.add_row(escape(label), option, change, escape(metric), f"{own:.2f}", f"{other:.2f}",
                          f"{other - own:+.2f}")
        err_console.print(table)
    if not result.cells:
        raise UserError("no cell has saved predictions to re-score", hint="cells keep predictions from this version on; "
                        "rerun with --force-row to write them")
    bad = result.differing
    if not bad:
        click.echo(f"{len(result.cells)} cells re-scored, all equal")
        return
    for cell in bad:
        click.echo(cell.line())
    raise SystemExit(1)


def _examples(run_dirs, path: str) -> None:
    """``--examples FILE``: the JSON lines of every cell's examples."""
    from simla_bench.report.examples import examples_jsonl
    from simla_bench.report.rescore import records_of

    writable_file(path, "the --examples file", "--examples")
    text, n_examples, n_cells, notes = examples_jsonl(records_of(run_dirs))
    for note in notes:
        err_console.print(f"note: {note}", highlight=False, markup=False)
    write_text(path, text, "the --examples file", "--examples")
    err_console.print(f"wrote {n_examples} examples of {n_cells} cells to {path}", highlight=False, markup=False)


COMMANDS = [report_command]
