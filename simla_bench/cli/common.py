"""Shared CLI plumbing: error display, consoles, output paths (version strings: :mod:`simla_bench.versions`).

Every :class:`~simla_bench.errors.UserError` raised by a command becomes one
red line on stderr and a non-zero exit code, without a traceback.  Text from
users, plugins and files is printed verbatim (rich markup escaped: a hint
holding ``[x, y, w, h]`` keeps its brackets).  :func:`writable_dir`, :func:`writable_file` and
:func:`write_text` turn an output path that cannot be written into one line.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape

from simla_bench.errors import UserError
from simla_bench.versions import package_version, versions, versions_line  # noqa: F401 - re-exported for the commands

console = Console()
err_console = Console(stderr=True)


def fail(message: str, code: int = 2) -> None:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    sys.exit(code)


def warn_plugin_problems(registry) -> None:
    for problem in registry.problems:
        err_console.print(f"[yellow]warning:[/] {escape(problem.one_line())}", highlight=False, soft_wrap=True)


def writable_dir(path: str | Path, what: str, option: str) -> Path:
    """Check, before any work and without creating anything, that the folder
    ``path`` can be made and written: its nearest existing ancestor must be a
    writable folder.  A one-line :class:`UserError` naming the path otherwise."""
    path = Path(path)
    for parent in [path, *path.parents]:
        if not parent.exists():
            continue
        if not parent.is_dir():
            raise UserError(f"{what} '{path}' cannot be created: '{parent}' is a file, not a folder",
                            hint=f"choose another {option} path (a file is in the way)")
        if not os.access(parent, os.W_OK | os.X_OK):
            where = "" if parent == path else f" (its folder '{parent}' is not writable)"
            raise UserError(f"{what} '{path}' is not writable{where}",
                            hint=f"give {option} a path you can write to")
        break
    return path


def writable_file(path: str | Path, what: str, option: str) -> Path:
    """:func:`writable_dir` for the folder of the file ``path`` (which must not be a folder)."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{what} '{path}' is a folder", hint=f"give {option} a file name")
    writable_dir(path.parent, f"the folder of {what}", option)
    return path


def write_text(path: str | Path, text: str, what: str, option: str) -> None:
    """Write ``text`` (UTF-8) to ``path``, creating missing parent folders; the
    file appears whole or not at all (written beside it, then renamed).  A path
    that cannot be written is a one-line :class:`UserError`."""
    path = writable_file(path, what, option)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise UserError(f"{what} '{path}' cannot be written: {exc.strerror or type(exc).__name__}",
                        hint=f"give {option} a path you can write to") from None


def os_error_line(exc: OSError) -> str:
    """One line for a file-system error on a named path (permission, missing folder, disk full)."""
    where = f"'{exc.filename}'" + (f" -> '{exc.filename2}'" if exc.filename2 else "")
    return (f"{exc.strerror or type(exc).__name__}: {where} — check the path, its permissions and the free space "
            "(SIMLA_BENCH_TRACEBACK=1 shows where it happened)")


class SimlaGroup(click.Group):
    """A click group that turns :class:`UserError` (and a file-system error on a
    named path: an unwritable output folder, a full disk) into one clean line."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except UserError as exc:
            fail(exc.one_line(), exc.exit_code)
        except OSError as exc:
            if exc.filename is None or os.environ.get("SIMLA_BENCH_TRACEBACK"):
                raise
            fail(os_error_line(exc), 2)
        except KeyboardInterrupt:
            fail("interrupted; finished cells are kept, rerun the same command to resume", 130)
