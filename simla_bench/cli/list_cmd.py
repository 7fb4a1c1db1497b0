"""``simla-bench list``: registered components and plugins as rich tables.

Imports no torch: components are registered lazily as ``module:attr`` strings.
"""

from __future__ import annotations

import json

import click
from rich.table import Table

from simla_bench.cli.common import console, warn_plugin_problems
from simla_bench.registry import PLURALS, describe, get_registry

_CHOICES = ["models", "backbones", "objectives", "tasks", "datasets", "plugins", "all"]


@click.command("list")
@click.argument("what", type=click.Choice(_CHOICES), default="all")
@click.argument("pattern", default="*")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_command(what: str, pattern: str, as_json: bool) -> None:
    """List registered components or plugins; PATTERN takes wildcards.

    \b
    Examples:
      simla-bench list objectives
      simla-bench list backbones 'vit_*'
      simla-bench list plugins
    """
    registry = get_registry()
    warn_plugin_problems(registry)
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
