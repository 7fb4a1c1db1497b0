"""The VQA answer vocabulary and its training targets.

The vocabulary is built from the training split's annotator answers (raw
strings, as ALBEF's answer list holds them), most frequent first, ties broken
alphabetically, capped at ``max_answers``.  The soft target of a candidate
answer for a question is the official VQA accuracy that predicting it would
earn (:func:`simla_bench.tasks.metrics.vqa.question_accuracy`), so training
optimises exactly what the metric rewards, quirks included.
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable, Sequence

import torch


class AnswerVocab:
    """Candidate answers (strings) and their indices."""

    def __init__(self, answers: Sequence[str]):
        self.answers = list(answers)
        self.index = {a: i for i, a in enumerate(self.answers)}

    def __len__(self) -> int:
        return len(self.answers)

    @classmethod
    def build(cls, answer_lists: Iterable[Sequence[str]], max_answers: int) -> "AnswerVocab":
        counts = Counter(a for answers in answer_lists for a in answers)
        ranked = sorted(counts, key=lambda a: (-counts[a], a))
        return cls(ranked[:max_answers] if max_answers > 0 else ranked)

    def targets(self, answer_lists: Sequence[Sequence[str]]) -> torch.Tensor:
        """``[Q, V]`` soft targets: the official accuracy of predicting each
        vocabulary answer.  Only answers whose normalised form equals one of
        the strings the evaluator compares against (an annotator's answer,
        raw or punctuation-processed) can score above 0, so only those are
        scored; all others are 0 exactly."""
        from simla_bench.tasks.metrics.vqa import normalize_prediction, process_punctuation, question_accuracy

        if not hasattr(self, "_by_form"):
            self._by_form: dict[str, list[int]] = {}
            for j, a in enumerate(self.answers):
                self._by_form.setdefault(normalize_prediction(a), []).append(j)
        out = torch.zeros(len(answer_lists), len(self.answers))
        for q, answers in enumerate(answer_lists):
            forms = set(answers) | {process_punctuation(a) for a in answers}
            for form in forms:
                rows = self._by_form.get(form)
                if rows:
                    acc = question_accuracy(self.answers[rows[0]], answers)
                    out[q, rows] = acc
        return out

    def coverage(self, answer_lists: Sequence[Sequence[str]]) -> float:
        """Mean over questions of the best accuracy reachable with this
        vocabulary (the ceiling of a classifier over it), in [0, 1]."""
        if not answer_lists:
            return 0.0
        return float(self.targets(answer_lists).max(dim=1).values.mean())
