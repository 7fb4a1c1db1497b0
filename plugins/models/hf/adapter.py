"""What every Hugging Face adapter shares: the model API the harness reads.

An adapter is an ``nn.Module`` holding the loaded transformers model
(``adapter.hf``) and exposing, for the parts its family has, the calls the
built-in tasks make on a model (docs/architecture.md, "Model"):

* always: ``capabilities``, ``capability_hints``, ``tokenizer``,
  ``max_text_len``, ``image_size``, ``image_transform(train, size=None)`` (the
  checkpoint's image processor) and ``trained_heads`` (the heads the checkpoint
  filled, :mod:`simla_bench.heads`);
* with ``fusion``: ``fuse(input_ids, attention_mask, image_embeds, ...)`` ->
  :class:`~simla_bench.plugins.backbones.vlp.FusionOutput`, ``fusion_range``
  and ``patch_grid`` (Grad-CAM); a list of two image embeddings fuses the text
  with each image in turn and concatenates the pooled states (the
  ``two_image_fusion`` of BLIP and ViLT, as ViLT's own NLVR2 model does);
* with ``itm_head``: ``itm_logits(fused) -> [B, 2]`` (column 1 = match).

The family modules (:mod:`.dual_encoder`, :mod:`.blip`, :mod:`.vilt`) add
their encoders and heads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping, Sequence

import torch
from torch import nn

from simla_bench.plugins.backbones.vlp import FusionOutput


@dataclass
class LoadReport:
    """What the recipe printed after loading (``summary()``, shown once per model config)."""

    model: str
    cls: str
    source: str
    tensors: int
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    new_heads: list[str] = field(default_factory=list)

    def summary(self) -> str:
        text = f"{self.model}: {self.cls} from {self.source}: {self.tensors} tensors loaded"
        if self.missing:
            text += f"; {len(self.missing)} missing (randomly initialised): {', '.join(self.missing[:5])}"
        if self.unexpected:
            text += f"; {len(self.unexpected)} unused: {', '.join(self.unexpected[:5])}"
        if self.new_heads:
            text += f"; new untrained head(s): {', '.join(self.new_heads)}"
        return text


class HFAdapter(nn.Module):
    """Base of the family adapters (see the module docstring)."""

    #: capabilities every model of the family has (a subclass adds those of its loaded heads)
    base_capabilities: ClassVar[frozenset[str]] = frozenset({"image", "text"})

    def __init__(self, hf: nn.Module, tokenizer: Any, processor: Any, *, max_text_len: int, image_size: int,
                 hints: Mapping[str, str], trained: Sequence[str] = (), square_images: bool = False):
        super().__init__()
        self.hf = hf.eval()
        self.tokenizer = tokenizer
        self.processor = processor
        self._max_text_len = int(max_text_len)
        self._image_size = int(image_size)
        self._square_images = square_images
        self.capability_hints = dict(hints)
        self.trained_heads = set(trained)

    # ------------------------------------------------------------ description
    @property
    def capabilities(self) -> frozenset[str]:
        return frozenset(self.base_capabilities) | self.head_capabilities()

    def head_capabilities(self) -> frozenset[str]:
        """Capabilities of the heads this instance carries (beyond the family's)."""
        return frozenset()

    @property
    def max_text_len(self) -> int:
        return self._max_text_len

    @property
    def image_size(self) -> int:
        return self._image_size

    def image_transform(self, train: bool, size: int | None = None):
        """PIL -> ``[3, S, S]`` through the checkpoint's image processor (no augmentation)."""
        from simla_bench.plugins.models.hf.transform import ProcessorTransform

        if size is not None and int(size) != self.image_size:
            from simla_bench.errors import ConfigError

            raise ConfigError(f"this Hugging Face model works at {self.image_size} px, not {size}",
                              hint="leave pretrain.image_size unset: the checkpoint's image processor sets the size")
        return ProcessorTransform(self.processor, self.image_size, square=self._square_images)

    # ----------------------------------------------------------------- fusion
    def fuse(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
             image_embeds: torch.Tensor | Sequence[torch.Tensor], image_atts: Any = None,
             text_embeds: torch.Tensor | None = None,
             output_attentions: bool | int | Sequence[int] = False) -> FusionOutput:
        """The text fused with the image (``image_embeds`` from :meth:`encode_image`);
        a list ``[e1, e2]`` fuses it with each and concatenates hidden and pooled states."""
        if isinstance(image_embeds, (list, tuple)):
            outs = [self.fuse_one(input_ids, attention_mask, e, index, False) for index, e in enumerate(image_embeds)]
            return FusionOutput(torch.cat([o.hidden for o in outs], dim=-1),
                                pooled=torch.cat([o.pooled for o in outs], dim=-1))
        return self.fuse_one(input_ids, attention_mask, image_embeds, 0, output_attentions)

    def fuse_one(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, image_embeds: torch.Tensor,
                 image_index: int, output_attentions: bool | int | Sequence[int]) -> FusionOutput:
        raise NotImplementedError(f"{type(self).__name__} has no fusion")

    def enable_two_image_fusion(self) -> "HFAdapter":
        """Two images fuse one after the other (see :meth:`fuse`); nothing to add by default."""
        return self

    def attention_layers(self, output_attentions: bool | int | Sequence[int], total: int) -> list[int]:
        """Absolute layer indices asked for by ``output_attentions`` (True = all)."""
        if output_attentions is True:
            return list(range(total))
        if output_attentions is False or output_attentions is None:
            return []
        wanted = [output_attentions] if isinstance(output_attentions, int) else list(output_attentions)
        return sorted({i if i >= 0 else total + i for i in wanted})

    @property
    def patch_grid(self) -> tuple[int, int]:
        side = self.image_size // int(self.patch_size)
        return side, side
