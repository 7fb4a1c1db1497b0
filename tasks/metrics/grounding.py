"""Weakly supervised grounding metrics (ALBEF/SIMLA RefCOCO+ protocol).

Owns: box IoU under two rules (``iou=``, COCO ``x, y, w, h`` boxes), accuracy
at IoU >= 0.5 (inclusive, as ALBEF's ``IoU_det >= 0.5``), and proposal scoring
from a heat map: ``score = sum(heat inside box) / sqrt(w * h)``, best box =
argmax, computed for all proposals at once with an integral image.

IoU rules (see docs/metrics.md, "Grounding IoU rules"):

``"albef"`` (default; the formula behind the ALBEF protocol's number, its
``dataset/utils.py`` ``computeIoU(gt, pred)``): integer-pixel convention --
a box covers ``x .. x + w - 1``; the overlap runs from ``max(x)`` to
``min(x + w - 1)`` (likewise in y) and counts only when that span is
strictly positive in both axes (``x1 < x2`` and ``y1 < y2``: an overlap of
<= 1 px in either axis counts as none); its area is
``(x2 - x1 + 1) * (y2 - y1 + 1)``; union = ``w1 * h1 + w2 * h2 - inter``
(plain areas, no +1).  The -1/+1 cancel algebraically but not always in
float64, so computed here in float64 in the same order as the Python original
(bit-identical results for float coordinates).

``"coco"``: ``pycocotools.mask.iou`` (``iscrowd = 0``): continuous boxes,
overlap ``max(0, min(x + w) - max(x))`` per axis, union of the plain areas.

The box-to-pixel rule follows ALBEF's ``grounding_eval``: a box covers rows
``int(y):int(y + h)`` and columns ``int(x):int(x + w)`` of the heat map (Python
slice semantics: truncation toward zero, negative starts count from the end,
ends clipped to the map), and it is divided by ``sqrt(w * h)`` of the float box.
Selection keeps ALBEF's strict ``>``: the first of equal maxima wins and a box
must score above 0.  When no box scores above 0, ALBEF silently reuses the
previous expression's box (an accident of its loop); here the first maximum is
returned instead (see docs/metrics.md).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from pycocotools import mask as mask_utils

IOU_THRESHOLD = 0.5
#: the accepted values of ``iou`` (first = default)
IOU_RULES = ("albef", "coco")
_CHUNK = 512


def check_iou_rule(iou: str) -> str:
    """Return ``iou`` if it names an IoU rule, else raise ``ValueError``."""
    if iou not in IOU_RULES:
        raise ValueError(f"unknown IoU rule {iou!r}; allowed: {', '.join(IOU_RULES)}")
    return iou


def _as_boxes(boxes, name: str) -> np.ndarray:
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.ndim == 1 and arr.shape == (4,):
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"{name} must be boxes of shape [N, 4] (x, y, w, h), got {arr.shape}")
    return np.ascontiguousarray(arr)


def box_iou(pred_boxes, gt_boxes, iou: str = "albef") -> np.ndarray:
    """IoU of each predicted box with the ground-truth box at the same index.

    Both are [N, 4] in COCO ``x, y, w, h``.  ``iou="albef"`` (default) applies
    ALBEF's ``computeIoU`` rule, ``iou="coco"`` uses ``pycocotools.mask.iou``
    (``iscrowd = 0``); see the module docstring. Returns float64 [N].
    """
    check_iou_rule(iou)
    pred = _as_boxes(pred_boxes, "pred_boxes")
    gt = _as_boxes(gt_boxes, "gt_boxes")
    if len(pred) != len(gt):
        raise ValueError(f"{len(pred)} predicted boxes for {len(gt)} ground-truth boxes")
    if iou == "albef":
        return _albef_iou(gt, pred)
    out = np.empty(len(pred), dtype=np.float64)
    for start in range(0, len(pred), _CHUNK):
        p, g = pred[start:start + _CHUNK], gt[start:start + _CHUNK]
        m = np.asarray(mask_utils.iou(p, g, np.zeros(len(g), dtype=np.uint8)), dtype=np.float64)
        out[start:start + len(p)] = np.diagonal(m.reshape(len(p), len(g)))
    return out


def _albef_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Vectorised :func:`albef_compute_iou` over rows of [N, 4] arrays (a = ground truth)."""
    ix1 = np.maximum(a[:, 0], b[:, 0])
    iy1 = np.maximum(a[:, 1], b[:, 1])
    ix2 = np.minimum(a[:, 0] + a[:, 2] - 1, b[:, 0] + b[:, 2] - 1)
    iy2 = np.minimum(a[:, 1] + a[:, 3] - 1, b[:, 1] + b[:, 3] - 1)
    overlap = (ix1 < ix2) & (iy1 < iy2)
    inter = np.where(overlap, (ix2 - ix1 + 1) * (iy2 - iy1 + 1), 0.0)
    union = a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter / union


