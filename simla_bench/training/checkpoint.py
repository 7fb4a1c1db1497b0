"""Pretraining checkpoints: ``workdir/checkpoint.pt``, written atomically
(temp file in the same folder, fsync, rename, fsync of the folder).

A checkpoint holds the model, the momentum model (when it is not already a
submodule of the model), the optimizer, the LR schedule, the fp16 grad scaler,
each objective's state (queues, codebooks), the RNG states of every rank
(python, numpy, torch CPU and CUDA), the global micro-batch position, the loss
curve so far and bookkeeping that must match for a resume to be valid.

Everything in a checkpoint is *plain*: tensors, dicts, lists, tuples, str,
int, float, bool and None (checked on save), so it loads with
``torch.load(weights_only=True)``.  A file that is not plain (e.g. a pickle
that would run code) is refused with :class:`UnsafeCheckpointError`, never
executed and never deleted; an unreadable one raises
:class:`UnreadableCheckpointError`.  Stale ``.checkpoint.pt.<pid>@<host>.tmp`` files
(:mod:`simla_bench.tmpfiles`) left by a killed writer are removed when the
runner opens the workdir.
"""

from __future__ import annotations

import os
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from simla_bench import tmpfiles
from simla_bench.errors import UserError

CHECKPOINT_NAME = "checkpoint.pt"
FORMAT_VERSION = 1


_PLAIN_SCALARS = (str, int, float, bool, type(None), torch.Tensor)


class UnsafeCheckpointError(UserError):
    """A checkpoint file holds more than plain tensors (it could run code)."""


class UnreadableCheckpointError(UserError):
    """A checkpoint file exists but cannot be read (truncated, corrupt, I/O error)."""


class NotPlainStateError(UserError):
    """A plugin handed the trainer a state that is not plain data (cannot be saved safely)."""


def checkpoint_path(workdir: str | Path) -> Path:
    return Path(workdir) / CHECKPOINT_NAME


def not_plain(obj: Any, where: str = "state") -> str | None:
    """The path of the first non-plain value in ``obj`` ("state.objectives.x.y: Foo"), or None."""
    stack = [(obj, where)]
    while stack:
        value, at = stack.pop()
        if isinstance(value, dict):
            for k, v in value.items():
                if not isinstance(k, (str, int)):
                    return f"{at}: key {k!r} ({type(k).__name__})"
                stack.append((v, f"{at}.{k}"))
        elif isinstance(value, (list, tuple)):
            stack.extend((v, f"{at}[{i}]") for i, v in enumerate(value))
        elif not isinstance(value, _PLAIN_SCALARS):
            return f"{at}: {type(value).__module__}.{type(value).__qualname__}"
    return None


def capture_rng() -> dict[str, Any]:
    """All RNG states of this process, as plain python / tensors."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": (name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        states = state["cuda"]
        if len(states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(states)


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically; refuse a state that is not plain data."""
    problem = not_plain(state)
    if problem:
        raise NotPlainStateError(
            f"cannot checkpoint {problem}: checkpoints hold only tensors, dicts, lists, tuples, "
            "str, int, float, bool and None",
            hint="make the plugin's state_dict() return plain values (e.g. tensors and numbers)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(tmpfiles.tmp_name(path.name))
    try:
        with open(tmp, "wb") as fh:
            torch.save({"format": FORMAT_VERSION, **state}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def torch_load_plain(path: str | Path, map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)``, without torch's warning about a
    pickle protocol it did not write (a refused or foreign file is reported by
    the caller in one line; the warning would only add a second)."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
        return torch.load(path, map_location=map_location, weights_only=True)


def load_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict[str, Any] | None:
    """The checkpoint at ``path``, or None when there is none.

    Loaded with ``weights_only=True``: a file holding anything but plain
    tensors and containers raises :class:`UnsafeCheckpointError` (nothing in
    it runs), an unreadable one :class:`UnreadableCheckpointError`.  The file
    is left where it is either way.
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        state = torch_load_plain(path, map_location)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()
        detail = next((ln.strip() for ln in first if "Unsupported" in ln or "global" in ln.lower()), "")
        raise UnsafeCheckpointError(
            f"{path} is not a plain-tensor checkpoint; refused to load it"
            + (f" ({detail[:160]})" if detail else ""),
            hint="if you did not write it, delete it; else rerun the row with --force to start it over") from None
    except (OSError, RuntimeError, EOFError, ValueError) as exc:
        raise UnreadableCheckpointError(
            f"cannot read checkpoint {path} ({type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''})",
            hint="fix the cause and rerun, or rerun with --force to start the row over") from None
    if not isinstance(state, dict):
        raise UnsafeCheckpointError(f"{path} is not a simla-bench checkpoint (a {type(state).__name__}, not a dict)",
                                    hint="rerun the row with --force to start it over")
    return state
