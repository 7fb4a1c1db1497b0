"""The model recipes ``hf_clip``, ``hf_siglip``, ``hf_blip`` and ``hf_vilt``.

:class:`HFRecipe` is what the four share: the options (``path``: a local
``save_pretrained`` directory; ``online``: allow a hub id and downloads;
``max_text_len``: 0 = the family's default), the check that the directory
holds a model of the family (before anything runs), the tokenizer and image
processor read from the checkpoint, the load report, and the capability
hints.  Each family recipe names its transformers classes and builds its
adapter (:mod:`.dual_encoder`, :mod:`.blip`, :mod:`.vilt`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Mapping

from simla_bench.errors import ConfigError
from simla_bench.interfaces import ModelPlugin
from simla_bench.plugins.models.hf.source import HFSource, architecture

#: how to obtain each capability an HF model may lack (the n/a cells and errors quote it)
HINTS: dict[str, str] = {
    "image_feat": "this family has no separate image/text encoders (no ITC): use hf_clip, hf_siglip or hf_blip",
    "text_feat": "this family has no separate image/text encoders (no ITC): use hf_clip, hf_siglip or hf_blip",
    "fusion": "a dual encoder has no fusion of text and image: use hf_blip or hf_vilt",
    "itm_head": "a dual encoder has no image-text matching head: use hf_blip or hf_vilt",
    "two_image_fusion": "a dual encoder fuses nothing: use hf_blip or hf_vilt",
    "vqa_head": "load a ViltForQuestionAnswering checkpoint with hf_vilt, or fine-tune the task's head (vqa mode: finetune)",
    "nlvr2_head": "load a ViltForImagesAndTextClassification checkpoint with hf_vilt, or use nlvr2 mode: finetune",
    "mlm_head": "the answer decoder starts from the model's MLM head, which the hf_* models do not expose: "
                "use vqa answer_head: classifier",
    "momentum": "the hf_* models keep no momentum copy: objectives that need one cannot pretrain them",
}


class HFRecipe(ModelPlugin):
    """A Hugging Face family read from a ``save_pretrained`` directory (see the module docstring)."""

    defaults = {"path": "", "online": False, "max_text_len": 0}
    capability_hints = HINTS
    #: the option ``simla-bench run --model NAME:PATH`` sets
    path_option: ClassVar[str] = "path"
    #: a row may not change the checkpoint of the experiment's own model (the rows share its tokenizer)
    row_fixed_options = ("path", "online")
    #: config.json ``model_type`` values of the family and the architectures the recipe loads
    model_types: ClassVar[tuple[str, ...]] = ()
    architectures: ClassVar[tuple[str, ...]] = ()
    #: tokens per text when ``max_text_len`` is 0 (capped by the text positions of the config)
    default_text_len: ClassVar[int] = 77

    def validate_options(self, given: Mapping[str, Any]) -> dict[str, Any]:
        options = super().validate_options(given)
        if options["max_text_len"] < 0:
            raise ConfigError(f"model '{self.name}': max_text_len must be >= 0 (0 = the family's default)")
        self.source = HFSource(self.name, str(options["path"]), bool(options["online"]))
        self._config: dict[str, Any] | None = None
        self._report: Any = None
        return options

    # ------------------------------------------------------------ config
    def config(self) -> dict[str, Any]:
        if self._config is None:
            self._config = self.source.config()
        return self._config

    def check(self) -> None:
        """A directory of this family with an architecture the recipe loads."""
        config = self.config()
        kind = config.get("model_type", "")
        if kind not in self.model_types:
            raise ConfigError(f"model '{self.name}': {self.source.where} holds a '{kind or 'unknown'}' model, "
                              f"not {' or '.join(self.model_types)}", hint="use the hf_* model of its family")
        arch = architecture(config)
        if self.architectures and arch not in self.architectures:
            raise ConfigError(f"model '{self.name}': {self.source.where} is a {arch or 'model of no architecture'}, "
                              f"which {self.name} does not load",
                              hint=f"save one of {', '.join(self.architectures)} there")

    def text_positions(self) -> int:
        config = self.config()
        text = config.get("text_config") or config
        return int(text.get("max_position_embeddings") or self.default_text_len)

    @property
    def max_text_len(self) -> int:
        return int(self.options["max_text_len"]) or min(self.default_text_len, self.text_positions())

    def describe(self) -> str:
        return f"model '{self.name}' ({architecture(self.config()) or self.model_types[0]} from {self.source.where})"

    def input_files(self) -> dict[str, str]:
        return {"checkpoint": self.source.where} if self.source.local else {}

    # ------------------------------------------------------------ building
    def build_tokenizer(self, captions: Any = None, save_dir: Path | None = None) -> Any:
        from transformers import AutoTokenizer

        tok = self.source.load("tokenizer", AutoTokenizer)
        if save_dir is not None:
            tok.save_pretrained(str(save_dir))
        return tok

    def build(self, tokenizer: Any) -> Any:
        from transformers import AutoImageProcessor

        from simla_bench.plugins.models.hf.adapter import LoadReport

        self.check()
        cls = self.hf_class()
        hf, info = self.source.load("weights", cls, output_loading_info=True)
        processor = self.source.load("image processor", AutoImageProcessor)
        adapter = self.adapter(hf, tokenizer, processor)
        new_heads = sorted(adapter.capabilities & {"itm_head"} - adapter.trained_heads)
        self._report = LoadReport(self.name, cls.__name__, self.source.where, len(hf.state_dict()),
                                  sorted(info.get("missing_keys") or []), sorted(info.get("unexpected_keys") or []),
                                  new_heads)
        return adapter

    def load_weights(self, model: Any) -> Any:
        """The weights were read with the model (``from_pretrained``); this returns that load's report."""
        return self._report

    def hf_class(self) -> Any:
        """The transformers class to read the checkpoint with."""
        import transformers

        return getattr(transformers, architecture(self.config()) or self.architectures[0])

    def adapter_kwargs(self, processor: Any) -> dict[str, Any]:
        return {"max_text_len": self.max_text_len, "image_size": image_size(processor, self.config()),
                "hints": self.capability_hints}

    def adapter(self, hf: Any, tokenizer: Any, processor: Any) -> Any:
        raise NotImplementedError


