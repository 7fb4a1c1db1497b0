"""Model needs: the one place that compares what components need with what a model provides.

Every objective and task declares ``needs`` (model capabilities such as
``fusion`` or ``momentum``, all required) and may declare ``needs_one_of``
(alternative sets of which one must be complete: retrieval ranks with ITC or
with ITM); a task instance may add needs its options imply.  The model
declares ``capabilities``.  :func:`unmet` / :func:`missing_needs` find the gaps
and :func:`how_to_get` says how to close them from one hint table, the model
recipe's ``capability_hints`` (a built model carries the same table).  The
runner checks a whole run before any work
(:func:`simla_bench.runner.cells.check_capabilities`: an objective the model
cannot serve stops the run, naming the objectives that train a missing head; a
task it cannot serve makes that row's cells ``n/a``); the trainer checks its
objectives again when :func:`~simla_bench.training.pretrain` is called on its own
(:func:`check_needs`: :class:`~simla_bench.training.errors.UnmetNeedsError`).
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from simla_bench.training.errors import UnmetNeedsError

#: what :func:`how_to_get` says for a capability the hint table does not explain
DEFAULT_HINT = "use a model that provides it"


def unmet(component: Any, capabilities: frozenset[str] | set[str]) -> list[str]:
    """The capabilities ``component`` needs that ``capabilities`` lack: every one of
    its ``needs``, plus, when it declares ``needs_one_of`` (alternative sets, e.g. a
    task that works with ITC or with ITM) and no set is complete, the missing part of
    the set closest to complete (the first declared of equally close ones)."""
    have = set(capabilities)
    lacking = set(getattr(component, "needs", ())) - have
    alternatives = [frozenset(a) for a in getattr(component, "needs_one_of", ()) or ()]
    if alternatives and not any(a <= have for a in alternatives):
        lacking |= min(alternatives, key=lambda a: len(a - have)) - have  # ties: the first declared
    return sorted(lacking)


def missing_needs(objectives: Mapping[str, Any], capabilities: frozenset[str] | set[str]) -> dict[str, list[str]]:
    """``{name: [missing capability, ...]}`` for every component (an instance or a
    class with ``needs`` and optionally ``needs_one_of``) with a gap (:func:`unmet`)."""
    gaps: dict[str, list[str]] = {}
    for name, obj in objectives.items():
        lacking = unmet(obj, capabilities)
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
