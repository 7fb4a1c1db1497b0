"""``simla-bench score``: score an official-format predictions file against official annotations.

Uses the very metric functions the tasks use (:mod:`simla_bench.metrics`), so
it can score predictions from any system.  Prints a rich table; ``--json``
also writes the numbers to a file.
"""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.table import Table

from rich.markup import escape

from simla_bench.cli.common import console, err_console, writable_file, write_text
from simla_bench.errors import DataError, UserError

TASKS = ("retrieval", "grounding", "vqa", "nlvr2")
GROUNDING_SPLITS = ("val", "testA", "testB")
#: mirror simla_bench.metrics.vqa.VQA_EVAL_VERSIONS and .grounding.IOU_RULES (kept literal so --help stays fast)
VQA_EVAL_VERSIONS = ("albef", "current")
IOU_RULES = ("albef", "coco")


def _check_ids(pred_ids, known_ids, allow_missing: bool, what: str, pred_path: Path, ann_path: Path) -> int:
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


def _score_vqa(pred: Path, ann: Path, questions: Path | None, allow_missing: bool,
               vqa_eval: str = "albef") -> tuple[dict, int]:
    from simla_bench.metrics.official_files import read_vqa_annotations, read_vqa_predictions
    from simla_bench.metrics.vqa import vqa_accuracy

    annotations = read_vqa_annotations(ann, questions)
    predictions = read_vqa_predictions(pred)
    missing = _check_ids(list(predictions), [a["question_id"] for a in annotations], allow_missing,
                         "question_id", pred, ann)
    res = vqa_accuracy(predictions, annotations, allow_missing=True, version=vqa_eval)
    metrics = {"overall": res.overall}
    metrics.update({f"answer_type/{k}": v for k, v in res.per_answer_type.items()})
    metrics.update({f"question_type/{k}": v for k, v in res.per_question_type.items()})
    return metrics, missing


def _score_nlvr2(pred: Path, ann: Path, allow_missing: bool) -> tuple[dict, int]:
    from simla_bench.metrics.nlvr2 import nlvr2_scores
    from simla_bench.metrics.official_files import read_nlvr2_labels, read_nlvr2_predictions

    labels = read_nlvr2_labels(ann)
    predictions = read_nlvr2_predictions(pred)
    missing = _check_ids(list(predictions), list(labels), allow_missing, "identifier", pred, ann)
    res = nlvr2_scores(predictions, labels, allow_missing=True)
    return {"accuracy": res.accuracy, "consistency": res.consistency,
            "precision (official fraction)": res.accuracy_fraction,
            "consistency (official fraction)": res.consistency_fraction}, missing


def _score_retrieval(pred: Path, ann: Path, pred_t2i: Path | None) -> tuple[dict, int]:
    from simla_bench.metrics import official_files as of
    from simla_bench.metrics.retrieval import itm_eval, ranks_from_lists, recall_metrics, scalar_metrics

    data = of.read_retrieval_annotations(ann)
    n_img, n_txt = len(data.images), len(data.texts)
    if pred.suffix == ".npy":
        i2t = of.read_score_matrix(pred, (n_img, n_txt), "image-to-text score matrix")
        t2i = (of.read_score_matrix(pred_t2i, (n_txt, n_img), "text-to-image score matrix")
               if pred_t2i is not None else i2t.T)
        res = itm_eval(i2t, t2i, data.txt2img, data.img2txt)
    elif pred.suffix == ".json":
        if pred_t2i is not None:
            raise UserError("--predictions-t2i only goes with a .npy image-to-text matrix",
                            "ranked-lists JSON already holds both directions")
        lists_i2t, lists_t2i = of.read_ranked_lists(pred, n_img, n_txt)
        res = recall_metrics(ranks_from_lists(lists_i2t, data.img2txt),
                             ranks_from_lists(lists_t2i, [[i] for i in data.txt2img]))
    else:
        raise UserError(f"retrieval predictions {pred} must be a .npy score matrix or a ranked-lists .json")
    return scalar_metrics(res), 0


def _score_grounding(pred: Path, ann: Path, instances: Path | None, splits: tuple[str, ...],
                     allow_missing: bool, iou: str = "albef") -> tuple[dict, int]:
    import numpy as np

    from simla_bench.metrics.grounding import grounding_accuracy
    from simla_bench.metrics.official_files import read_grounding_predictions, read_refer

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
    return metrics, len({u.ref_id for u in missing_units})


