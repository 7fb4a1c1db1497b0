"""The official (ALBEF / SIMLA) pre-processing, as small reusable pieces.

A released ALBEF or SIMLA checkpoint only gives its published numbers when its
inputs are prepared the way its own code prepared them.  This module holds the
text side and the facts; the other pieces live next to what they change:

* :func:`pre_caption` / :func:`pre_question` -- the text cleaning of the
  official ``dataset/utils.py`` (lower-case, delete ``, . ' ! ? " ( ) * # : ; ~``,
  ``-`` and ``/`` become spaces, a word limit; captions also map
  ``<person>`` to ``person`` and collapse whitespace runs);
* :data:`CLIP_MEAN` / :data:`CLIP_STD` -- the normalisation both official repos
  use (``image_transform(..., normalize="clip")`` in
  :mod:`simla_bench.plugins.datasets.images`), and ImageNet's for comparison;
* :data:`OFFICIAL_TEXT_SETTINGS` -- per task: the word limit given to
  ``pre_caption`` / ``pre_question``, the ``max_length`` and truncation the
  task's script passes to the tokenizer, and the image resolution;
* the ``[CLS] text`` special-token rule is
  ``set_special_token_rule(tokenizer, "albef")`` in
  :mod:`simla_bench.plugins.backbones.tokenizer`; ALBEF's position-embedding
  resize is ``resize_pos_embed_albef`` / ``pos_embed_resize="albef"`` in
  :mod:`simla_bench.plugins.backbones.vit`.

Written from the rules of salesforce/ALBEF b9727e4 and codezakh/SIMLA 44c700d
(SIMLA's text and image pre-processing is the same as ALBEF's; the places where
it differs are noted in :data:`OFFICIAL_TEXT_SETTINGS`).  The equality with the
official functions is tested against their outputs in
``tests/fixtures/preprocess/albef_text.json``.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = [
    "CLIP_MEAN", "CLIP_STD", "IMAGENET_MEAN", "IMAGENET_STD", "OFFICIAL_TEXT_SETTINGS",
    "NORMALIZATION", "official_settings", "pre_caption", "pre_question", "clean_text",
]

#: CLIP's image statistics, which ALBEF and SIMLA normalise with
#: (ALBEF dataset/__init__.py, create_dataset; SIMLA dataset/__init__.py, the same values)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
#: ImageNet statistics (timm.data.IMAGENET_DEFAULT_MEAN / _STD): simla-bench's default
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: name -> (mean, std), the values of ``image_transform``'s ``normalize`` option
NORMALIZATION = {"imagenet": (IMAGENET_MEAN, IMAGENET_STD), "clip": (CLIP_MEAN, CLIP_STD)}

# the characters the official cleaning deletes outright
_DELETED = str.maketrans("", "", ",.'!?\"()*#:;~")
# a run of two or more whitespace characters (Python's Unicode ``\s``); a single
# tab or newline is left alone by the official caption cleaning
_WS_RUN = re.compile(r"\s{2,}")


def _first_words(text: str, max_words: int) -> str:
    # words are what ``str.split(" ")`` gives, so empty strings between two
    # spaces count as words (this matters for pre_question, which does not
    # collapse spaces)
    words = text.split(" ")
    return " ".join(words[:max_words]) if len(words) > max_words else text


def _common(text: str) -> str:
    return text.lower().translate(_DELETED).replace("-", " ").replace("/", " ")


def pre_caption(caption: str, max_words: int) -> str:
    """ALBEF/SIMLA ``pre_caption``: lower-case; delete ``, . ' ! ? " ( ) * # : ; ~``;
    ``-`` and ``/`` -> space; ``<person>`` -> ``person``; every run of 2+
    whitespace characters -> one space; drop one trailing ``\\n`` run, then
    leading/trailing spaces; keep the first ``max_words`` space-separated words."""
    text = _common(caption).replace("<person>", "person")
    text = _WS_RUN.sub(" ", text).rstrip("\n").strip(" ")
    return _first_words(text, max_words)


def pre_question(question: str, max_words: int) -> str:
    """ALBEF/SIMLA ``pre_question``: lower-case; delete ``, . ' ! ? " ( ) * # : ; ~``;
    ``-`` and ``/`` -> space; trailing spaces removed (leading ones and inner
    runs are kept, unlike :func:`pre_caption`); keep the first ``max_words``
    words of ``split(" ")`` (empty strings between double spaces count)."""
    text = _common(question).rstrip(" ")
    return _first_words(text, max_words)


def clean_text(text: str, kind: str = "caption", max_words: int = 30, rule: str = "albef") -> str:
    """One entry point for a model option: ``rule="none"`` returns ``text``
    unchanged; ``rule="albef"`` applies :func:`pre_caption` (``kind="caption"``)
    or :func:`pre_question` (``kind="question"``) with ``max_words``."""
    if rule == "none":
        return text
    if rule != "albef":
        raise ValueError(f"text cleaning rule must be 'none' or 'albef', got {rule!r}")
    if kind == "caption":
        return pre_caption(text, max_words)
    if kind == "question":
        return pre_question(text, max_words)
    raise ValueError(f"text kind must be 'caption' or 'question', got {kind!r}")


# --------------------------------------------------------------------------------------
# The per-task settings of the official code.
#
# Keys of each entry:
#   clean        -- "pre_caption" or "pre_question": which cleaning the dataset applies
#   max_words    -- {"train": n, "eval": n}: the word limit passed to it
#   tokenize     -- {"train": {...}, "eval": {...}}: the tokenizer call of the task's
#                   script: max_length (None = none passed) and truncation (bool).
#                   NOTE: several scripts pass max_length=30 with padding="longest" and
#                   no truncation=True; Hugging Face then neither truncates nor pads to
#                   30 (max_length is only used for truncation or padding="max_length"),
#                   so the effective limit there is None (the text is only bounded by
#                   the word limit).  "max_length_passed" records the literal value.
#   special      -- "albef": [CLS] tokens, no trailing [SEP] (models/tokenization_bert.py,
#                   build_inputs_with_special_tokens; SIMLA's copy builds the same ids)
#   image_res    -- the config's image_res (square bicubic resize at evaluation)
#   normalize    -- "clip"
#   notes        -- anything else the task's code does to its text
#
# Where each value was read (paths in salesforce/ALBEF b9727e4; SIMLA 44c700d has
# the same values at the same paths unless noted):
#   word limits:  dataset/caption_dataset.py (re_train_dataset, re_eval_dataset,
#                 pretrain_dataset: max_words=30), dataset/grounding_dataset.py
#                 (max_words=30), dataset/nlvr_dataset.py (self.max_words = 30),
#                 dataset/ve_dataset.py (max_words=30), dataset/vqa_dataset.py
#                 (max_ques_words=30 at train, 50 at test: "do not limit question
#                 length during test")
#   tokenizer:    Retrieval.py (train: padding longest, max_length=30, no truncation;
#                 evaluation: padding max_length, truncation, max_length=30),
#                 Pretrain.py and Pretrain_nlvr.py (SIMLA: Pretrain_NLVR.py)
#                 (truncation, max_length=25), Grounding.py (train: max_length=30, no
#                 truncation; evaluation: none), VQA.py (train question: truncation,
#                 max_length=25; evaluation question: none; answers: none, each answer
#                 gets config eos '[SEP]' appended as text), NLVR.py and VE.py (none),
#                 SIMLA zero_shot_retrieval.py (as Retrieval.py evaluation)
#   image_res:    configs/Pretrain.yaml, configs/NLVR_pretrain.yaml (SIMLA:
#                 configs/NLVR_Pretrain.yaml) 256; configs/Retrieval_coco.yaml,
#                 configs/Retrieval_flickr.yaml, configs/Grounding.yaml,
#                 configs/VQA.yaml, configs/NLVR.yaml, configs/VE.yaml 384
#   transforms:   dataset/__init__.py (create_dataset: test transform = Resize((res,
#                 res), BICUBIC), ToTensor, Normalize(CLIP); grounding trains on the
#                 same square resize + flip + RandAugment, the others on
#                 RandomResizedCrop(res, scale (0.5, 1), BICUBIC) + flip + RandAugment;
#                 pretraining scale (0.2, 1))
#   pos embed:    models/vit.py (interpolate_pos_embed), applied when a checkpoint is
#                 loaded by Retrieval.py, Grounding.py, VQA.py, NLVR.py, VE.py,
#                 Pretrain.py, Pretrain_nlvr.py
# --------------------------------------------------------------------------------------

def _tok(max_length: int | None, truncation: bool, padding: str = "longest") -> dict[str, Any]:
    effective = max_length if (truncation or padding == "max_length") else None
    return {"max_length_passed": max_length, "truncation": truncation, "padding": padding,
            "max_length": effective}


OFFICIAL_TEXT_SETTINGS: dict[str, dict[str, Any]] = {
    "pretrain": {
        "clean": "pre_caption", "max_words": {"train": 30},
        "tokenize": {"train": _tok(25, True)},
        "image_res": 256, "normalize": "clip", "special": "albef",
        "notes": "a list of captions: one is drawn at random per step; SIMLA's visual-tokenizer "
                 "(DALL-E) view is a second crop at image_res // 2 without CLIP normalisation",
    },
    "retrieval_coco": {
        "clean": "pre_caption", "max_words": {"train": 30, "eval": 30},
        "tokenize": {"train": _tok(30, False), "eval": _tok(30, True, "max_length")},
        "image_res": 384, "normalize": "clip", "special": "albef", "k_test": 256,
        "notes": "evaluation pads every text to exactly 30 tokens",
    },
    "retrieval_flickr": {
        "clean": "pre_caption", "max_words": {"train": 30, "eval": 30},
        "tokenize": {"train": _tok(30, False), "eval": _tok(30, True, "max_length")},
        "image_res": 384, "normalize": "clip", "special": "albef", "k_test": 128,
        "notes": "evaluation pads every text to exactly 30 tokens",
    },
    "grounding": {
        "clean": "pre_caption", "max_words": {"train": 30, "eval": 30},
        "tokenize": {"train": _tok(30, False), "eval": _tok(None, False)},
        "image_res": 384, "normalize": "clip", "special": "albef",
        "notes": "RefCOCO+ 'text' field; training images are resized to a square, not cropped",
    },
    "vqa": {
        "clean": "pre_question", "max_words": {"train": 30, "eval": 50},
        "tokenize": {"train": _tok(25, True), "eval": _tok(None, False)},
        "image_res": 384, "normalize": "clip", "special": "albef", "k_test": 128,
        "notes": "answers are not cleaned; each gets the text '[SEP]' appended (config eos) and "
                 "is tokenized without a limit, so an answer reads [CLS] answer [SEP]",
    },
    "nlvr2": {
        "clean": "pre_caption", "max_words": {"train": 30, "eval": 30},
        "tokenize": {"train": _tok(None, False), "eval": _tok(None, False)},
        "image_res": 384, "normalize": "clip", "special": "albef",
        "notes": "the word limit is fixed in the dataset class (self.max_words = 30)",
    },
    "nlvr2_pretrain": {
        "clean": "pre_caption", "max_words": {"train": 30},
        "tokenize": {"train": _tok(25, True)},
        "image_res": 256, "normalize": "clip", "special": "albef",
        "notes": "ALBEF Pretrain_nlvr.py / SIMLA Pretrain_NLVR.py: the text-assignment "
                 "pretraining step before NLVR2 fine-tuning",
    },
    "snli_ve": {
        "clean": "pre_caption", "max_words": {"train": 30, "eval": 30},
        "tokenize": {"train": _tok(None, False), "eval": _tok(None, False)},
        "image_res": 384, "normalize": "clip", "special": "albef",
        "notes": "",
    },
}


def official_settings(task: str, split: str = "eval") -> dict[str, Any]:
    """The flat settings of one task and split (``train`` or ``eval``):
    ``clean``, ``max_words``, ``max_length`` (effective; None = no truncation),
    ``truncation``, ``padding``, ``image_res``, ``normalize``, ``special``."""
    if task not in OFFICIAL_TEXT_SETTINGS:
        raise KeyError(f"no official settings for task {task!r}; known: {', '.join(OFFICIAL_TEXT_SETTINGS)}")
    entry = OFFICIAL_TEXT_SETTINGS[task]
    if split not in entry["max_words"]:
        raise KeyError(f"task {task!r} has no {split!r} split; it has {', '.join(entry['max_words'])}")
    tok = entry["tokenize"][split]
    return {"clean": entry["clean"], "max_words": entry["max_words"][split], "max_length": tok["max_length"],
            "truncation": tok["truncation"], "padding": tok["padding"], "image_res": entry["image_res"],
            "normalize": entry["normalize"], "special": entry["special"]}
