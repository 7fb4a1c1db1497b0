"""The built-in tasks' options: their defaults, read from ``tasks/<name>.yaml``,
and the check that a numeric option is positive.

The fine-tuning machinery itself (the step loop, optimiser groups, LR
schedule, model copy, batches) is the core's training toolkit,
:mod:`simla_bench.training.finetune`, the same code pretraining uses; seeding
is the runner's, once per cell.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import yaml

from simla_bench.errors import ConfigError

_HERE = Path(__file__).resolve().parent


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
