"""Seeding: the one function that seeds python, numpy and torch.

:func:`seed_everything` seeds the three global RNGs; the runner calls it once
per cell (before building a row's model, before running a task), the trainer
for its own set-up and per-rank streams, the data loader per sample.
:func:`generator` is the separate, seeded ``torch.Generator`` a fine-tuning
loop draws its batches (and hard negatives) from, so that batch order does not
depend on how much of the global stream the model consumed.
"""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed python's ``random``, numpy's global RNG and torch's (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def generator(seed: int) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with ``seed``."""
    gen = torch.Generator()
    gen.manual_seed(seed)
    return gen
