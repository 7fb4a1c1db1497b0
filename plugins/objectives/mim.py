"""MIM: text-conditioned masked image modelling (XMM's image side), SIMLA's target.

BEiT block-wise masking (~29% of the patch grid) replaces patches by the ViT's
mask token before the ViT blocks; the masked image tokens go through the
model's ``fuse_image`` (image tokens as queries cross-attending to the clean
caption) and the MIM head; cross-entropy on the masked positions against the
discrete visual tokens of the clean image (see :mod:`visual_vocab`), distilled
with alpha from the momentum model's logits on the same masked input (its
image tokens attend to the online model's caption states, as SIMLA's code does).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch

from simla_bench.errors import ConfigError, PluginError
from simla_bench.interfaces import Objective

from simla_bench.plugins.objectives.common import (
    IGNORE_INDEX, check_distill, check_fraction, distilled_token_loss, mim_logits)
from simla_bench.plugins.objectives.masking import BlockMaskGenerator
from simla_bench.plugins.objectives.visual_vocab import KMeansCodebook, load_user_tokenizer


def _grid(model: Any) -> tuple[int, int]:
    grid = model.patch_grid
    return (int(grid[0]), int(grid[1]))


def _image_size(model: Any) -> int:
    size = model.image_size
    return int(size[0] if isinstance(size, (tuple, list)) else size)


def _load_images(paths: Sequence[Any], size: int, batch: int = 64):
    """Yield normalised ``[B,3,size,size]`` batches (the eval transform the trainer's data uses)."""
    try:
        from simla_bench.plugins.datasets.images import image_transform, load_image
        transform = image_transform(size, train=False)
    except ImportError:  # the datasets plugin is absent: same normalisation timm uses
        from PIL import Image
        import numpy as np
        from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

        mean = torch.tensor(IMAGENET_DEFAULT_MEAN).view(3, 1, 1)
        std = torch.tensor(IMAGENET_DEFAULT_STD).view(3, 1, 1)

        def load_image(path):
            return Image.open(path).convert("RGB")

        def transform(img):
            arr = np.asarray(img.resize((size, size), Image.BICUBIC), dtype=np.float32) / 255.0
            return (torch.from_numpy(arr).permute(2, 0, 1) - mean) / std

    for start in range(0, len(paths), batch):
        yield torch.stack([transform(load_image(p)) for p in paths[start:start + batch]])


class MIM(Objective):
    """Masked image modelling conditioned on the caption."""

    needs = frozenset({"fusion", "mim_head", "fuse_image", "patch_mask"})
    defaults = {
        #: fraction of the patch grid masked (SIMLA: 75 of 256 patches)
        "mask_ratio": 0.29,
        #: smallest block in patches; null = 16/256 of the grid (SIMLA's 16 on 16x16), at least 2
        "min_block": None,
        "min_aspect": 0.3,
        #: built-in k-means visual vocabulary size (ignored with visual_tokenizer)
        "codebook_size": 256,
        #: how many distinct training images the codebook is fitted on
        "fit_images": 512,
        #: 'module:attr' of a user visual tokenizer factory (see docs/objectives.md); '' = k-means
        "visual_tokenizer": "",
        "seed": 0,
        "distill": True,
    }

    def __init__(self, name: str = "mim", options: Mapping[str, Any] | None = None):
        super().__init__(name, options)
        check_fraction(name, self.options, "mask_ratio")
        self.tokenizer: Any = None
        self.masker: BlockMaskGenerator | None = None

    # -- setup ------------------------------------------------------------
    def setup(self, model: Any, data: Any) -> None:
        check_distill(self, model)
        h, w = _grid(model)
        self.masker = BlockMaskGenerator(h, w, ratio=self.options["mask_ratio"], min_block=self.options["min_block"],
                                         min_aspect=self.options["min_aspect"])
        spec = self.options["visual_tokenizer"]
        if spec:
            self.tokenizer = load_user_tokenizer(spec, model)
        elif self.tokenizer is None:
            self.tokenizer = self.fit_codebook(model, data)
        if callable(getattr(model, "set_mim_vocab", None)):
            model.set_mim_vocab(self.tokenizer.vocab_size)  # also sizes the momentum copy's head
        self._check_head(model)

    def fit_codebook(self, model: Any, data: Any) -> KMeansCodebook:
        paths = sorted({str(r.image) for r in (data or [])})
        if not paths:
            raise PluginError(f"objective '{self.name}': no pretraining images to fit the visual codebook on",
                              hint="give the pretraining dataset, or set visual_tokenizer")
        # deterministic subset: evenly spaced over the sorted unique paths
        n = min(len(paths), self.options["fit_images"])
        chosen = [paths[int(i * len(paths) / n)] for i in range(n)]
        size = _image_size(model)
        patch = size // _grid(model)[1]
        return KMeansCodebook.fit(_load_images(chosen, size), vocab_size=self.options["codebook_size"],
                                  patch=patch, seed=self.options["seed"])

    def _check_head(self, model: Any) -> None:
        out = getattr(model, "mim_vocab_size", None)
        if out is not None and int(out) < self.tokenizer.vocab_size:
            raise ConfigError(f"objective '{self.name}': the model's MIM head has {out} outputs but the visual "
                              f"vocabulary has {self.tokenizer.vocab_size} codes",
                              hint="make the model's mim vocabulary at least the codebook size")

    # -- loss -------------------------------------------------------------
    def targets(self, images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            codes = self.tokenizer(images)
        return codes.flatten(1).long()

    def loss(self, step: Any) -> torch.Tensor:
        if self.masker is None or self.tokenizer is None:
            raise PluginError(f"objective '{self.name}' used before setup(model, data)")
        model = step.model
        images = step.batch["images"]
        input_ids, att = step.batch["input_ids"], step.batch["attention_mask"]
        codes = self.targets(images)
        mask = self.masker.batch(images.shape[0], device=images.device)
        if codes.shape != mask.shape:
            raise PluginError(f"visual tokenizer gave {tuple(codes.shape[1:])} codes per image, "
                              f"the patch grid has {mask.shape[1]} patches")
        labels = torch.where(mask, codes, torch.full_like(codes, IGNORE_INDEX))
        vocab = self.tokenizer.vocab_size
        # the caption states the image queries attend to; SIMLA's momentum pass attends to these ONLINE ones too
        context = model.caption_context(input_ids, att) if hasattr(model, "caption_context") else None
        extra = {} if context is None else {"context": context}
        hidden = model.fuse_image(model.encode_image(images, patch_mask=mask), input_ids, att, **extra)
        logits = mim_logits(model, hidden[:, 1:])
        if logits.shape[-1] < vocab:
            raise ConfigError(f"objective '{self.name}': the model's MIM head has {logits.shape[-1]} outputs but the "
                              f"visual vocabulary has {vocab} codes",
                              hint="make the model's mim vocabulary at least the codebook size")
        logits = logits[..., :vocab]
        m_logits = None
        if self.options["distill"] and step.momentum is not None and step.alpha > 0:
            with torch.no_grad():
                mom = step.momentum
                m_extra = {} if context is None else {"context": context.detach()}
                m_hidden = mom.fuse_image(mom.encode_image(images, patch_mask=mask), input_ids, att, **m_extra)
                m_logits = mim_logits(mom, m_hidden[:, 1:])[..., :vocab]
        return distilled_token_loss(logits, labels, m_logits, step.alpha)

    # -- state ------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        sd = getattr(self.tokenizer, "state_dict", None)
        return {"visual_tokenizer": sd()} if callable(sd) else {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        tok_state = state.get("visual_tokenizer")
        if tok_state is None:
            return
        if self.tokenizer is None and tok_state.get("kind") == "kmeans":
            self.tokenizer = KMeansCodebook(tok_state["vocab_size"], tok_state["patch"])
        if self.tokenizer is not None and hasattr(self.tokenizer, "load_state_dict"):
            self.tokenizer.load_state_dict(tok_state)
