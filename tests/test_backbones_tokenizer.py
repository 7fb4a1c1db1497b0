"""Tokenizer: WordPiece training on captions, save/load round trip, determinism, errors."""

from __future__ import annotations

import pytest

from simla_bench.plugins.models.vlp_options import VLPOptions as ModelConfig
from simla_bench.errors import ConfigError, UserError
from simla_bench.plugins.backbones.tokenizer import get_tokenizer, load_tokenizer, train_wordpiece

CAPTIONS = [
    "A red cube is left of a blue sphere.",
    "two green cylinders near the yellow cone",
    "the small purple sphere sits on top of a big red cube",
    "A blue cone right of two yellow cubes.",
] * 5


def test_train_has_bert_special_tokens_and_template():
    tok = train_wordpiece(CAPTIONS, vocab_size=80)
    assert [tok.pad_token_id, tok.unk_token_id, tok.cls_token_id, tok.sep_token_id, tok.mask_token_id] == [0, 1, 2, 3, 4]
    assert tok.pad_token == "[PAD]" and tok.mask_token == "[MASK]"
    enc = tok(["a red cube", "zebra"], padding="max_length", max_length=6, truncation=True)
    assert enc["input_ids"][0][0] == tok.cls_token_id and tok.sep_token_id in enc["input_ids"][0]
    assert enc["attention_mask"][0] == [1, 1, 1, 1, 1, 0]
    assert tok.convert_ids_to_tokens(tok("a RED cube")["input_ids"]) == ["[CLS]", "a", "red", "cube", "[SEP]"]
    assert len(tok) <= 80


def test_save_load_round_trip(tmp_path):
    tok = train_wordpiece(CAPTIONS, vocab_size=80, save_dir=tmp_path / "tok")
    loaded = load_tokenizer(tmp_path / "tok")
    text = ["the purple cylinder sits near two cones", "unknownword qq"]
    assert loaded(text)["input_ids"] == tok(text)["input_ids"]
    assert len(loaded) == len(tok) and loaded.mask_token_id == tok.mask_token_id


def test_training_is_deterministic():
    a = train_wordpiece(CAPTIONS, vocab_size=70)
    b = train_wordpiece(CAPTIONS, vocab_size=70)
    assert a.get_vocab() == b.get_vocab()


def test_get_tokenizer_trains_or_loads(tmp_path):
    trained = get_tokenizer(ModelConfig(vocab_size=60), CAPTIONS, save_dir=tmp_path / "run_tok")
    assert (tmp_path / "run_tok" / "tokenizer.json").is_file()
    loaded = get_tokenizer(ModelConfig(tokenizer=str(tmp_path / "run_tok")))
    assert loaded.get_vocab() == trained.get_vocab()
    with pytest.raises(ConfigError, match="does not exist"):
        get_tokenizer(ModelConfig(tokenizer=str(tmp_path / "missing")))
    with pytest.raises(ConfigError, match="no captions"):
        get_tokenizer(ModelConfig())
    with pytest.raises(UserError, match="empty"):
        train_wordpiece([], vocab_size=60)


def test_vocabulary_learning_by_hand():
    from collections import Counter

    from simla_bench.plugins.backbones.tokenizer import SPECIAL_TOKENS, learn_wordpiece_vocab

    # "ab" x2, "ac" x1: alphabet a ##b ##c; first merge (a, ##b) (count 2), then (a, ##c)
    counts = Counter({"ab": 2, "ac": 1})
    assert learn_wordpiece_vocab(counts, 10) == SPECIAL_TOKENS + ["##b", "##c", "a", "ab", "ac"]
    assert learn_wordpiece_vocab(counts, 9) == SPECIAL_TOKENS + ["##b", "##c", "a", "ab"]
    # a tie (both pairs once) goes to the lexicographically smallest pair
    assert learn_wordpiece_vocab(Counter({"xb": 1, "xa": 1}), 9)[-1] == "xa"
    # min_frequency stops merging
    assert learn_wordpiece_vocab(counts, 10, min_frequency=2) == SPECIAL_TOKENS + ["##b", "##c", "a", "ab"]
