"""The ``simla-bench`` command line (click + rich).

Commands live in their own modules and import heavy libraries (torch) only
inside their bodies, so ``--help`` and ``list`` stay fast.
"""

from __future__ import annotations

import importlib

import click

from simla_bench.cli.common import SimlaGroup, versions_line

#: command modules, each exporting COMMANDS (a list of click commands)
COMMAND_MODULES = ("list_cmd", "world_cmd", "run_cmd", "report_cmd", "score_cmd", "plugin_cmd")


def _print_versions(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    click.echo(versions_line())
    ctx.exit()


@click.group(cls=SimlaGroup, context_settings={"help_option_names": ["-h", "--help"]})
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
