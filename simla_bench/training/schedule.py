"""Learning-rate and distillation-weight schedules, for pretraining and fine-tuning.

* :func:`warmup_cosine`: the one LR schedule: linear warmup from ``min_lr`` to
  ``lr`` over ``warmup_steps`` optimizer steps, then cosine decay to
  ``min_lr`` at ``total_steps`` (SIMLA/ALBEF: warmup from 1e-5, cosine to
  1e-5).  ``warmup_offset`` says which warmup step reaches ``lr``: pretraining
  uses 0 (step ``i`` of the warmup gets ``i / warmup``, so step 0 trains at
  ``min_lr``), the tasks' fine-tuning 1 (``(i + 1) / warmup``: the first step
  already moves, the last warmup step is at the peak).  Both conventions are
  kept so that the numbers of existing results do not move.
* :class:`WarmupCosine`: applies :func:`warmup_cosine` to an optimizer from
  its step count (the pretraining loop's scheduler, checkpointed).
* :func:`alpha_at`: momentum-distillation weight ramped linearly from 0 to
  ``alpha`` over ``warmup`` steps (ALBEF/SIMLA: over the first epoch).
"""

from __future__ import annotations

import math
from typing import Any


def warmup_cosine(step: int, total_steps: int, lr: float, min_lr: float, warmup_steps: int,
                  warmup_offset: int = 0) -> float:
    """The learning rate of optimizer step ``step`` (0-based); see the module docstring."""
    if warmup_steps > 0 and step < warmup_steps:
        return min_lr + (lr - min_lr) * (step + warmup_offset) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return min_lr + 0.5 * (lr - min_lr) * (1.0 + math.cos(math.pi * progress))


class WarmupCosine:
    """Sets ``param_group['lr']`` of an optimizer from the optimizer-step count."""

    def __init__(self, optimizer: Any, lr: float, min_lr: float, warmup_steps: int, total_steps: int):
        self.optimizer = optimizer
        self.lr = float(lr)
        self.min_lr = float(min(min_lr, lr))
        self.warmup_steps = int(warmup_steps)
        self.total_steps = int(total_steps)
        self.step_count = 0
        self._apply()

    def lr_at(self, step: int) -> float:
        return warmup_cosine(step, self.total_steps, self.lr, self.min_lr, self.warmup_steps)

    def current_lr(self) -> float:
        return self.lr_at(self.step_count)

    def _apply(self) -> None:
        lr = self.current_lr()
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def step(self) -> None:
        self.step_count += 1
        self._apply()

    def state_dict(self) -> dict[str, Any]:
        return {"step_count": self.step_count, "lr": self.lr, "min_lr": self.min_lr,
                "warmup_steps": self.warmup_steps, "total_steps": self.total_steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step_count = int(state["step_count"])
        self._apply()


def alpha_at(step: int, alpha: float, warmup: int) -> float:
    """Distillation weight at optimizer step ``step`` (0-based)."""
    if warmup <= 0:
        return float(alpha)
    return float(alpha) * min(1.0, step / warmup)
