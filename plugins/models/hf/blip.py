"""BLIP's retrieval model (``BlipForImageTextRetrieval``): ITC and ITM, ALBEF's heir.

The adapter calls the model's own parts exactly as its ``forward`` does:

* ``encode_image(pixels) -> [B, 1+N, Dv]``: the vision model's last hidden state;
* ``encode_text(ids, mask) -> [B, L, Dt]``: the text encoder without images;
* ``image_feat`` / ``text_feat``: ``normalize(vision_proj([CLS]))`` /
  ``normalize(text_proj([CLS]))``; ``similarity`` their product, equal to
  ``forward(use_itm_head=False).itm_score``;
* ``fuse``: the text encoder cross-attending to the image tokens (``output_attentions``
  keeps the cross-attention maps, ``[B, H, L, 1+N]`` per layer, for Grad-CAM);
  ``pooled`` is the [CLS] state, which ``itm_head`` reads (``itm_logits`` equal to
  ``forward(use_itm_head=True).itm_score``).

transformers' BLIP retrieval model has no temperature (its ITC score is the
plain cosine); ITC fine-tuning uses a learnable ``temp`` of the adapter's own,
starting at BLIP's 0.07.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from simla_bench.plugins.backbones.vlp import FusionOutput
from simla_bench.plugins.models.hf.adapter import HFAdapter

#: BLIP's initial ITC temperature
BLIP_TEMP = 0.07


class BlipAdapter(HFAdapter):
    """ITC (projections) + ITM (fused [CLS]) over ``BlipForImageTextRetrieval``."""

    base_capabilities = frozenset({"image", "text", "image_feat", "text_feat", "fusion", "itm_head",
                                   "two_image_fusion"})

    def __init__(self, hf: nn.Module, tokenizer: Any, processor: Any, **kwargs: Any):
        super().__init__(hf, tokenizer, processor, **kwargs)
        self.temp = nn.Parameter(torch.tensor(BLIP_TEMP))
        self.patch_size = int(hf.config.vision_config.patch_size)
        self.fusion_range = (0, int(hf.config.text_config.num_hidden_layers))

    def encode_image(self, images: torch.Tensor, patch_mask: Any = None) -> torch.Tensor:
        return self.hf.vision_model(pixel_values=images).last_hidden_state

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.hf.text_encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    def image_feat(self, image_embeds: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.hf.vision_proj(image_embeds[:, 0, :]), dim=-1)

    def text_feat(self, text_embeds: torch.Tensor, attention_mask: Any = None) -> torch.Tensor:
        return F.normalize(self.hf.text_proj(text_embeds[:, 0, :]), dim=-1)

    def similarity(self, image_feat: torch.Tensor, text_feat: torch.Tensor) -> torch.Tensor:
        return image_feat @ text_feat.t()

    def fuse_one(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, image_embeds: torch.Tensor,
                 image_index: int, output_attentions: bool | int | Sequence[int]) -> FusionOutput:
        total = self.fusion_range[1]
        layers = self.attention_layers(output_attentions, total)
        image_atts = torch.ones(image_embeds.shape[:-1], dtype=torch.long, device=image_embeds.device)
        out = self.hf.text_encoder(input_ids=input_ids, attention_mask=attention_mask,
                                   encoder_hidden_states=image_embeds, encoder_attention_mask=image_atts,
                                   output_attentions=bool(layers))
        cross = None
        if layers:
            maps = list(out.cross_attentions)
            cross = [maps[i] if i in layers else None for i in range(total)]
        hidden = out.last_hidden_state
        return FusionOutput(hidden, cross_attentions=cross, pooled=hidden[:, 0, :])

    def itm_logits(self, fused: FusionOutput | torch.Tensor) -> torch.Tensor:
        pooled = fused.pooled if isinstance(fused, FusionOutput) else fused
        return self.hf.itm_head(pooled)
