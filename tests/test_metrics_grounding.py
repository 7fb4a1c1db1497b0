"""Grounding: IoU (ALBEF's rule by default, pycocotools as ``iou="coco"``), the
inclusive 0.5 threshold, edge-touching boxes, and proposal scoring against a
literal transcription of ALBEF's loop."""

from __future__ import annotations

import numpy as np
import pytest

from simla_bench.tasks.metrics.grounding import (
    albef_compute_iou,
    best_proposal,
    box_iou,
    grounding_accuracy,
    score_proposals,
    select_proposals,
)


def test_iou_hand_cases():
    iou = box_iou([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10], [2, 2, 4, 4]],
                  [[5, 0, 10, 10], [0, 0, 10, 10], [10, 0, 10, 10], [0, 10, 10, 10], [0, 0, 10, 10]])
    assert iou == pytest.approx([50 / 150, 1.0, 0.0, 0.0, 16 / 100])


def test_iou_exactly_half_counts_as_correct():
    # 100 / 200 and 50 / 100: exactly 0.5 in floating point
    pred = np.array([[0, 0, 10, 10], [0, 0, 5, 10], [0, 0, 4.99, 10]])
    gt = np.array([[0, 0, 10, 20], [0, 0, 10, 10], [0, 0, 10, 10]])
    res = grounding_accuracy(pred, gt)
    assert list(res["iou"][:2]) == [0.5, 0.5]
    assert list(res["hits"]) == [True, True, False]
    assert res["acc"] == pytest.approx(200 / 3) and res["correct"] == 2 and res["fraction"] == 2 / 3


def test_touching_edges_and_image_border():
    # boxes sharing only an edge do not overlap
    assert box_iou([[0, 0, 10, 10]], [[10, 0, 10, 10]])[0] == 0.0
    # a box touching the image border is an ordinary box
    assert box_iou([[0, 0, 640, 480]], [[0, 0, 640, 240]])[0] == 0.5


def test_albef_iou_agrees_except_for_one_pixel_overlaps():
    rng = np.random.default_rng(0)
    a = np.column_stack([rng.uniform(0, 50, 300), rng.uniform(0, 50, 300), rng.uniform(3, 60, 300), rng.uniform(3, 60, 300)])
    b = np.column_stack([rng.uniform(0, 50, 300), rng.uniform(0, 50, 300), rng.uniform(3, 60, 300), rng.uniform(3, 60, 300)])
    ours = box_iou(a, b, "coco")
    for x, y, v in zip(a, b, ours):
        ow = min(x[0] + x[2], y[0] + y[2]) - max(x[0], y[0])
        oh = min(x[1] + x[3], y[1] + y[3]) - max(x[1], y[1])
        if ow > 1 and oh > 1 or ow <= 0 or oh <= 0:
            assert albef_compute_iou(x, y) == pytest.approx(v, abs=1e-12)
    # a one-pixel-wide overlap: pycocotools counts it, ALBEF's computeIoU does not
    assert box_iou([[0, 0, 10, 10]], [[9, 0, 10, 10]], "coco")[0] == pytest.approx(10 / 190)
    assert albef_compute_iou([0, 0, 10, 10], [9, 0, 10, 10]) == 0.0


def literal_albef_scores(mask, dets):
    """ALBEF's per-box loop: slice with int() bounds, divide by area ** 0.5."""
    out = []
    for det in dets:
        region = mask[int(det[1]):int(det[1] + det[3]), int(det[0]):int(det[0] + det[2])]
        area = det[2] * det[3]
        out.append(region.sum() / area ** 0.5)
    return np.array(out)


def literal_albef_pick(scores):
    max_score, pick = 0, None
    for i, s in enumerate(scores):
        if s > max_score:
            pick, max_score = i, s
    return pick


def test_score_proposals_equals_literal_loop():
    rng = np.random.default_rng(1)
    for trial in range(20):
        h, w = rng.integers(5, 40, size=2)
        heat = rng.random((h, w))
        n = 30
        boxes = np.column_stack([rng.uniform(-5, w + 3, n), rng.uniform(-5, h + 3, n),
                                 rng.uniform(0.5, w, n), rng.uniform(0.5, h, n)])
        boxes[:5] = np.round(boxes[:5])  # integer boxes too
        ours = score_proposals(heat, boxes)
        ref = literal_albef_scores(heat, boxes)
        np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-10)
        pick = literal_albef_pick(ref)
        if pick is not None:
            assert best_proposal(ours) == pick


def test_sqrt_area_normalisation_hand_case():
    heat = np.zeros((10, 10))
    heat[0:2, 0:2] = 1.0  # 4 units of heat in the corner
    boxes = [[0, 0, 2, 2], [0, 0, 10, 10], [0, 0, 4, 4], [5, 5, 5, 5]]
    scores = score_proposals(heat, boxes)
    assert scores == pytest.approx([4 / 2, 4 / 10, 4 / 4, 0.0])
    assert best_proposal(scores) == 0


def test_ties_pick_the_first_and_all_zero_falls_back():
    assert best_proposal([1.0, 3.0, 3.0]) == 1
    assert best_proposal([0.0, 0.0]) == 0
    assert best_proposal([np.nan, -1.0]) == 1
    assert best_proposal([]) == -1


def test_select_proposals_batches():
    heat_a = np.zeros((8, 8)); heat_a[6:, 6:] = 1
    heat_b = np.zeros((4, 6)); heat_b[:2, :2] = 1
    picks = select_proposals([heat_a, heat_b], [[[0, 0, 2, 2], [6, 6, 2, 2]], [[0, 0, 2, 2], [3, 1, 3, 3]]])
    assert picks == [1, 0]
