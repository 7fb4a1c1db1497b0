"""The ``vlp`` model recipe: builds :class:`~simla_bench.plugins.backbones.vlp.VLPModel`
(SIMLA's single stream or ALBEF's split layout) with its tokenizer and
pre-processing, and loads a full checkpoint into it.

Owns the model's options (:mod:`.vlp_options`), the tokenizer it uses
(trained on the pretraining captions or read from a local directory, with
ALBEF's special-token rule and caption cleaning when asked for), its image
transform and text length (exposed on the built model), the explanations of
how to obtain a capability, and the checkpoint load (:mod:`.checkpoint_load`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from simla_bench.interfaces import ModelPlugin
from simla_bench.plugins.models.vlp_options import VLPOptions, parse_options

#: how a user obtains each capability of the built-in model
CAPABILITY_HINTS: dict[str, str] = {
    "text": "configure a text encoder under model.options.text",
    "fusion": "use model.options.layout: single_stream, or layout: split with fusion_layers > 0",
    "itm_head": "use a layout with fusion layers (the ITM head reads the fused states)",
    "fuse_image": "use a layout with fusion layers (image tokens cross-attend to the caption there)",
    "two_image_fusion": "use a layout with fusion layers (NLVR2 duplicates them)",
    "momentum": "set model.options.momentum to a value above 0 (paper: 0.995)",
    "mlm_head": "the vlp model always builds the MLM head",
    "mim_head": "the vlp model always builds the masked-image-modelling head",
    "concept_head": "the vlp model always builds the PSL concept head",
}


#: the last checkpoint read (path, mtime, size -> state, format): a run builds
#: its model several times (probe, each row) and a released checkpoint is ~1 GB
_LAST_READ: dict[str, Any] = {}

#: ALBEF's word limits at evaluation (its configs' max_words for captions, the
#: VQA test set's max_ques_words for questions; VQA training uses 30)
ALBEF_MAX_WORDS = {"caption": 30, "question": 50}


def albef_clean(texts: list[str], kind: str = "caption") -> list[str]:
    """ALBEF's text cleaning: ``pre_question`` for VQA questions, ``pre_caption`` otherwise."""
    from simla_bench.plugins.models.preprocess import clean_text

    kind = "question" if kind == "question" else "caption"
    return [clean_text(t, kind, ALBEF_MAX_WORDS[kind]) for t in texts]


class VLPRecipe(ModelPlugin):
    """ViT + BERT vision-language model (SIMLA / ALBEF); options in :class:`VLPOptions`."""

    defaults = VLPOptions().model_dump(mode="json")
    capability_hints = CAPABILITY_HINTS
    row_fixed_options = ("tokenizer", "vocab_size", "max_text_len", "special_tokens", "text_clean", "preset")

    def validate_options(self, given: Mapping[str, Any]) -> dict[str, Any]:
        self.cfg: VLPOptions = parse_options(given, f"model '{self.name}'")
        return self.cfg.model_dump(mode="json")

    @property
    def max_text_len(self) -> int:
        return int(self.cfg.max_text_len)

    def components(self) -> list[tuple[str, str]]:
        return [("backbone", self.cfg.image.name), ("backbone", self.cfg.text.name)]

    def input_files(self) -> dict[str, str]:
        c = self.cfg
        found = {"checkpoint": c.checkpoint, "tokenizer": c.tokenizer,
                 "image.weights": c.image.options.get("weights"), "text.weights": c.text.options.get("weights")}
        return {role: str(path) for role, path in found.items() if path}

    def describe(self) -> str:
        c = self.cfg
        return f"model '{self.name}' with layout={c.layout}, fusion_layers={c.fusion_layers}"

    # --------------------------------------------------------------- tokenizer
    def tokenizer_needs_captions(self) -> bool:
        return not self.cfg.tokenizer

    def build_tokenizer(self, captions: Any = None, save_dir: Path | None = None) -> Any:
        from simla_bench.plugins.backbones.tokenizer import get_tokenizer, set_special_token_rule

        tok = get_tokenizer(self.cfg, captions, save_dir=save_dir)
        if self.cfg.special_tokens != "bert":
            set_special_token_rule(tok, self.cfg.special_tokens)
        if self.cfg.text_clean == "albef":
            tok.clean_text = albef_clean  # read by the trainer's collate and the tasks' tokenize
        return tok

    # ------------------------------------------------------------------- model
    def build(self, tokenizer: Any) -> Any:
        from simla_bench.plugins.backbones.vlp import build_model

        cfg = self.cfg
        if cfg.pos_embed_resize != "timm":
            image = cfg.image.model_copy(update={"options": {**cfg.image.options,
                                                              "pos_embed_resize": cfg.pos_embed_resize}})
            cfg = cfg.model_copy(update={"image": image})
        model = build_model(cfg, tokenizer)
        model.capability_hints = dict(self.capability_hints)
        return model

    def check(self) -> None:
        """The checkpoint (if any) reads safely and has a layout of the asked-for family."""
        if self.cfg.checkpoint:
            self._checkpoint_state()

    def _checkpoint_state(self) -> tuple[dict, str]:
        from simla_bench.errors import UserError
        from simla_bench.plugins.models.checkpoint_load import detect_format, read_checkpoint

        path = Path(self.cfg.checkpoint)
        try:
            stat = path.stat()
            stamp = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
        except OSError:
            stamp = None
        if stamp is None or _LAST_READ.get("stamp") != stamp:
            state = read_checkpoint(path)  # one-line UserError for a missing/bad/unsafe file
            _LAST_READ.clear()
            _LAST_READ.update(stamp=stamp, state=state, format=detect_format(state))
        fmt = _LAST_READ["format"]
        family = {"albef": fmt.startswith("albef"), "simla": fmt == "simla", "simla_bench": fmt == "simla_bench",
                  "auto": True}[self.cfg.format]
        if not family:
            raise UserError(f"checkpoint '{path}' has the {fmt} key layout, not {self.cfg.format}'s",
                            hint="set model.options.format: auto (or the format it is)")
        return _LAST_READ["state"], fmt

    def load_weights(self, model: Any) -> Any:
        """Load ``options.checkpoint`` (format family checked) and hand what
        the checkpoint carries beyond the model's own parameters to its users:
        ``model.answer_decoder_state`` (VQA decoder), ``model.task_head_states``
        (``{"nlvr2": ALBEF's cls_head}``), ``model.objective_states`` (ITC queues)."""
        if not self.cfg.checkpoint:
            return None
        from simla_bench.plugins.models.checkpoint_load import load_checkpoint

        state, fmt = self._checkpoint_state()
        report = load_checkpoint(model, state, format=fmt, strict=self.cfg.strict)
        report.source = str(self.cfg.checkpoint)
        extras = report.extras or {}
        model.answer_decoder_state = extras.get("answer_decoder")
        model.task_head_states = {"nlvr2": extras["nlvr_head"]} if extras.get("nlvr_head") else {}
        states = dict(extras.get("objectives") or {})
        if extras.get("itc") and "itc" not in states:
            states["itc"] = extras["itc"]
        model.objective_states = states
        return report
