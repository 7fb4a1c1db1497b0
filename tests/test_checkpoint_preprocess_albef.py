"""The official (ALBEF/SIMLA) pre-processing pieces against the official code's own outputs.

Fixtures in tests/fixtures/preprocess/ are outputs of the official functions
(salesforce/ALBEF b9727e4) run as an oracle outside the project; each file's
``about`` says how.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from simla_bench.errors import ConfigError

FIXTURES = Path(__file__).parent / "fixtures" / "preprocess"


def _load(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


# ------------------------------------------------------------------------------ text
def test_pre_caption_and_pre_question_equal_the_official_functions():
    from simla_bench.plugins.models.preprocess import pre_caption, pre_question

    cases = _load("albef_text.json")["cases"]
    assert len(cases) >= 60
    for case in cases:
        assert pre_caption(case["text"], case["max_words"]) == case["pre_caption"], case
        assert pre_question(case["text"], case["max_words"]) == case["pre_question"], case


def test_pre_caption_rules_by_example():
    from simla_bench.plugins.models.preprocess import clean_text, pre_caption, pre_question

    assert pre_caption("A man's  (red) car -- left/right!\n", 30) == "a mans red car left right"
    assert pre_caption("<PERSON> waves", 30) == "person waves"
    assert pre_caption("one two three four", 2) == "one two"
    # pre_question keeps inner double spaces, and they count as words
    assert pre_question("What  is it?  ", 30) == "what  is it"
    assert pre_question("a  b c", 2) == "a "
    assert clean_text("Hi, There", rule="none") == "Hi, There"
    assert clean_text("Hi, There", kind="question", max_words=1) == "hi"
    with pytest.raises(ValueError):
        clean_text("x", rule="blip")


def test_official_settings_table():
    from simla_bench.plugins.models.preprocess import OFFICIAL_TEXT_SETTINGS, official_settings

    assert set(OFFICIAL_TEXT_SETTINGS) >= {"pretrain", "retrieval_coco", "retrieval_flickr", "grounding", "vqa", "nlvr2"}
    ret = official_settings("retrieval_coco", "eval")
    assert (ret["clean"], ret["max_words"], ret["max_length"], ret["padding"], ret["image_res"]) == \
        ("pre_caption", 30, 30, "max_length", 384)
    # training passes max_length=30 with padding="longest" and no truncation: no limit in effect
    assert official_settings("retrieval_flickr", "train")["max_length"] is None
    pre = official_settings("pretrain", "train")
    assert (pre["max_length"], pre["truncation"], pre["image_res"]) == (25, True, 256)
    vqa_train, vqa_eval = official_settings("vqa", "train"), official_settings("vqa", "eval")
    assert (vqa_train["clean"], vqa_train["max_words"], vqa_train["max_length"]) == ("pre_question", 30, 25)
    assert (vqa_eval["max_words"], vqa_eval["max_length"]) == (50, None)
    assert official_settings("grounding")["max_length"] is None and official_settings("nlvr2")["max_words"] == 30
    assert all(e["normalize"] == "clip" and e["special"] == "albef" for e in OFFICIAL_TEXT_SETTINGS.values())
    with pytest.raises(KeyError):
        official_settings("pretrain", "eval")


def test_max_length_without_truncation_does_not_truncate():
    """The table's reading of 'padding=longest, max_length=30, no truncation'."""
    from simla_bench.plugins.backbones.tokenizer import train_wordpiece

    tok = train_wordpiece(["a b c d e f g h"] * 3, vocab_size=60)
    enc = tok(["a b c d e f g h", "a"], padding="longest", max_length=4)
    assert len(enc["input_ids"][0]) == 10


# ------------------------------------------------------------------------- tokenizer
def _fixture_tokenizer(data: dict):
    from transformers import BertTokenizerFast

    vocab = {t: i for i, t in enumerate(data["vocab"])}
    return BertTokenizerFast(vocab=vocab, do_lower_case=True)


def test_albef_special_token_rule_equals_albef_tokenizer():
    from simla_bench.plugins.backbones.tokenizer import set_special_token_rule, special_token_rule

    data = _load("albef_tokenizer.json")
    tok = _fixture_tokenizer(data)
    assert special_token_rule(tok) == "bert"
    assert set_special_token_rule(tok, "albef") is tok and special_token_rule(tok) == "albef"
    for call in data["calls"]:
        enc = tok(data["texts"], **call["kwargs"])
        assert enc["input_ids"] == call["input_ids"], call["kwargs"]
        assert enc["attention_mask"] == call["attention_mask"], call["kwargs"]


