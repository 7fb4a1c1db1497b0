"""Image-text retrieval recall (ALBEF/SIMLA ``itm_eval``), vectorised numpy.

Owns: ranks of the ground truth in score matrices, TR@1/5/10, IR@1/5/10 and
their means, and per-query ranks/hits for bootstrap.

Ranking follows the official code exactly: each row is ordered by
``np.argsort(row)[::-1]`` (numpy's default sort kind, reversed) and the rank
of an item is its position in that order.  For equal scores this means the
tie order is whatever numpy's default argsort gives, reversed: in practice,
among tied items the one with the larger index usually comes first.  We call
the very same function on the same dtype (the matrix is never converted), so
ties are broken as the official tool breaks them on the same numpy build.
Rows where the target ties with nothing skip the sort (its position is the
number of higher scores), which gives the same rank without sorting.

* image -> text: an image's rank is the best rank among its own texts
  (``img2txt``); an image with no texts never hits.
* text -> image: a text's rank is the rank of its image (``txt2img``).
* ``R@K = 100.0 * (#queries with rank < K) / #queries``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

#: (query, target) pairs handled per block, to bound memory
_BLOCK_ROWS = 1024
_NO_RANK = np.iinfo(np.int64).max


def _official_positions(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Position of ``cols[i]`` in ``np.argsort(rows[i])[::-1]`` (the official order)."""
    order = np.argsort(rows, axis=1)[:, ::-1]
    return np.argmax(order == cols[:, None], axis=1).astype(np.int64)


def _target_positions(scores: np.ndarray, query: np.ndarray, target: np.ndarray,
                      cap: int | None = None) -> np.ndarray:
    """Official position of ``target[i]`` in row ``query[i]`` of ``scores``.

    In any correct sort, everything scoring higher precedes the target and
    everything lower follows it, so without ties the position is simply the
    number of higher scores (O(N) per row, no sort).  Rows where the target
    ties with another item, or that hold a NaN, are ranked with the official
    ``np.argsort(row)[::-1]`` so that ties come out exactly as there.  With a
    ``cap``, a row whose target already has ``cap`` or more higher scores is not
    sorted: its value is then that count, a lower bound that is >= ``cap``.
    """
    out = np.empty(len(query), dtype=np.int64)
    for start in range(0, len(query), _BLOCK_ROWS):
        q, t = query[start:start + _BLOCK_ROWS], target[start:start + _BLOCK_ROWS]
        rows = scores[q]
        value = rows[np.arange(len(q)), t][:, None]
        pos = np.count_nonzero(rows > value, axis=1).astype(np.int64)
        exact = (np.count_nonzero(rows == value, axis=1) == 1) & ~np.isnan(rows).any(axis=1)
        slow = ~exact if cap is None else ~exact & (pos < cap)
        if slow.any():
            pos[slow] = _official_positions(rows[slow], t[slow])
        out[start:start + len(q)] = pos
    return out


def t2i_ranks(scores_t2i: np.ndarray, txt2img: Sequence[int], cap: int | None = None) -> np.ndarray:
    """Rank (0 = first) of each text's image in its row of ``scores_t2i`` [N_txt, N_img].

    With ``cap``, ranks below ``cap`` are exact and the others are only known to be >= ``cap``.
    """
    scores_t2i = np.asarray(scores_t2i)
    target = np.asarray(txt2img, dtype=np.int64)
    if scores_t2i.ndim != 2 or target.shape != (scores_t2i.shape[0],):
        raise ValueError(f"scores_t2i {scores_t2i.shape} does not match {target.shape[0]} texts")
    return _target_positions(scores_t2i, np.arange(len(target), dtype=np.int64), target, cap)


def i2t_ranks(scores_i2t: np.ndarray, img2txt: Sequence[Sequence[int]], cap: int | None = None) -> np.ndarray:
    """Best rank among each image's texts in its row of ``scores_i2t`` [N_img, N_txt].

    Images without any text get a huge rank (never a hit), like the official 1e20.
    ``cap`` as in :func:`t2i_ranks`.
    """
    scores_i2t = np.asarray(scores_i2t)
    if scores_i2t.ndim != 2 or len(img2txt) != scores_i2t.shape[0]:
        raise ValueError(f"scores_i2t {scores_i2t.shape} does not match {len(img2txt)} images")
    counts = np.array([len(t) for t in img2txt], dtype=np.int64)
    flat_txt = np.fromiter((t for texts in img2txt for t in texts), dtype=np.int64, count=int(counts.sum()))
    flat_img = np.repeat(np.arange(len(img2txt), dtype=np.int64), counts)
    ranks = np.full(len(img2txt), _NO_RANK, dtype=np.int64)
    np.minimum.at(ranks, flat_img, _target_positions(scores_i2t, flat_img, flat_txt, cap))
    return ranks


