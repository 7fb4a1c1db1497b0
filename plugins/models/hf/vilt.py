"""ViLT: one transformer over the caption's tokens and the image's patches.

* ``encode_image(pixels) -> [B, 1+N, D]``: ViLT's patch embeddings with its image
  [CLS] token and position embeddings, in raster order (transformers' own
  ``visual_embed`` gives the same tokens in a random order: for a full image it
  draws a permutation of the patches, which changes nothing downstream but the
  order of the attention maps' image columns, which Grad-CAM lays out on the grid).
* ``fuse(ids, mask, image_embeds)``: ``ViltModel`` on the text and those image
  tokens; ``hidden`` are the text positions of the last layer, ``pooled`` the
  pooler output every ViLT head reads.  Asked for attentions, each asked layer's
  text-to-image block of the self-attention (``[B, H, L, 1+N]``) is returned as
  its cross-attention: the block is cut out of the attention probabilities and
  put back before they weight the values, so the ITM logit's gradient reaches it
  (Grad-CAM).
* Heads: ``rank_output`` (``ViltForImageAndTextRetrieval``; one logit, made
  ``[0, s]`` so that column 1 is the match and softmax gives ``sigmoid(s)``), a
  fresh untrained one when the checkpoint has another head; the VQA classifier
  (``vqa_logits`` over ``vqa_answers``, the config's ``id2label``) of
  ``ViltForQuestionAnswering``; the NLVR2 classifier (``nlvr2_logits`` on the two
  pooled outputs, columns ordered false, true) of ``ViltForImagesAndTextClassification``.
* Two images: each fused with its own image type embedding (1, then 2), as
  transformers' NLVR2 model does; :meth:`enable_two_image_fusion` adds the type-2
  embedding (a copy of type 1) to a checkpoint that has only two types.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from simla_bench.plugins.backbones.vlp import FusionOutput
from simla_bench.plugins.models.hf.adapter import HFAdapter

#: architectures -> the head it carries (capability)
HEADS = {"ViltForImageAndTextRetrieval": "itm_head", "ViltForQuestionAnswering": "vqa_head",
         "ViltForImagesAndTextClassification": "nlvr2_head"}


class ViltAdapter(HFAdapter):
    """``ViltModel`` + the head(s) of the loaded checkpoint (see the module docstring)."""

    base_capabilities = frozenset({"image", "text", "fusion", "itm_head", "two_image_fusion"})

    def __init__(self, hf: nn.Module, tokenizer: Any, processor: Any, *, head: str, **kwargs: Any):
        super().__init__(hf, tokenizer, processor, square_images=True, **kwargs)
        self.head = head
        config = hf.config
        self.patch_size = int(config.patch_size)
        self.fusion_range = (0, int(config.num_hidden_layers))
        if head != "itm_head":  # every ViLT can score a pair: a new head, trained only by fine-tuning
            self.rank_output = nn.Linear(config.hidden_size, 1)
        labels = {int(k): str(v) for k, v in (config.id2label or {}).items()}
        self.vqa_answers = [labels[i] for i in sorted(labels)] if head == "vqa_head" else []
        self._true_column = next((i for i, v in labels.items() if v.lower() == "true"), 1)

    def head_capabilities(self) -> frozenset[str]:
        return frozenset({self.head}) - {"itm_head", ""}

    @property
    def vilt(self) -> nn.Module:
        return self.hf.vilt

    # ---------------------------------------------------------------- images
    def encode_image(self, images: torch.Tensor, patch_mask: Any = None) -> torch.Tensor:
        emb = self.vilt.embeddings
        x = emb.patch_embeddings(images)                               # [B, D, h, w]
        batch, width, h, w = x.shape
        grid = self.vilt.config.image_size // self.vilt.config.patch_size
        spatial = emb.position_embeddings[:, 1:, :].transpose(1, 2).reshape(1, width, grid, grid)
        if (h, w) != (grid, grid):
            spatial = F.interpolate(spatial, size=(h, w), mode="bilinear", align_corners=True)
        patches = x.flatten(2).transpose(1, 2) + spatial.flatten(2).transpose(1, 2)
        cls = (emb.cls_token + emb.position_embeddings[:, :1, :]).expand(batch, -1, -1)
        return emb.dropout(torch.cat([cls, patches], dim=1))

    def enable_two_image_fusion(self) -> "ViltAdapter":
        types = self.vilt.embeddings.token_type_embeddings
        if types.num_embeddings < 3:
            grown = nn.Embedding(3, types.embedding_dim).to(types.weight.device, types.weight.dtype)
            with torch.no_grad():
                grown.weight[: types.num_embeddings] = types.weight
                grown.weight[2] = types.weight[1]
            self.vilt.embeddings.token_type_embeddings = grown
        return self

    # ---------------------------------------------------------------- fusion
    def fuse_one(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, image_embeds: torch.Tensor,
                 image_index: int, output_attentions: bool | int | Sequence[int]) -> FusionOutput:
        total = self.fusion_range[1]
        layers = self.attention_layers(output_attentions, total)
        text_len = input_ids.shape[1]
        image_mask = torch.ones(image_embeds.shape[:2], dtype=torch.long, device=image_embeds.device)
        with self._text_to_image_blocks(layers, text_len) as blocks:
            out = self.vilt(input_ids=input_ids, attention_mask=attention_mask, image_embeds=image_embeds,
                            pixel_mask=image_mask, image_token_type_idx=image_index + 1)
        cross = [blocks.get(i) for i in range(total)] if layers else None
        return FusionOutput(out.last_hidden_state[:, :text_len], cross_attentions=cross, pooled=out.pooler_output)

    @contextlib.contextmanager
    def _text_to_image_blocks(self, layers: list[int], text_len: int) -> Iterator[dict[int, torch.Tensor]]:
        """While open, the attention probabilities of ``layers`` flow through their
        text-to-image block, collected in the yielded dict (layer -> ``[B, H, L, 1+N]``)."""
        blocks: dict[int, torch.Tensor] = {}
        handles = []
        for i in layers:
            def hook(module, args, probs, i=i):
                block = probs[:, :, :text_len, text_len:]
                blocks[i] = block
                top = torch.cat([probs[:, :, :text_len, :text_len], block], dim=-1)
                return torch.cat([top, probs[:, :, text_len:, :]], dim=2)

            dropout = self.vilt.encoder.layer[i].attention.attention.dropout
            handles.append(dropout.register_forward_hook(hook))
        try:
            yield blocks
        finally:
            for handle in handles:
                handle.remove()

    # ----------------------------------------------------------------- heads
    def itm_logits(self, fused: FusionOutput | torch.Tensor) -> torch.Tensor:
        pooled = fused.pooled if isinstance(fused, FusionOutput) else fused
        head = self.hf.rank_output if self.head == "itm_head" else self.rank_output
        score = head(pooled)[:, 0]
        return torch.stack([torch.zeros_like(score), score], dim=1)

    def vqa_logits(self, fused: FusionOutput | torch.Tensor) -> torch.Tensor:
        """The checkpoint's answer classifier: ``[B, len(vqa_answers)]``."""
        pooled = fused.pooled if isinstance(fused, FusionOutput) else fused
        return self.hf.classifier(pooled)

    def nlvr2_logits(self, fused: FusionOutput | torch.Tensor) -> torch.Tensor:
        """The checkpoint's NLVR2 classifier on the two pooled states: ``[B, 2]`` (false, true)."""
        pooled = fused.pooled if isinstance(fused, FusionOutput) else fused
        logits = self.hf.classifier(pooled)
        true = logits[:, self._true_column]
        false = logits[:, 1 - self._true_column] if logits.shape[1] == 2 else torch.zeros_like(true)
        return torch.stack([false, true], dim=1)
