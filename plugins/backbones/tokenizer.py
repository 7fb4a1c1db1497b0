"""Tokenizers: train a WordPiece tokenizer on a caption corpus, or load one from a local path.

Owns :func:`train_wordpiece` (the ``tokenizers`` library's BERT-style
normalisation, pre-tokenisation, WordPiece model and ``[CLS] ... [SEP]``
post-processing, over a vocabulary learnt deterministically by
:func:`learn_wordpiece_vocab`),
:func:`load_tokenizer` (a Hugging Face tokenizer directory), and
:func:`get_tokenizer`, which does whichever the model config asks for, and
:func:`set_special_token_rule`, which switches a tokenizer between BERT's
``[CLS] text [SEP]`` and ALBEF's ``[CLS] text`` (no trailing ``[SEP]``).  The
result is always a ``transformers.BertTokenizerFast`` (or any fast tokenizer
for a user-supplied directory) with ``[PAD] [UNK] [CLS] [SEP] [MASK]``, and is
saved with the run by ``save_pretrained``.
"""

from __future__ import annotations

import heapq
from collections import Counter, defaultdict
from pathlib import Path
from typing import Iterable

from simla_bench.errors import ConfigError, UserError

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def _word_counts(captions: list[str], normalizer, pre_tokenizer) -> Counter:
    counts: Counter = Counter()
    for text in captions:
        for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)):
            counts[word] += 1
    return counts


def learn_wordpiece_vocab(word_counts: Counter, vocab_size: int, min_frequency: int = 1,
                          prefix: str = "##") -> list[str]:
    """WordPiece vocabulary by BPE-style merges, as the ``tokenizers``
    WordPiece trainer learns it, but deterministic: ties between equally
    frequent pairs go to the lexicographically smallest pair (the library's
    trainer breaks ties by hash order, so its vocabulary changes from process
    to process).  Returns the tokens in id order (special tokens first)."""
    words = sorted(word_counts)
    freqs = [word_counts[w] for w in words]
    symbols = [[w[0]] + [prefix + c for c in w[1:]] for w in words]
    vocab = list(SPECIAL_TOKENS)
    seen = set(vocab)
    for sym in sorted({t for syms in symbols for t in syms}):
        if sym not in seen:
            vocab.append(sym)
            seen.add(sym)
    pair_counts: dict[tuple[str, str], int] = defaultdict(int)
    where: dict[tuple[str, str], set[int]] = defaultdict(set)
    for i, syms in enumerate(symbols):
        for pair in zip(syms, syms[1:]):
            pair_counts[pair] += freqs[i]
            where[pair].add(i)
    heap = [(-c, pair) for pair, c in pair_counts.items()]
    heapq.heapify(heap)
    while len(vocab) < vocab_size and heap:
        neg, pair = heapq.heappop(heap)
        count = pair_counts.get(pair, 0)
        if count <= 0:
            continue
        if -neg != count:  # stale entry; the current count is queued too
            continue
        if count < min_frequency:
            break
        a, b = pair
        merged = a + b[len(prefix):] if b.startswith(prefix) else a + b
        if merged not in seen:
            vocab.append(merged)
            seen.add(merged)
        changed: set[tuple[str, str]] = set()
        for i in sorted(where.pop(pair, ())):
            syms = symbols[i]
            for old in zip(syms, syms[1:]):
                pair_counts[old] -= freqs[i]
                changed.add(old)
            out, j = [], 0
            while j < len(syms):
                if j + 1 < len(syms) and syms[j] == a and syms[j + 1] == b:
                    out.append(merged)
                    j += 2
                else:
                    out.append(syms[j])
                    j += 1
            symbols[i] = out
            for new in zip(out, out[1:]):
                pair_counts[new] += freqs[i]
                where[new].add(i)
                changed.add(new)
        pair_counts.pop(pair, None)
        for p in sorted(changed):
            c = pair_counts.get(p, 0)
            if c > 0:
                heapq.heappush(heap, (-c, p))
            else:
                pair_counts.pop(p, None)
                where.pop(p, None)
    return vocab


