"""Scoring SNLI-VE prediction files (``simla-bench score snli_ve``): the task's
:meth:`~simla_bench_extras.snli_ve.VisualEntailment.score_files`.

Annotations are SNLI-VE's own JSON lines (``snli_ve_{dev,test}.jsonl``): one
object per line with at least ``pairID`` and ``gold_label`` (``entailment``,
``neutral`` or ``contradiction``; the other keys, ``Flikr30kID``,
``sentence2``, ..., are not read).  Predictions are a JSON list of
``{"pairID": ..., "label": ...}``, one per pair.  Reported: ``acc`` over all
pairs and ``acc_<label>`` for each gold label present, in percent, as the task
reports them.  Pure Python.
"""

from __future__ import annotations

import json
from pathlib import Path

from simla_bench.errors import DataError
from simla_bench.interfaces import FileScores

from .entailment_data import LABELS

ANNOTATIONS_HINT = "give SNLI-VE's .jsonl annotations"
PREDICTIONS_HINT = 'give a list of {"pairID": ..., "label": ...}'


def _add(out: dict[str, str], item, label_key: str, where: str, twice: str, hint: str) -> None:
    """Enter one ``{"pairID", label_key}`` item into ``out`` (pairID -> label): a
    one-line error for a missing key, a pair seen before (``twice`` says how) or
    an unknown label."""
    if not isinstance(item, dict) or "pairID" not in item or label_key not in item:
        raise DataError(f"{where} has no pairID and {label_key}", hint=hint)
    pair, value = str(item["pairID"]), item[label_key]
    if pair in out:
        raise DataError(f"{where}: pairID {pair} {twice}")
    if value not in LABELS:
        raise DataError(f"{where}: label {value!r} is not one of {', '.join(LABELS)}")
    out[pair] = value


def read_annotations(path: Path) -> dict[str, str]:
    """pairID -> gold label, from SNLI-VE JSON lines."""
    gold: dict[str, str] = {}
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path} line {number}"
        try:
            item = json.loads(line)
        except ValueError as exc:
            raise DataError(f"{where} is not JSON ({exc.msg})", hint=ANNOTATIONS_HINT) from None
        _add(gold, item, "gold_label", where, "appears twice", ANNOTATIONS_HINT)
    if not gold:
        raise DataError(f"{path} holds no annotations", hint=ANNOTATIONS_HINT)
    return gold


def read_predictions(path: Path) -> dict[str, str]:
    """pairID -> predicted label, from a JSON list of ``{"pairID", "label"}``."""
    try:
        items = json.loads(Path(path).read_text(encoding="utf-8"))
    except ValueError as exc:
        raise DataError(f"{path} is not JSON ({exc.msg})", hint=PREDICTIONS_HINT) from None
    if not isinstance(items, list):
        raise DataError(f"{path} is a JSON {type(items).__name__}, not a list", hint=PREDICTIONS_HINT)
    out: dict[str, str] = {}
    for i, item in enumerate(items):
        _add(out, item, "label", f"{path} item {i}", "is predicted twice", PREDICTIONS_HINT)
    return out


def score(predictions: Path, annotations: Path, *, allow_missing: bool = False) -> FileScores:
    gold = read_annotations(annotations)
    pred = read_predictions(predictions)
    unknown = next((p for p in pred if p not in gold), None)
    if unknown is not None:
        raise DataError(f"{predictions}: prediction for pairID {unknown} that is not in {annotations}",
                        hint="remove it or pass the matching annotation file")
    missing = [p for p in gold if p not in pred]
    if missing and not allow_missing:
        raise DataError(f"{predictions}: no prediction for pairID {missing[0]} ({len(missing)} missing in all)",
                        hint="predict every pair, or pass --allow-missing to score missing ones as wrong")
    correct = {p: float(pred.get(p) == label) for p, label in gold.items()}
    metrics = {"acc": 100.0 * sum(correct.values()) / len(correct)}
    for label in LABELS:
        pairs = [p for p, g in gold.items() if g == label]
        if pairs:
            metrics[f"acc_{label}"] = 100.0 * sum(correct[p] for p in pairs) / len(pairs)
    return FileScores(metrics, len(missing))
