"""Refuse, before training, an objective set whose needs the model lacks.

Every objective declares ``needs`` (model capabilities such as ``fusion`` or
``momentum``); the model declares ``capabilities``.  A missing capability is a
:class:`~simla_bench.training.errors.UnmetNeedsError` saying which objective
needs what, and how to get it.
"""

from __future__ import annotations

from typing import Any, Mapping

from simla_bench.training.errors import UnmetNeedsError



def missing_needs(objectives: Mapping[str, Any], capabilities: frozenset[str] | set[str]) -> dict[str, list[str]]:
    """``{objective: [missing capability, ...]}`` for every objective with a gap."""
    gaps: dict[str, list[str]] = {}
    for name, obj in objectives.items():
        lacking = sorted(set(getattr(obj, "needs", ())) - set(capabilities))
        if lacking:
            gaps[name] = lacking
    return gaps


def check_needs(objectives: Mapping[str, Any], model: Any) -> None:
    """Raise :class:`UnmetNeedsError` when the model lacks what an objective needs."""
    caps = frozenset(getattr(model, "capabilities", frozenset()))
    gaps = missing_needs(objectives, caps)
    if not gaps:
        return
    parts = [f"objective '{name}' needs {', '.join(lack)}" for name, lack in gaps.items()]
    missing = sorted({c for lack in gaps.values() for c in lack})
    hints = getattr(model, "capability_hints", None) or {}  # the model recipe's explanations
    how = "; ".join(f"{c}: {hints.get(c, 'use a model that provides it')}" for c in missing)
    have = ", ".join(sorted(caps)) or "nothing"
    raise UnmetNeedsError(
        f"{'; '.join(parts)}, which the model does not provide (it provides: {have})",
        hint=f"{how}; or remove the objective from 'objectives:'",
    )