def test_special_token_rule_cls_only_truncation_pairs_and_default():
    from simla_bench.plugins.backbones.tokenizer import set_special_token_rule, train_wordpiece

    tok = train_wordpiece(["w one w two w three", "w four"] * 3, vocab_size=60)
    cls, sep, pad = tok.cls_token_id, tok.sep_token_id, tok.pad_token_id
    words = tok("w one w two w three", add_special_tokens=False)["input_ids"]
    # the default rule is BERT's and stays so until changed
    assert tok("w one w two w three")["input_ids"] == [cls, *words, sep]
    set_special_token_rule(tok, "albef")
    assert tok("w one w two w three")["input_ids"] == [cls, *words]
    enc = tok(["w one w two w three", "w four"], padding="longest", truncation=True, max_length=4)
    assert enc["input_ids"][0] == [cls, *words[:3]]  # [CLS] counts in max_length and is kept
    assert len(enc["input_ids"][1]) == 4 and enc["input_ids"][1][-1] == pad and sep not in enc["input_ids"][1]
    assert tok("w one", max_length=1, truncation=True)["input_ids"] == [cls]
    assert tok("w one", "w four")["input_ids"].count(sep) == 2  # pairs keep [SEP]s
    set_special_token_rule(tok, "bert")
    assert tok("w one w two w three")["input_ids"] == [cls, *words, sep]
    with pytest.raises(ConfigError):
        set_special_token_rule(tok, "clip")


def test_special_token_rule_survives_save_and_load(tmp_path):
    from simla_bench.plugins.backbones.tokenizer import (load_tokenizer, save_tokenizer, set_special_token_rule,
                                                         special_token_rule, train_wordpiece)

    tok = train_wordpiece(["a man rides a wave"] * 3, vocab_size=60)
    save_tokenizer(tok, tmp_path / "plain")
    assert special_token_rule(load_tokenizer(tmp_path / "plain")) == "bert"
    set_special_token_rule(tok, "albef")
    save_tokenizer(tok, tmp_path / "albef")
    again = load_tokenizer(tmp_path / "albef")
    assert special_token_rule(again) == "albef"
    assert again("a man")["input_ids"] == tok("a man")["input_ids"]


# ----------------------------------------------------------------------------- image
def _images():
    from PIL import Image

    g = torch.Generator().manual_seed(0)
    a = (torch.rand(23, 41, 3, generator=g) * 255).to(torch.uint8).numpy()  # wide, odd sizes
    b = (torch.rand(37, 19, 3, generator=g) * 255).to(torch.uint8).numpy()  # tall
    return [Image.fromarray(a), Image.fromarray(b)]


