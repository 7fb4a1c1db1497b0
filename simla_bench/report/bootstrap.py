"""Paired bootstrap significance over per-example scores.

Two systems scored on the same test examples (``a[i]`` and ``b[i]`` belong to
example ``i``; metric = 100 * mean).  Resample example indices with
replacement ``n_boot`` times, recompute the difference of means each time,
and report the two-sided p-value ``min(1, 2 * min(P(d <= 0), P(d >= 0)))``
and a 95% percentile interval (Koehn 2004; Berg-Kirkpatrick et al. 2012),
and the standard error of the difference (the std of the resampled differences).
Seeded and vectorised: chunks of resamples are one numpy fancy-index each.

Two rows of a leaderboard are compared on the seeds both have: each row's
per-example scores are averaged over those seeds first (:func:`compare_rows`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

import numpy as np


@dataclass(frozen=True)
class BootstrapResult:
    diff: float  # 100 * (mean(a) - mean(b)) on the full set
    p_value: float
    ci_low: float
    ci_high: float
    n: int
    n_boot: int
    se: float = float("nan")  # std of the resampled differences (same units as diff)

    def significant(self, alpha: float = 0.05) -> bool:
        return self.p_value < alpha


def paired_bootstrap(a, b, n_boot: int = 2000, seed: int = 0, max_chunk_cells: int = 4_000_000) -> BootstrapResult:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired bootstrap needs two equal-length 1-d score lists, got {a.shape} and {b.shape}")
    n = a.shape[0]
    if n == 0:
        raise ValueError("paired bootstrap needs at least one example")
    d = a - b
    rng = np.random.default_rng(seed)
    chunk = max(1, max_chunk_cells // n)
    means = np.empty(n_boot, dtype=np.float64)
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        idx = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = d[idx].mean(axis=1)
    means *= 100.0
    p = min(1.0, 2.0 * min(float(np.mean(means <= 0)), float(np.mean(means >= 0))))
    lo, hi = np.percentile(means, [2.5, 97.5])
    return BootstrapResult(float(100.0 * d.mean()), p, float(lo), float(hi), n, n_boot,
                           float(means.std(ddof=1)) if n_boot > 1 else 0.0)


def per_example_by_seed(records: Iterable[dict], metric: str) -> dict[int, np.ndarray]:
    """``seed -> per-example scores`` of ``metric`` in the records (of one row and task) that have them."""
    return {r["seed"]: np.asarray(r["per_example"][metric], dtype=float)
            for r in records if metric in r.get("per_example", {})}


@dataclass(frozen=True)
class RowComparison:
    """Row ``a`` against row ``b`` on the seeds both have (scores averaged over them)."""

    result: BootstrapResult
    seeds: tuple[int, ...]


def compare_rows(a: Mapping[int, np.ndarray], b: Mapping[int, np.ndarray], n_boot: int = 2000,
                 seed: int = 0) -> RowComparison | None:
    """Paired bootstrap of two rows' per-example scores (``seed -> scores``,
    :func:`per_example_by_seed`), each averaged over the seeds both rows have;
    None when they share no seed or their test sets differ in length."""
    seeds = sorted(set(a) & set(b))
    if not seeds or any(len(a[k]) != len(b[k]) for k in seeds):
        return None
    res = paired_bootstrap(np.mean([a[k] for k in seeds], axis=0), np.mean([b[k] for k in seeds], axis=0),
                           n_boot=n_boot, seed=seed)
    return RowComparison(res, tuple(seeds))
