"""Official VQA v2 accuracy (the ``vqaEval`` algorithm, both official versions), pure Python.

Owns: answer normalisation (punctuation, digits/articles, contractions), the
ten leave-one-annotator-out accuracy per question, and the aggregation into
overall / per answer type / per question type numbers rounded the way the
official tool rounds them (``round(100 * sum / n, 2)``, summed in annotation
order so the floating point result is the same to the last bit).

Two official versions exist and differ only in which strings are normalised
(``version=``; see docs/metrics.md, "Two versions of vqaEval"):

``"albef"`` (default) -- the copy in ALBEF's/LAVIS's ``vqaTools`` (the one
behind the papers' local VQA numbers):

* the prediction is always normalised: newlines/tabs -> spaces, strip,
  punctuation processing, then digit/article processing;
* the ten ground-truth answers are compared raw unless they are not all
  identical, in which case each one gets punctuation processing only (no
  lower-casing, no digit/article processing).

``"current"`` -- GT-Vision-Lab's current master (2021, "Fixed processing
answers bug"):

* prediction and every ground-truth answer: newlines/tabs -> spaces, strip;
* only when the (stripped) ten answers are not all identical, the prediction
  AND each answer get punctuation processing then digit/article processing;
  when they are all identical nothing more is done (``"Two"`` against ten
  ``"Two"`` scores 1, against ten ``"2"`` scores 0).

Both versions:

* leave-one-out: each of the 10 answers is dropped in turn (duplicates count
  separately) and the prediction scores ``min(1, matches_among_other_9 / 3)``;
  the question's accuracy is the mean of the 10 scores.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

from simla_bench.tasks.metrics.vqa_tables import ARTICLES, CONTRACTIONS, NUMBER_WORDS

#: the accepted values of ``version`` (first = default)
VQA_EVAL_VERSIONS = ("albef", "current")

#: marks handled by the punctuation step (no apostrophe, colon, ampersand or period)
PUNCTUATION = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-",
               ">", "<", "@", "`", ",", "?", "!")

_DIGIT_COMMA_DIGIT = re.compile(r"(\d)(,)(\d)")
# The official pattern begins with a (mistyped) look-behind that is really a
# look-ahead for the text "<=digit"; at a period it always holds, so the rule
# is "a period that is not followed by a digit".
_PERIOD_NOT_BEFORE_DIGIT = re.compile(r"\.(?!\d)")
#: the official call passes re.UNICODE (== 32) in the ``count`` position
_PERIOD_MAX_REMOVALS = int(re.UNICODE)


def process_punctuation(text: str) -> str:
    """The official punctuation step applied to one answer string."""
    out = text
    strip_all = _DIGIT_COMMA_DIGIT.search(text) is not None
    for mark in PUNCTUATION:
        if strip_all or (mark + " ") in text or (" " + mark) in text:
            out = out.replace(mark, "")
        else:
            out = out.replace(mark, " ")
    return _PERIOD_NOT_BEFORE_DIGIT.sub("", out, count=_PERIOD_MAX_REMOVALS)


def process_digit_article(text: str) -> str:
    """Lower-case, number words -> digits, drop articles, expand contractions."""
    words = []
    for word in text.lower().split():
        word = NUMBER_WORDS.get(word, word)
        if word not in ARTICLES:
            words.append(word)
    return " ".join(CONTRACTIONS.get(word, word) for word in words)


def check_vqa_eval(version: str) -> str:
    """Return ``version`` if it names a vqaEval version, else raise ``ValueError``."""
    if version not in VQA_EVAL_VERSIONS:
        raise ValueError(f"unknown vqaEval version {version!r}; allowed: {', '.join(VQA_EVAL_VERSIONS)}")
    return version


def _clean_whitespace(answer: str) -> str:
    return answer.replace("\n", " ").replace("\t", " ").strip()


def normalize_prediction(answer: str) -> str:
    """Normalise a predicted answer as the ALBEF version always does (and the
    current version does when the ground-truth answers disagree)."""
    return process_digit_article(process_punctuation(_clean_whitespace(answer)))


def question_accuracy(prediction: str, gt_answers: Sequence[str], version: str = "albef") -> float:
    """Accuracy in [0, 1] of one (raw) predicted answer against the raw ground truth answers.

    ``gt_answers`` are the annotators' answers (10 in VQA v2), unprocessed;
    ``version`` is ``"albef"`` or ``"current"`` (see the module docstring).
    """
    check_vqa_eval(version)
    if not gt_answers:
        raise ValueError("a VQA question needs at least one ground-truth answer")
    if version == "albef":
        pred = normalize_prediction(prediction)
        answers = list(gt_answers)
        if len(set(answers)) > 1:
            answers = [process_punctuation(a) for a in answers]
    else:
        pred = _clean_whitespace(prediction)
        answers = [_clean_whitespace(a) for a in gt_answers]
        if len(set(answers)) > 1:
            answers = [process_digit_article(process_punctuation(a)) for a in answers]
            pred = process_digit_article(process_punctuation(pred))
    matches = [a == pred for a in answers]
    total_matches = sum(matches)
    scores = [min(1.0, float(total_matches - m) / 3) for m in matches]
    return float(sum(scores)) / len(scores)


def official_round(fraction_sum: float, count: int, digits: int = 2) -> float:
    """``round(100 * sum / count, digits)`` in the official order of operations."""
    return round(100 * float(fraction_sum) / count, digits)


@dataclass
class VQAResult:
    """VQA accuracies, all in percent as the official tool reports them.

    ``per_question`` maps question id -> rounded percent (official ``evalQA``);
    ``raw_per_question`` keeps the unrounded accuracy in [0, 1] (for bootstrap);
    ``missing`` counts questions without a prediction (scored 0);
    ``version`` is the vqaEval version that scored them.
    """

    overall: float
    per_answer_type: dict[str, float]
    per_question_type: dict[str, float]
    per_question: dict = field(repr=False)
    raw_per_question: dict = field(repr=False)
    count: int = 0
    missing: int = 0
    version: str = "albef"

    def as_dict(self) -> dict:
        return {"overall": self.overall, "per_answer_type": self.per_answer_type,
                "per_question_type": self.per_question_type, "count": self.count, "missing": self.missing,
                "version": self.version}


def vqa_accuracy(predictions: Mapping, annotations: Iterable[Mapping], *, digits: int = 2,
                 allow_missing: bool = False, version: str = "albef") -> VQAResult:
    """Official VQA accuracy.

    Args:
        predictions: question id -> predicted answer (raw string).
        annotations: in annotation-file order, dicts with ``question_id``,
            ``answers`` (list of raw strings, or of official ``{"answer": ...}``
            dicts), ``answer_type`` and ``question_type``.
        digits: rounding precision (the official default is 2).
        allow_missing: score questions without a prediction as 0 instead of
            raising ``KeyError``.
        version: which official vqaEval, ``"albef"`` (default) or ``"current"``.

    Returns a :class:`VQAResult` (percent values rounded like the official tool).
    """
    check_vqa_eval(version)
    acc_all: list[float] = []
    by_answer_type: dict[str, list[float]] = {}
    by_question_type: dict[str, list[float]] = {}
    per_question: dict = {}
    raw: dict = {}
    missing = 0
    for ann in annotations:
        qid = ann["question_id"]
        answers = [a["answer"] if isinstance(a, Mapping) else a for a in ann["answers"]]
        if qid in predictions:
            acc = question_accuracy(predictions[qid], answers, version)
        elif allow_missing:
            acc = 0.0
            missing += 1
        else:
            raise KeyError(qid)
        acc_all.append(acc)
        by_question_type.setdefault(ann["question_type"], []).append(acc)
        by_answer_type.setdefault(ann["answer_type"], []).append(acc)
        per_question[qid] = round(100 * acc, digits)
        raw[qid] = acc
    if not acc_all:
        raise ValueError("no VQA questions to score")
    return VQAResult(
        overall=official_round(sum(acc_all), len(acc_all), digits),
        per_answer_type={k: official_round(sum(v), len(v), digits) for k, v in by_answer_type.items()},
        per_question_type={k: official_round(sum(v), len(v), digits) for k, v in by_question_type.items()},
        per_question=per_question, raw_per_question=raw, count=len(acc_all), missing=missing,
        version=version)
