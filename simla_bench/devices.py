"""The device names a run accepts, checked before any work.

``check_device(name)`` refuses, in one :class:`~simla_bench.errors.ConfigError`
line listing what is accepted, a name that is not ``auto``, ``cpu``,
``cuda``, ``cuda:N`` or ``mps``, and (unless ``available=False``, e.g. for
jobs that run on other machines) a device this machine does not have.
"""

from __future__ import annotations

import re

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
