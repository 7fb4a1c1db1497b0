"""The image encoder: any timm vision transformer, with a mask token for masked image modelling.

Owns :class:`ViTEncoder` (a timm ``VisionTransformer``-style model built by name
with ``pretrained=False``), its ``forward(images, patch_mask=None) -> [B, 1+N, D]``
(CLS + patch tokens after the final norm), the learnable mask token that
replaces masked patch embeddings before the position embeddings and blocks
(BEiT/SIMLA), position-embedding interpolation to the working resolution (timm's
antialiased resample, or ALBEF's plain bicubic :func:`resize_pos_embed_albef`:
option ``pos_embed_resize``), local
weight loading (timm ``.pth``/``.bin``/``.safetensors``, DeiT/ALBEF checkpoint
dicts), and the registered image-backbone factories ``vit_world_tiny``,
``vit_base_patch16_256`` and ``vit_timm``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from simla_bench.errors import ConfigError, UserError
from simla_bench.plugins.backbones.weights import read_state_dict, report_load, strip_prefixes

_PREFIXES = ("module.", "visual_encoder.", "model.", "vit.")

#: how position embeddings are resized to another patch grid: ``timm``
#: (``resample_abs_pos_embed``: bicubic with antialiasing) or ``albef`` (ALBEF's
#: ``interpolate_pos_embed``: plain bicubic ``F.interpolate``, align_corners=False)
POS_EMBED_RESIZE_CHOICES = ("timm", "albef")


def _grid(size: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return int(size), int(size)
    h, w = size
    return int(h), int(w)


def resize_pos_embed_albef(pos_embed: torch.Tensor, new_grid: int | tuple[int, int],
                           num_prefix_tokens: int = 1, old_grid: int | tuple[int, int] | None = None) -> torch.Tensor:
    """Resize ``pos_embed [1, prefix + H*W, D]`` to the patch grid ``new_grid``
    the way ALBEF's ``interpolate_pos_embed`` does: the first
    ``num_prefix_tokens`` rows (CLS and any extra tokens) are kept as they are;
    the patch rows, read as a row-major ``H x W`` grid (square unless
    ``old_grid`` says otherwise), are resized with plain
    ``torch.nn.functional.interpolate(mode="bicubic", align_corners=False)``
    (no antialiasing, unlike timm's ``resample_abs_pos_embed``).  Returned
    unchanged when the grid already matches.  Computed in float32, returned in
    the input's dtype."""
    if pos_embed.dim() != 3:
        raise ValueError(f"pos_embed must be [1, tokens, dim], got shape {tuple(pos_embed.shape)}")
    new_h, new_w = _grid(new_grid)
    prefix, patches = pos_embed[:, :num_prefix_tokens], pos_embed[:, num_prefix_tokens:]
    n = patches.shape[1]
    if old_grid is None:
        side = int(round(n ** 0.5))
        if side * side != n:
            raise ValueError(f"{n} patch position embeddings do not form a square grid; give old_grid")
        old_h, old_w = side, side
    else:
        old_h, old_w = _grid(old_grid)
        if old_h * old_w != n:
            raise ValueError(f"old_grid {old_h}x{old_w} does not match {n} patch position embeddings")
    if (old_h, old_w) == (new_h, new_w):
        return pos_embed
    dim = patches.shape[-1]
    grid = patches.float().reshape(-1, old_h, old_w, dim).permute(0, 3, 1, 2)
    grid = torch.nn.functional.interpolate(grid, size=(new_h, new_w), mode="bicubic", align_corners=False)
    patches = grid.permute(0, 2, 3, 1).flatten(1, 2).to(pos_embed.dtype)
    return torch.cat([prefix, patches], dim=1)


def _check_resize_method(method: str) -> str:
    if method not in POS_EMBED_RESIZE_CHOICES:
        raise ConfigError(f"pos_embed_resize must be one of {', '.join(POS_EMBED_RESIZE_CHOICES)}, got {method!r}")
    return method


class ViTEncoder(nn.Module):
    """A timm vision transformer exposing CLS + patch tokens and a mask token."""

    def __init__(self, model_name: str, img_size: int | None = None, weights: str | None = None,
                 pos_embed_resize: str = "timm", **timm_kwargs: Any):
        super().__init__()
        import timm

        self.pos_embed_resize = _check_resize_method(pos_embed_resize)

        if model_name.split(".")[0] not in timm.list_models():
            import difflib

            close = difflib.get_close_matches(model_name, timm.list_models(), n=3)
            raise ConfigError(f"timm has no model '{model_name}'" + (f"; did you mean {', '.join(close)}?" if close else ""),
                              hint="see timm.list_models()")
        kwargs = dict(timm_kwargs)
        if img_size is not None:
            kwargs["img_size"] = int(img_size)
        kwargs.setdefault("num_classes", 0)
        try:
            vit = timm.create_model(model_name, pretrained=False, **kwargs)
        except TypeError as exc:
            raise ConfigError(f"timm model '{model_name}' rejects options {sorted(kwargs)}: {exc}; allowed: "
                              f"{', '.join(_allowed_options())}",
                              hint="pretrained weights are option 'weights' (a local file or directory)") from None
        for attr in ("patch_embed", "_pos_embed", "blocks", "norm", "cls_token"):
            if not hasattr(vit, attr):
                raise ConfigError(f"timm model '{model_name}' is not a ViT-style transformer (no '{attr}')",
                                  hint="pick a model built on timm's VisionTransformer (vit_*, deit_*)")
        if vit.cls_token is None:
            raise ConfigError(f"timm model '{model_name}' has no CLS token", hint="pick a ViT with class_token=True")
        if getattr(vit, "dynamic_img_size", False):
            raise ConfigError("dynamic_img_size is not supported", hint="set the resolution with img_size instead")
        self.model_name = model_name
        self.vit = vit
        self.width = int(vit.embed_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, self.width))
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        self.load_report: dict[str, list[str]] | None = None
        if weights:
            self.load_report = self.load_weights(weights)

    # ----------------------------------------------------------------- geometry
    @property
    def image_size(self) -> int:
        return int(self.vit.patch_embed.img_size[0])

    @property
    def patch_grid(self) -> tuple[int, int]:
        h, w = self.vit.patch_embed.grid_size
        return int(h), int(w)

    @property
    def num_patches(self) -> int:
        h, w = self.patch_grid
        return h * w

    @property
    def patch_size(self) -> int:
        return int(self.vit.patch_embed.patch_size[0])

    @property
    def _pos_prefix_tokens(self) -> int:
        """Rows of ``pos_embed`` before the patch grid (0 when timm adds no
        position embedding to the CLS/extra tokens)."""
        vit = self.vit
        return 0 if getattr(vit, "no_embed_class", False) else int(getattr(vit, "num_prefix_tokens", 1))

    def set_image_size(self, size: int, method: str | None = None) -> None:
        """Change the working resolution; the position embeddings are resized
        by ``method`` (default: this encoder's ``pos_embed_resize``): ``timm``
        (timm's antialiased bicubic resample) or ``albef``
        (:func:`resize_pos_embed_albef`, ALBEF's plain bicubic interpolate)."""
        method = _check_resize_method(method or self.pos_embed_resize)
        if int(size) % self.patch_size:
            raise ConfigError(f"image size {size} is not a multiple of the patch size {self.patch_size}")
        if int(size) == self.image_size:
            return
        vit = self.vit
        old = vit.pos_embed.detach().clone() if method == "albef" and vit.pos_embed is not None else None
        old_grid = self.patch_grid
        vit.set_input_size(img_size=(int(size), int(size)))
        if old is not None:
            new = resize_pos_embed_albef(old, self.patch_grid, self._pos_prefix_tokens, old_grid=old_grid)
            vit.pos_embed = nn.Parameter(new, requires_grad=vit.pos_embed.requires_grad)

    # ------------------------------------------------------------------ weights
    def load_weights(self, path: str, pos_embed_resize: str | None = None) -> dict[str, list[str]]:
        """Load local timm/DeiT/ALBEF weights; position embeddings of another
        (square) grid are resized to this model's grid by ``pos_embed_resize``
        (default: this encoder's option; ``albef`` = ALBEF's
        ``interpolate_pos_embed`` rule).  The classifier head and mask token may
        be absent."""
        from timm.models.vision_transformer import checkpoint_filter_fn

        method = _check_resize_method(pos_embed_resize or self.pos_embed_resize)
        state = strip_prefixes(read_state_dict(path), _PREFIXES)
        mask_token = state.pop("mask_token", None)
        pe = state.get("pos_embed")
        own_pe = self.vit.pos_embed
        resampled = []
        if isinstance(pe, torch.Tensor) and own_pe is not None and tuple(pe.shape) != tuple(own_pe.shape):
            resampled.append(f"pos_embed {tuple(pe.shape)} -> {tuple(own_pe.shape)} ({method})")
        if (method == "albef" and isinstance(pe, torch.Tensor) and own_pe is not None and pe.dim() == 3
                and pe.shape[1] != own_pe.shape[1] and pe.shape[-1] == own_pe.shape[-1]):
            try:
                state["pos_embed"] = resize_pos_embed_albef(pe, self.patch_grid, self._pos_prefix_tokens)
            except ValueError as exc:
                raise UserError(f"weights '{path}': cannot resize pos_embed {tuple(pe.shape)}: {exc}") from None
        try:
            state = checkpoint_filter_fn(state, self.vit)
        except Exception as exc:  # noqa: BLE001
            raise UserError(f"weights '{path}' do not fit timm model '{self.model_name}': {exc}") from None
        own = self.vit.state_dict()
        bad = [k for k, v in state.items() if k in own and own[k].shape != v.shape and not k.startswith("head")]
        if bad:
            raise UserError(f"weights '{path}' do not fit timm model '{self.model_name}': '{bad[0]}' has shape "
                            f"{tuple(state[bad[0]].shape)}, the model expects {tuple(own[bad[0]].shape)}",
                            hint="pick the model_name these weights were trained with")
        dropped = [k for k, v in state.items() if k not in own or own[k].shape != v.shape]
        state = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
        result = self.vit.load_state_dict(state, strict=False)
        missing = [k for k in result.missing_keys if not k.startswith(("head", "fc_norm"))]
        if missing:
            raise UserError(f"weights '{path}' lack {len(missing)} parameter(s) of '{self.model_name}', e.g. '{missing[0]}'",
                            hint="pick the model_name these weights were trained with")
        loaded = len(state)
        if mask_token is not None and mask_token.shape == self.mask_token.shape:
            with torch.no_grad():
                self.mask_token.copy_(mask_token)
            loaded += 1
        elif mask_token is not None:
            dropped.append("mask_token")
        unexpected = sorted(set(dropped) | set(result.unexpected_keys))
        report_load(f"image backbone ({self.model_name})", path, loaded, result.missing_keys, unexpected, resampled)
        return {"loaded": loaded, "missing": list(result.missing_keys), "unexpected": unexpected,
                "resampled": resampled}

    # ------------------------------------------------------------------ forward
    def forward(self, images: torch.Tensor, patch_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``images [B, 3, H, W]`` -> ``[B, 1 + N, D]`` (CLS first).  ``patch_mask``
        ``bool[B, N]`` (row-major over the patch grid): those patch embeddings are
        replaced by the mask token before position embeddings and blocks."""
        vit = self.vit
        x = vit.patch_embed(images)
        if x.dim() == 4:  # NHWC output formats
            x = x.flatten(1, 2)
        if patch_mask is not None:
            if patch_mask.shape != x.shape[:2]:
                raise ValueError(f"patch_mask has shape {tuple(patch_mask.shape)}, expected {tuple(x.shape[:2])}")
            x = torch.where(patch_mask.to(torch.bool).unsqueeze(-1), self.mask_token.to(x.dtype), x)
        x = vit._pos_embed(x)
        x = vit.patch_drop(x)
        x = vit.norm_pre(x)
        x = vit.blocks(x)
        x = vit.norm(x)
        extra = int(getattr(vit, "num_prefix_tokens", 1)) - 1
        if extra > 0:  # drop register / distillation tokens: keep CLS + patches
            x = torch.cat([x[:, :1], x[:, 1 + extra:]], dim=1)
        return x


def _allowed_options() -> list[str]:
    """The options of the ViT factories: ours and timm's VisionTransformer's named arguments."""
    import inspect

    from timm.models.vision_transformer import VisionTransformer

    timm_args = [n for n, p in inspect.signature(VisionTransformer.__init__).parameters.items()
                 if n != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
    return ["model_name", "weights", "pos_embed_resize", *timm_args]


# --------------------------------------------------------------------- factories
def vit_timm(model_name: str = "vit_base_patch16_224", img_size: int | None = None, weights: str | None = None,
             drop_path_rate: float = 0.0, pos_embed_resize: str = "timm", **timm_kwargs: Any) -> ViTEncoder:
    """Any timm ViT by name (``pretrained=False``; ``weights`` = a local file).
    ``pos_embed_resize``: ``timm`` or ``albef`` (see :class:`ViTEncoder`)."""
    return ViTEncoder(model_name, img_size=img_size, weights=weights, drop_path_rate=drop_path_rate,
                      pos_embed_resize=pos_embed_resize, **timm_kwargs)


def vit_world_tiny(img_size: int = 64, weights: str | None = None, drop_path_rate: float = 0.0,
                   pos_embed_resize: str = "timm", **timm_kwargs: Any) -> ViTEncoder:
    """Tiny ViT for the built-in world: 64px, patch 8, width 192, depth 4, 3 heads."""
    arch = dict(patch_size=8, embed_dim=192, depth=4, num_heads=3, mlp_ratio=4.0)
    arch.update(timm_kwargs)
    return ViTEncoder("vit_tiny_patch16_224", img_size=img_size, weights=weights, drop_path_rate=drop_path_rate,
                      pos_embed_resize=pos_embed_resize, **arch)


def vit_base_patch16_256(img_size: int = 256, weights: str | None = None, drop_path_rate: float = 0.0,
                         pos_embed_resize: str = "timm", **timm_kwargs: Any) -> ViTEncoder:
    """ViT-B/16 with DeiT-base shape (768 wide, 12 layers, 12 heads) at 256px, as SIMLA/ALBEF."""
    return ViTEncoder("deit_base_patch16_224", img_size=img_size, weights=weights, drop_path_rate=drop_path_rate,
                      pos_embed_resize=pos_embed_resize, **timm_kwargs)
