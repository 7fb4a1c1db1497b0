"""Which of a model's heads hold trained weights.

A freshly built model has every head it is capable of (``capabilities``),
but a head no objective trained and no checkpoint filled is still at its
random initialisation.  The model records the trained ones in the attribute
``trained_heads`` (a set of capability names such as ``itm_head``):

* the trainer adds the ``trains`` of every objective it trains for at least
  one step (:class:`~simla_bench.interfaces.Objective`);
* a model plugin's checkpoint load adds the heads it filled from a released
  or saved checkpoint;
* a task that fine-tunes a head itself adds it to its own copy.

A task asks :func:`is_trained` before relying on a head (zero-shot retrieval
re-ranks with the ITM head only when it is trained).  The attribute is a
plain Python set, so it follows ``copy.deepcopy`` of the model.
"""

from __future__ import annotations

from typing import Any, Iterable

ATTRIBUTE = "trained_heads"


def trained_heads(model: Any) -> frozenset[str]:
    """The heads of ``model`` recorded as trained (empty when none is)."""
    return frozenset(getattr(model, ATTRIBUTE, None) or ())


def mark_trained(model: Any, heads: Iterable[str]) -> None:
    """Record ``heads`` as trained on ``model`` (added to what it had)."""
    heads = set(heads)
    if not heads:
        return
    setattr(model, ATTRIBUTE, set(trained_heads(model)) | heads)


def is_trained(model: Any, head: str) -> bool:
    """Whether ``head`` was trained (by an objective, a fine-tuning or a loaded checkpoint)."""
    return head in trained_heads(model)
