"""The papers' model size and synthetic evaluation inputs, shared by the
COCO-size retrieval and RefCOCO+-size grounding benchmarks.

Owns: the model options of the size the papers fine-tune and evaluate at
(ViT-B/16 with DeiT-base shape + BERT-base, 384 px, SIMLA's single stream or
ALBEF's split layout; ``--quick``: the tiny test model) built from config
through :func:`simla_bench.assemble.assemble` with random weights (nothing is
downloaded or loaded), the synthetic token ids of captions and referring
expressions (lengths drawn from a fixed, documented distribution: only
lengths matter for timing), random images, and FLOP counting of a callable.
"""

from __future__ import annotations

from typing import Any, Callable

#: ALBEF/SIMLA's evaluation text limit (tokens) for captions and expressions
EVAL_MAX_TOKENS = 30
#: synthetic caption lengths in tokens, [CLS] included: round(N(mean, std)) clipped to [lo, hi]
#: (COCO captions average ~10.5 words; assumed ~1.1 WordPiece tokens per word)
CAPTION_TOKENS = {"mean": 12.5, "std": 2.5, "lo": 7, "hi": EVAL_MAX_TOKENS}
#: synthetic referring-expression lengths (RefCOCO+ expressions are short: ~6 words)
EXPRESSION_TOKENS = {"mean": 7.5, "std": 2.0, "lo": 3, "hi": 20}


def model_options(layout: str, image_size: int, quick: bool) -> dict[str, Any]:
    """``model.options`` of the ``vlp`` model: paper size, or the tiny test model with ``quick``."""
    from simla_bench.config import deep_merge
    from simla_bench.testing.plugin_kit import TINY_MODEL, default_model_options

    if quick:
        opts = deep_merge(TINY_MODEL, {"layout": layout, "fusion_layers": 1})
        return {**opts, "max_text_len": EVAL_MAX_TOKENS}
    return deep_merge(default_model_options(), {
        "image": {"name": "vit_base_patch16_256", "options": {"img_size": image_size}},
        "text": {"name": "bert_base", "options": {}},
        "layout": layout, "fusion_layers": 6, "embed_dim": 256, "queue_size": 0, "text_pool": "cls",
        "max_text_len": EVAL_MAX_TOKENS, "vocab_size": 30522,
    })


def build_model(layout: str, image_size: int, quick: bool, device: Any) -> Any:
    """The model in eval mode on ``device``, random weights (a WordPiece vocabulary
    learned from a few synthetic words: the fusion cost does not depend on it)."""
    import torch

    from simla_bench.assemble import assemble
    from simla_bench.config import ModelConfig

    torch.manual_seed(0)
    words = [f"w{i}" for i in range(400)]
    captions = [" ".join(words[(7 * j + m) % len(words)] for m in range(12)) for j in range(200)]
    built = assemble(ModelConfig(name="vlp", options=model_options(layout, image_size, quick)), captions=captions)
    return built.model.to(device).eval()


def token_lengths(n: int, spec: dict[str, float], seed: int) -> Any:
    """``n`` lengths (tokens) from the fixed distribution ``spec``."""
    import torch

    g = torch.Generator().manual_seed(seed)
    raw = torch.randn(n, generator=g) * spec["std"] + spec["mean"]
    return raw.round().clamp(spec["lo"], spec["hi"]).long()


def token_ids(model: Any, lengths: Any, seed: int) -> tuple[Any, Any]:
    """Random token ids ``[n, max(lengths)]`` (``[CLS]`` first) and their attention mask."""
    import torch

    tok = model.tokenizer
    g = torch.Generator().manual_seed(seed)
    n, width = len(lengths), int(lengths.max())
    low = max(tok.all_special_ids) + 1
    ids = torch.randint(low, len(tok), (n, width), generator=g)
    mask = (torch.arange(width)[None, :] < lengths[:, None]).long()
    ids[:, 0] = tok.cls_token_id
    ids = ids.masked_fill(mask == 0, tok.pad_token_id)
    return ids, mask


def images(model: Any, n: int, seed: int) -> Any:
    """``n`` random normalised images ``[n, 3, S, S]`` at the model's resolution."""
    import torch

    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, model.image_size, model.image_size, generator=g)


def count_flops(fn: Callable[[], Any]) -> float:
    """FLOPs of ``fn()`` (matmuls, convolutions, attention: ``_common.flop_counter``)."""
    import _common as C

    with C.flop_counter() as counter:
        fn()
    return float(counter.get_total_flops())


def peak_rss_gib() -> float:
    """Peak resident set size of this process so far (GiB; Linux reports KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
