"""Errors the trainer raises for problems the user (or a plugin author) can fix."""

from __future__ import annotations

from simla_bench.errors import ConfigError, PluginError, UserError


class NonFiniteLossError(PluginError):
    """An objective returned a NaN or infinite loss."""

    def __init__(self, objective: str, step: int, value: float):
        self.objective = objective
        self.step = step
        self.value = value
        super().__init__(
            f"objective '{objective}' returned a non-finite loss ({value}) at step {step}",
            hint="lower pretrain.lr, raise pretrain.warmup_steps, use pretrain.precision: fp32, "
            "or check the objective's inputs",
        )


class UnmetNeedsError(ConfigError):
    """An objective needs model parts the configured model does not provide."""


class CheckpointMismatchError(UserError):
    """``workdir/checkpoint.pt`` was written by a different pretraining setup."""


class DataTooSmallError(UserError):
    """Fewer pretraining pairs than one global batch."""
