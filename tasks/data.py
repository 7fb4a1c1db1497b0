"""Turning dataset records into tensors for the tasks: an image bank that
decodes each distinct image file once, and text tokenisation.

Images go through the model's own evaluation transform
(``model.image_transform(train=False)``), texts through the tokenizer with the
model's caption cleaning when it has one (``tokenizer.clean_text``) and the
model's text length (``model.max_text_len``) unless a task option sets one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch


def load_split(source, kind: str, split: str, required: bool, skipped: list[str]):
    """``source.load(kind, split)``; an optional split the source cannot give
    (e.g. ``test_comp`` of a real dataset) returns ``None`` and appends
    ``"split: reason"`` to ``skipped``; a required one raises."""
    from simla_bench.errors import DataError

    try:
        return source.load(kind, split)
    except DataError as exc:
        if required:
            raise
        skipped.append(f"{split}: {exc.one_line()}")
        return None


class ImageBank:
    """Distinct image files of a split decoded once into one tensor
    ``[N, 3, S, S]``; ``index(paths)`` maps paths to rows."""

    def __init__(self, paths: Sequence[Path], model):
        """``model``: the model whose evaluation transform
        (``model.image_transform(train=False)``, at ``model.image_size``)
        decodes the images; the transform is the model's (tasks import no
        plugin, docs/architecture.md "Layering rules")."""
        from simla_bench.imagefiles import load_image

        self.paths: list[Path] = []
        self._row: dict[str, int] = {}
        for p in paths:
            key = str(p)
            if key not in self._row:
                self._row[key] = len(self.paths)
                self.paths.append(Path(p))
        if not hasattr(model, "image_transform"):
            from simla_bench.errors import UserError

            raise UserError(f"the model ({type(model).__name__}) has no image_transform(train, size=None), "
                            "which the tasks decode images with",
                            hint="give the model plugin's model an image_transform (docs/plugins.md 'Models')")
        size = int(model.image_size)
        transform = model.image_transform(train=False)
        if self.paths:
            self.tensor = torch.stack([transform(load_image(p)) for p in self.paths])
        else:
            self.tensor = torch.zeros(0, 3, size, size)

    def __len__(self) -> int:
        return len(self.paths)

    def index(self, paths: Sequence[Path]) -> torch.Tensor:
        return torch.tensor([self._row[str(p)] for p in paths], dtype=torch.long)


def tokenize(tokenizer, texts: Sequence[str], max_len: int, device: torch.device | str = "cpu",
             kind: str = "caption"):
    """Tokenise ``texts`` padded to the longest (truncated to ``max_len``);
    returns ``(input_ids, attention_mask)`` long tensors on ``device``.
    ``kind`` (``caption`` or ``question``) picks the model's cleaning rule."""
    clean = getattr(tokenizer, "clean_text", None)
    texts = clean(list(texts), kind) if clean else list(texts)
    enc = tokenizer(texts, padding="longest", truncation=True, max_length=max_len, return_tensors="pt")
    return enc["input_ids"].to(device), enc["attention_mask"].to(device)


def text_max_len(model, options) -> int:
    """The option ``max_text_len`` when set (> 0), else the model's own."""
    value = options.get("max_text_len", 0) or 0
    if value > 0:
        return int(value)
    own = getattr(model, "max_text_len", None)
    if not own:
        from simla_bench.errors import ConfigError

        raise ConfigError(f"the model ({type(model).__name__}) declares no max_text_len",
                          hint="set the task option max_text_len, or give the model a max_text_len")
    return int(own)


@torch.no_grad()
def encode_images(model, images: torch.Tensor, batch_size: int, device) -> torch.Tensor:
    """``model.encode_image`` over ``images`` in batches (no grad)."""
    out = [model.encode_image(images[i:i + batch_size].to(device)) for i in range(0, len(images), batch_size)]
    return torch.cat(out) if out else torch.zeros(0)


@torch.no_grad()
def encode_texts(model, ids: torch.Tensor, mask: torch.Tensor, batch_size: int) -> torch.Tensor:
    """``model.encode_text`` over token ids in batches (no grad)."""
    out = [model.encode_text(ids[i:i + batch_size], mask[i:i + batch_size]) for i in range(0, len(ids), batch_size)]
    return torch.cat(out) if out else torch.zeros(0)
