"""Pretraining loss curves: the non-finite check and the summary kept in records.

The trainer reports its curve as a list of points, each a mapping with a
``step`` and one number per objective (plus optionally ``total``/``loss``,
``lr``...), or plain numbers.  A NaN/inf in any objective stops the row with a
:class:`~simla_bench.errors.PluginError` naming the objective and the step.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

from simla_bench.errors import PluginError

_NOT_LOSSES = {"step", "lr", "alpha", "temp", "seconds", "time", "pairs_per_s", "epoch"}


def _points(curve: Sequence[Any]) -> list[dict[str, float]]:
    points = []
    for i, p in enumerate(curve):
        if isinstance(p, Mapping):
            step = int(p.get("step", i + 1))
            values = {k: float(v) for k, v in p.items() if k not in _NOT_LOSSES and isinstance(v, (int, float))}
        else:
            step, values = i + 1, {"total": float(p)}
        points.append({"step": step, **values})
    return points


def check_finite(curve: Sequence[Any]) -> None:
    for p in _points(curve):
        for name, value in p.items():
            if name != "step" and not math.isfinite(value):
                who = "the total loss" if name in ("total", "loss") else f"objective '{name}'"
                raise PluginError(
                    f"{who} became {value} at pretraining step {p['step']}; this row is stopped",
                    hint="lower pretrain.lr or pretrain.grad_clip, or check that objective",
                )


def summarise(curve: Sequence[Any], max_points: int = 50) -> dict[str, Any]:
    """Per loss: first, last, min and the mean of the last 10% of points, plus
    an evenly thinned copy of the curve (at most ``max_points`` points)."""
    points = _points(curve)
    if not points:
        return {"points": 0, "losses": {}, "curve": []}
    names = sorted({k for p in points for k in p if k != "step"})
    tail = max(1, len(points) // 10)
    losses = {}
    for n in names:
        vals = [p[n] for p in points if n in p]
        losses[n] = {"first": vals[0], "last": vals[-1], "min": min(vals), "tail_mean": sum(vals[-tail:]) / len(vals[-tail:])}
    stride = max(1, math.ceil(len(points) / max_points))
    thinned = points[::stride]
    if thinned[-1] is not points[-1]:
        thinned.append(points[-1])
    return {"points": len(points), "losses": losses, "curve": thinned}
