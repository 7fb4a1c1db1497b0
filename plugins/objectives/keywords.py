"""PSL keywords: the keyword vocabulary and attention-voted keyword selection.

* :func:`keyword_vocabulary` — the columns of the concept head PSL trains:
  the whole text vocabulary (``top_k=0``, SIMLA), or the ``top_k`` most
  frequent non-special tokens of the pretraining captions (ties by token id).
* :func:`select_keyword_positions` — SIMLA's selection: for each head of the
  last layer, the CLS query's self-attention row; top ``per_head`` positions
  per head (PAD positions excluded); votes counted across heads; the ``keep``
  positions with most votes (ties broken by total attention mass) that got at
  least one vote.
* :func:`hard_targets` — the multi-hot target over the keyword vocabulary from
  the selected positions' token ids; special tokens (CLS, PAD, SEP, ...) zeroed.
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable, Sequence

import torch


def keyword_vocabulary(vocab_size: int, special_ids: Iterable[int], top_k: int = 0,
                       tokenized_captions: Iterable[Sequence[int]] | None = None) -> torch.Tensor:
    """Token ids forming the keyword vocabulary (sorted ascending for ``top_k=0``)."""
    if top_k <= 0:
        return torch.arange(vocab_size)
    special = set(int(s) for s in special_ids if s is not None)
    counts: Counter[int] = Counter()
    for ids in tokenized_captions or ():
        counts.update(int(i) for i in ids if int(i) not in special and 0 <= int(i) < vocab_size)
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top_k]
    return torch.tensor(sorted(i for i, _ in ranked), dtype=torch.long)


def select_keyword_positions(cls_attention: torch.Tensor, attention_mask: torch.Tensor,
                             per_head: int = 4, keep: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """``cls_attention``: ``[B, H, L]`` (the CLS query row of each head).

    Returns ``(positions [B, keep], valid [B, keep])``: ``valid`` is False for
    slots whose position received no vote (short captions).
    """
    b, h, length = cls_attention.shape
    att = cls_attention.float().masked_fill(~attention_mask.bool()[:, None, :], float("-inf"))
    k = min(per_head, length)
    top = att.topk(k, dim=-1).indices  # [B, H, k]
    ok = torch.gather(att, -1, top) > float("-inf")
    votes = torch.zeros(b, length, device=att.device)
    votes.scatter_add_(1, top.reshape(b, -1), ok.reshape(b, -1).float())
    mass = cls_attention.float().clamp_min(0).masked_fill(~attention_mask.bool()[:, None, :], 0).sum(1)
    # tie-break by attention mass, scaled into [0, 0.5] so it never outranks a vote
    score = votes + 0.5 * mass / mass.amax(dim=1, keepdim=True).clamp_min(1e-12)
    keep = min(keep, length)
    positions = score.topk(keep, dim=-1).indices
    valid = torch.gather(votes, 1, positions) > 0
    return positions, valid


def hard_targets(input_ids: torch.Tensor, positions: torch.Tensor, valid: torch.Tensor,
                 keyword_ids: torch.Tensor, vocab_size: int, special_ids: Iterable[int]) -> torch.Tensor:
    """Multi-hot ``[B, K]`` over the keyword vocabulary ``keyword_ids`` (``K = len(keyword_ids)``)."""
    tokens = torch.gather(input_ids, 1, positions)
    index = torch.full((vocab_size,), -1, dtype=torch.long, device=input_ids.device)
    index[keyword_ids.to(input_ids.device)] = torch.arange(len(keyword_ids), device=input_ids.device)
    for sid in set(int(s) for s in special_ids if s is not None):
        if 0 <= sid < vocab_size:
            index[sid] = -1
    cols = index[tokens.clamp(0, vocab_size - 1)]
    ok = valid & (cols >= 0)
    target = torch.zeros(input_ids.shape[0], len(keyword_ids) + 1, device=input_ids.device)
    target.scatter_(1, torch.where(ok, cols, torch.full_like(cols, len(keyword_ids))), 1.0)
    return target[:, :-1]