def test_clip_eval_transform_is_albefs_test_transform():
    from torchvision import transforms

    from simla_bench.plugins.datasets.images import image_transform
    from simla_bench.plugins.models.preprocess import CLIP_MEAN, CLIP_STD

    albef_test = transforms.Compose([  # ALBEF dataset/__init__.py test_transform, by hand
        transforms.Resize((16, 16), interpolation=transforms.InterpolationMode.BICUBIC),
        transforms.ToTensor(),
        transforms.Normalize(CLIP_MEAN, CLIP_STD),
    ])
    ours = image_transform(16, train=False, normalize="clip", interpolation="bicubic")
    for img in _images():
        expected = albef_test(img)
        got = ours(img)
        assert got.shape == (3, 16, 16)
        torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_image_transform_defaults_unchanged_and_options():
    from PIL import Image
    from torchvision import transforms

    from simla_bench.plugins.datasets.images import IMAGENET_MEAN, IMAGENET_STD, image_transform

    img = _images()[0]
    default = transforms.Compose([
        transforms.Resize((16, 16), interpolation=transforms.InterpolationMode.BICUBIC),
        transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    torch.testing.assert_close(image_transform(16, train=False)(img), default(img), rtol=0, atol=0)
    assert not torch.equal(image_transform(16, False, normalize="clip")(img), default(img))
    # square resize keeps the whole picture: a left-red / right-blue wide image stays split in half
    half = Image.new("RGB", (40, 20), (255, 0, 0))
    half.paste((0, 0, 255), (20, 0, 40, 20))
    x = image_transform(16, False, normalize="clip")(half)
    assert (x[0, :, :6] > x[2, :, :6]).all() and (x[2, :, 10:] > x[0, :, 10:]).all()
    crop = image_transform(16, False, resize="shorter_side")(img)
    assert crop.shape == (3, 16, 16)
    assert image_transform(16, False, interpolation="bilinear")(img).shape == (3, 16, 16)
    for bad in (dict(normalize="openai"), dict(interpolation="lanczos"), dict(resize="pad")):
        with pytest.raises(ConfigError):
            image_transform(16, False, **bad)


# ------------------------------------------------------------------ position embeddings
def test_resize_pos_embed_albef_equals_the_official_function():
    from simla_bench.plugins.backbones.vit import resize_pos_embed_albef

    data = _load("albef_pos_embed.json")
    pe = torch.tensor(data["pos_embed"], dtype=torch.float32)
    out = resize_pos_embed_albef(pe, data["new_grid"], data["num_prefix_tokens"])
    torch.testing.assert_close(out, torch.tensor(data["resized"], dtype=torch.float32), rtol=0, atol=0)


def test_resize_pos_embed_albef_is_plain_bicubic_not_timms_antialiased():
    from timm.layers import resample_abs_pos_embed

    from simla_bench.plugins.backbones.vit import resize_pos_embed_albef

    g = torch.Generator().manual_seed(1)
    pe = torch.randn(1, 1 + 16 * 16, 24, generator=g)
    out = resize_pos_embed_albef(pe, 24)
    grid = pe[:, 1:].reshape(1, 16, 16, 24).permute(0, 3, 1, 2)
    hand = F.interpolate(grid, size=(24, 24), mode="bicubic", align_corners=False).permute(0, 2, 3, 1).reshape(1, -1, 24)
    assert out.shape == (1, 1 + 24 * 24, 24)
    torch.testing.assert_close(out[:, :1], pe[:, :1], rtol=0, atol=0)  # CLS kept
    torch.testing.assert_close(out[:, 1:], hand, rtol=0, atol=0)
    timm_out = resample_abs_pos_embed(pe, new_size=(24, 24), num_prefix_tokens=1)
    rel = (timm_out - out).norm() / out.norm()
    assert rel > 0.02  # a different kernel (about 8% here)
    assert resize_pos_embed_albef(pe, 16) is pe  # same grid: unchanged
    two = resize_pos_embed_albef(torch.randn(1, 2 + 9, 4, generator=g), (4, 5), num_prefix_tokens=2)
    assert two.shape == (1, 2 + 20, 4)
    with pytest.raises(ValueError):
        resize_pos_embed_albef(torch.randn(1, 1 + 10, 4), 4)


def test_vit_set_image_size_and_load_weights_with_albef_resize(tmp_path):
    from timm.layers import resample_abs_pos_embed

    from simla_bench.plugins.backbones.vit import resize_pos_embed_albef, vit_world_tiny

    torch.manual_seed(0)
    enc = vit_world_tiny(depth=1)
    assert enc.pos_embed_resize == "timm"
    pe0 = enc.vit.pos_embed.detach().clone()  # 8x8 grid at 64 px
    enc.set_image_size(96)  # default: timm's resample, as before
    torch.testing.assert_close(enc.vit.pos_embed.detach(), resample_abs_pos_embed(pe0, new_size=(12, 12)))
    albef = vit_world_tiny(depth=1, pos_embed_resize="albef")
    albef.vit.pos_embed.data.copy_(pe0)
    albef.set_image_size(96)
    assert albef.vit.pos_embed.requires_grad
    torch.testing.assert_close(albef.vit.pos_embed.detach(), resize_pos_embed_albef(pe0, 12), rtol=0, atol=0)
    assert albef(torch.randn(1, 3, 96, 96)).shape == (1, 145, 192)
    timm_model = vit_world_tiny(depth=1)
    timm_model.vit.pos_embed.data.copy_(pe0)
    timm_model.set_image_size(96, method="albef")  # per-call method overrides the option
    torch.testing.assert_close(timm_model.vit.pos_embed.detach(), resize_pos_embed_albef(pe0, 12), rtol=0, atol=0)

    # a 64-px checkpoint loaded into a 96-px model
    src = vit_world_tiny(depth=1)
    path = tmp_path / "vit64.pth"
    torch.save({"model": {f"visual_encoder.{k}": v for k, v in src.vit.state_dict().items()}}, path)
    big = vit_world_tiny(img_size=96, depth=1, weights=str(path), pos_embed_resize="albef")
    torch.testing.assert_close(big.vit.pos_embed.detach(), resize_pos_embed_albef(src.vit.pos_embed.detach(), 12),
                               rtol=0, atol=0)
    big_timm = vit_world_tiny(img_size=96, depth=1, weights=str(path))
    assert not torch.allclose(big_timm.vit.pos_embed, big.vit.pos_embed)
    with pytest.raises(ConfigError):
        vit_world_tiny(depth=1, pos_embed_resize="nearest")
    with pytest.raises(ConfigError):
        enc.set_image_size(64, method="bilinear")
