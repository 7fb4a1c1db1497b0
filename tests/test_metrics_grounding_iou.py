"""The two grounding IoU rules (``iou="albef" | "coco"``): hand-made cases
(1-px overlaps, exactly-0.5 pairs with 2-decimal coordinates where the rules
fall on opposite sides), bit-equality with ALBEF's ``computeIoU`` and
pycocotools on the fixture ``tests/fixtures/metrics/official_versions.json``,
the score command's ``--iou`` and the grounding task's ``iou`` option."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from simla_bench.cli import main
from simla_bench.tasks.metrics.grounding import IOU_RULES, albef_compute_iou, box_iou, grounding_accuracy

FIXTURE = Path(__file__).parent / "fixtures" / "metrics" / "official_versions.json"


def both(gt, pred):
    return box_iou([pred], [gt], "albef")[0], box_iou([pred], [gt], "coco")[0]


def test_default_rule_is_albef():
    assert IOU_RULES == ("albef", "coco")
    assert box_iou([[9, 0, 10, 10]], [[0, 0, 10, 10]])[0] == 0.0
    assert grounding_accuracy([[9, 0, 10, 10]], [[0, 0, 10, 10]])["iou_rule"] == "albef"


@pytest.mark.parametrize("gt, pred, albef, coco", [
    # overlaps of <= 1 px in either axis count as none under albef
    ([0, 0, 10, 10], [9, 0, 10, 10], 0.0, 10 / 190),
    ([0, 0, 10, 10], [0, 9, 10, 10], 0.0, 10 / 190),
    ([0, 0, 10, 10], [9.5, 0, 10, 10], 0.0, 5 / 195),
    ([0, 0, 10, 10], [10, 0, 10, 10], 0.0, 0.0),              # touching edges
    ([0, 0, 1, 1], [0, 0, 1, 1], 0.0, 1.0),                   # identical 1x1 boxes
    ([0, 0, 1, 2], [0, 0, 1, 1], 0.0, 0.5),
    ([3, 4, 2, 2], [3, 4, 2, 2], 1.0, 1.0),                   # 2 px is enough
    # wider overlaps: the -1 and +1 cancel, both rules agree
    ([0, 0, 10, 10], [8, 0, 10, 10], 20 / 180, 20 / 180),
    ([0, 0, 10, 10], [5, 0, 10, 10], 50 / 150, 50 / 150),
    ([0, 0, 10, 20], [0, 0, 10, 10], 0.5, 0.5),
    ([0, 0, 640, 480], [0, 0, 640, 240], 0.5, 0.5),
])
def test_hand_cases(gt, pred, albef, coco):
    a, c = both(gt, pred)
    assert a == pytest.approx(albef, abs=1e-15) and c == pytest.approx(coco, abs=1e-15)
    assert a == albef_compute_iou(gt, pred)


@pytest.mark.parametrize("gt, pred, albef_hit", [
    # exactly 0.5 in exact arithmetic; float64 rounding puts the rules on opposite sides
    ([18.23, 3.23, 232.82, 64.51], [18.23, 3.23, 116.41, 64.51], True),
    ([101.5, 14.62, 102.5, 64.79], [152.75, 14.62, 51.25, 64.79], True),
    ([3.26, 97.5, 257.2, 155.48], [3.26, 97.5, 128.6, 155.48], False),
    ([90.45, 27.2, 378.76, 128.09], [279.83, 27.2, 189.38, 128.09], False),
])
def test_exactly_half_with_two_decimals(gt, pred, albef_hit):
    a, c = both(gt, pred)
    assert abs(a - 0.5) < 1e-15 and abs(c - 0.5) < 1e-15
    assert bool(a >= 0.5) is albef_hit and bool(c >= 0.5) is (not albef_hit)
    assert bool(grounding_accuracy([pred], [gt], iou="albef")["hits"][0]) is albef_hit
    assert bool(grounding_accuracy([pred], [gt], iou="coco")["hits"][0]) is (not albef_hit)


def test_vectorised_albef_equals_scalar_bitwise():
    rng = np.random.default_rng(3)
    a = np.round(np.column_stack([rng.uniform(0, 50, 500), rng.uniform(0, 50, 500),
                                  rng.uniform(0.2, 40, 500), rng.uniform(0.2, 40, 500)]), 2)
    b = np.round(np.column_stack([rng.uniform(0, 50, 500), rng.uniform(0, 50, 500),
                                  rng.uniform(0.2, 40, 500), rng.uniform(0.2, 40, 500)]), 2)
    ours = box_iou(b, a, "albef")
    assert [float(v) for v in ours] == [albef_compute_iou(list(map(float, g)), list(map(float, p)))
                                        for g, p in zip(a, b)]


def test_unknown_rule_is_refused():
    with pytest.raises(ValueError, match="albef, coco"):
        box_iou([[0, 0, 1, 1]], [[0, 0, 1, 1]], "voc")
    with pytest.raises(ValueError, match="albef, coco"):
        grounding_accuracy([[0, 0, 1, 1]], [[0, 0, 1, 1]], iou="pixel")


# ------------------------------------------------------------------ official tools' outputs
@pytest.mark.parametrize("rule", IOU_RULES)
def test_equals_official_iou(rule):
    cases = json.loads(FIXTURE.read_text(encoding="utf-8"))["iou"]
    assert len(cases) >= 200
    ours = box_iou([c["pred"] for c in cases], [c["gt"] for c in cases], rule)
    assert [float(v) for v in ours] == [c[rule] for c in cases]  # bit-identical
    if rule == "albef":
        assert [albef_compute_iou(c["gt"], c["pred"]) for c in cases] == [c["albef"] for c in cases]
    flips = [c for c in cases if (c["albef"] >= 0.5) != (c["coco"] >= 0.5)]
    assert len(flips) >= 10


# ------------------------------------------------------------------ score command and task option
def _refer_files(tmp_path):
    refs = [{"ref_id": 10, "ann_id": 100, "image_id": 1, "split": "val", "category_id": 1,
             "sentences": [{"sent_id": 1, "sent": "left dog"}]},
            {"ref_id": 11, "ann_id": 101, "image_id": 1, "split": "val", "category_id": 1,
             "sentences": [{"sent_id": 2, "sent": "tiny thing"}]}]
    inst = {"annotations": [{"id": 100, "bbox": [3.26, 97.5, 257.2, 155.48], "image_id": 1},
                            {"id": 101, "bbox": [0, 0, 1, 2], "image_id": 1}]}
    rp, ip, pred = tmp_path / "refs(unc).p", tmp_path / "instances.json", tmp_path / "p.json"
    rp.write_bytes(pickle.dumps(refs, protocol=2))
    ip.write_text(json.dumps(inst))
    # both predictions: IoU 0.5 under pycocotools, below 0.5 (or 0) under ALBEF's computeIoU
    pred.write_text(json.dumps([{"ref_id": 10, "box": [3.26, 97.5, 128.6, 155.48]},
                                {"ref_id": 11, "box": [0, 0, 1, 1]}]))
    return pred, rp, ip


def test_score_cli_iou(tmp_path):
    pred, refs, inst = _refer_files(tmp_path)
    out = tmp_path / "o.json"
    got = {}
    for flag in ([], ["--iou", "albef"], ["--iou", "coco"]):
        r = CliRunner().invoke(main, ["score", "grounding", "-p", str(pred), "-a", str(refs), "--instances",
                                      str(inst), "--split", "val", "--json", str(out), *flag])
        assert r.exit_code == 0, r.output
        data = json.loads(out.read_text())
        got[tuple(flag)] = (data["metrics"]["val/acc"], data["iou"])
    assert got[()] == got[("--iou", "albef")] == (0.0, "albef")
    assert got[("--iou", "coco")] == (100.0, "coco")
    r = CliRunner().invoke(main, ["score", "grounding", "-p", str(pred), "-a", str(refs), "--instances",
                                  str(inst), "--iou", "voc"])
    assert r.exit_code == 2
    errors = [line for line in r.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and "--iou" in errors[0] and "'albef', 'coco'" in errors[0], r.output


def test_task_option_iou():
    from simla_bench.errors import ConfigError
    from simla_bench.tasks.grounding import GroundingTask

    assert GroundingTask("grounding").options["iou"] == "albef"
    assert GroundingTask("grounding", {"iou": "coco"}).options["iou"] == "coco"
    with pytest.raises(ConfigError, match="iou must be albef or coco"):
        GroundingTask("grounding", {"iou": "voc"})
