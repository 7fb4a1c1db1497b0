"""The built-in tasks' options: their defaults, read from ``tasks/<name>.yaml``,
and their checks (a numeric option positive, a choice one of its values), made
when a task is built by :class:`CheckedTask`, the built-in tasks' base class.

The fine-tuning machinery itself (the step loop, optimiser groups, LR
schedule, model copy, batches) is the core's training toolkit,
:mod:`simla_bench.training.finetune`, the same code pretraining uses; seeding
is the runner's, once per cell.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Mapping

import yaml

from simla_bench.errors import ConfigError
from simla_bench.interfaces import Task

_HERE = Path(__file__).resolve().parent

#: the values of the option ``mode`` (``zero_shot``: evaluate the model as given)
MODES = ("finetune", "zero_shot")


def load_defaults(name: str) -> dict[str, Any]:
    """The default options of task ``name``, read from ``tasks/<name>.yaml``."""
    path = _HERE / f"{name}.yaml"
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: the task defaults must be a mapping of option -> value")
    return dict(data)


def check_positive(task: str, options: Mapping[str, Any], *names: str) -> None:
    for name in names:
        value = options[name]
        if value is None or value <= 0:
            raise ConfigError(f"task '{task}': option '{name}' must be > 0, got {value!r}")


def check_choice(task: str, options: Mapping[str, Any], name: str, choices: tuple[str, ...]) -> None:
    value = options[name]
    if value not in choices:
        allowed = " or ".join(choices) if len(choices) == 2 else f"one of {', '.join(choices)}"
        raise ConfigError(f"task '{task}': {name} must be {allowed}, got {value!r}")


class CheckedTask(Task):
    """A task whose options are checked when it is built: each of :attr:`positive`
    must be > 0, each option of :attr:`choices` one of its values, then the task's
    own :meth:`check_options`; a bad value is a one-line ``ConfigError``."""

    positive: ClassVar[tuple[str, ...]] = ("batch_size", "eval_batch_size")
    choices: ClassVar[Mapping[str, tuple[str, ...]]] = {"mode": MODES}

    def __init__(self, name: str, options: Mapping[str, Any] | None = None):
        super().__init__(name, options)
        check_positive(name, self.options, *self.positive)
        for option, allowed in self.choices.items():
            check_choice(name, self.options, option, allowed)
        self.check_options(name, self.options)

    def check_options(self, name: str, o: Mapping[str, Any]) -> None:
        """The task's own checks, after the declared ones (default: none)."""
