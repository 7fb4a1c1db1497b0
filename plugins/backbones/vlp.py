"""The vision-language model: ViT + BERT in SIMLA's single-stream or ALBEF's split layout, its heads and its momentum copy.

Owns :class:`VLPModel` and :func:`build_model` (the API in
``docs/architecture.md`` "Model"):

* ``single_stream`` (SIMLA): one BERT whose every layer has cross-attention.
  Text mode runs all layers without cross-attention; fusion runs all layers
  with cross-attention, starting again from the word embeddings.
* ``split`` (ALBEF): layers ``[0, L-k)`` are the text encoder, the top
  ``k = model.fusion_layers`` layers fuse (they read the text encoder output).

Heads: ITC projections (L2-normalised), ITM (2-way on the pooled fused states: [CLS] or token mean), MLM
(BERT prediction head tied to the word embeddings), MIM (visual vocabulary,
sized by the objective through :meth:`VLPModel.set_mim_vocab`), and the PSL
concept head (ITC space -> text vocabulary).  The momentum (EMA) copy is
created on first use, never receives gradient, is not a sub-module (so it is
not in ``parameters()`` and not in the optimizer) but follows ``.to()``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from simla_bench.errors import ConfigError

TEMP_MIN, TEMP_MAX = 0.001, 0.5


@dataclass
class FusionOutput:
    """``hidden [B, L, Dt]``; ``cross_attentions`` / ``self_attentions``: when
    attentions were asked for, a list with one entry per BERT layer (absolute
    index; ``None`` for layers not run or not asked for).  Cross entries are
    ``[B, H, L, 1+N]``, self entries ``[B, H, L, L]`` (for two-image fusion
    each is a pair ``[layer, twin]``); both stay in the autograd graph.  ``pooled [B, Dt]``:
    what the fused heads read (ITM, task heads), the [CLS] output or the mean
    over the caption's tokens (``model.options.text_pool``)."""

    hidden: torch.Tensor
    cross_attentions: list | None = None
    self_attentions: list | None = None
    pooled: torch.Tensor | None = None


def _pad_layers(entries: list | None, start: int, total: int) -> list | None:
    if entries is None:
        return None
    out: list = [None] * total
    out[start:start + len(entries)] = entries
    return out


