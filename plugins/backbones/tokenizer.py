"""Tokenizers: train a WordPiece tokenizer on a caption corpus, or load one from a local path.

Owns :func:`train_wordpiece` (the ``tokenizers`` library, BERT-style
normalisation and pre-tokenisation, ``[CLS] ... [SEP]`` post-processing),
:func:`load_tokenizer` (a Hugging Face tokenizer directory), and
:func:`get_tokenizer`, which does whichever the model config asks for.  The
result is always a ``transformers.BertTokenizerFast`` (or any fast tokenizer
for a user-supplied directory) with ``[PAD] [UNK] [CLS] [SEP] [MASK]``, and is
saved with the run by ``save_pretrained``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from simla_bench.errors import ConfigError, UserError

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def train_wordpiece(captions: Iterable[str], vocab_size: int = 1000, min_frequency: int = 1,
                    lowercase: bool = True, save_dir: str | Path | None = None):
    """Train a WordPiece tokenizer on ``captions``; returns a
    ``BertTokenizerFast`` (PAD=0, UNK=1, CLS=2, SEP=3, MASK=4).  Deterministic for
    the same captions in the same order.  Saved to ``save_dir`` if given."""
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece
    from tokenizers.trainers import WordPieceTrainer
    from transformers import BertTokenizerFast

    captions = [str(c) for c in captions]
    if not captions:
        raise UserError("cannot train a tokenizer on an empty caption list",
                        hint="check the pretraining dataset, or set model.tokenizer to a local tokenizer directory")
    if vocab_size < len(SPECIAL_TOKENS) + 1:
        raise ConfigError(f"tokenizer vocab_size {vocab_size} is too small", hint="use at least 50")
    tok = Tokenizer(WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=lowercase, clean_text=True, handle_chinese_chars=True,
                                                strip_accents=None)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    trainer = WordPieceTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=SPECIAL_TOKENS,
                               show_progress=False, continuing_subword_prefix="##")
    tok.train_from_iterator(captions, trainer=trainer, length=len(captions))
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    hf = BertTokenizerFast(tokenizer_object=tok, do_lower_case=lowercase, unk_token="[UNK]", sep_token="[SEP]",
                           pad_token="[PAD]", cls_token="[CLS]", mask_token="[MASK]")
    if save_dir is not None:
        save_tokenizer(hf, save_dir)
    return hf


def save_tokenizer(tokenizer, save_dir: str | Path) -> Path:
    """Save with ``save_pretrained`` (so :func:`load_tokenizer` reads it back)."""
    save_dir = Path(save_dir)
    save_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(save_dir))
    return save_dir


def load_tokenizer(path: str | Path):
    """Load a Hugging Face tokenizer from a local directory (never downloads)."""
    from transformers import AutoTokenizer

    path = Path(path)
    if not path.is_dir():
        raise ConfigError(f"tokenizer directory '{path}' does not exist",
                          hint="set model.tokenizer to a local directory saved with save_pretrained, or null to train one")
    try:
        tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except Exception as exc:  # noqa: BLE001
        raise ConfigError(f"cannot load a tokenizer from '{path}': {type(exc).__name__}: {exc}") from None
    missing = [name for name in ("pad_token", "cls_token", "sep_token", "mask_token", "unk_token")
               if getattr(tok, name, None) is None]
    if missing:
        raise ConfigError(f"tokenizer '{path}' lacks {', '.join(missing)}",
                          hint="the model needs [PAD] [CLS] [SEP] [MASK] [UNK]-style special tokens")
    return tok


def get_tokenizer(model_cfg, captions: Iterable[str] | None = None, save_dir: str | Path | None = None):
    """The tokenizer a ``ModelConfig`` asks for: ``model_cfg.tokenizer`` (a local
    directory) or, when null, a WordPiece tokenizer of ``model_cfg.vocab_size``
    trained on ``captions``.  Saved to ``save_dir`` if given."""
    if model_cfg.tokenizer:
        tok = load_tokenizer(model_cfg.tokenizer)
        if save_dir is not None:
            save_tokenizer(tok, save_dir)
        return tok
    if captions is None:
        raise ConfigError("model.tokenizer is null, so a tokenizer must be trained, but no captions were given",
                          hint="set model.tokenizer to a local tokenizer directory")
    return train_wordpiece(captions, vocab_size=model_cfg.vocab_size, save_dir=save_dir)
