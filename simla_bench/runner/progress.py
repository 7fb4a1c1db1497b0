"""Progress display for a matrix run: rich bars on a terminal, plain lines in
logs (not a TTY), or nothing but warnings with ``--quiet``.

The runner talks to a :class:`Progress`; the trainer and tasks get plain
callables from :meth:`Progress.pretrain_callback` / :meth:`Progress.task_callback`
that accept keyword arguments (``step``, ``total``, ``losses``,
``pairs_per_s``, ``message``) and ignore what they do not know.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Callable, Mapping, TextIO

from rich.markup import escape


def _fmt_losses(losses: Mapping[str, Any] | None) -> str:
    if not losses:
        return ""
    parts = []
    for k, v in losses.items():
        try:
            parts.append(f"{k}={float(v):.3f}")
        except (TypeError, ValueError):
            continue
    return " ".join(parts)


def _parse_step(args: tuple, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Normalise what a trainer may pass: keywords, or one mapping positional."""
    info: dict[str, Any] = {}
    if args and isinstance(args[0], Mapping):
        info.update(args[0])
    elif args:
        info["step"] = args[0]
        if len(args) > 1:
            info["total"] = args[1]
    info.update(kwargs)
    return info


class Progress:
    """Base: records nothing, prints warnings to stderr.  Used by ``--quiet``."""

    def __init__(self, err: TextIO | None = None):
        self.err = err or sys.stderr
        self.warnings: list[str] = []

    # runner events -------------------------------------------------------
    def run_start(self, total: int, cached: int, run_dir: str) -> None: ...
    def row_start(self, label: str, seed: int, steps: int) -> None: ...
    def pretrain_step(self, step: int, total: int, losses: Mapping[str, Any] | None, pairs_per_s: float | None) -> None: ...
    def row_done(self, label: str, seed: int, message: str) -> None: ...
    def task_start(self, task: str, label: str, seed: int) -> None: ...
    def cell_done(self, status: str, text: str) -> None: ...
    def info(self, text: str) -> None: ...

    def warn(self, text: str) -> None:
        self.warnings.append(text)
        print(f"warning: {text}", file=self.err, flush=True)

    def close(self) -> None: ...

    # callables for the trainer and tasks ---------------------------------
    def pretrain_callback(self) -> Callable[..., None]:
        def callback(*args: Any, **kwargs: Any) -> None:
            info = _parse_step(args, kwargs)
            if "step" in info:
                self.pretrain_step(int(info["step"]), int(info.get("total") or 0), info.get("losses"),
                                   info.get("pairs_per_s"))
            if info.get("message"):
                self.info(str(info["message"]))

        return callback

    def task_callback(self) -> Callable[..., None]:
        def callback(*args: Any, **kwargs: Any) -> None:
            info = _parse_step(args, kwargs)
            if info.get("message"):
                self.info(str(info["message"]))

        return callback


class PlainProgress(Progress):
    """One line per event; pretraining every ~10% of steps (for logs and CI)."""

    def __init__(self, out: TextIO | None = None, err: TextIO | None = None):
        super().__init__(err)
        self.out = out or sys.stdout
        self.total = 0
        self.done = 0

    def _print(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def run_start(self, total, cached, run_dir):
        self.total, self.done = total, cached
        self._print(f"run {run_dir}: {total} cells, {cached} already finished")

    def row_start(self, label, seed, steps):
        self._print(f"pretraining [{label}] seed {seed}: {steps} steps")

    def pretrain_step(self, step, total, losses, pairs_per_s):
        every = max(1, total // 10) if total else 50
        if step == total or step % every == 0:
            rate = f" {pairs_per_s:.1f} pairs/s" if pairs_per_s else ""
            self._print(f"  step {step}/{total} {_fmt_losses(losses)}{rate}")

    def row_done(self, label, seed, message):
        self._print(f"pretraining [{label}] seed {seed}: {message}")

    def task_start(self, task, label, seed):
        self._print(f"task {task} [{label}] seed {seed} ...")

    def cell_done(self, status, text):
        if status != "cached":
            self.done += 1
        self._print(f"[{self.done}/{self.total}] {status}: {text}")

    def info(self, text):
        self._print(text)


class RichProgress(Progress):
    """Live bars: overall cells, the current pretraining step (per-objective
    losses, pairs/s) and the current task."""

    def __init__(self, console=None):
        super().__init__()
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress as Bars, TextColumn, TimeElapsedColumn

        self.console = console or Console()
        # markup off: labels, paths and messages are shown as they are (a row label or a hint
        # holding "[x, y, w, h]" would otherwise be read as rich markup and vanish)
        self.bars = Bars(TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
                         TimeElapsedColumn(), TextColumn("{task.fields[detail]}", markup=False),
                         console=self.console, transient=False)
        self.cells_bar = None
        self.step_bar = None
        self._last = 0.0

    def run_start(self, total, cached, run_dir):
        self.bars.start()
        self.cells_bar = self.bars.add_task("cells", total=total, completed=cached, detail=str(run_dir))

    def row_start(self, label, seed, steps):
        if self.step_bar is not None:
            self.bars.remove_task(self.step_bar)
        self.step_bar = self.bars.add_task(f"pretrain {label} s{seed}", total=max(steps, 1), detail="")

    def pretrain_step(self, step, total, losses, pairs_per_s):
        if self.step_bar is None:
            return
        now = time.monotonic()
        if now - self._last < 0.1 and step != total:
            return
        self._last = now
        rate = f" {pairs_per_s:.1f} pairs/s" if pairs_per_s else ""
        self.bars.update(self.step_bar, completed=step, total=max(total, 1), detail=_fmt_losses(losses) + rate)

    def row_done(self, label, seed, message):
        self.console.print(f"pretraining [bold]{escape(str(label))}[/] seed {seed}: {escape(str(message))}",
                           highlight=False)

    def task_start(self, task, label, seed):
        if self.cells_bar is not None:
            self.bars.update(self.cells_bar, detail=f"task {task} [{label}] seed {seed}")

    def cell_done(self, status, text):
        if self.cells_bar is not None and status != "cached":
            self.bars.advance(self.cells_bar)
        colour = {"done": "green", "failed": "red"}.get(status, "dim")
        self.console.print(f"[{colour}]{escape(str(status))}[/]: {escape(str(text))}", highlight=False)

    def info(self, text):
        self.console.print(text, highlight=False, markup=False)

    def warn(self, text):
        self.warnings.append(text)
        self.console.print(f"[yellow]warning:[/] {escape(str(text))}", highlight=False)

    def close(self):
        self.bars.stop()


def make_progress(quiet: bool = False, stream: TextIO | None = None) -> Progress:
    """Quiet -> warnings only; not a TTY -> plain lines; else rich bars."""
    stream = stream or sys.stdout
    if quiet:
        return Progress()
    if not getattr(stream, "isatty", lambda: False)():
        return PlainProgress(stream)
    return RichProgress()
