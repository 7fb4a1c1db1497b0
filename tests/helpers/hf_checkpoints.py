"""Tiny random Hugging Face checkpoints for the ``hf_*`` model tests.

Each builder makes a model of one family from its transformers config class at
toy sizes (2 layers, width 32, 32 px images in 8 px patches), saves it with
``save_pretrained`` into a folder together with a tokenizer and the family's
image processor, and returns the folder; the plugin then loads it back as a
user's checkpoint.  Nothing is downloaded: the tokenizer is a WordPiece
``BertTokenizerFast`` over a vocabulary written here from the tiny world's own
texts (every word of its captions, expressions, questions, answers and
statements), so no task text is ``[UNK]``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
PIXELS, PATCH = 32, 8
#: initializer_range 0.3 (not transformers' 0.02): outputs that differ enough between inputs for
#: an equality test at 1e-5 to tell a wrong adapter from a right one
TOWER = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
         "initializer_range": 0.3}


def world_texts(world) -> list[str]:
    """Every text of the tiny world's splits (and the VQA answers)."""
    texts = [r.caption for r in world.load("pretrain", "train")]
    for split in ("train", "test", "test_comp"):
        data = world.load("retrieval", split)
        texts += [r.caption for r in data] if split == "train" else list(data.texts)
    for split in ("train", "val", "testA", "testB", "test_comp"):
        texts += [r.sentence for r in world.load("grounding", split)]
    for split in ("train", "val", "test", "test_comp"):
        for r in world.load("vqa", split).records:
            texts += [r.question, *r.answers]
    for split in ("train", "dev", "test", "test_comp"):
        texts += [r.sentence for r in world.load("nlvr2", split)]
    return texts


def tokenizer(world, folder: Path):
    """A ``BertTokenizerFast`` whose vocabulary is every word of the world's texts."""
    from tokenizers.normalizers import BertNormalizer
    from tokenizers.pre_tokenizers import BertPreTokenizer
    from transformers import BertTokenizerFast

    norm, pre = BertNormalizer(lowercase=True), BertPreTokenizer()
    words = sorted({w for t in world_texts(world) for w, _ in pre.pre_tokenize_str(norm.normalize_str(t))})
    folder.mkdir(parents=True, exist_ok=True)
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(SPECIAL + words) + "\n", encoding="utf-8")
    return BertTokenizerFast(str(vocab))


def _text(tok, positions: int = 40, **extra: Any) -> dict[str, Any]:
    return {**TOWER, "vocab_size": len(tok), "max_position_embeddings": positions, "pad_token_id": tok.pad_token_id,
            "bos_token_id": tok.cls_token_id, "eos_token_id": tok.sep_token_id, **extra}


def _vision() -> dict[str, Any]:
    return {**TOWER, "image_size": PIXELS, "patch_size": PATCH}


def _save(model, tok, processor, folder: Path) -> Path:
    model.eval().save_pretrained(folder)
    tok.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def clip(world, folder: Path, seed: int = 0) -> Path:
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    tok = tokenizer(world, folder)
    torch.manual_seed(seed)
    config = CLIPConfig(text_config=_text(tok),
                        vision_config=_vision(), projection_dim=16, initializer_range=0.3)
    processor = CLIPImageProcessor(size={"shortest_edge": PIXELS}, crop_size={"height": PIXELS, "width": PIXELS})
    return _save(CLIPModel(config), tok, processor, folder)


def siglip(world, folder: Path, seed: int = 0) -> Path:
    import torch
    from transformers import SiglipConfig, SiglipImageProcessor, SiglipModel

    tok = tokenizer(world, folder)
    torch.manual_seed(seed)
    config = SiglipConfig(text_config=_text(tok, positions=24), vision_config=_vision())
    model = SiglipModel(config)
    with torch.no_grad():  # SigLIP's initial scale and bias (log 10, -10) so the bias term is exercised
        model.logit_scale.fill_(2.302585)
        model.logit_bias.fill_(-10.0)
    processor = SiglipImageProcessor(size={"height": PIXELS, "width": PIXELS})
    return _save(model, tok, processor, folder)


def blip(world, folder: Path, seed: int = 0) -> Path:
    import torch
    from transformers import BlipConfig, BlipForImageTextRetrieval, BlipImageProcessor

    tok = tokenizer(world, folder)
    torch.manual_seed(seed)
    config = BlipConfig(text_config=_text(tok, encoder_hidden_size=TOWER["hidden_size"]), vision_config=_vision(),
                        image_text_hidden_size=16, initializer_range=0.3)
    processor = BlipImageProcessor(size={"height": PIXELS, "width": PIXELS})
    return _save(BlipForImageTextRetrieval(config), tok, processor, folder)


VILT_HEADS = ("ViltForImageAndTextRetrieval", "ViltForQuestionAnswering", "ViltForImagesAndTextClassification")


def vilt(world, folder: Path, head: str = "ViltForQuestionAnswering", seed: int = 0) -> Path:
    """A ViLT with one head (``head``: one of :data:`VILT_HEADS`); its VQA labels are the
    world's most common training answers, its NLVR2 labels ``False``/``True``."""
    import collections

    import torch
    import transformers
    from transformers import ViltConfig, ViltImageProcessor

    tok = tokenizer(world, folder)
    extra: dict[str, Any] = {}
    if head == "ViltForQuestionAnswering":
        counts = collections.Counter(a for r in world.load("vqa", "train").records for a in r.answers)
        answers = [a for a, _ in counts.most_common(12)]
        extra = {"id2label": dict(enumerate(answers)), "label2id": {a: i for i, a in enumerate(answers)}}
    elif head == "ViltForImagesAndTextClassification":
        extra = {"num_images": 2, "modality_type_vocab_size": 3, "id2label": {0: "False", 1: "True"},
                 "label2id": {"False": 0, "True": 1}}
    torch.manual_seed(seed)
    config = ViltConfig(**{**_text(tok), **_vision(), **extra})
    processor = ViltImageProcessor(size={"shortest_edge": PIXELS}, size_divisor=PATCH)
    return _save(getattr(transformers, head)(config), tok, processor, folder)
