"""The ``simla-bench`` command line (click + rich).

Commands live in their own modules and import heavy libraries (torch) only
inside their bodies, so ``--help`` and ``list`` stay fast.  Plugins add
commands through the ``register_commands`` hook (the built-in ``world`` is the
world dataset plugin's): :class:`MainGroup` looks them up in the registry; a
plugin command cannot replace a built-in one.
"""

from __future__ import annotations

import importlib

import click

from rich.markup import escape

from simla_bench.cli.common import SimlaGroup, err_console, versions_line
from simla_bench.errors import UserError

#: command modules, each exporting COMMANDS (a list of click commands)
COMMAND_MODULES = ("list_cmd", "run_cmd", "report_cmd", "score_cmd", "compare_cmd", "plugin_cmd")


class MainGroup(SimlaGroup):
    """The built-in commands, then the commands plugins register (loaded when listed or named)."""

    def _plugin_commands(self) -> dict:
        from simla_bench.registry import get_registry

        return {e.name: e for e in get_registry().commands() if e.name not in self.commands}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*self.commands, *self._plugin_commands()])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.commands:
            return self.commands[name]
        entry = self._plugin_commands().get(name)
        if entry is None:
            return None
        return entry.load()  # a broken plugin: a one-line PluginError (SimlaGroup.invoke prints it)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """click's listing, except that a plugin command that fails to load is a warning line."""
        rows, names = [], self.list_commands(ctx)
        limit = formatter.width - 6 - max(map(len, names), default=0)
        for name in names:
            try:
                command = self.get_command(ctx, name)
            except UserError as exc:
                err_console.print(f"[yellow]warning:[/] {escape(exc.message)}", highlight=False, soft_wrap=True)
                continue
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _print_versions(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    click.echo(versions_line())
    ctx.exit()


@click.group(cls=MainGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_print_versions,
              help="Show simla-bench, torch, timm and transformers versions.")
def main() -> None:
    """simla-bench: pretrain a vision-language model with any mix of objectives,
    score it on a matrix of downstream tasks, read one leaderboard.

    \b
    Example:
      simla-bench list objectives
      simla-bench run --objectives itc,itm,xmm,psl
    """


for _name in COMMAND_MODULES:
    try:
        _module = importlib.import_module(f"simla_bench.cli.{_name}")
    except ModuleNotFoundError as _exc:
        if _exc.name != f"simla_bench.cli.{_name}":
            raise
        continue  # that command is not part of this build
    for _command in _module.COMMANDS:
        main.add_command(_command)
