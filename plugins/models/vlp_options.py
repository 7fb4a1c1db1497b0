"""The options of the built-in ``vlp`` model (the config's ``model.options``):
their types, defaults and the pre-processing presets.

Validated with pydantic, so a wrong key or value is one line naming the
option and what is allowed.  ``preset`` fills the pre-processing options the
user left unset: ``world`` (the built-in world's from-scratch choices),
``albef`` and ``simla`` (the official code's pre-processing, needed to get a
released checkpoint's numbers; see docs/model.md).
"""

from __future__ import annotations

from typing import Any, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from simla_bench.errors import ConfigError


class BackboneSpec(BaseModel):
    """An encoder: a registered backbone name and its options."""

    model_config = ConfigDict(extra="forbid")
    name: str
    options: dict[str, Any] = Field(default_factory=dict)


#: pre-processing options each preset sets when the user leaves them unset
PRESETS: dict[str, dict[str, Any]] = {
    "world": {"text_clean": "none", "special_tokens": "bert", "normalize": "imagenet", "pos_embed_resize": "timm"},
    "albef": {"text_clean": "albef", "special_tokens": "albef", "normalize": "clip", "pos_embed_resize": "albef"},
    "simla": {"text_clean": "albef", "special_tokens": "albef", "normalize": "clip", "pos_embed_resize": "albef"},
}


class VLPOptions(BaseModel):
    """``model.options`` of the ``vlp`` model (see configs/default.yaml for comments)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    image: BackboneSpec = BackboneSpec(name="vit_world_tiny")
    text: BackboneSpec = BackboneSpec(name="bert_world_tiny")
    #: single_stream: one BERT whose every layer has cross-attention (SIMLA);
    #: split: lower layers text-only, top ``fusion_layers`` fuse (ALBEF)
    layout: Literal["single_stream", "split"] = "single_stream"
    fusion_layers: int = Field(2, ge=0)
    embed_dim: int = Field(128, ge=8)
    momentum: float = Field(0.995, ge=0.0, le=1.0)
    queue_size: int = Field(4096, ge=0)
    temp: float = Field(0.07, gt=0.0)
    #: tokens per text at pretraining and in every task that does not set its own
    max_text_len: int = Field(25, ge=4)
    text_pool: Literal["cls", "mean"] = "cls"
    #: null = train a WordPiece tokenizer on the pretraining captions; or a local HF tokenizer directory
    tokenizer: str | None = None
    vocab_size: int = Field(1000, ge=50)
    # ---------------------------------------------------------- pre-processing
    preset: Literal["world", "albef", "simla"] = "world"
    #: none, or ALBEF's pre_caption / pre_question (lower-case, punctuation, word limit)
    text_clean: Literal["none", "albef"] | None = None
    #: bert: [CLS] text [SEP]; albef: [CLS] text (ALBEF's and SIMLA's tokenizer)
    special_tokens: Literal["bert", "albef"] | None = None
    #: image normalisation statistics: ImageNet (timm) or CLIP's (ALBEF, SIMLA)
    normalize: Literal["imagenet", "clip"] | None = None
    #: how position embeddings are resized to another resolution: timm's
    #: antialiased resample, or ALBEF's plain bicubic interpolate
    pos_embed_resize: Literal["timm", "albef"] | None = None
    # ------------------------------------------------------------- checkpoint
    #: a full-model checkpoint to load after building (a released ALBEF/SIMLA
    #: .pth or a checkpoint a simla-bench run wrote)
    checkpoint: str | None = None
    format: Literal["auto", "simla_bench", "albef", "simla"] = "auto"
    #: refuse a load that leaves a needed parameter unfilled or ignores a key
    strict: bool = True

    def resolved(self) -> "VLPOptions":
        """These options with the preset's pre-processing filled in where unset."""
        fill = {k: v for k, v in PRESETS[self.preset].items() if getattr(self, k) is None}
        return self.model_copy(update=fill) if fill else self


def parse_options(given: Mapping[str, Any], owner: str = "model 'vlp'") -> VLPOptions:
    """Validate ``model.options``; a bad key or value is one ConfigError line."""
    try:
        return VLPOptions.model_validate(dict(given)).resolved()
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err.get("loc", ())) or "options"
        if err.get("type") == "extra_forbidden":
            parent = loc.rsplit(".", 1)[0] if "." in loc else ""
            allowed = ", ".join(BackboneSpec.model_fields if parent in ("image", "text") else VLPOptions.model_fields)
            raise ConfigError(f"{owner}: unknown option '{loc}'; allowed: {allowed}") from None
        got = f" (got {err.get('input')!r})" if "input" in err and err.get("type") != "value_error" else ""
        raise ConfigError(f"{owner}: option '{loc}': {err.get('msg', 'invalid value')}{got}") from None
