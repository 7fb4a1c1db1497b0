"""Pretraining checkpoints: ``workdir/checkpoint.pt``, written atomically
(temp file in the same folder, fsync, rename, fsync of the folder).

A checkpoint holds the model, the momentum model (when it is not already a
submodule of the model), the optimizer, the LR schedule, the fp16 grad scaler,
each objective's state (queues, codebooks), the RNG states of every rank
(python, numpy, torch CPU and CUDA), the global micro-batch position, the loss
curve so far and bookkeeping that must match for a resume to be valid.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

CHECKPOINT_NAME = "checkpoint.pt"
FORMAT_VERSION = 1


def checkpoint_path(workdir: str | Path) -> Path:
    return Path(workdir) / CHECKPOINT_NAME


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
    """Write ``state`` to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
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


def load_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict[str, Any] | None:
    """The checkpoint at ``path``, or None when there is none.

    The file is one this harness wrote into its own run directory; objective
    states may hold arbitrary picklable objects, so it is not loaded with
    ``weights_only``.
    """
    path = Path(path)
    if not path.is_file():
        return None
    return torch.load(path, map_location=map_location, weights_only=False)
