"""``simla-bench list``: registered components and plugins as rich tables.

Imports no torch: components are registered lazily as ``module:attr`` strings.
``list plugins --check`` (or ``SIMLA_BENCH_STRICT_PLUGINS=1 list plugins``)
imports every registered target of every kind and reports each failure in one
line, exiting non-zero if any failed.
"""

from __future__ import annotations

import json
import os

import click
from rich.markup import escape
from rich.table import Table

from simla_bench.cli.common import console, err_console, warn_plugin_problems
from simla_bench.registry import PLURALS, describe, get_registry

_CHOICES = ["models", "backbones", "objectives", "tasks", "datasets", "plugins", "all"]


@click.command("list")
@click.argument("what", type=click.Choice(_CHOICES), default="all")
@click.argument("pattern", default="*")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--check", is_flag=True,
              help="Import every registered component of every kind (models, backbones, objectives, tasks, "
                   "datasets; observers load with their plugin) and report each failure in one line; "
                   "exit 1 if any failed.")
def list_command(what: str, pattern: str, as_json: bool, check: bool) -> None:
    """List registered components or plugins; PATTERN takes wildcards.

    \b
    Examples:
      simla-bench list objectives
      simla-bench list backbones 'vit_*'
      simla-bench list plugins
      simla-bench list plugins --check
    """
    registry = get_registry()
    check = check or (what == "plugins" and os.environ.get("SIMLA_BENCH_STRICT_PLUGINS", "") not in ("", "0"))
    if not check:
        warn_plugin_problems(registry)
    _list(registry, what, pattern, as_json)
    if check:
        _check(registry)


def _check(registry) -> None:
    """Import every target; one line per failure (and per plugin that failed to load); exit 1 on any."""
    checks = registry.check_targets()
    failed = [c for c in checks if not c.ok]
    lines = [p.one_line() for p in registry.problems] + [c.error for c in failed]
    for line in lines:  # on stderr, so that --json output stays parseable
        err_console.print(f"[bold red]failed:[/] {escape(line)}", highlight=False, soft_wrap=True)
    dists = len({c.plugin.dist_name for c in checks})
    summary = f"checked {len(checks)} components of {dists} distribution(s): "
    summary += f"{len(lines)} problem(s)" if lines else "every one imports and follows its interface"
    err_console.print(summary, highlight=False, soft_wrap=True)
    if lines:
        raise SystemExit(1)


def _list(registry, what: str, pattern: str, as_json: bool) -> None:
    if what == "plugins":
        rows = [
            {"plugin": p.name, "distribution": p.dist_name, "version": p.dist_version, "module": p.module,
             "hooks": list(p.hooks)}
            for p in registry.plugins
        ]
        if as_json:
            click.echo(json.dumps(rows, indent=2))
            return
        table = Table(title="simla-bench plugins")
        for col in ("plugin", "distribution", "version", "module", "hooks"):
            table.add_column(col)
        for r in rows:
            table.add_row(r["plugin"], r["distribution"], r["version"], r["module"], ", ".join(r["hooks"]))
        console.print(table)
        return
    kinds = list(PLURALS) if what == "all" else [what]
    if as_json:
        click.echo(json.dumps({k: [describe(e) for e in registry.list(k, pattern)] for k in kinds}, indent=2, default=str))
        return
    for kind in kinds:
        entries = registry.list(kind, pattern)
        table = Table(title=f"{kind} ({len(entries)})")
        table.add_column("name", style="bold cyan")
        table.add_column("plugin")
        table.add_column("summary")
        for e in entries:
            table.add_row(e.name, e.plugin.label, e.summary)
        console.print(table)
COMMANDS = [list_command]
