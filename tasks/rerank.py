"""Retrieval scoring as ALBEF/SIMLA do it: ITC similarities pick the top-k
candidates of every query (image->text and text->image), each candidate pair
is re-scored by the ITM head's positive logit, and every non-candidate keeps
the score -100.

:func:`rerank` is vectorised: the candidate pairs of all queries in both
directions are gathered at once, de-duplicated (a pair that is a candidate
in both directions is fused once: in evaluation mode its ITM score is the
same either way) and pushed through the scorer in large batches; given the
texts' lengths, each batch holds one image's candidate texts, shortest first
(:func:`pair_batches`).  :class:`CachedITMScorer` fuses such batches from
parts computed once (each text's first fusion self-attention, each image's
cross-attention keys/values: ``model.fusion_text_cache`` /
``fusion_image_cache`` / ``fuse_cached``), trimming padding to the batch's
longest text.  :func:`rerank_reference` is the straightforward per-query,
per-candidate loop with one full fusion per pair (:func:`itm_scorer`), kept
for tests and for the retrieval benchmark.
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


def pair_batches(img_idx: torch.Tensor, txt_idx: torch.Tensor, batch_size: int,
                 text_lengths: torch.Tensor | None = None) -> list[torch.Tensor]:
    """Positions into the pair list ``(img_idx, txt_idx)`` (sorted by image), one
    tensor per scorer call.  Without ``text_lengths``: consecutive runs of
    ``batch_size``.  With them: each batch holds pairs of one image only, its
    texts shortest first, an image's ``n`` pairs split into ``ceil(n /
    batch_size)`` batches of near-equal size."""
    if text_lengths is None or not len(img_idx):
        return [torch.arange(s, min(s + batch_size, len(img_idx))) for s in range(0, len(img_idx), batch_size)]
    lengths = text_lengths.to("cpu", torch.long)[txt_idx]
    n_txt = int(txt_idx.max()) + 1
    order = torch.argsort((img_idx * (int(lengths.max()) + 1) + lengths) * n_txt + txt_idx)
    out, start = [], 0
    for n in torch.bincount(img_idx).tolist():
        parts = -(-n // batch_size)
        out += [order[start + (j * n) // parts:start + ((j + 1) * n) // parts] for j in range(parts)]
        start += n
    return out


@torch.inference_mode()
def rerank(sims_i2t: torch.Tensor, k: int, scorer: PairScorer, batch_size: int = 512,
           fill: float = FILL, text_lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(scores_i2t [N_img, N_txt], scores_t2i [N_txt, N_img])``.

    ``sims_i2t`` holds the ITC similarities of every image with every text;
    ``text_lengths [N_txt]`` (tokens), when given, makes every scorer call one
    image's texts of similar length (:func:`pair_batches`).  Memory: the
    candidate pair list and the two score matrices; the scorer sees one batch
    at a time.
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
    for sl in pair_batches(img_idx, txt_idx, batch_size, text_lengths):
        scores[sl] = scorer(img_idx[sl], txt_idx[sl]).detach().float().cpu()
    pair_scores = scores[inverse]
    s_i2t, s_t2i = pair_scores[: key_i2t.numel()], pair_scores[key_i2t.numel():]

    out_i2t = torch.full((n_img, n_txt), fill, dtype=torch.float32)
    out_i2t[rows_i.reshape(-1), cand_i2t.reshape(-1)] = s_i2t
    out_t2i = torch.full((n_txt, n_img), fill, dtype=torch.float32)
    out_t2i[rows_t.reshape(-1), cand_t2i.reshape(-1)] = s_t2i
    return out_i2t, out_t2i


@torch.inference_mode()
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


def has_fusion_cache(model) -> bool:
    """Whether ``model`` offers the evaluation fusion from cached parts."""
    return all(callable(getattr(model, name, None)) for name in ("fusion_text_cache", "fusion_image_cache", "fuse_cached"))


class CachedITMScorer:
    """A :data:`PairScorer` giving :func:`itm_scorer`'s scores (within float
    rounding) from parts fused once: every text's ``model.fusion_text_cache``
    (computed up front in batches of ``batch_size``), and each image's
    ``model.fusion_image_cache`` when a batch needs it (the last image's is
    kept, so consecutive batches of one image compute it once).  A batch of one
    image's pairs (:func:`pair_batches` with text lengths) runs its texts'
    queries against that image's keys/values as one sequence; a batch of several
    images gathers each row's keys/values.  The model must be in eval mode."""

    def __init__(self, model, image_embeds: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                 text_embeds: torch.Tensor | None = None, batch_size: int = 256):
        self.model, self.image_embeds, self.mask = model, image_embeds, attention_mask
        with torch.inference_mode():
            parts = [model.fusion_text_cache(input_ids[s:s + batch_size], attention_mask[s:s + batch_size],
                                             None if text_embeds is None else text_embeds[s:s + batch_size])
                     for s in range(0, len(input_ids), batch_size)]
        self.text_cache = torch.cat(parts) if parts else torch.zeros(0)
        self._image: tuple[int, list] | None = None

    def image_cache(self, image: int) -> list:
        if self._image is None or self._image[0] != image:
            self._image = (image, self.model.fusion_image_cache(self.image_embeds[image:image + 1]))
        return self._image[1]

    @torch.inference_mode()
    def __call__(self, img_idx: torch.Tensor, txt_idx: torch.Tensor) -> torch.Tensor:
        device = self.text_cache.device
        img_idx, txt_idx = img_idx.to(device), txt_idx.to(device)
        mask = self.mask[txt_idx]
        length = int(mask.sum(dim=1).max())     # drop padding columns no text of this batch uses
        images = torch.unique(img_idx)
        if len(images) == 1:
            kv = self.image_cache(int(images[0]))
        else:
            per_image = self.model.fusion_image_cache(self.image_embeds[images])
            row = torch.searchsorted(images, img_idx)
            kv = [(k[row], v[row]) for k, v in per_image]
        out = self.model.fuse_cached(self.text_cache[txt_idx, :length], mask[:, :length], kv)
        return self.model.itm_logits(out)[:, 1]


def cached_itm_scorer(model, image_embeds: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                      text_embeds: torch.Tensor | None = None, batch_size: int = 256) -> PairScorer:
    """:class:`CachedITMScorer` when the model offers the cached fusion
    (:func:`has_fusion_cache`) and is in eval mode, else :func:`itm_scorer`."""
    if has_fusion_cache(model) and not model.training:
        return CachedITMScorer(model, image_embeds, input_ids, attention_mask, text_embeds, batch_size)
    return itm_scorer(model, image_embeds, input_ids, attention_mask, text_embeds)
