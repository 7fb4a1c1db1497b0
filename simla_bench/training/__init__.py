"""The training toolkit (see ``docs/architecture.md``, "Trainer" and "One training
toolkit"): the generic pretraining loop and the fine-tuning loop every task uses
(:mod:`~simla_bench.training.finetune`), with one LR schedule (``schedule``), one
optimizer grouping (``optim``), one seeding (``seeding``), one data subsetting
(``data.subset_records``) and the contrastive loss math (``contrastive``).

Public entry points: :func:`pretrain` and :class:`PretrainResult`; the per-step
context objectives receive is :class:`StepContext`.  Heavy imports (torch) are
deferred to the submodules, so importing this package stays cheap.
"""

from __future__ import annotations

from typing import Any

__all__ = ["pretrain", "PretrainResult", "StepContext", "NonFiniteLossError", "UnmetNeedsError"]


def __getattr__(name: str) -> Any:
    if name in ("pretrain", "PretrainResult"):
        from simla_bench.training import loop

        return getattr(loop, name)
    if name == "StepContext":
        from simla_bench.training.step_context import StepContext

        return StepContext
    if name in ("NonFiniteLossError", "UnmetNeedsError", "CheckpointMismatchError"):
        from simla_bench.training import errors

        return getattr(errors, name)
    raise AttributeError(name)
