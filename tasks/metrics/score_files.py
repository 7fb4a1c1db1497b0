"""Scoring official-format prediction files, one function per built-in task
(``simla-bench score TASK`` reaches them through each task's
:meth:`~simla_bench.interfaces.Task.score_files`, made from the function by
:func:`task_scoring`), and the options each declares.

They call the very metric functions the tasks use (the modules of this
package), so predictions from any system are scored as a run scores its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from simla_bench.errors import DataError, UserError
from simla_bench.interfaces import FileScores, ScoreOption

GROUNDING_SPLITS = ("val", "testA", "testB")
#: the same as .vqa.VQA_EVAL_VERSIONS and .grounding.IOU_RULES (tests/test_cli_score.py checks it)
VQA_EVAL_VERSIONS = ("albef", "current")
IOU_RULES = ("albef", "coco")

VQA_OPTIONS = (
    ScoreOption("questions", "vqa: optional questions JSON (ids are cross-checked).", path=True),
    ScoreOption("vqa_eval", "vqa: official vqaEval version - albef (ALBEF/LAVIS copy, the papers' numbers) "
                            "or current (GT-Vision-Lab master, 2021); see docs/metrics.md.",
                choices=VQA_EVAL_VERSIONS, default="albef", record=True),
)
NLVR2_OPTIONS: tuple[ScoreOption, ...] = ()
RETRIEVAL_OPTIONS = (
    ScoreOption("predictions_t2i", "retrieval: text-to-image matrix, .npy or sparse .npz "
                                   "(default: transpose of --predictions).", path=True),
)
GROUNDING_OPTIONS = (
    ScoreOption("instances", "grounding: the refer toolkit's instances.json.", path=True),
    ScoreOption("split", "grounding: split(s) to score (default: val, testA, testB).",
                choices=GROUNDING_SPLITS, multiple=True),
    ScoreOption("iou", "grounding: IoU rule - albef (ALBEF computeIoU, integer-pixel convention) "
                       "or coco (pycocotools).", choices=IOU_RULES, default="albef", record=True),
)


def task_scoring(score: Callable[..., FileScores], options: tuple[ScoreOption, ...] = ()
                 ) -> tuple[Callable[..., FileScores], tuple[ScoreOption, ...]]:
    """A task class's ``score_files, score_options``: ``score`` as the method, with
    its docstring (``simla-bench score TASK --help`` shows the first line), and the
    options it takes besides the two files and ``allow_missing``."""

    def score_files(self: Any, predictions: Path, annotations: Path, *, allow_missing: bool = False,
                    **opts: Any) -> FileScores:
        return score(predictions, annotations, allow_missing=allow_missing, **opts)

    score_files.__doc__ = score.__doc__
    return score_files, tuple(options)


def check_ids(pred_ids, known_ids, allow_missing: bool, what: str, pred_path: Path, ann_path: Path) -> int:
    """Reject predictions for unknown ids; return the number of missing ids (error unless allowed)."""
    known = set(known_ids)
    for pid in pred_ids:
        if pid not in known:
            raise DataError(f"{pred_path}: prediction for {what} {pid} that is not in {ann_path}",
                            "remove it or pass the matching annotation file")
    predicted = set(pred_ids)
    missing = [k for k in known_ids if k not in predicted]
    if missing and not allow_missing:
        raise DataError(f"{pred_path}: no prediction for {what} {missing[0]} ({len(missing)} missing in all)",
                        "predict every id, or pass --allow-missing to score missing ones as wrong")
    return len(missing)


def score_vqa(pred: Path, ann: Path, *, allow_missing: bool = False, questions: Path | None = None,
              vqa_eval: str = "albef") -> FileScores:
    """The official VQA v2 results JSON (``[{question_id, answer}]``) against the annotations JSON (``simla-bench score vqa``)."""
    from simla_bench.tasks.metrics.official_files import read_vqa_annotations, read_vqa_predictions
    from simla_bench.tasks.metrics.vqa import vqa_accuracy

    annotations = read_vqa_annotations(ann, questions)
    predictions = read_vqa_predictions(pred)
    missing = check_ids(list(predictions), [a["question_id"] for a in annotations], allow_missing,
                         "question_id", pred, ann)
    res = vqa_accuracy(predictions, annotations, allow_missing=True, version=vqa_eval)
    metrics = {"overall": res.overall}
    metrics.update({f"answer_type/{k}": v for k, v in res.per_answer_type.items()})
    metrics.update({f"question_type/{k}": v for k, v in res.per_question_type.items()})
    return FileScores(metrics, missing)


def score_nlvr2(pred: Path, ann: Path, *, allow_missing: bool = False) -> FileScores:
    """The official NLVR2 predictions CSV (``identifier,True|False``) against the JSON-lines labels (``simla-bench score nlvr2``)."""
    from simla_bench.tasks.metrics.nlvr2 import nlvr2_scores
    from simla_bench.tasks.metrics.official_files import read_nlvr2_labels, read_nlvr2_predictions

    labels = read_nlvr2_labels(ann)
    predictions = read_nlvr2_predictions(pred)
    missing = check_ids(list(predictions), list(labels), allow_missing, "identifier", pred, ann)
    res = nlvr2_scores(predictions, labels, allow_missing=True)
    return FileScores({"accuracy": res.accuracy, "consistency": res.consistency,
            "precision (official fraction)": res.accuracy_fraction,
            "consistency (official fraction)": res.consistency_fraction}, missing)


def score_retrieval(pred: Path, ann: Path, *, allow_missing: bool = False,
                    predictions_t2i: Path | None = None) -> FileScores:
    """An image-to-text score matrix (dense ``.npy`` or sparse ``.npz``) or ranked-lists JSON against the ALBEF retrieval JSON (``simla-bench score retrieval``).

    ``allow_missing`` has no effect: a score matrix or ranked lists cover every id."""
    pred_t2i = predictions_t2i
    from simla_bench.tasks.metrics import official_files as of
    from simla_bench.tasks.metrics.retrieval import itm_eval, ranks_from_lists, recall_metrics, scalar_metrics

    data = of.read_retrieval_annotations(ann)
    n_img, n_txt = len(data.images), len(data.texts)
    if pred.suffix in (".npy", ".npz"):
        i2t = of.read_score_matrix(pred, (n_img, n_txt), "image-to-text score matrix")
        t2i = (of.read_score_matrix(pred_t2i, (n_txt, n_img), "text-to-image score matrix")
               if pred_t2i is not None else i2t.T)
        res = itm_eval(i2t, t2i, data.txt2img, data.img2txt)
    elif pred.suffix == ".json":
        if pred_t2i is not None:
            raise UserError("--predictions-t2i only goes with a .npy/.npz image-to-text matrix",
                            "ranked-lists JSON already holds both directions")
        lists_i2t, lists_t2i = of.read_ranked_lists(pred, n_img, n_txt)
        res = recall_metrics(ranks_from_lists(lists_i2t, data.img2txt),
                             ranks_from_lists(lists_t2i, [[i] for i in data.txt2img]))
    else:
        raise UserError(f"retrieval predictions {pred} must be a .npy / sparse .npz score matrix or a "
                        "ranked-lists .json")
    return FileScores(scalar_metrics(res), 0)


def score_grounding(pred: Path, ann: Path, *, allow_missing: bool = False, instances: Path | None = None,
                    split: tuple[str, ...] = (), iou: str = "albef") -> FileScores:
    """One box per ref (JSON) against the refer toolkit's ``refs(unc).p`` and ``instances.json`` (``simla-bench score grounding``).

    ``split``: the splits to score (default: all three)."""
    splits = tuple(split) or GROUNDING_SPLITS
    import numpy as np

    from simla_bench.tasks.metrics.grounding import grounding_accuracy
    from simla_bench.tasks.metrics.official_files import read_grounding_predictions, read_refer

    if instances is None:
        raise UserError("grounding needs --instances instances.json next to --annotations refs(unc).p")
    units = [u for u in read_refer(ann, instances) if u.split in splits]
    if not units:
        raise DataError(f"{ann} has no expressions in splits {', '.join(splits)}", "check --split")
    predictions = read_grounding_predictions(pred)
    by_ref: dict[int, list] = {}
    for u in units:
        by_ref.setdefault(u.ref_id, []).append(u)
    boxes: dict[tuple[int, int], list[float]] = {}
    for p in predictions:
        if p["ref_id"] not in by_ref:
            raise DataError(f"{pred}: prediction for ref_id {p['ref_id']} that is not in {ann} "
                            f"(splits {', '.join(splits)})", "remove it or pass the matching refs file / --split")
        targets = by_ref[p["ref_id"]]
        if p["sent_id"] is not None:
            targets = [u for u in targets if u.sent_id == p["sent_id"]]
            if not targets:
                raise DataError(f"{pred}: ref_id {p['ref_id']} has no sentence sent_id {p['sent_id']} in {ann}")
        for u in targets:
            key = (u.ref_id, u.sent_id)
            if key in boxes:
                raise DataError(f"{pred}: ref_id {u.ref_id} (sent_id {u.sent_id}) is predicted twice",
                                "give one box per ref_id, or one per (ref_id, sent_id)")
            boxes[key] = p["box"]
    missing_units = [u for u in units if (u.ref_id, u.sent_id) not in boxes]
    if missing_units and not allow_missing:
        raise DataError(f"{pred}: no prediction for ref_id {missing_units[0].ref_id} "
                        f"({len({u.ref_id for u in missing_units})} refs missing in all)",
                        "predict every ref, or pass --allow-missing to score missing ones as wrong")
    metrics = {}
    for split in splits:
        su = [u for u in units if u.split == split]
        if not su:
            continue
        have = [u for u in su if (u.ref_id, u.sent_id) in boxes]
        correct = 0
        if have:
            res = grounding_accuracy(np.array([boxes[(u.ref_id, u.sent_id)] for u in have]),
                                     np.array([u.box for u in have]), iou=iou)
            correct = res["correct"]
        metrics[f"{split}/acc"] = 100.0 * correct / len(su)
        metrics[f"{split}/fraction (ALBEF)"] = correct / len(su)
    return FileScores(metrics, len({u.ref_id for u in missing_units}))
