"""A rich progress bar for :func:`simla_bench.training.pretrain`.

``with pretrain_progress(console) as progress: pretrain(..., progress=progress)``
shows step/total, the weighted loss, each objective's loss, the learning rate
and pairs per second.  The callback signature is the trainer's:
``progress(step=, total=, losses=, pairs_per_s=, lr=)``.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator


def format_losses(losses: dict[str, float]) -> str:
    parts = [f"loss {losses['loss']:.3f}"] if "loss" in losses else []
    parts += [f"{k} {v:.3f}" for k, v in losses.items() if k != "loss"]
    return "  ".join(parts)


@contextmanager
def pretrain_progress(console: Any = None, description: str = "pretrain",
                      transient: bool = False) -> Iterator[Callable[..., None]]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
                   console=console, transient=transient)
    task = None

    def update(*, step: int, total: int, losses: dict[str, float], pairs_per_s: float, lr: float, **_: Any) -> None:
        nonlocal task
        info = f"{format_losses(losses)}  lr {lr:.2e}  {pairs_per_s:.0f} pairs/s"
        if task is None:
            task = bar.add_task(description, total=total, info=info)
        bar.update(task, completed=step, total=total, info=info)

    with bar:
        yield update
