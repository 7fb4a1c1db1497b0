"""A BERT-compatible text/fusion encoder written on ``scaled_dot_product_attention``.

Owns the BERT transformer used as text encoder *and* multimodal (fusion)
encoder: embeddings, layers of self-attention + optional cross-attention to
the image + feed-forward, the BERT masked-LM prediction head, the mapping from
a local Hugging Face BERT checkpoint onto these modules, and the ``build``
factories registered as text backbones (``bert_world_tiny``, ``bert_base``).

Parameter names follow Hugging Face's ``BertModel`` (``embeddings.*``,
``encoder.layer.N.attention.self.query`` ...) and ALBEF's ``xbert`` for the
cross-attention (``encoder.layer.N.crossattention.*``), so a saved
``BertModel`` state dict loads by name.  Which layers carry cross-attention is
set at build time (``cross_attention_layers``): every layer for the SIMLA
single-stream layout, the top ``k`` for ALBEF's split layout.

Attention probabilities are only materialised for the layers a caller asks for
(``output_attentions``); they are then computed explicitly and stay in the
autograd graph (Grad-CAM differentiates through them).  All other layers use
the fused SDPA kernel.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from simla_bench.errors import ConfigError, UserError
from simla_bench.plugins.backbones.weights import read_state_dict, report_load

#: BERT-base (Devlin et al.) shape; vocab_size is replaced by the tokenizer's.
BERT_BASE = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072)
#: The tiny world text encoder.
BERT_WORLD_TINY = dict(hidden_size=192, num_hidden_layers=4, num_attention_heads=3, intermediate_size=768,
                       max_position_embeddings=64)

_ACTS = {"gelu": lambda x: F.gelu(x), "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
         "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"), "relu": F.relu, "silu": F.silu,
         "swish": F.silu}


@dataclass
class BertOutput:
    """What a BERT pass returns.

    ``self_attentions`` / ``cross_attentions`` have one entry per layer that ran
    (in order); an entry is ``None`` unless that layer was asked for.  A
    self-attention entry is ``[B, H, Lq, Lq]``; a cross-attention entry is
    ``[B, H, Lq, Nk]`` (for two-image fusion, a pair ``[layer, twin]`` of such tensors,
    self-attention likewise).
    """

    hidden: torch.Tensor
    self_attentions: list | None = None
    cross_attentions: list | None = None


def load_bert_config(config: Mapping[str, Any] | str | Path | None = None, **overrides: Any):
    """A ``transformers.BertConfig`` from a dict, a local directory (or a
    ``config.json`` file) or defaults, with ``overrides`` applied on top."""
    from transformers import BertConfig

    if config is None:
        base: dict[str, Any] = {}
    elif isinstance(config, Mapping):
        base = dict(config)
    else:
        path = Path(config)
        file = path / "config.json" if path.is_dir() else path
        if not file.is_file():
            raise ConfigError(f"BERT config '{config}' does not exist",
                              hint="give a local directory holding config.json, or a dict of BertConfig fields")
        try:
            base = json.loads(file.read_text())
        except json.JSONDecodeError as exc:
            raise ConfigError(f"BERT config '{file}' is not valid JSON: {exc.msg}") from None
    base.update({k: v for k, v in overrides.items() if v is not None})
    try:
        cfg = BertConfig(**base)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"BERT config is invalid: {exc}") from None
    if cfg.hidden_size % cfg.num_attention_heads:
        raise ConfigError(f"BERT hidden_size {cfg.hidden_size} is not divisible by num_attention_heads "
                          f"{cfg.num_attention_heads}", hint="pick a head count that divides the width")
    return cfg


#: options of the BERT factories besides the BertConfig fields
FACTORY_OPTIONS = ("config", "weights", "zero_shared_embeddings")


def config_fields() -> list[str]:
    """The ``BertConfig`` fields a backbone option may set (its constructor's named arguments)."""
    import inspect

    from transformers import BertConfig

    return [n for n, p in inspect.signature(BertConfig.__init__).parameters.items()
            if n != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]


def check_options(overrides: Mapping[str, Any]) -> None:
    """Refuse a backbone option that is neither a factory option nor a BertConfig field
    (``BertConfig`` keeps unknown keys silently: ``pretrained: DIR`` built a random BERT)."""
    fields = config_fields()
    unknown = sorted(k for k in overrides if k not in fields)
    if unknown:
        raise ConfigError(f"BERT text backbone: unknown option(s) {', '.join(unknown)}; allowed: "
                          f"{', '.join([*FACTORY_OPTIONS, *sorted(f for f in fields if f not in ('vocab_size', 'pad_token_id'))])}",
                          hint="pretrained weights are option 'weights' (a local Hugging Face BERT directory)")


def _additive_mask(mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """``[B, Lk]`` 1/0 (or bool) key mask -> additive ``[B, 1, 1, Lk]`` float mask."""
    if mask is None:
        return None
    keep = mask.to(torch.bool)[:, None, None, :]
    return torch.zeros(keep.shape, dtype=dtype, device=mask.device).masked_fill(~keep, torch.finfo(dtype).min)


class BertEmbeddings(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.word_embeddings = nn.Embedding(cfg.vocab_size, cfg.hidden_size, padding_idx=cfg.pad_token_id)
        self.position_embeddings = nn.Embedding(cfg.max_position_embeddings, cfg.hidden_size)
        self.token_type_embeddings = nn.Embedding(cfg.type_vocab_size, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.hidden_dropout_prob)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        length = input_ids.shape[1]
        if length > self.position_embeddings.num_embeddings:
            raise UserError(f"text of {length} tokens is longer than the BERT's "
                            f"max_position_embeddings={self.position_embeddings.num_embeddings}",
                            hint="lower model.options.max_text_len or raise max_position_embeddings")
        x = self.word_embeddings(input_ids) + self.position_embeddings.weight[:length].unsqueeze(0)
        if token_type_ids is None:
            x = x + self.token_type_embeddings.weight[0]
        else:
            x = x + self.token_type_embeddings(token_type_ids)
        return self.dropout(self.LayerNorm(x))


class BertSelfAttention(nn.Module):
    """Multi-head attention: queries from ``hidden``, keys/values from ``context``
    (``kv_width`` wide; the image width for cross-attention)."""

    def __init__(self, cfg, kv_width: int | None = None):
        super().__init__()
        self.heads = cfg.num_attention_heads
        self.head_dim = cfg.hidden_size // cfg.num_attention_heads
        kv_width = kv_width or cfg.hidden_size
        self.query = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.key = nn.Linear(kv_width, cfg.hidden_size)
        self.value = nn.Linear(kv_width, cfg.hidden_size)
        self.dropout_p = cfg.attention_probs_dropout_prob

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        return x.view(b, n, self.heads, self.head_dim).transpose(1, 2)

    def project_kv(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values ``[B, H, N, head_dim]`` of ``context`` (what :meth:`forward` projects itself)."""
        return self._split(self.key(context)), self._split(self.value(context))

    def forward(self, hidden, context=None, mask=None, want_probs: bool = False, kv=None):
        """``kv``: keys and values already projected (:meth:`project_kv`), used instead of ``context``."""
        q = self._split(self.query(hidden))
        k, v = kv if kv is not None else self.project_kv(hidden if context is None else context)
        p = self.dropout_p if self.training else 0.0
        if mask is not None and mask.dtype != q.dtype:
            mask = mask.to(q.dtype)  # e.g. under autocast
        if want_probs:
            scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim)
            if mask is not None:
                scores = scores + mask
            probs = scores.softmax(dim=-1)
            out = F.dropout(probs, p) @ v
        else:
            probs = None
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        b, _, n, _ = out.shape
        return out.transpose(1, 2).reshape(b, n, -1), probs


class BertResidualOutput(nn.Module):
    """A sub-layer's output: ``LayerNorm(dropout(dense(x)) + residual)``, the dense
    layer from ``in_width`` to ``hidden_size`` (after attention: ``hidden_size``; after
    the feed-forward's intermediate layer: ``intermediate_size``)."""

    def __init__(self, cfg, in_width: int):
        super().__init__()
        self.dense = nn.Linear(in_width, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.hidden_dropout_prob)

    def forward(self, x, residual):
        return self.LayerNorm(self.dropout(self.dense(x)) + residual)


class BertAttention(nn.Module):
    def __init__(self, cfg, kv_width: int | None = None):
        super().__init__()
        self.self = BertSelfAttention(cfg, kv_width)
        self.output = BertResidualOutput(cfg, cfg.hidden_size)

    def forward(self, hidden, context=None, mask=None, want_probs: bool = False, kv=None):
        out, probs = self.self(hidden, context, mask, want_probs, kv)
        return self.output(out, hidden), probs


class BertIntermediate(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.intermediate_size)
        act = cfg.hidden_act
        if not isinstance(act, str) or act not in _ACTS:
            raise ConfigError(f"BERT hidden_act {act!r} is not supported", hint=f"use one of {', '.join(_ACTS)}")
        self.act = _ACTS[act]

    def forward(self, x):
        return self.act(self.dense(x))


class BertLayer(nn.Module):
    """Self-attention, optional cross-attention, feed-forward (post-LN, as BERT).

    Two-image fusion (NLVR2, ALBEF): :meth:`add_twin` duplicates the layer so
    that this copy cross-attends to image 1 and the twin, run right after it,
    to image 2; both start from the same weights and share the
    cross-attention key/value projections (reference: "the fusion layers are
    duplicated so consecutive layers cross-attend to image 1 then image 2").
    """

    def __init__(self, cfg, cross_attention: bool, encoder_width: int):
        super().__init__()
        self.attention = BertAttention(cfg)
        self.has_cross_attention = cross_attention
        if cross_attention:
            self.crossattention = BertAttention(cfg, kv_width=encoder_width)
        self.intermediate = BertIntermediate(cfg)
        self.output = BertResidualOutput(cfg, cfg.intermediate_size)
        self.twin: BertLayer | None = None

    def add_twin(self) -> "BertLayer":
        """Give this cross-attention layer its image-2 twin (a copy of its current
        weights, key/value projections shared); idempotent."""
        if not self.has_cross_attention:
            raise RuntimeError("only a cross-attention layer can get a two-image twin")
        if self.twin is None:
            twin = copy.deepcopy(self)
            twin.crossattention.self.key = self.crossattention.self.key
            twin.crossattention.self.value = self.crossattention.self.value
            self.twin = twin
        return self.twin

    def _single(self, hidden, self_mask, context, context_mask, want_probs):
        hidden, self_probs = self.attention(hidden, mask=self_mask, want_probs=want_probs)
        cross_probs = None
        if context is not None:
            if not self.has_cross_attention:
                raise RuntimeError("this BERT layer has no cross-attention")
            hidden, cross_probs = self.crossattention(hidden, context, context_mask, want_probs)
        hidden = self.output(self.intermediate(hidden), hidden)
        return hidden, self_probs, cross_probs

    def cross_kv(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """This layer's cross-attention keys/values of ``context`` (image tokens), for :meth:`forward_kv`."""
        if not self.has_cross_attention:
            raise RuntimeError("this BERT layer has no cross-attention")
        return self.crossattention.self.project_kv(context)

    def forward_kv(self, hidden, self_mask, kv, context_mask=None, self_done: bool = False):
        """The layer with its cross-attention keys/values given (:meth:`cross_kv`): the
        same states as :meth:`forward` with the context they came from.  Keys/values
        of batch 1 serve every row: the rows' queries then attend as one sequence
        (``context_mask`` must then be that one context's, ``[1, 1, 1, N]``).
        ``self_done``: ``hidden`` is already this layer's self-attention output."""
        if not self_done:
            hidden, _ = self.attention(hidden, mask=self_mask)
        b, n, d = hidden.shape
        if kv[0].shape[0] == 1 and b > 1:
            out, _ = self.crossattention(hidden.reshape(1, b * n, d), mask=context_mask, kv=kv)
            hidden = out.reshape(b, n, d)
        else:
            hidden, _ = self.crossattention(hidden, mask=context_mask, kv=kv)
        return self.output(self.intermediate(hidden), hidden)

    def forward(self, hidden, self_mask=None, context=None, context_mask=None, want_probs: bool = False):
        """``context``: None (text mode), a tensor, or a list of two tensors
        (two-image fusion: this layer attends to the first, its twin to the
        second; the layer needs :meth:`add_twin` first).  For two images the
        attention maps come back as pairs ``[layer, twin]``."""
        if not isinstance(context, (list, tuple)):
            return self._single(hidden, self_mask, context, context_mask, want_probs)
        if len(context) != 2:
            raise ValueError(f"two-image fusion takes 2 image tensors, got {len(context)}")
        if self.twin is None:
            raise RuntimeError("two-image fusion needs the layer's twin: call add_twin() "
                               "(VLPModel.enable_two_image_fusion()) first")
        masks = context_mask if isinstance(context_mask, (list, tuple)) else [context_mask] * 2
        hidden, sp1, cp1 = self._single(hidden, self_mask, context[0], masks[0], want_probs)
        hidden, sp2, cp2 = self.twin._single(hidden, self_mask, context[1], masks[1], want_probs)
        if not want_probs:
            return hidden, None, None
        return hidden, [sp1, sp2], [cp1, cp2]


class BertEncoder(nn.Module):
    def __init__(self, cfg, cross_layers: set[int], encoder_width: int):
        super().__init__()
        self.layer = nn.ModuleList(
            BertLayer(cfg, i in cross_layers, encoder_width) for i in range(cfg.num_hidden_layers)
        )


class BertLMPredictionHead(nn.Module):
    """BERT's MLM head: dense + act + LayerNorm, then a decoder tied to the word
    embeddings plus a per-token bias (names as ``BertForMaskedLM.cls.predictions``)."""

    def __init__(self, cfg, word_embeddings: nn.Embedding):
        super().__init__()
        self.transform = nn.Module()
        self.transform.dense = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.transform.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.act = _ACTS[cfg.hidden_act]
        self.decoder = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        self.decoder.weight = word_embeddings.weight
        self.bias = nn.Parameter(torch.zeros(cfg.vocab_size))

    def forward(self, hidden):
        x = self.transform.LayerNorm(self.act(self.transform.dense(hidden)))
        return self.decoder(x) + self.bias


def _layer_selected(spec, index: int, last: int) -> bool:
    if spec is True:
        return True
    if spec is False or spec is None:
        return False
    if isinstance(spec, int):
        return index == (spec if spec >= 0 else last + 1 + spec)
    return any(index == (s if s >= 0 else last + 1 + s) for s in spec)


class BertTransformer(nn.Module):
    """BERT embeddings + encoder; layers in ``cross_attention_layers`` can attend
    to image tokens of width ``encoder_width``.

    ``forward(hidden_or_ids, ...)`` runs a contiguous range of layers, so the
    VLP model can run text mode (no context) over the lower layers and fusion
    over the upper ones.
    """

    def __init__(self, config, cross_attention_layers: Iterable[int] | str = (), encoder_width: int | None = None):
        super().__init__()
        self.config = config
        n = config.num_hidden_layers
        if isinstance(cross_attention_layers, str):
            spec = cross_attention_layers
            if spec == "all":
                cross_attention_layers = range(n)
            elif spec.startswith("top:") and spec[4:].isdigit():
                k = int(spec[4:])
                if k > n:
                    raise ConfigError(f"{k} fusion (cross-attention) layers were asked for, but the BERT has only "
                                      f"{n} layers", hint=f"set model.options.fusion_layers to at most {n} (ALBEF: 6 of 12)")
                cross_attention_layers = range(n - k, n)
            else:
                raise ConfigError(f"cross_attention_layers must be 'all', 'top:K' or a list of layer indices, "
                                  f"got {spec!r}")
        given = [int(i) for i in cross_attention_layers]
        bad = [i for i in given if not -n <= i < n]
        if bad:
            raise ConfigError(f"cross-attention layers {bad} are outside the BERT's {n} layers")
        self.cross_attention_layers = sorted({i % n for i in given})
        self.encoder_width = int(encoder_width or config.hidden_size)
        self.embeddings = BertEmbeddings(config)
        self.encoder = BertEncoder(config, set(self.cross_attention_layers), self.encoder_width)
        self.apply(self._init_weights)

    # ------------------------------------------------------------------ basics
    @property
    def width(self) -> int:
        return self.config.hidden_size

    @property
    def num_layers(self) -> int:
        return self.config.num_hidden_layers

    @property
    def vocab_size(self) -> int:
        return self.config.vocab_size

    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0.0, std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, 0.0, std)
            if module.padding_idx is not None:
                with torch.no_grad():
                    module.weight[module.padding_idx].zero_()
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    def make_lm_head(self) -> BertLMPredictionHead:
        """A fresh MLM head tied to the word embeddings; when the loaded weights
        held a ``BertForMaskedLM`` head (``cls.predictions.*``), it starts from it."""
        head = BertLMPredictionHead(self.config, self.embeddings.word_embeddings)
        head.transform.apply(self._init_weights)
        saved = self.__dict__.get("_pretrained_lm_head")
        if saved:
            own = head.state_dict()
            usable = {k: v for k, v in saved.items() if k in own and k != "decoder.weight" and own[k].shape == v.shape}
            head.load_state_dict(usable, strict=False)
        return head

    def make_decoder(self, num_layers: int, context_width: int | None = None
                     ) -> tuple["BertTransformer", BertLMPredictionHead]:
        """Fresh modules of a text decoder of this BERT's shape (ALBEF's
        ``text_decoder``, which the VQA task's answer decoder runs): a BERT of
        ``num_layers`` layers (this one's config otherwise), every layer
        cross-attending to states of width ``context_width`` (default: its own
        width), and an MLM head tied to its word embeddings.  Freshly
        initialised (the caller copies weights in); the caller applies the
        causal mask.  Tasks reach it as ``model.text_encoder.make_decoder``."""
        cfg = copy.deepcopy(self.config)
        cfg.num_hidden_layers = int(num_layers)
        bert = BertTransformer(cfg, "all", encoder_width=context_width or cfg.hidden_size)
        return bert, bert.make_lm_head()

    # ----------------------------------------------------------------- forward
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        *,
        hidden: torch.Tensor | None = None,
        context: torch.Tensor | Sequence[torch.Tensor] | None = None,
        context_mask: torch.Tensor | Sequence[torch.Tensor] | None = None,
        start_layer: int = 0,
        end_layer: int | None = None,
        output_attentions: bool | int | Sequence[int] = False,
        token_type_ids: torch.Tensor | None = None,
    ) -> BertOutput:
        """Run layers ``[start_layer, end_layer)``.

        Input is ``input_ids`` (embedded first) or ``hidden`` ([B, L, D]
        states).  ``attention_mask`` masks the queries' own keys (1 keep / 0
        pad).  With ``context`` the layers apply cross-attention to it (each
        layer in the range must have cross-attention); ``context`` may be a list
        of two tensors (NLVR2): each layer attends to the first, its twin
        (:meth:`BertLayer.add_twin`) right after it to the second.
        ``output_attentions``: True (all layers in the range), an absolute layer
        index (negative counts from the last layer) or a list of indices.
        """
        end_layer = self.num_layers if end_layer is None else end_layer
        if hidden is None:
            if input_ids is None:
                raise ValueError("give input_ids or hidden")
            hidden = self.embeddings(input_ids, token_type_ids)
        dtype = hidden.dtype
        self_mask = _additive_mask(attention_mask, dtype)
        if context is None:
            ctx_mask = None
        elif isinstance(context, (list, tuple)):
            cm = context_mask if isinstance(context_mask, (list, tuple)) else [context_mask] * len(context)
            ctx_mask = [_additive_mask(m, dtype) for m in cm]
        else:
            ctx_mask = _additive_mask(context_mask, dtype)
        want_any = output_attentions is not False and output_attentions is not None
        self_atts: list = []
        cross_atts: list = []
        for index in range(start_layer, end_layer):
            want = want_any and _layer_selected(output_attentions, index, self.num_layers - 1)
            hidden, sp, cp = self.encoder.layer[index](hidden, self_mask, context, ctx_mask, want)
            self_atts.append(sp)
            cross_atts.append(cp)
        return BertOutput(hidden, self_atts if want_any else None,
                          cross_atts if (want_any and context is not None) else None)

    # ------------------------------------------- evaluation: parts computed once
    def cross_kv(self, context: torch.Tensor, start_layer: int, end_layer: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Cross-attention keys/values of ``context`` for each layer in ``[start_layer, end_layer)``."""
        return [self.encoder.layer[i].cross_kv(context) for i in range(start_layer, end_layer)]

    def self_attention_prefix(self, input_ids: torch.Tensor | None, attention_mask: torch.Tensor | None, *,
                              hidden: torch.Tensor | None = None, layer: int = 0) -> torch.Tensor:
        """The self-attention sublayer of ``layer`` on ``hidden`` (or on the embedded
        ``input_ids``): the part of that layer that reads the text alone."""
        if hidden is None:
            hidden = self.embeddings(input_ids)
        return self.encoder.layer[layer].attention(hidden, mask=_additive_mask(attention_mask, hidden.dtype))[0]

    def forward_kv(self, prefix: torch.Tensor, attention_mask: torch.Tensor | None,
                   kv: Sequence[tuple[torch.Tensor, torch.Tensor]], context_mask: torch.Tensor | None = None, *,
                   start_layer: int, end_layer: int | None = None) -> torch.Tensor:
        """Layers ``[start_layer, end_layer)`` from :meth:`self_attention_prefix` of
        ``start_layer`` with the cross-attention keys/values :meth:`cross_kv` gave
        (batch 1: one context for every row).  Same states as :meth:`forward`."""
        end_layer = self.num_layers if end_layer is None else end_layer
        self_mask = _additive_mask(attention_mask, prefix.dtype)
        ctx_mask = _additive_mask(context_mask, prefix.dtype)
        hidden = prefix
        for j, index in enumerate(range(start_layer, end_layer)):
            hidden = self.encoder.layer[index].forward_kv(hidden, self_mask, kv[j], ctx_mask, self_done=j == 0)
        return hidden

    # ----------------------------------------------------------------- weights
    def load_hf_state_dict(self, state: Mapping[str, torch.Tensor], strict_text: bool = True) -> dict[str, list[str]]:
        """Load a Hugging Face ``BertModel`` / ``BertForMaskedLM`` / ALBEF state
        dict by name.  Prefixes ``bert.``, ``text_encoder.bert.``, ``module.``
        are stripped; the pooler is ignored; a ``BertForMaskedLM`` head is kept
        for :meth:`make_lm_head` when it is this BERT's own (``cls.predictions.*``
        at the top or under ``text_encoder.``; an ALBEF momentum head under
        ``text_encoder_m.`` is skipped).  Missing cross-attention
        weights are expected (a text-only checkpoint has none); any other
        missing weight is an error when ``strict_text``."""
        mapped: dict[str, torch.Tensor] = {}
        own = self.state_dict()
        skipped: list[str] = []
        lm_head: dict[str, torch.Tensor] = {}
        for key, value in state.items():
            k = key
            head_key = k.split("cls.predictions.", 1)
            if len(head_key) == 2:  # BertForMaskedLM's head: kept for make_lm_head
                owner = head_key[0]
                for prefix in ("module.", "text_encoder."):
                    if owner.startswith(prefix):
                        owner = owner[len(prefix):]
                if owner:  # another module's head (ALBEF's momentum text_encoder_m., a decoder): not this BERT's
                    skipped.append(key)
                    continue
                name = head_key[1].replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")
                lm_head[name] = value
                continue
            for prefix in ("module.", "text_encoder.", "bert."):
                if k.startswith(prefix):
                    k = k[len(prefix):]
            # old TF-converted checkpoints use gamma/beta for LayerNorm
            k = k.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")
            if k in own:
                if own[k].shape != value.shape:
                    raise UserError(f"BERT weight '{key}' has shape {tuple(value.shape)}, the model expects "
                                    f"{tuple(own[k].shape)}",
                                    hint="use the tokenizer and config that belong to these weights")
                mapped[k] = value
            else:
                skipped.append(key)
        if lm_head:
            object.__setattr__(self, "_pretrained_lm_head", lm_head)
        result = self.load_state_dict(mapped, strict=False)
        missing = [k for k in result.missing_keys if ".crossattention." not in k]
        if strict_text and missing:
            raise UserError(f"BERT weights lack {len(missing)} text parameter(s), e.g. '{missing[0]}'",
                            hint="point weights at a BERT checkpoint directory")
        return {"loaded": len(mapped) + len(lm_head), "missing": list(result.missing_keys), "unexpected": skipped,
                "resampled": []}


# --------------------------------------------------------------------- factories
def build(
    *,
    config: Mapping[str, Any] | str | None = None,
    weights: str | None = None,
    vocab_size: int | None = None,
    pad_token_id: int | None = None,
    cross_attention_layers: Iterable[int] | str = (),
    encoder_width: int | None = None,
    zero_shared_embeddings: bool = False,
    **overrides: Any,
) -> BertTransformer:
    """Build a BERT text/fusion encoder.

    ``cross_attention_layers``: ``"all"``, ``"top:K"`` or layer indices
    (negative ones count from the top) that get cross-attention to image tokens of width
    ``encoder_width``.  ``config``: a dict of ``BertConfig`` fields or a local directory; when
    ``weights`` names a local Hugging Face BERT directory and no config is
    given, the directory's config is used.  ``vocab_size``/``pad_token_id``
    come from the tokenizer; ``overrides`` are further ``BertConfig`` fields.

    ``zero_shared_embeddings`` (a from-scratch model; loaded weights replace
    it): start the token-type and position embeddings at zero instead of
    BERT's N(0, 0.02).  Both add the same vectors to every caption, and after
    the embedding LayerNorm BERT's random ones make up most of each token, so
    every caption starts as almost the same representation and contrastive
    learning waits for the projection to dig the words out (docs/objectives.md,
    "ITC from scratch").
    """
    if config is None and weights is not None and Path(weights).is_dir() and (Path(weights) / "config.json").is_file():
        config = weights
    check_options(overrides)
    cfg = load_bert_config(config, vocab_size=vocab_size, pad_token_id=pad_token_id, **overrides)
    model = BertTransformer(cfg, cross_attention_layers, encoder_width)
    if zero_shared_embeddings:
        with torch.no_grad():
            model.embeddings.token_type_embeddings.weight.zero_()
            model.embeddings.position_embeddings.weight.zero_()
    if weights:
        got = model.load_hf_state_dict(read_state_dict(weights))
        model.load_report = got
        report_load("text backbone (BERT)", weights, got["loaded"], got["missing"], got["unexpected"])
    return model


def bert_world_tiny(**options: Any) -> BertTransformer:
    """Tiny BERT for the built-in world: width 192, 4 layers, 3 heads, FFN 768;
    trained from scratch, so its shared (token-type, position) embeddings start
    at zero unless ``zero_shared_embeddings=False``."""
    options.setdefault("zero_shared_embeddings", not options.get("weights"))
    given = options.pop("config", None)
    if given is None and options.get("weights"):
        config = None  # the weights directory's own config.json
    elif given is None or isinstance(given, Mapping):
        config = {**BERT_WORLD_TINY, **dict(given or {})}
    else:
        config = given
    return build(config=config, **options)


def bert_base(**options: Any) -> BertTransformer:
    """BERT-base shape (768 wide, 12 layers, 12 heads, FFN 3072); give
    ``weights`` (a local HF directory) to start from pretrained BERT."""
    config = options.pop("config", None)
    if config is None and not options.get("weights"):
        config = dict(BERT_BASE)
    return build(config=config, **options)