def image_size(processor: Any, config: Mapping[str, Any]) -> int:
    """The square size the processor gives (its crop, else its size), else the vision config's."""
    for attr in ("crop_size", "size"):
        size = getattr(processor, attr, None)
        if isinstance(size, int):
            return size
        for key in ("height", "shortest_edge"):  # a dict (transformers 4) or a SizeDict (5)
            value = size.get(key) if isinstance(size, Mapping) else getattr(size, key, None)
            if value:
                return int(value)
    vision = config.get("vision_config") or config
    return int(vision["image_size"])


class HFClipRecipe(HFRecipe):
    """CLIP (``CLIPModel``): a dual encoder, retrieval by its similarity."""

    model_types = ("clip",)
    architectures = ("CLIPModel",)

    def adapter(self, hf, tokenizer, processor):
        from simla_bench.plugins.models.hf.dual_encoder import DualEncoderAdapter

        return DualEncoderAdapter(hf, tokenizer, processor, projections=True, **self.adapter_kwargs(processor))


class HFSiglipRecipe(HFRecipe):
    """SigLIP (``SiglipModel``): a dual encoder with a sigmoid-trained similarity."""

    model_types = ("siglip",)
    architectures = ("SiglipModel",)
    default_text_len = 64

    def adapter(self, hf, tokenizer, processor):
        from simla_bench.plugins.models.hf.dual_encoder import DualEncoderAdapter

        return DualEncoderAdapter(hf, tokenizer, processor, projections=False, fixed_length=self.text_positions(),
                                  **self.adapter_kwargs(processor))


class HFBlipRecipe(HFRecipe):
    """BLIP (``BlipForImageTextRetrieval``): ITC + ITM with cross-attention fusion."""

    model_types = ("blip",)
    architectures = ("BlipForImageTextRetrieval",)
    default_text_len = 35  # BLIP's retrieval caption length

    def adapter(self, hf, tokenizer, processor):
        from simla_bench.plugins.models.hf.blip import BlipAdapter

        return BlipAdapter(hf, tokenizer, processor, trained=("itm_head",), **self.adapter_kwargs(processor))


class HFViltRecipe(HFRecipe):
    """ViLT: single stream with its ITM (retrieval), VQA or NLVR2 head."""

    model_types = ("vilt",)
    architectures = ("ViltForImageAndTextRetrieval", "ViltForQuestionAnswering",
                     "ViltForImagesAndTextClassification", "ViltForMaskedLM")
    default_text_len = 40

    def adapter(self, hf, tokenizer, processor):
        from simla_bench.plugins.models.hf.vilt import HEADS, ViltAdapter

        head = HEADS.get(type(hf).__name__, "")
        return ViltAdapter(hf, tokenizer, processor, head=head, trained=(head,) if head else (),
                           **self.adapter_kwargs(processor))
