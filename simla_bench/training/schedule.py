"""Learning-rate and distillation-weight schedules.

* :class:`WarmupCosine`: linear warmup from ``min_lr`` to ``lr`` over
  ``warmup_steps`` optimizer steps, then cosine decay to ``min_lr`` at
  ``total_steps`` (SIMLA/ALBEF: warmup from 1e-5, cosine to 1e-5).
* :func:`alpha_at`: momentum-distillation weight ramped linearly from 0 to
  ``alpha`` over ``warmup`` steps (ALBEF/SIMLA: over the first epoch).
"""

from __future__ import annotations

import math
from typing import Any


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
        if self.warmup_steps > 0 and step < self.warmup_steps:
            return self.min_lr + (self.lr - self.min_lr) * step / self.warmup_steps
        span = max(1, self.total_steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / span)
        return self.min_lr + 0.5 * (self.lr - self.min_lr) * (1.0 + math.cos(math.pi * progress))

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
