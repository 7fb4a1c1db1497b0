"""Chance level of the retrieval metric for a split, shared by the tests that
check a trained model retrieves above it."""

from __future__ import annotations

import numpy as np


def chance_r_mean(split, draws: int) -> float:
    """Mean ``r_mean`` of the official ``itm_eval`` over ``draws`` random score
    matrices (seeded) for ``split``'s images, texts and their links."""
    from simla_bench.tasks.metrics.retrieval import itm_eval

    rng = np.random.default_rng(0)
    vals = []
    for _ in range(draws):
        s = rng.standard_normal((len(split.images), len(split.texts)))
        vals.append(itm_eval(s, s.T.copy(), split.txt2img, split.img2txt)["r_mean"])
    return float(np.mean(vals))
