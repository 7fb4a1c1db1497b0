"""CLIP and SigLIP: two encoders and a similarity, no fusion.

:class:`DualEncoderAdapter` reads transformers' ``CLIPModel`` / ``SiglipModel``
through their own sub-modules:

* ``encode_image(pixels) -> [B, Dv]``: the vision tower's pooled output (CLIP:
  the post-layernormed [CLS]; SigLIP: its attention-pooling head);
* ``encode_text(ids, mask) -> [B, Dt]``: the text tower's pooled output (CLIP:
  the EOS token's state; SigLIP: the last position's, after its head).  SigLIP
  was trained on texts padded to its full length without an attention mask, so
  its texts are re-padded to ``max_position_embeddings`` and read without the
  mask, as its processor's ``padding="max_length"`` would give them;
* ``image_feat`` / ``text_feat``: the L2-normalised projections (CLIP's
  ``visual_projection`` / ``text_projection``; SigLIP has none);
* ``similarity(image_feat, text_feat) -> [N_img, N_txt]``: the model's own
  logits (CLIP ``logit_scale.exp() * cos``; SigLIP ``+ logit_bias``), equal to
  ``logits_per_image``;
* ``temp``: ``1 / logit_scale.exp()``, the temperature ITC fine-tuning divides by.

Retrieval ranks by ``image_feat @ text_feat.T`` (the cosine), which orders
every query as the model's logits do.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from simla_bench.plugins.models.hf.adapter import HFAdapter


class DualEncoderAdapter(HFAdapter):
    """CLIP (``projections=True``) or SigLIP (``projections=False``, ``fixed_length`` texts)."""

    base_capabilities = frozenset({"image", "text", "image_feat", "text_feat"})

    def __init__(self, hf: nn.Module, tokenizer: Any, processor: Any, *, projections: bool,
                 fixed_length: int | None = None, **kwargs: Any):
        super().__init__(hf, tokenizer, processor, **kwargs)
        self.projections = projections
        self.fixed_length = fixed_length

    def encode_image(self, images: torch.Tensor, patch_mask: Any = None) -> torch.Tensor:
        return self.hf.vision_model(pixel_values=images).pooler_output

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        if self.fixed_length:
            pad = self.tokenizer.pad_token_id
            extra = self.fixed_length - input_ids.shape[1]
            ids = F.pad(input_ids, (0, extra), value=pad if pad is not None else 0) if extra > 0 \
                else input_ids[:, :self.fixed_length]
            return self.hf.text_model(input_ids=ids).pooler_output
        return self.hf.text_model(input_ids=input_ids, attention_mask=attention_mask).pooler_output

    def image_feat(self, image_embeds: torch.Tensor) -> torch.Tensor:
        x = self.hf.visual_projection(image_embeds) if self.projections else image_embeds
        return F.normalize(x, dim=-1)

    def text_feat(self, text_embeds: torch.Tensor, attention_mask: Any = None) -> torch.Tensor:
        x = self.hf.text_projection(text_embeds) if self.projections else text_embeds
        return F.normalize(x, dim=-1)

    def similarity(self, image_feat: torch.Tensor, text_feat: torch.Tensor) -> torch.Tensor:
        """The model's image-to-text logits (``logits_per_image``) from normalised features."""
        logits = image_feat @ text_feat.t() * self.hf.logit_scale.exp()
        bias = getattr(self.hf, "logit_bias", None)
        return logits + bias if bias is not None else logits

    @property
    def temp(self) -> torch.Tensor:
        return torch.exp(-self.hf.logit_scale.reshape(()))