def albef_compute_iou(box1: Sequence[float], box2: Sequence[float]) -> float:
    """ALBEF's ``computeIoU`` rule (integer-pixel convention) for one pair of boxes.

    The -1 and +1 cancel algebraically, so it agrees with the ``"coco"`` rule
    except (a) when the overlap is at most one pixel wide or high, which it
    counts as no overlap at all, and (b) in the last bit of float64 rounding
    for non-integer coordinates (enough to put an IoU of "exactly" 0.5 on the
    other side of the threshold).
    """
    ix1, iy1 = max(box1[0], box2[0]), max(box1[1], box2[1])
    ix2 = min(box1[0] + box1[2] - 1, box2[0] + box2[2] - 1)
    iy2 = min(box1[1] + box1[3] - 1, box2[1] + box2[3] - 1)
    inter = (ix2 - ix1 + 1) * (iy2 - iy1 + 1) if (ix1 < ix2 and iy1 < iy2) else 0
    return float(inter) / (box1[2] * box1[3] + box2[2] * box2[3] - inter)


def grounding_hits(pred_boxes, gt_boxes, threshold: float = IOU_THRESHOLD, iou: str = "albef") -> np.ndarray:
    """Bool [N]: IoU(pred, gt) >= threshold (inclusive, as ALBEF), under IoU rule ``iou``."""
    return box_iou(pred_boxes, gt_boxes, iou) >= threshold


def grounding_accuracy(pred_boxes, gt_boxes, threshold: float = IOU_THRESHOLD, iou: str = "albef") -> dict:
    """Share of expressions whose box has IoU >= 0.5 with the ground truth.

    ``iou`` is the IoU rule, ``"albef"`` (default) or ``"coco"``.
    Returns ``{"acc": percent, "fraction": correct / n (the value ALBEF logs),
    "correct": int, "count": int, "hits": bool [N], "iou": float [N], "iou_rule": str}``.
    """
    values = box_iou(pred_boxes, gt_boxes, iou)
    if len(values) == 0:
        raise ValueError("no boxes to score")
    hits = values >= threshold
    correct = int(hits.sum())
    return {"acc": 100.0 * correct / len(values), "fraction": correct / len(values), "correct": correct,
            "count": len(values), "hits": hits, "iou": values, "iou_rule": iou}


def _slice_bounds(start: np.ndarray, stop: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Python ``seq[start:stop]`` bounds for integer arrays on a length-``size`` axis."""
    def norm(v):
        v = np.where(v < 0, v + size, v)
        return np.clip(v, 0, size)
    lo, hi = norm(start), norm(stop)
    return lo, np.maximum(hi, lo)


def score_proposals(heatmap, proposals) -> np.ndarray:
    """Score every proposal by ``sum(heat inside) / sqrt(w * h)``.

    Args:
        heatmap: [H, W] heat map at image resolution (e.g. Grad-CAM upsampled).
        proposals: [P, 4] boxes ``x, y, w, h`` in pixels of the same image.

    Returns float64 [P]; a zero-area box scores ``nan``/``inf`` like ALBEF's division.
    """
    heat = np.asarray(heatmap, dtype=np.float64)
    if heat.ndim != 2:
        raise ValueError(f"heatmap must be [H, W], got {heat.shape}")
    boxes = _as_boxes(proposals, "proposals") if len(proposals) else np.zeros((0, 4))
    h, w = heat.shape
    integral = np.zeros((h + 1, w + 1), dtype=np.float64)
    integral[1:, 1:] = heat.cumsum(axis=0).cumsum(axis=1)
    x, y, bw, bh = boxes.T
    # int() truncates toward zero, as np.trunc does
    y0, y1 = _slice_bounds(np.trunc(y).astype(np.int64), np.trunc(y + bh).astype(np.int64), h)
    x0, x1 = _slice_bounds(np.trunc(x).astype(np.int64), np.trunc(x + bw).astype(np.int64), w)
    total = integral[y1, x1] - integral[y0, x1] - integral[y1, x0] + integral[y0, x0]
    with np.errstate(divide="ignore", invalid="ignore"):
        return total / np.sqrt(bw * bh)


def best_proposal(scores) -> int:
    """Index of the chosen proposal: the first maximum among scores > 0 (ALBEF's strict ``>``).

    If no score is above 0 (or there are none), returns the first maximum
    (``nan`` counted as lowest), or -1 for an empty list.
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.size == 0:
        return -1
    s = np.where(np.isnan(s), -np.inf, s)
    return int(np.argmax(s))


def select_proposals(heatmaps: Sequence, proposals: Sequence) -> list[int]:
    """For each image/expression, the index of the best proposal (see :func:`best_proposal`)."""
    if len(heatmaps) != len(proposals):
        raise ValueError(f"{len(heatmaps)} heat maps for {len(proposals)} proposal lists")
    return [best_proposal(score_proposals(hm, pr)) for hm, pr in zip(heatmaps, proposals)]
