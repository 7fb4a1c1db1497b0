"""Errors the trainer raises for problems the user (or a plugin author) can fix."""

from __future__ import annotations

from simla_bench.errors import ConfigError, PluginError, UserError


class NonFiniteLossError(PluginError):
    """An objective returned a NaN or infinite loss, or stopped on non-finite
    values (``detail``: what they were, from :class:`NonFiniteValuesError`);
    ``others``: further objectives whose loss was non-finite at the same step."""

    def __init__(self, objective: str, step: int, value: float, detail: str | None = None,
                 others: tuple[str, ...] = ()):
        self.objective = objective
        self.step = step
        self.value = value
        self.detail = detail
        what = f"met non-finite {detail}" if detail else f"returned a non-finite loss ({value})"
        also = f" (also non-finite: {', '.join(others)})" if others else ""
        super().__init__(
            f"objective '{objective}' {what} at step {step}{also}",
            hint="lower pretrain.lr, raise pretrain.warmup_steps, use pretrain.precision: fp32, "
            "or check the objective's inputs",
        )


class NonFiniteValuesError(PluginError):
    """Raised inside ``Objective.loss`` for NaN/inf values the objective cannot
    work with (e.g. ITM's similarity weights for sampling negatives, which
    ``torch.multinomial`` would reject); the trainer turns it into a
    :class:`NonFiniteLossError` naming the objective and the step.  ``detail``
    says what was non-finite, e.g. ``"hard-negative similarity weights"``."""

    def __init__(self, detail: str):
        self.detail = detail
        super().__init__(f"non-finite {detail}", hint="raised inside an objective; the trainer names it and the step")


class UnmetNeedsError(ConfigError):
    """An objective needs model parts the configured model does not provide."""


class CheckpointMismatchError(UserError):
    """``workdir/checkpoint.pt`` was written by a different pretraining setup."""


class DataTooSmallError(UserError):
    """Fewer pretraining pairs than one global batch."""
