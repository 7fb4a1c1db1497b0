"""Grad-CAM on the fusion encoder's cross-attention, as ALBEF/SIMLA use it
for weakly supervised grounding.

For a batch of (image, expression) pairs: one forward through the fusion
with attention maps kept, the ITM positive logit summed over the batch and
differentiated with respect to the cross-attention probabilities of one
layer (each pair's logit depends only on its own maps, so one backward gives
every pair's gradient).  The map of a pair is

    mean over heads and text tokens of  attention * clamp(gradient, min=0) * text_mask

over the image patches (the image CLS token is dropped), laid out on the
patch grid and upsampled (bicubic) to the image's pixel size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from simla_bench.errors import ConfigError


def cam_from_attention(attn: torch.Tensor, grad: torch.Tensor, text_mask: torch.Tensor) -> torch.Tensor:
    """``attn``, ``grad``: ``[B, H, L, 1 + N]`` cross-attention probabilities
    and their gradients; ``text_mask``: ``[B, L]``.  Returns ``[B, N]``."""
    mask = text_mask.to(attn.dtype)[:, None, :, None]
    cam = attn[..., 1:] * grad[..., 1:].clamp(min=0) * mask
    return cam.mean(dim=1).mean(dim=1)


def upsample(cams: torch.Tensor, grid: tuple[int, int], size: tuple[int, int]) -> torch.Tensor:
    """``cams [B, N]`` on the patch grid ``(h, w)`` -> heat maps ``[B, H, W]``
    at pixel size ``size = (W, H)`` (COCO order, as records store it)."""
    gh, gw = grid
    if cams.shape[1] != gh * gw:
        raise ValueError(f"{cams.shape[1]} patch scores do not fill a {gh}x{gw} grid")
    width, height = size
    maps = cams.reshape(-1, 1, gh, gw)
    return F.interpolate(maps, size=(int(height), int(width)), mode="bicubic", align_corners=False)[:, 0]


#: ALBEF computes Grad-CAM at BERT layer 8 of 12 (the 3rd of its 6 fusion layers)
ALBEF_LAYER, ALBEF_DEPTH = 8, 12


def default_layer(model) -> int:
    """The layer at ALBEF's relative depth (8/12 of the BERT stack), moved
    into the model's fusion range when it falls below it."""
    start, end = getattr(model, "fusion_range", (0, 1))
    return min(max(int(end * ALBEF_LAYER / ALBEF_DEPTH), start), end - 1)


def resolve_layer(model, layer: int | None) -> int:
    """Absolute BERT layer index of the Grad-CAM layer (``None`` = ALBEF's
    relative depth; negative counts from the last layer)."""
    if layer is None:
        return default_layer(model)
    start, end = getattr(model, "fusion_range", (None, None))
    idx = layer if layer >= 0 or end is None else end + layer
    if start is not None and not start <= idx < end:
        raise ConfigError(
            f"task 'grounding': gradcam_layer {layer} is not a fusion (cross-attention) layer of this model",
            hint=f"use a layer in {start}..{end - 1}, or null for ALBEF's relative depth",
        )
    return idx


def batched_gradcam(model, image_embeds: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                    layer: int | None = None) -> torch.Tensor:
    """Grad-CAM patch scores ``[B, N]`` for a batch of pairs.

    ``layer`` is an absolute BERT layer index (see :func:`resolve_layer`).
    ``image_embeds`` may come from a no-grad image pass: the gradient is taken
    with respect to the attention maps only.
    """
    idx = resolve_layer(model, layer)
    with torch.enable_grad():
        out = model.fuse(input_ids, attention_mask, image_embeds, output_attentions=idx)
        maps = out.cross_attentions or []
        attn = maps[idx] if idx < len(maps) else None
        if attn is None:
            raise ConfigError(f"task 'grounding': the model returned no cross-attention map for layer {idx}",
                              hint="pick a fusion layer with gradcam_layer")
        logit = model.itm_logits(out)[:, 1].sum()
        (grad,) = torch.autograd.grad(logit, attn)
    return cam_from_attention(attn.detach(), grad.detach(), attention_mask)