def train_wordpiece(captions: Iterable[str], vocab_size: int = 1000, min_frequency: int = 1,
                    lowercase: bool = True, save_dir: str | Path | None = None):
    """Train a WordPiece tokenizer on ``captions``; returns a
    ``BertTokenizerFast`` (PAD=0, UNK=1, CLS=2, SEP=3, MASK=4).  Deterministic:
    the same captions give the same vocabulary and ids in any process.  The
    ``tokenizers`` library provides BERT normalisation, pre-tokenisation and the
    WordPiece model; the vocabulary is learnt by :func:`learn_wordpiece_vocab`.
    Saved to ``save_dir`` if given."""
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece
    from transformers import BertTokenizerFast

    captions = [str(c) for c in captions]
    if not captions:
        raise UserError("cannot train a tokenizer on an empty caption list",
                        hint="check the pretraining dataset, or set model.options.tokenizer to a local tokenizer directory")
    if vocab_size < len(SPECIAL_TOKENS) + 1:
        raise ConfigError(f"tokenizer vocab_size {vocab_size} is too small", hint="use at least 50")
    normalizer = normalizers.BertNormalizer(lowercase=lowercase, clean_text=True, handle_chinese_chars=True,
                                            strip_accents=None)
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokens = learn_wordpiece_vocab(_word_counts(captions, normalizer, pre_tokenizer), vocab_size, min_frequency)
    tok = Tokenizer(WordPiece({t: i for i, t in enumerate(tokens)}, unk_token="[UNK]", continuing_subword_prefix="##"))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    tok.decoder = decoders.WordPiece(prefix="##")
    tok.add_special_tokens(SPECIAL_TOKENS)
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
                          hint="set model.options.tokenizer to a local directory saved with save_pretrained, or null to train one")
    try:
        tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except Exception as exc:  # noqa: BLE001
        raise ConfigError(f"cannot load a tokenizer from '{path}': {type(exc).__name__}: {exc}") from None
    missing = [name for name in ("pad_token", "cls_token", "sep_token", "mask_token", "unk_token")
               if getattr(tok, name, None) is None]
    if missing:
        raise ConfigError(f"tokenizer '{path}' lacks {', '.join(missing)}",
                          hint="the model needs [PAD] [CLS] [SEP] [MASK] [UNK]-style special tokens")
    rule = (getattr(tok, "init_kwargs", None) or {}).get("special_token_rule")
    if rule:  # saved by a tokenizer that set_special_token_rule changed
        set_special_token_rule(tok, rule)
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
                          hint="set model.options.tokenizer to a local tokenizer directory")
    return train_wordpiece(captions, vocab_size=model_cfg.vocab_size, save_dir=save_dir)


#: the special-token rules :func:`set_special_token_rule` knows: single-text and pair templates
SPECIAL_TOKEN_RULES = {
    # BERT (the default of every tokenizer here): [CLS] A [SEP] / [CLS] A [SEP] B [SEP]
    "bert": ("{cls} $A {sep}", "{cls} $A {sep} $B:1 {sep}:1"),
    # ALBEF's and SIMLA's own BertTokenizer (models/tokenization_bert.py): a single text is
    # [CLS] A with no trailing [SEP]; a pair is still [CLS] A [SEP] B [SEP]
    "albef": ("{cls} $A", "{cls} $A {sep} $B:1 {sep}:1"),
}


def set_special_token_rule(tokenizer, rule: str):
    """Make ``tokenizer(texts, ...)`` add special tokens by ``rule``: ``"bert"``
    (``[CLS] A [SEP]``, what every tokenizer here does by default) or
    ``"albef"`` (``[CLS] A``, no trailing ``[SEP]``, as ALBEF's and SIMLA's
    tokenizer builds a single text).  Pairs stay ``[CLS] A [SEP] B [SEP]``.

    Works on a Hugging Face fast tokenizer by replacing its backend
    post-processor with a ``TemplateProcessing``; truncation counts the
    special tokens of the rule, so ``max_length=n`` with ``"albef"`` keeps
    ``[CLS]`` and ``n - 1`` text tokens, as ALBEF's truncation does.  The rule
    is recorded as ``special_token_rule`` in ``tokenizer_config.json`` by
    ``save_pretrained`` and applied again by :func:`load_tokenizer`
    (transformers' ``BertTokenizer`` rebuilds its post-processor on loading, so
    the template in ``tokenizer.json`` alone does not survive a reload).
    Changes ``tokenizer`` in place and returns it."""
    if rule not in SPECIAL_TOKEN_RULES:
        raise ConfigError(f"special-token rule must be one of {', '.join(SPECIAL_TOKEN_RULES)}, got {rule!r}")
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise ConfigError(f"tokenizer {type(tokenizer).__name__} is not a fast (tokenizers-backed) tokenizer",
                          hint="the special-token rule needs a Hugging Face fast tokenizer (tokenizer.json)")
    from tokenizers import processors

    cls, sep = tokenizer.cls_token, tokenizer.sep_token
    if cls is None or sep is None:
        raise ConfigError("the special-token rule needs a tokenizer with cls_token and sep_token")
    cls, sep = str(cls), str(sep)
    single, pair = (t.format(cls=cls, sep=sep) for t in SPECIAL_TOKEN_RULES[rule])
    backend.post_processor = processors.TemplateProcessing(
        single=single, pair=pair,
        special_tokens=[(cls, tokenizer.convert_tokens_to_ids(cls)), (sep, tokenizer.convert_tokens_to_ids(sep))],
    )
    init_kwargs = getattr(tokenizer, "init_kwargs", None)
    if isinstance(init_kwargs, dict):
        init_kwargs["special_token_rule"] = rule  # saved in tokenizer_config.json
    return tokenizer


def special_token_rule(tokenizer) -> str | None:
    """The rule ``tokenizer`` follows for a single text: ``"bert"``,
    ``"albef"``, or None when it is neither (checked by encoding one word)."""
    cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
    if tokenizer.unk_token is None:
        return None
    probe = tokenizer.convert_tokens_to_ids(tokenizer.unk_token)
    ids = list(tokenizer(str(tokenizer.unk_token), add_special_tokens=True)["input_ids"])
    if ids == [cls_id, probe, sep_id]:
        return "bert"
    if ids == [cls_id, probe]:
        return "albef"
    return None
