"""``simla-bench compare``: the test examples on which two rows of a run differ
(:mod:`simla_bench.report.compare`), as a rich table, JSON or an HTML page."""

from __future__ import annotations

import json

import click

from rich.markup import escape

from simla_bench.cli.common import console, err_console, writable_file, write_text

FORMATS = ("rich", "json", "html")


def rich_comparison(cmp, limit: int):
    """The changed examples as a rich table (the first ``limit``; 0 = all), the counts in its caption
    (only the lines when no example differs)."""
    from rich.table import Table

    from simla_bench.report.compare import shown, side_text

    several = len(cmp.seeds) > 1
    lines = cmp.lines()
    shown_changes = cmp.changes if limit <= 0 else cmp.changes[:limit]
    if len(shown_changes) < len(cmp.changes):
        lines.append(f"showing the {len(shown_changes)} largest of {len(cmp.changes)} changes (--limit 0: all)")
    if not cmp.changes:
        return escape("\n".join([f"{cmp.task}: {cmp.row_b} vs {cmp.row_a}: no example differs", *lines]))
    table = Table(title=escape(f"{cmp.task}: {cmp.row_b} vs {cmp.row_a}"), caption=escape("\n".join(lines)))
    for head in (["seed"] if several else []) + ["id", "text", cmp.row_a, cmp.row_b, "truth", "b vs a"]:
        table.add_column(escape(head), overflow="fold")
    for c in shown_changes:
        cells = ([str(c.seed)] if several else []) + [c.id, c.a.text or c.b.text, side_text(c.a), side_text(c.b),
                                                      shown(c.a.truth if c.a.truth is not None else c.b.truth)]
        table.add_row(*[escape(x) for x in cells], "[green]win[/]" if c.win else "[red]loss[/]")
    return table


@click.command("compare")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("--rows", "rows", multiple=True, required=True, metavar="A,B",
              help="The two rows: 'A,B', or --rows A --rows B (labels or objective sets). B is compared with A: "
                   "a win is an example B does better.")
@click.option("--task", "task", required=True, help="The task whose examples to compare.")
@click.option("--by", "by", type=click.Choice(("auto", "value", "measure")), default="auto", show_default=True,
              help="What counts as a change: the per-example score (value), the finer measure (a rank, an IoU), "
                   "or per task (auto: ranks move, thresholded scores flip; docs/results.md).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="rich", show_default=True, help="Output format.")
@click.option("--out", "out", type=click.Path(dir_okay=False), help="Write to this file instead of stdout.")
@click.option("--limit", type=click.IntRange(0), default=30, show_default=True,
              help="Changes shown in the rich table and the HTML page (0 = all; JSON lists all).")
def compare_command(run_dirs, rows, task, by, fmt, out, limit):
    """The test examples on which two rows differ, largest change first, with
    counts of wins and losses and an exact sign (McNemar) test per seed and pooled.

    \b
    Examples:
      simla-bench compare runs/ablation --rows itc --rows itc,itm --task vqa
      simla-bench compare runs/a runs/b --rows 'itc,none (control)' --task retrieval --format json --out c.json
      simla-bench compare runs/controls --rows 'none (control)' --rows itc,itm,xmm,psl --task grounding \\
          --format html --out grounding.html
    """
    from simla_bench.report.compare import compare_rows, examples_loader
    from simla_bench.report.records import load_run_dirs

    if out:
        writable_file(out, "the --out file", "--out")
    loaded = load_run_dirs(run_dirs)
    for w in loaded.warnings:
        err_console.print(f"[yellow]warning:[/] {escape(str(w))}", highlight=False, soft_wrap=True)
    cmp = compare_rows(loaded.records, rows, task, examples_loader(run_dirs), by=by)
    if fmt == "rich" and out is None:
        console.print(rich_comparison(cmp, limit))
        return
    if fmt == "json":
        text = json.dumps(cmp.to_json(), indent=2, default=str) + "\n"
    elif fmt == "html":
        from simla_bench.report.html_page import comparison_page

        text = comparison_page(cmp, limit=limit)
    else:  # rich to a file: the same table as plain text
        import io

        from rich.console import Console

        capture = Console(width=160, record=True, file=io.StringIO())
        capture.print(rich_comparison(cmp, limit))
        text = capture.export_text()
    if out:
        write_text(out, text, "the --out file", "--out")
        err_console.print(f"wrote {out}", highlight=False, markup=False)
    else:
        click.echo(text, nl=False)


COMMANDS = [compare_command]
