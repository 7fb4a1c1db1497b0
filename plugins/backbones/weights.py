"""Reading local weight files into state dicts (safetensors, torch pickles, Hugging Face directories).

Shared by the ViT and BERT backbones; never downloads anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch

from simla_bench.errors import UserError


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
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise UserError(f"cannot read weights file '{path}': {type(exc).__name__}: {exc}") from None
    for key in ("model", "state_dict", "module"):
        if isinstance(obj, Mapping) and key in obj and isinstance(obj[key], Mapping):
            obj = obj[key]
    if not isinstance(obj, Mapping):
        raise UserError(f"weights file '{path}' does not hold a state dict")
    return dict(obj)