@click.command("score")
@click.argument("task", type=click.Choice(TASKS))
@click.option("--predictions", "-p", required=True, type=click.Path(path_type=Path),
              help="Predictions in the task's official submission format.")
@click.option("--annotations", "-a", required=True, type=click.Path(path_type=Path),
              help="Official annotations (VQA annotations JSON, ALBEF retrieval JSON, refs(unc).p, NLVR2 JSON lines).")
@click.option("--instances", type=click.Path(path_type=Path), help="grounding: the refer toolkit's instances.json.")
@click.option("--questions", type=click.Path(path_type=Path), help="vqa: optional questions JSON (ids are cross-checked).")
@click.option("--predictions-t2i", type=click.Path(path_type=Path),
              help="retrieval: text-to-image .npy matrix (default: transpose of --predictions).")
@click.option("--split", "splits", multiple=True, type=click.Choice(GROUNDING_SPLITS),
              help="grounding: split(s) to score (default: val, testA, testB).")
@click.option("--vqa-eval", type=click.Choice(VQA_EVAL_VERSIONS), default="albef", show_default=True,
              help="vqa: official vqaEval version - albef (ALBEF/LAVIS copy, the papers' numbers) "
                   "or current (GT-Vision-Lab master, 2021); see docs/metrics.md.")
@click.option("--iou", type=click.Choice(IOU_RULES), default="albef", show_default=True,
              help="grounding: IoU rule - albef (ALBEF computeIoU, integer-pixel convention) "
                   "or coco (pycocotools).")
@click.option("--allow-missing", is_flag=True, help="Score ids without a prediction as wrong instead of failing.")
@click.option("--json", "json_path", type=click.Path(path_type=Path),
              help="Also write the numbers to this JSON file (missing folders are created).")
def score_command(task, predictions, annotations, instances, questions, predictions_t2i, splits,
                  vqa_eval, iou, allow_missing, json_path) -> None:
    """Score a predictions file for TASK with the official metric.

    \b
    Examples:
      simla-bench score vqa -p results.json -a v2_mscoco_val2014_annotations.json
      simla-bench score vqa -p results.json -a anns.json --vqa-eval current
      simla-bench score nlvr2 -p dev_predictions.csv -a dev.json --json nlvr2.json
      simla-bench score retrieval -p scores_i2t.npy -a coco_test.json
      simla-bench score grounding -p boxes.json -a 'refs(unc).p' --instances instances.json
    """
    for path in (predictions, annotations):
        if not path.exists():
            raise DataError(f"file not found: {path}", "check the path")
    if json_path is not None:  # before scoring: a path that cannot be written fails first
        writable_file(json_path, "the --json file", "--json")
    if task == "vqa":
        metrics, missing = _score_vqa(predictions, annotations, questions, allow_missing, vqa_eval)
    elif task == "nlvr2":
        metrics, missing = _score_nlvr2(predictions, annotations, allow_missing)
    elif task == "retrieval":
        metrics, missing = _score_retrieval(predictions, annotations, predictions_t2i)
    else:
        metrics, missing = _score_grounding(predictions, annotations, instances,
                                            tuple(splits) or GROUNDING_SPLITS, allow_missing, iou)
    table = Table(title=escape(f"{task}: {predictions.name}"))
    table.add_column("metric", style="bold cyan")
    table.add_column("value", justify="right")
    for name, value in metrics.items():
        table.add_row(escape(name), repr(value))  # question types come from the annotations
    console.print(table)
    if missing:
        err_console.print(f"[yellow]warning:[/] {missing} id(s) had no prediction and were scored as wrong",
                          highlight=False)
    if json_path is not None:
        payload = {"task": task, "predictions": str(predictions), "annotations": str(annotations),
                   "metrics": metrics, "missing": missing}
        if task == "vqa":
            payload["vqa_eval"] = vqa_eval
        elif task == "grounding":
            payload["iou"] = iou
        write_text(json_path, json.dumps(payload, indent=2) + "\n", "the --json file", "--json")


COMMANDS = [score_command]