def recall_at(ranks: np.ndarray, k: int) -> float:
    """``100.0 * (#ranks < k) / #ranks`` in the official order of operations."""
    return 100.0 * int(np.count_nonzero(ranks < k)) / len(ranks)


def itm_eval(scores_i2t: np.ndarray, scores_t2i: np.ndarray, txt2img: Sequence[int],
             img2txt: Sequence[Sequence[int]], ks: Sequence[int] = (1, 5, 10), exact_ranks: bool = False) -> dict:
    """Official retrieval metrics from two score matrices.

    Args:
        scores_i2t: [N_img, N_txt], higher = better match.
        scores_t2i: [N_txt, N_img] (often ``scores_i2t.T``; ALBEF scores each
            direction's ITM candidates separately, so they may differ).
        txt2img: the image index of each text.
        img2txt: the text indices of each image (5 per image in COCO/Flickr).
        ks: recall cut-offs; the official ones are 1, 5, 10 (the means use them).
        exact_ranks: compute every rank exactly.  By default ranks below
            ``max(ks)`` are exact (all the recalls need) and larger ones are
            lower bounds >= ``max(ks)``, which skips sorting rows such as
            ALBEF's where a non-candidate target ties with thousands of -100s.

    Returns a dict with ``TR@K``, ``IR@K``, ``tr_mean``, ``ir_mean``, ``r_mean``
    (percent floats, the official ``txt_r1`` ... ``r_mean`` values) and, for
    bootstrap, ``i2t_ranks`` [N_img] / ``t2i_ranks`` [N_txt] (int arrays, see
    ``exact_ranks``) and
    ``i2t_hits`` / ``t2i_hits``: dicts K -> bool arrays.
    """
    if np.asarray(scores_t2i).shape[1] != np.asarray(scores_i2t).shape[0]:
        raise ValueError("scores_t2i must have one column per image")
    cap = None if exact_ranks else max(ks)
    return recall_metrics(i2t_ranks(scores_i2t, img2txt, cap), t2i_ranks(scores_t2i, txt2img, cap), ks)


def recall_metrics(r_i2t: np.ndarray, r_t2i: np.ndarray, ks: Sequence[int] = (1, 5, 10)) -> dict:
    """The :func:`itm_eval` result from per-query ranks (0 = first; huge = never)."""
    r_i2t = np.asarray(r_i2t, dtype=np.int64)
    r_t2i = np.asarray(r_t2i, dtype=np.int64)
    if len(r_i2t) == 0 or len(r_t2i) == 0:
        raise ValueError("retrieval needs at least one image and one text")
    out: dict = {}
    for k in ks:
        out[f"TR@{k}"] = recall_at(r_i2t, k)
    for k in ks:
        out[f"IR@{k}"] = recall_at(r_t2i, k)
    if tuple(ks) == (1, 5, 10):
        out["tr_mean"] = (out["TR@1"] + out["TR@5"] + out["TR@10"]) / 3
        out["ir_mean"] = (out["IR@1"] + out["IR@5"] + out["IR@10"]) / 3
        out["r_mean"] = (out["tr_mean"] + out["ir_mean"]) / 2
    out["i2t_ranks"] = r_i2t
    out["t2i_ranks"] = r_t2i
    out["i2t_hits"] = {k: r_i2t < k for k in ks}
    out["t2i_hits"] = {k: r_t2i < k for k in ks}
    return out


def ranks_from_lists(ranked: Sequence[Sequence[int]], targets: Sequence[Sequence[int]]) -> np.ndarray:
    """Best position of any target in each ranked list (huge if none is listed).

    ``ranked[q]`` is query q's candidates, best first; ``targets[q]`` its
    ground-truth candidates (one image for a text, the texts of an image).
    """
    if len(ranked) != len(targets):
        raise ValueError(f"{len(ranked)} ranked lists for {len(targets)} queries")
    ranks = np.full(len(ranked), _NO_RANK, dtype=np.int64)
    for q, (cands, wanted) in enumerate(zip(ranked, targets)):
        wanted = set(wanted)
        for pos, cand in enumerate(cands):
            if cand in wanted:
                ranks[q] = pos
                break
    return ranks


def scalar_metrics(result: dict) -> dict[str, float]:
    """The float entries of an :func:`itm_eval` result (drops the per-query arrays)."""
    return {k: v for k, v in result.items() if isinstance(v, float)}
