"""Retrieval scoring as ALBEF/SIMLA do it: ITC similarities pick the top-k
candidates of every query (image->text and text->image), each candidate pair
is re-scored by the ITM head's positive logit, and every non-candidate keeps
the score -100.

:func:`rerank` is vectorised: the candidate pairs of all queries in both
directions are gathered at once, de-duplicated (a pair that is a candidate
in both directions is fused once: in evaluation mode its ITM score is the
same either way) and pushed through the scorer in large batches.
:func:`rerank_reference` is the straightforward per-query, per-candidate loop,
kept for tests and for the retrieval benchmark.
"""

from __future__ import annotations

from typing import Callable

import torch

#: score of every pair outside a query's top-k candidates (ALBEF's value)
FILL = -100.0

PairScorer = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``scorer(image_idx [P], text_idx [P]) -> FloatTensor[P]``: the ITM
positive logit of each (image, text) pair."""


def candidates(sims: torch.Tensor, k: int) -> torch.Tensor:
    """Indices ``[Q, min(k, C)]`` of each row's ``k`` largest similarities."""
    k = min(int(k), sims.shape[1])
    return sims.topk(k, dim=1).indices


@torch.no_grad()
def rerank(sims_i2t: torch.Tensor, k: int, scorer: PairScorer, batch_size: int = 512,
           fill: float = FILL) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(scores_i2t [N_img, N_txt], scores_t2i [N_txt, N_img])``.

    ``sims_i2t`` holds the ITC similarities of every image with every text.
    """
    n_img, n_txt = sims_i2t.shape
    cand_i2t = candidates(sims_i2t, k)                # [N_img, k1] text indices
    cand_t2i = candidates(sims_i2t.t(), k)            # [N_txt, k2] image indices
    rows_i = torch.arange(n_img).unsqueeze(1).expand_as(cand_i2t)
    rows_t = torch.arange(n_txt).unsqueeze(1).expand_as(cand_t2i)
    # pair key = image * N_txt + text, for both directions
    key_i2t = (rows_i * n_txt + cand_i2t).reshape(-1)
    key_t2i = (cand_t2i * n_txt + rows_t).reshape(-1)
    keys, inverse = torch.unique(torch.cat([key_i2t, key_t2i]), return_inverse=True)
    img_idx, txt_idx = keys // n_txt, keys % n_txt
    scores = torch.empty(len(keys), dtype=torch.float32)
    for start in range(0, len(keys), batch_size):
        sl = slice(start, start + batch_size)
        scores[sl] = scorer(img_idx[sl], txt_idx[sl]).detach().float().cpu()
    pair_scores = scores[inverse]
    s_i2t, s_t2i = pair_scores[: key_i2t.numel()], pair_scores[key_i2t.numel():]

    out_i2t = torch.full((n_img, n_txt), fill, dtype=torch.float32)
    out_i2t[rows_i.reshape(-1), cand_i2t.reshape(-1)] = s_i2t
    out_t2i = torch.full((n_txt, n_img), fill, dtype=torch.float32)
    out_t2i[rows_t.reshape(-1), cand_t2i.reshape(-1)] = s_t2i
    return out_i2t, out_t2i


@torch.no_grad()
def rerank_reference(sims_i2t: torch.Tensor, k: int, scorer: PairScorer,
                     fill: float = FILL) -> tuple[torch.Tensor, torch.Tensor]:
    """The same scores by a plain loop over queries and candidates (slow)."""
    n_img, n_txt = sims_i2t.shape
    out_i2t = torch.full((n_img, n_txt), fill, dtype=torch.float32)
    for i in range(n_img):
        for t in sims_i2t[i].topk(min(k, n_txt)).indices.tolist():
            out_i2t[i, t] = float(scorer(torch.tensor([i]), torch.tensor([t]))[0])
    sims_t2i = sims_i2t.t()
    out_t2i = torch.full((n_txt, n_img), fill, dtype=torch.float32)
    for t in range(n_txt):
        for i in sims_t2i[t].topk(min(k, n_img)).indices.tolist():
            out_t2i[t, i] = float(scorer(torch.tensor([i]), torch.tensor([t]))[0])
    return out_i2t, out_t2i


def itm_scorer(model, image_embeds: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor,
               text_embeds: torch.Tensor | None = None) -> PairScorer:
    """A :data:`PairScorer` over precomputed encodings: fuses each pair's text
    with its image and returns the ITM head's positive logit."""
    device = image_embeds.device

    def score(img_idx: torch.Tensor, txt_idx: torch.Tensor) -> torch.Tensor:
        img_idx, txt_idx = img_idx.to(device), txt_idx.to(device)
        mask = attention_mask[txt_idx]
        length = int(mask.sum(dim=1).max())     # drop padding columns no text of this batch uses
        out = model.fuse(
            input_ids[txt_idx, :length],
            mask[:, :length],
            image_embeds[img_idx],
            text_embeds=None if text_embeds is None else text_embeds[txt_idx, :length],
        )
        return model.itm_logits(out)[:, 1]

    return score
