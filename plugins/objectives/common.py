"""Small pieces the objectives share: option and model checks, distilled losses,
special token ids, stable integer ids for ``image_ids``, and the model calls that
are not in the core of the documented ``VLPModel`` API (MIM / concept heads, CLS
attention).
"""

from __future__ import annotations

import hashlib
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F

from simla_bench.errors import ConfigError, PluginError

IGNORE_INDEX = -100


def check_choice(objective: str, options: Mapping[str, Any], key: str, choices: tuple[str, ...]) -> None:
    """A one-line ``ConfigError`` unless option ``key`` is one of ``choices``."""
    if options[key] not in choices:
        allowed = " or ".join(repr(c) for c in choices)
        raise ConfigError(f"objective '{objective}': {key} must be {allowed}, got {options[key]!r}")


def check_fraction(objective: str, options: Mapping[str, Any], key: str) -> None:
    """A one-line ``ConfigError`` unless option ``key`` lies strictly between 0 and 1."""
    if not 0.0 < options[key] < 1.0:
        raise ConfigError(f"objective '{objective}': {key} must be in (0, 1), got {options[key]}")


def check_distill(objective: Any, model: Any) -> None:
    """An objective with ``distill: true`` needs the model's momentum copy (checked at set-up)."""
    if objective.options["distill"] and "momentum" not in getattr(model, "capabilities", frozenset()):
        raise ConfigError(f"objective '{objective.name}' distils from the momentum model, which this model lacks",
                          hint=f"set objectives.{objective.name}.options.distill: false "
                               "or give the model a momentum copy")


def soft_cross_entropy(logits: torch.Tensor, target_probs: torch.Tensor) -> torch.Tensor:
    """Per-row ``-sum(p * log_softmax(logits))`` (no reduction)."""
    return -(target_probs * F.log_softmax(logits, dim=-1)).sum(-1)


def distilled_token_loss(logits: torch.Tensor, labels: torch.Tensor, momentum_logits: torch.Tensor | None,
                         alpha: float) -> torch.Tensor:
    """ALBEF's distilled MLM loss on the positions where ``labels != -100``:
    ``(1 - alpha) * CE(logits, labels) + alpha * softCE(logits, softmax(momentum_logits))``."""
    selected = labels != IGNORE_INDEX
    logits_sel = logits[selected]
    hard = F.cross_entropy(logits_sel.float(), labels[selected])
    if momentum_logits is None or alpha == 0.0:
        return hard
    soft = soft_cross_entropy(logits_sel.float(), F.softmax(momentum_logits[selected].float(), dim=-1)).mean()
    return (1.0 - alpha) * hard + alpha * soft


def special_token_ids(tokenizer: Any) -> list[int]:
    """PAD, CLS, SEP (and other special ids the tokenizer declares)."""
    ids = [getattr(tokenizer, n, None) for n in ("pad_token_id", "cls_token_id", "sep_token_id",
                                                   "bos_token_id", "eos_token_id", "unk_token_id")]
    extra = getattr(tokenizer, "all_special_ids", None) or []
    mask_id = getattr(tokenizer, "mask_token_id", None)
    return sorted({int(i) for i in [*ids, *extra] if i is not None and i != mask_id})


def vocab_size_of(model: Any) -> int:
    tok = model.tokenizer
    return int(getattr(model, "vocab_size", None) or len(tok))


def stable_ids(image_ids: Sequence[Any], device: torch.device | str) -> torch.Tensor:
    """Map image ids (str or int) to int64 deterministically (same id -> same int across runs/ranks)."""
    out = []
    for v in image_ids:
        if isinstance(v, int) and not isinstance(v, bool):
            out.append(v)
        else:
            digest = hashlib.blake2b(str(v).encode(), digest_size=8).digest()
            out.append(int.from_bytes(digest, "little", signed=True) & 0x3FFFFFFFFFFFFFFF)
    return torch.tensor(out, dtype=torch.long, device=device)


def batch_ids(step: Any, device: torch.device | str) -> torch.Tensor:
    """Stable int64 ids of the batch's images (positions if the batch has no ``image_ids``)."""
    ids = step.batch.get("image_ids")
    if ids is None:
        n = step.batch["input_ids"].shape[0]
        offset = getattr(step, "step", 0) * 1_000_003
        return torch.arange(n, device=device) + offset
    if torch.is_tensor(ids):
        return ids.to(device=device, dtype=torch.long)
    return stable_ids(list(ids), device)


def _call(model: Any, names: Sequence[str], *args: Any) -> torch.Tensor:
    for name in names:
        fn = getattr(model, name, None)
        if callable(fn):
            return fn(*args)
    raise PluginError(f"model {type(model).__name__} has none of {', '.join(names)}",
                      hint="the model does not provide the head this objective needs")


def mim_logits(model: Any, hidden: torch.Tensor) -> torch.Tensor:
    """MIM head over the image tokens of ``fuse_image`` output."""
    return _call(model, ("mim_logits",), hidden)


def concept_logits(model: Any, image_feat: torch.Tensor) -> torch.Tensor:
    """PSL concept head on the normalised projected image feature."""
    return _call(model, ("concept_logits",), image_feat)


def cls_self_attention(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                       image_embeds: torch.Tensor) -> torch.Tensor:
    """Last layer's self-attention row of the CLS query, ``[B, H, L]``, of a multimodal pass."""
    out = model.fuse(input_ids, attention_mask, image_embeds, output_attentions=-1)  # last layer only
    atts = getattr(out, "self_attentions", None)
    if not atts:
        raise PluginError(f"model {type(model).__name__}: fuse(output_attentions=-1) returned no self_attentions",
                          hint="PSL needs the multimodal pass's self-attention maps")
    return atts[-1][:, :, 0, :]
