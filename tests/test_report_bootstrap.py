"""Paired bootstrap on constructed cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from simla_bench.report.bootstrap import paired_bootstrap


def test_clearly_different_is_significant():
    rng = np.random.default_rng(0)
    u = rng.random(400)
    a = (u < 0.8).astype(float)  # right on 80%, a superset of b's
    b = (u < 0.5).astype(float)
    res = paired_bootstrap(a, b, n_boot=2000, seed=1)
    assert res.significant() and res.p_value < 0.001
    assert res.diff == pytest.approx(100 * (a.mean() - b.mean()))
    assert res.ci_low > 0 and res.ci_low < res.diff < res.ci_high


def test_identical_is_not_significant():
    a = np.array([1, 0, 1, 1, 0, 1, 0, 0, 1, 1], dtype=float)
    res = paired_bootstrap(a, a.copy(), n_boot=500, seed=0)
    assert res.p_value == 1.0 and not res.significant() and res.diff == 0.0


def test_one_example_of_twenty_is_not_significant():
    b = np.zeros(20)
    a = b.copy()
    a[3] = 1.0
    res = paired_bootstrap(a, b, n_boot=4000, seed=0)
    # P(example 3 never drawn) = (19/20)^20 ~ 0.358, so p ~ 2 * 0.358
    assert res.p_value == pytest.approx(2 * (19 / 20) ** 20, abs=0.05)
    assert not res.significant()


def test_single_example_hand_case():
    res = paired_bootstrap([1.0], [0.0], n_boot=100, seed=0)
    assert (res.diff, res.p_value, res.ci_low, res.ci_high) == (100.0, 0.0, 100.0, 100.0)


def test_seeded_and_chunking_does_not_change_the_answer():
    rng = np.random.default_rng(3)
    a, b = rng.random(300), rng.random(300)
    one = paired_bootstrap(a, b, n_boot=1000, seed=7)
    assert one == paired_bootstrap(a, b, n_boot=1000, seed=7)
    chunked = paired_bootstrap(a, b, n_boot=1000, seed=7, max_chunk_cells=300 * 64)
    assert chunked.p_value == pytest.approx(one.p_value) and chunked.ci_low == pytest.approx(one.ci_low)


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="equal-length"):
        paired_bootstrap([1, 0], [1, 0, 1])
