"""NLVR2 accuracy and consistency (lil-lab's official ``nlvr2/eval/metrics.py`` rules).

Owns: the sentence key of an identifier and the two numbers.

An NLVR2 identifier is ``split-set-pair-sentence`` (e.g. ``dev-850-0-1``).  The
official script groups examples by the identifier with its third dash field
(the image-pair index) blanked out, so ``dev-850-0-1`` and ``dev-850-3-1``
share the key ``dev-850--1``.  Consistency is the share of keys whose examples
are all predicted correctly; accuracy ("precision" in the script) the share of
examples predicted correctly.  Both are fractions there; we report percent
too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping


def sentence_key(identifier: str) -> str:
    """The official consistency group of an identifier (third '-' field blanked)."""
    parts = identifier.split("-")
    if len(parts) < 3:
        raise ValueError(f"NLVR2 identifier {identifier!r} is not split-set-pair-sentence")
    parts[2] = ""
    return "-".join(parts)


@dataclass
class NLVR2Result:
    """``accuracy`` / ``consistency`` in percent; ``*_fraction`` as the official script prints them."""

    accuracy: float
    consistency: float
    accuracy_fraction: float
    consistency_fraction: float
    count: int
    sentences: int
    missing: int = 0
    per_example: dict = field(default_factory=dict, repr=False)

    def as_dict(self) -> dict:
        return {"accuracy": self.accuracy, "consistency": self.consistency,
                "accuracy_fraction": self.accuracy_fraction, "consistency_fraction": self.consistency_fraction,
                "count": self.count, "sentences": self.sentences, "missing": self.missing}


def nlvr2_scores(predictions: Mapping[str, bool], labels: Mapping[str, bool], *,
                 allow_missing: bool = False) -> NLVR2Result:
    """Accuracy and consistency of ``predictions`` (identifier -> bool) against ``labels``.

    Every labelled identifier needs a prediction (``KeyError`` otherwise) unless
    ``allow_missing``, which scores missing ones as wrong. Predictions for
    identifiers without a label are ignored here (the CLI rejects them).
    """
    if not labels:
        raise ValueError("no NLVR2 examples to score")
    correct = 0
    missing = 0
    consistent: dict[str, bool] = {}
    per_example: dict[str, bool] = {}
    for identifier, label in labels.items():
        key = sentence_key(identifier)
        consistent.setdefault(key, True)
        if identifier in predictions:
            ok = bool(predictions[identifier]) == bool(label)
        elif allow_missing:
            ok = False
            missing += 1
        else:
            raise KeyError(identifier)
        per_example[identifier] = ok
        if ok:
            correct += 1
        else:
            consistent[key] = False
    n_consistent = sum(1 for v in consistent.values() if v)
    acc = float(correct) / len(labels)
    cons = float(n_consistent) / len(consistent)
    return NLVR2Result(accuracy=100.0 * acc, consistency=100.0 * cons, accuracy_fraction=acc,
                       consistency_fraction=cons, count=len(labels), sentences=len(consistent),
                       missing=missing, per_example=per_example)