class VLPModel(nn.Module):
    """Image encoder + BERT text/fusion encoder + heads (see module docstring)."""

    def __init__(self, cfg, tokenizer, visual_encoder: nn.Module, text_encoder: nn.Module,
                 mim_vocab_size: int | None = None):
        super().__init__()
        self.cfg = cfg
        self.tokenizer = tokenizer
        self.layout = cfg.layout
        self.text_pool = cfg.text_pool
        self.visual_encoder = visual_encoder
        self.text_encoder = text_encoder
        n_layers = text_encoder.num_layers
        if cfg.layout == "single_stream":
            self.text_range = (0, n_layers)
            self.fusion_range = (0, n_layers)
        else:
            k = cfg.fusion_layers
            self.text_range = (0, n_layers - k)
            self.fusion_range = (n_layers - k, n_layers)
        self.vision_width = int(visual_encoder.width)
        self.text_width = int(text_encoder.width)
        self.embed_dim = int(cfg.embed_dim)
        self.vocab_size = int(text_encoder.vocab_size)
        self.has_fusion = self.fusion_range[1] > self.fusion_range[0]

        self.vision_proj = nn.Linear(self.vision_width, self.embed_dim)
        self.text_proj = nn.Linear(self.text_width, self.embed_dim)
        self.mlm_head = text_encoder.make_lm_head()
        self.concept_head = nn.Linear(self.embed_dim, self.vocab_size)
        if self.has_fusion:
            self.itm_head = nn.Linear(self.text_width, 2)
        # image->text direction when the widths differ: image queries into the
        # BERT width, caption keys/values into the cross-attention (image) width
        if self.vision_width != self.text_width:
            self.image_to_text = nn.Linear(self.vision_width, self.text_width)
            self.text_to_image = nn.Linear(self.text_width, self.vision_width)
        self.mim_head: nn.Linear | None = None
        for module in [self.vision_proj, self.text_proj, self.concept_head, getattr(self, "itm_head", None),
                       getattr(self, "image_to_text", None), getattr(self, "text_to_image", None)]:
            if module is not None:
                self._init_linear(module)
        self.temp = nn.Parameter(torch.tensor(float(cfg.temp)))
        object.__setattr__(self, "_momentum", None)
        object.__setattr__(self, "_ema_pairs", None)
        if mim_vocab_size:
            self.set_mim_vocab(mim_vocab_size)
        self._fit_image_positions()

    def _fit_image_positions(self) -> None:
        """single_stream: the image->text pass embeds the 1+N image tokens with
        BERT's position embeddings (SIMLA), so the position table must have at
        least 1+N rows.  A shorter table (the world BERT's 64) is extended; the
        new rows are zero when the table is (a from-scratch world BERT), else
        N(0, initializer_range) from a fixed local generator, so the global RNG
        stream and every other parameter are unchanged."""
        if self.layout != "single_stream" or not self.has_fusion:
            return
        table = self.text_encoder.embeddings.position_embeddings
        need, have = 1 + self.num_patches, table.num_embeddings
        if need <= have:
            return
        old = table.weight.detach()
        if bool((old == 0).all()):
            extra = torch.zeros(need - have, old.shape[1])
        else:
            std = float(getattr(self.text_encoder.config, "initializer_range", 0.02))
            extra = torch.randn(need - have, old.shape[1], generator=torch.Generator().manual_seed(0)) * std
        table.weight = nn.Parameter(torch.cat([old, extra.to(old)]), requires_grad=table.weight.requires_grad)
        table.num_embeddings = need
        self.text_encoder.config.max_position_embeddings = need
        object.__setattr__(self, "_ema_pairs", None)

    @staticmethod
    def _init_linear(module: nn.Linear) -> None:
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)

    # ------------------------------------------------------------- description
    @property
    def capabilities(self) -> frozenset[str]:
        caps = {"image", "text", "image_feat", "text_feat", "mlm_head", "mim_head", "concept_head", "patch_mask"}
        if float(self.cfg.momentum) > 0.0:
            caps.add("momentum")
        if self.has_fusion:
            caps |= {"fusion", "itm_head", "fuse_image", "two_image_fusion"}
        return frozenset(caps)

    def no_weight_decay(self) -> set[str]:
        """Parameter names the optimizer should not decay (timm's ViT convention:
        position embedding, CLS and mask tokens; plus the temperature)."""
        names = {"temp", "visual_encoder.mask_token"}
        vit_skip = getattr(self.visual_encoder.vit, "no_weight_decay", None)
        if callable(vit_skip):
            names |= {f"visual_encoder.vit.{n}" for n in vit_skip()}
        own = dict(self.named_parameters())
        return {n for n in names if n in own}

    @property
    def image_size(self) -> int:
        return self.visual_encoder.image_size

    @property
    def max_text_len(self) -> int:
        """Tokens per text: pretraining and every task that sets no length of its own."""
        return int(self.cfg.max_text_len)

    def image_transform(self, train: bool, size: int | None = None):
        """PIL image -> normalised tensor at ``size`` (default: the working
        resolution), with this model's normalisation (``model.options.normalize``)."""
        from simla_bench.plugins.datasets.images import image_transform

        normalize = getattr(self.cfg, "normalize", None) or "imagenet"
        extra = {} if normalize == "imagenet" else {"normalize": normalize}
        return image_transform(int(size or self.image_size), train=train, **extra)

    @property
    def patch_grid(self) -> tuple[int, int]:
        return self.visual_encoder.patch_grid

    @property
    def num_patches(self) -> int:
        h, w = self.patch_grid
        return h * w

    @property
    def mim_vocab_size(self) -> int | None:
        return None if self.mim_head is None else self.mim_head.out_features

    def set_image_size(self, size: int) -> None:
        """Change the working resolution (position embeddings are resampled)."""
        self.visual_encoder.set_image_size(size)
        self._fit_image_positions()
        if self._momentum is not None:
            self._momentum.visual_encoder.set_image_size(size)
            self._momentum._fit_image_positions()
            object.__setattr__(self, "_ema_pairs", None)

    def set_mim_vocab(self, n: int) -> None:
        """Give the MIM head ``n`` outputs (the visual vocabulary size).  A head of
        the same size is kept; the momentum copy (if any) gets the same head."""
        n = int(n)
        if n < 2:
            raise ConfigError(f"visual vocabulary size must be at least 2, got {n}")
        if self.mim_head is not None and self.mim_head.out_features == n:
            return
        ref = self.text_proj.weight
        head = nn.Linear(self.text_width, n).to(device=ref.device, dtype=ref.dtype)
        self._init_linear(head)
        if self.__dict__.get("_is_momentum"):
            head.requires_grad_(False)
        self.mim_head = head
        if self._momentum is not None:
            m_head = copy.deepcopy(head).requires_grad_(False)
            self._momentum.mim_head = m_head
            object.__setattr__(self, "_ema_pairs", None)

    # ------------------------------------------------------------------ passes
    def encode_image(self, images: torch.Tensor, patch_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``[B, 3, H, W]`` -> ``[B, 1+N, Dv]``; masked patches -> the mask token."""
        return self.visual_encoder(images, patch_mask)

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Text mode (no cross-attention): ``[B, L, Dt]``."""
        start, end = self.text_range
        return self.text_encoder(input_ids, attention_mask, start_layer=start, end_layer=end).hidden

    def _require_fusion(self) -> None:
        if not self.has_fusion:
            raise ConfigError("this model has no fusion layers (layout split with model.options.fusion_layers: 0)",
                              hint="set model.options.fusion_layers >= 1 or use layout single_stream")

    def fuse(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
             image_embeds: torch.Tensor | Sequence[torch.Tensor], image_atts: Any = None,
             text_embeds: torch.Tensor | None = None,
             output_attentions: bool | int | Sequence[int] = False) -> FusionOutput:
        """Text queries cross-attend to image tokens.

        single_stream: all layers from the word embeddings (``text_embeds`` is
        not needed and ignored).  split: the fusion layers on ``text_embeds``
        (computed if None).  ``image_embeds`` may be a list ``[e1, e2]``
        (NLVR2, after :meth:`enable_two_image_fusion`): each fusion layer
        cross-attends to e1 and its twin, run right after it, to e2.
        ``output_attentions``: True, a layer index (absolute, negative from
        the end) or a list of them.
        """
        self._require_fusion()
        start, end = self.fusion_range
        if self.layout == "single_stream":
            kwargs: dict[str, Any] = {"input_ids": input_ids}
        else:
            if text_embeds is None:
                text_embeds = self.encode_text(input_ids, attention_mask)
            kwargs = {"hidden": text_embeds}
        out = self.text_encoder(attention_mask=attention_mask, context=image_embeds, context_mask=image_atts,
                                start_layer=start, end_layer=end, output_attentions=output_attentions, **kwargs)
        total = self.text_encoder.num_layers
        return FusionOutput(out.hidden, _pad_layers(out.cross_attentions, start, total),
                            _pad_layers(out.self_attentions, start, total), self.pool_text(out.hidden, attention_mask))

    # ------------------------------- evaluation fusion from parts computed once
    def _require_eval_fusion(self) -> None:
        self._require_fusion()
        if self.training:
            raise RuntimeError("fusion from cached parts is evaluation-only (dropout would differ per pair): "
                               "call model.eval() first")

    def fusion_text_cache(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                          text_embeds: torch.Tensor | None = None) -> torch.Tensor:
        """Evaluation: what :meth:`fuse` computes from the text alone, once per text
        -- the first fusion layer's self-attention output ``[B, L, Dt]`` (over the
        word embeddings in single_stream, over ``text_embeds`` in split)."""
        self._require_eval_fusion()
        start, _ = self.fusion_range
        if self.layout == "single_stream":
            return self.text_encoder.self_attention_prefix(input_ids, attention_mask, layer=start)
        if text_embeds is None:
            text_embeds = self.encode_text(input_ids, attention_mask)
        return self.text_encoder.self_attention_prefix(None, attention_mask, hidden=text_embeds, layer=start)

    def fusion_image_cache(self, image_embeds: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Evaluation: what :meth:`fuse` computes from the image alone, once per
        image -- each fusion layer's cross-attention keys and values ``[B, H, 1+N, d]``."""
        self._require_eval_fusion()
        return self.text_encoder.cross_kv(image_embeds, *self.fusion_range)

    def fuse_cached(self, text_cache: torch.Tensor, attention_mask: torch.Tensor,
                    image_cache: list[tuple[torch.Tensor, torch.Tensor]], image_atts: Any = None) -> FusionOutput:
        """Evaluation: :meth:`fuse` from :meth:`fusion_text_cache` rows and
        :meth:`fusion_image_cache` (same numbers up to float rounding).  An image
        cache of batch 1 serves every text row (one image's candidate texts)."""
        self._require_eval_fusion()
        start, end = self.fusion_range
        length = text_cache.shape[1]
        hidden = self.text_encoder.forward_kv(text_cache, attention_mask[:, :length], image_cache, image_atts,
                                              start_layer=start, end_layer=end)
        return FusionOutput(hidden, pooled=self.pool_text(hidden, attention_mask))

    def enable_two_image_fusion(self) -> "VLPModel":
        """Duplicate each fusion layer for two-image inputs (NLVR2, as ALBEF):
        the layer cross-attends to image 1, its twin (same starting weights,
        shared cross-attention key/value projections) to image 2.  Call it on
        the copy being fine-tuned; idempotent.  Returns ``self``."""
        self._require_fusion()
        start, end = self.fusion_range
        for index in range(start, end):
            self.text_encoder.encoder.layer[index].add_twin()
        return self

    def caption_context(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                        text_embeds: torch.Tensor | None = None) -> torch.Tensor:
        """What image queries attend to in :meth:`fuse_image`: the caption's BERT
        embedding-layer output (single_stream, SIMLA) or the text encoder output
        (split; ``text_embeds`` when given)."""
        if self.layout == "single_stream":
            return self.text_encoder.embeddings(input_ids)
        return text_embeds if text_embeds is not None else self.encode_text(input_ids, attention_mask)

    def fuse_image(self, image_embeds: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                   text_embeds: torch.Tensor | None = None, context: torch.Tensor | None = None) -> torch.Tensor:
        """Image -> text direction (masked image modelling): image tokens are the
        queries of the fusion layers and cross-attend to the caption.

        single_stream (SIMLA): the image tokens first take BERT's embedding
        step in place of word embeddings (position embeddings of positions
        0..N, token type 0 as for text, the embedding LayerNorm and dropout),
        then all BERT layers; keys/values = the caption's BERT embedding-layer
        output.  split: straight into the fusion layers, keys/values = the text
        encoder output (``text_embeds``, computed if None).  Returns
        ``[B, 1+N, Dt]``.  ``context`` (single_stream): the caption states to
        attend to instead of this model's embedding-layer output (SIMLA's
        momentum MIM pass attends to the online model's).
        """
        self._require_fusion()
        start, end = self.fusion_range
        if context is None:
            context = self.caption_context(input_ids, attention_mask, text_embeds)
        queries = image_embeds
        if self.vision_width != self.text_width:
            queries = self.image_to_text(queries)
            context = self.text_to_image(context)
        if self.layout == "single_stream":
            queries = self._embed_image_queries(queries)
        out = self.text_encoder(hidden=queries, attention_mask=None, context=context, context_mask=attention_mask,
                                start_layer=start, end_layer=end)
        return out.hidden

    def _embed_image_queries(self, queries: torch.Tensor) -> torch.Tensor:
        """BERT's embedding step on ``[B, 1+N, Dt]`` image tokens (SIMLA's MIM
        pass: ``inputs_embeds`` + positions 0..N, LayerNorm, dropout); token
        type 0 is added as for text (zero after loading a SIMLA checkpoint,
        whose BERT has no token types)."""
        emb = self.text_encoder.embeddings
        n = queries.shape[1]
        if n > emb.position_embeddings.num_embeddings:
            raise ConfigError(f"the image->text pass has {n} image tokens but the BERT has only "
                              f"{emb.position_embeddings.num_embeddings} position embeddings",
                              hint=f"set the model.options.text config max_position_embeddings to at least {n}")
        x = queries + emb.position_embeddings.weight[:n].unsqueeze(0) + emb.token_type_embeddings.weight[0]
        return emb.dropout(emb.LayerNorm(x))

    # ------------------------------------------------------------------- heads
    def image_feat(self, image_embeds: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.vision_proj(image_embeds[:, 0, :]), dim=-1)

    def pool_text(self, hidden: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """One vector per caption from text or fused token states ``[B, L, D]``:
        ``model.options.text_pool`` ``cls`` takes the [CLS] output (ALBEF, SIMLA),
        ``mean`` the mean over the tokens ``attention_mask`` keeps."""
        if self.text_pool == "cls":
            return hidden[:, 0, :]
        if attention_mask is None:
            raise ValueError("text_pool='mean' needs the attention mask: pass it (or the FusionOutput) along")
        keep = attention_mask[:, :hidden.shape[1], None].to(hidden.dtype)
        return (hidden * keep).sum(1) / keep.sum(1).clamp_min(1.0)

    def text_feat(self, text_embeds: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The ITC text feature: the projected, L2-normalised :meth:`pool_text`."""
        return F.normalize(self.text_proj(self.pool_text(text_embeds, attention_mask)), dim=-1)

    def itm_logits(self, fused: "FusionOutput | torch.Tensor") -> torch.Tensor:
        """ITM logits ``[B, 2]`` from a :class:`FusionOutput` (its ``pooled``),
        a pooled ``[B, Dt]`` tensor, or fused states ``[B, L, Dt]`` (their
        [CLS]; only under ``text_pool='cls'``, which has no mask to need)."""
        self._require_fusion()
        if isinstance(fused, FusionOutput):
            return self.itm_head(fused.pooled)
        if fused.dim() == 2:
            return self.itm_head(fused)
        if self.text_pool != "cls":
            raise ValueError("itm_logits on fused states needs text_pool='cls'; pass the FusionOutput instead")
        return self.itm_head(fused[:, 0, :])

    def mlm_logits(self, fused_hidden: torch.Tensor) -> torch.Tensor:
        return self.mlm_head(fused_hidden)

    def mim_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """MIM head on ``fuse_image`` output (all tokens; callers pick patches ``[:, 1:]``)."""
        if self.mim_head is None:
            raise ConfigError("the MIM head has no visual vocabulary yet",
                              hint="call model.set_mim_vocab(n) (the xmm objective does this) before mim_logits")
        return self.mim_head(hidden)

    def concept_logits(self, image_feat: torch.Tensor) -> torch.Tensor:
        """PSL concept head: normalised image feature ``[B, E]`` -> ``[B, V]`` logits."""
        return self.concept_head(image_feat)

    def temperature(self) -> torch.Tensor:
        """The ITC temperature, clamped in place to [0.001, 0.5] (as ALBEF).

        The in-place clamp only happens when the value is out of range, so a
        second call in the same step (ITC, then ITM fine-tuning) does not bump
        the parameter's version counter and break the backward pass."""
        value = float(self.temp.detach())
        if not TEMP_MIN <= value <= TEMP_MAX:
            with torch.no_grad():
                self.temp.clamp_(TEMP_MIN, TEMP_MAX)
        return self.temp

    # ----------------------------------------------------------------- momentum
    def momentum_model(self) -> "VLPModel":
        """The EMA copy (created on first call as an exact copy): eval mode, no
        gradient, not a sub-module (not in ``parameters()``/``state_dict()``)."""
        if self._momentum is None:
            memo = {id(self.tokenizer): self.tokenizer}
            momentum = copy.deepcopy(self, memo)
            object.__setattr__(momentum, "_momentum", None)
            object.__setattr__(momentum, "_ema_pairs", None)
            object.__setattr__(momentum, "_is_momentum", True)
            for p in momentum.parameters():
                p.grad = None
            momentum.requires_grad_(False)
            momentum.eval()
            object.__setattr__(self, "_momentum", momentum)
            object.__setattr__(self, "_ema_pairs", None)
        return self._momentum

    def has_momentum(self) -> bool:
        return self._momentum is not None

    def _pairs(self):
        if self._ema_pairs is None:
            online = list(self.parameters())
            ema = list(self._momentum.parameters())
            if len(online) != len(ema) or any(a.shape != b.shape for a, b in zip(online, ema)):
                raise RuntimeError("momentum model no longer matches the model's parameters")
            object.__setattr__(self, "_ema_pairs", (online, ema))
        return self._ema_pairs

    @torch.no_grad()
    def update_momentum(self, m: float | None = None) -> None:
        """``p_m <- m * p_m + (1 - m) * p`` for every parameter (m defaults to
        ``model.options.momentum`` from the config).  Creates the copy if needed."""
        m = float(self.cfg.momentum if m is None else m)
        self.momentum_model()
        online, ema = self._pairs()
        if not online:
            return
        torch._foreach_mul_(ema, m)
        torch._foreach_add_(ema, [p.detach() for p in online], alpha=1.0 - m)

    # ------------------------------------------------------------ module hooks
    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """As ``nn.Module.load_state_dict``; a saved MIM head of another size
        (or one this fresh model has not sized yet) is re-created first."""
        weight = state_dict.get("mim_head.weight")
        if weight is not None and self.mim_vocab_size != int(weight.shape[0]):
            self.set_mim_vocab(int(weight.shape[0]))
        key = "text_encoder.embeddings.position_embeddings.weight"
        own = self.text_encoder.embeddings.position_embeddings.weight
        saved = state_dict.get(key)
        if saved is not None and saved.dim() == 2 and saved.shape[1] == own.shape[1] and saved.shape[0] < own.shape[0]:
            # saved before the table was extended for the image positions: keep the extension rows
            state_dict = {**state_dict, key: torch.cat([saved.to(own), own.detach()[saved.shape[0]:]])}
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def _apply(self, fn, *args, **kwargs):
        super()._apply(fn, *args, **kwargs)
        if self.__dict__.get("_momentum") is not None:
            self._momentum._apply(fn, *args, **kwargs)
        object.__setattr__(self, "_ema_pairs", None)
        return self

    def __deepcopy__(self, memo):
        # copy everything, including the momentum model (tasks copy the
        # pretrained model before fine-tuning); the tokenizer is shared.
        memo.setdefault(id(self.tokenizer), self.tokenizer)
        cls = self.__class__
        new = cls.__new__(cls)
        memo[id(self)] = new
        for key, value in self.__dict__.items():
            if key == "_ema_pairs":
                new.__dict__[key] = None
            else:
                new.__dict__[key] = copy.deepcopy(value, memo)
        return new


def build_model(cfg, tokenizer, mim_vocab_size: int | None = None) -> VLPModel:
    """Build a :class:`VLPModel` from a ``ModelConfig`` (backbones looked up in
    the registry by name) and the tokenizer whose vocabulary the text side uses."""
    from simla_bench.registry import get_registry

    registry = get_registry()
    image_entry = registry.get("backbone", cfg.image.name)
    text_entry = registry.get("backbone", cfg.text.name)
    for where, entry, want in (("model.options.image", image_entry, "image"), ("model.options.text", text_entry, "text")):
        modality = entry.metadata.get("modality")
        if modality != want:
            raise ConfigError(f"{where}.name '{entry.name}' is a {modality or 'untyped'} backbone, not an {want} one"
                              if want == "image" else
                              f"{where}.name '{entry.name}' is a {modality or 'untyped'} backbone, not a {want} one",
                              hint=f"pick a backbone listed with modality={want} by `simla-bench list backbones`")
    visual = image_entry.load()(**dict(cfg.image.options))

    # "all" / "top:K" are resolved by the BERT against its own depth
    cross = "all" if cfg.layout == "single_stream" else f"top:{cfg.fusion_layers}"
    text = text_entry.load()(**dict(cfg.text.options), vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                             cross_attention_layers=cross, encoder_width=int(visual.width))
    if cfg.max_text_len > text.config.max_position_embeddings:
        raise ConfigError(f"model.options.max_text_len={cfg.max_text_len} exceeds the text backbone's "
                          f"max_position_embeddings={text.config.max_position_embeddings}")
    return VLPModel(cfg, tokenizer, visual, text, mim_vocab_size=mim_vocab_size)

