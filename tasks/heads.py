"""Small task heads on the pooled fused representation, how to find the
fusion width of a model (one probe forward), and a model's own head used as a
task's head (:class:`ModelHead`)."""

from __future__ import annotations

import torch
from torch import nn


def mlp_head(width: int, n_out: int, hidden: int | None = None, norm: bool = False) -> nn.Module:
    """``Linear(width, hidden) -> GELU [-> LayerNorm] -> Linear(hidden, n_out)``.

    NLVR2 uses ALBEF's ``Linear, ReLU, Linear`` shape (GELU here, same role);
    VQA uses the UNITER-style head with ``hidden = 2 * width`` and LayerNorm.
    """
    hidden = hidden or width
    layers: list[nn.Module] = [nn.Linear(width, hidden), nn.GELU()]
    if norm:
        layers.append(nn.LayerNorm(hidden))
    layers.append(nn.Linear(hidden, n_out))
    return nn.Sequential(*layers)


@torch.no_grad()
def fusion_width(model, image: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> int:
    """Hidden size of the fused text tokens, by one probe forward of one pair."""
    out = model.fuse(input_ids[:1], attention_mask[:1], model.encode_image(image[:1]))
    return int(out.hidden.shape[-1])


class ModelHead(nn.Module):
    """A head the model itself carries, used as the task's head: ``forward(pooled)``
    calls ``getattr(model, method)(pooled)`` (e.g. ``vqa_logits`` of a model with the
    ``vqa_head`` capability).  It holds no parameters of its own: the model is kept
    outside the module tree, so an optimiser over ``[model, head]`` sees each once."""

    def __init__(self, model, method: str):
        super().__init__()
        self.__dict__["_call"] = getattr(model, method)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self._call(pooled)
