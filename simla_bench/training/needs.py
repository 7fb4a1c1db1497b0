"""Model needs: the one place that compares what components need with what a model provides.

Every objective and task declares ``needs`` (model capabilities such as
``fusion`` or ``momentum``); the model declares ``capabilities``.
:func:`missing_needs` finds the gaps and :func:`how_to_get` says how to close
them from one hint table, the model recipe's ``capability_hints`` (a built
model carries the same table).  The runner checks a whole run before any work
(:func:`simla_bench.runner.cells.check_capabilities`, which also names the
objectives that train a missing head); the trainer checks its objectives again
when :func:`~simla_bench.training.pretrain` is called on its own
(:func:`check_needs`: :class:`~simla_bench.training.errors.UnmetNeedsError`).
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from simla_bench.training.errors import UnmetNeedsError

#: what :func:`how_to_get` says for a capability the hint table does not explain
DEFAULT_HINT = "use a model that provides it"


def missing_needs(objectives: Mapping[str, Any], capabilities: frozenset[str] | set[str]) -> dict[str, list[str]]:
    """``{name: [missing capability, ...]}`` for every component (an instance or a
    class with ``needs``) with a gap."""
    gaps: dict[str, list[str]] = {}
    for name, obj in objectives.items():
        lacking = sorted(set(getattr(obj, "needs", ())) - set(capabilities))
        if lacking:
            gaps[name] = lacking
    return gaps


def how_to_get(missing: Iterable[str], hints: Mapping[str, str]) -> str:
    """``"cap: how; ..."`` for each missing capability, from the recipe's ``capability_hints``."""
    return "; ".join(f"{c}: {hints.get(c, DEFAULT_HINT)}" for c in missing)


def check_needs(objectives: Mapping[str, Any], model: Any) -> None:
    """Raise :class:`UnmetNeedsError` when the model lacks what an objective needs."""
    caps = frozenset(getattr(model, "capabilities", frozenset()))
    gaps = missing_needs(objectives, caps)
    if not gaps:
        return
    parts = [f"objective '{name}' needs {', '.join(lack)}" for name, lack in gaps.items()]
    missing = sorted({c for lack in gaps.values() for c in lack})
    how = how_to_get(missing, getattr(model, "capability_hints", None) or {})
    have = ", ".join(sorted(caps)) or "nothing"
    raise UnmetNeedsError(
        f"{'; '.join(parts)}, which the model does not provide (it provides: {have})",
        hint=f"{how}; or remove the objective from 'objectives:'",
    )
