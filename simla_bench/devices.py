"""The device names a run accepts, checked before any work, and what they resolve to.

``check_device(name)`` refuses, in one :class:`~simla_bench.errors.ConfigError`
line listing what is accepted, a name that is not ``auto``, ``cpu``,
``cuda``, ``cuda:N`` or ``mps``, and (unless ``available=False``, e.g. for
jobs that run on other machines) a device this machine does not have.

The one meaning of ``auto``: CUDA when this machine has it, else CPU (never
MPS unless asked for).  :func:`resolve_device_name` turns a device name into
the concrete one the runner records and hands to tasks (``auto`` -> ``cuda``
or ``cpu``, any other name unchanged); :func:`resolve_device` turns it into the
``torch.device`` the trainer and the fine-tuning loops use (``cuda`` -> this
rank's GPU).  Nothing else resolves device names.
"""

from __future__ import annotations

import re
from typing import Any

from simla_bench.errors import ConfigError

#: what ``device:`` / ``--device`` accept
ACCEPTED = ("auto", "cpu", "cuda", "cuda:N", "mps")
_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
_HINT = "use --device (or device:) auto, cpu, cuda, cuda:N or mps"


def check_device(name: str, available: bool = True) -> str:
    """Return ``name`` if it is an accepted device name (and, with ``available``,
    present on this machine); a one-line :class:`ConfigError` otherwise."""
    name = str(name).strip()
    if not _PATTERN.match(name):
        raise ConfigError(f"device '{name}' is not one of {', '.join(ACCEPTED)}", hint=_HINT)
    if not available or name in ("auto", "cpu"):
        return name
    import torch

    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device '{name}' was requested but CUDA is not available on this machine",
                              hint="use --device cpu, or auto (CUDA when there is one)")
        count = torch.cuda.device_count()
        if ":" in name and int(name.split(":")[1]) >= count:
            raise ConfigError(f"device '{name}' does not exist: this machine has {count} CUDA device(s), "
                              f"cuda:0 to cuda:{count - 1}", hint="pick one of them, or cuda / auto")
    elif name == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ConfigError("device 'mps' was requested but Apple's MPS is not available on this machine",
                              hint="use --device cpu, or auto")
    return name


def resolve_device_name(name: str | None) -> str:
    """``auto`` (or empty) -> ``cuda`` when CUDA is available, else ``cpu``; other names unchanged."""
    name = str(name or "auto").strip()
    if name != "auto":
        return name
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_device(name: str | None, local_rank: int | None = None) -> Any:
    """The ``torch.device`` of ``name`` (see :func:`resolve_device_name`); a bare
    ``cuda`` is GPU ``local_rank`` (a distributed rank's own) or the current one.
    A name outside the accepted ones, or CUDA where there is none: one-line ConfigError."""
    import torch

    name = check_device(resolve_device_name(name), available=False)
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device '{name}' was requested but CUDA is not available",
                              hint="use device: cpu or auto")
        if name == "cuda":
            return torch.device("cuda", local_rank if local_rank is not None else torch.cuda.current_device())
    return torch.device(name)
