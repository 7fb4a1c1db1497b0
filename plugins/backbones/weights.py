"""Reading local weight files into state dicts (safetensors, torch pickles, Hugging Face
directories), and the load report every backbone weights load prints.

Shared by the ViT and BERT backbones; never downloads anything.  :func:`report_load` prints one
line per load on stderr -- tensors loaded, and the missing (left at their initialisation),
unexpected (in the file, not used) and resampled (resized to fit, e.g. position embeddings)
ones, with a few names each -- once per process for the same (part, file, outcome), so a
partial load is never silent.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterable, Mapping

import torch

from simla_bench.errors import UserError
from simla_bench.training.checkpoint import torch_load_plain


_REPORTED: set[tuple] = set()


def load_summary(what: str, path: str | Path, loaded: int, missing: Iterable[str], unexpected: Iterable[str],
                 resampled: Iterable[str] = (), max_names: int = 4) -> str:
    """``<what> <- <path>: loaded N tensors; missing M (a, b, ...); unexpected K (...); resampled R (...)``."""
    parts = [f"loaded {loaded} tensor(s)"]
    for label, names in (("missing", list(missing)), ("unexpected", list(unexpected)), ("resampled", list(resampled))):
        if names:
            shown = ", ".join(names[:max_names]) + (", ..." if len(names) > max_names else "")
            parts.append(f"{label} {len(names)} ({shown})")
    return f"weights: {what} <- {path}: " + "; ".join(parts)


def report_load(what: str, path: str | Path, loaded: int, missing: Iterable[str], unexpected: Iterable[str],
                resampled: Iterable[str] = ()) -> str:
    """Print :func:`load_summary` on stderr (once per process for the same load) and return it."""
    missing, unexpected, resampled = list(missing), list(unexpected), list(resampled)
    line = load_summary(what, path, loaded, missing, unexpected, resampled)
    key = (what, str(path), loaded, tuple(missing), tuple(unexpected), tuple(resampled))
    if key not in _REPORTED:
        _REPORTED.add(key)
        print(line, file=sys.stderr)
    return line


def strip_prefixes(state: Mapping[str, torch.Tensor], prefixes: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """Drop any of ``prefixes`` from the start of each key (repeatedly, in order)."""
    out = {}
    for key, value in state.items():
        k = key
        for prefix in prefixes:
            if k.startswith(prefix):
                k = k[len(prefix):]
        out[k] = value
    return out


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict from a ``.safetensors`` / ``.bin`` / ``.pt`` / ``.pth``
    file, or from a Hugging Face model directory (``model.safetensors`` or
    ``pytorch_model.bin``).  A checkpoint dict wrapping ``model`` /
    ``state_dict`` is unwrapped."""
    path = Path(path)
    if path.is_dir():
        for name in ("model.safetensors", "pytorch_model.bin", "model.pt", "model.pth"):
            if (path / name).is_file():
                path = path / name
                break
        else:
            raise UserError(f"weights directory '{path}' holds no model.safetensors or pytorch_model.bin",
                            hint="save the model with save_pretrained, or give the weight file itself")
    if not path.is_file():
        raise UserError(f"weights file '{path}' does not exist", hint="give a local file or directory path")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return dict(load_file(str(path)))
    try:
        obj = torch_load_plain(path)  # weights_only: nothing in the file runs
    except Exception as exc:  # noqa: BLE001
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise UserError(f"cannot read weights file '{path}': {type(exc).__name__}: {first}",
                        hint="give a plain state dict (torch.save of tensors) or a .safetensors file") from None
    for key in ("model", "state_dict", "module"):
        if isinstance(obj, Mapping) and key in obj and isinstance(obj[key], Mapping):
            obj = obj[key]
    if not isinstance(obj, Mapping):
        raise UserError(f"weights file '{path}' does not hold a state dict")
    return dict(obj)
