"""Shared CLI plumbing: error display, consoles, version strings.

Every :class:`~simla_bench.errors.UserError` raised by a command becomes one
red line on stderr and a non-zero exit code, without a traceback.
"""

from __future__ import annotations

import sys
from importlib import metadata

import click
from rich.console import Console

from simla_bench.errors import UserError

console = Console()
err_console = Console(stderr=True)


def package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def versions() -> dict[str, str]:
    import simla_bench

    return {
        "simla-bench": simla_bench.__version__,
        "torch": package_version("torch"),
        "timm": package_version("timm"),
        "transformers": package_version("transformers"),
    }


def versions_line() -> str:
    return ", ".join(f"{k} {v}" for k, v in versions().items())


def fail(message: str, code: int = 2) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    sys.exit(code)


def warn_plugin_problems(registry) -> None:
    for problem in registry.problems:
        err_console.print(f"[yellow]warning:[/] {problem.one_line()}", highlight=False, soft_wrap=True)


class SimlaGroup(click.Group):
    """A click group that turns :class:`UserError` into one clean line."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except UserError as exc:
            fail(exc.one_line(), exc.exit_code)
        except KeyboardInterrupt:
            fail("interrupted; finished cells are kept, rerun the same command to resume", 130)
