"""The contrastive (ITC) loss math, shared by pretraining objectives and task fine-tuning.

Generic functions, no objective named: the ``itc`` objective
(``plugins/objectives/itc.py``: similarities against momentum features and a
queue) and the retrieval/grounding fine-tuning (``tasks/itc_itm.py``: in-batch
similarities, no queue) build their similarity matrices and call these, so
the loss is written once.

* :data:`TEMP_MIN`, :data:`TEMP_MAX`: the range ALBEF clamps the learnable
  temperature to.  How it is clamped stays the caller's: pretraining clamps the
  parameter in place (once per step, only when out of range), fine-tuning uses
  the functional :func:`clamp_temperature` (gradient zero outside the range).
* :func:`positive_targets`: rows of a boolean positives matrix, normalised.
* :func:`distilled_targets`: ``alpha * softmax(momentum similarities) + (1 - alpha) * targets``.
* :func:`soft_cross_entropy`: ``-sum(targets * log_softmax(logits))`` per row, mean over rows.
* :func:`contrastive_loss`: the mean of the image->text and text->image soft
  cross-entropies.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

TEMP_MIN = 0.001
TEMP_MAX = 0.5


def clamp_temperature(temp: torch.Tensor) -> torch.Tensor:
    """``temp`` clamped to ``[TEMP_MIN, TEMP_MAX]`` (out of place: the parameter is unchanged)."""
    return temp.clamp(TEMP_MIN, TEMP_MAX)


def positive_targets(positives: torch.Tensor) -> torch.Tensor:
    """``positives`` (bool or 0/1, ``[B, M]``) as per-row distributions (a row without a positive stays 0)."""
    pos = positives.float()
    return pos / pos.sum(1, keepdim=True).clamp_min(1.0)


def distilled_targets(targets: torch.Tensor, momentum_sim: torch.Tensor, alpha: float) -> torch.Tensor:
    """ALBEF's momentum distillation: ``alpha * softmax(momentum_sim) + (1 - alpha) * targets``."""
    return alpha * F.softmax(momentum_sim, dim=1) + (1 - alpha) * targets


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over rows of ``-sum(targets * log_softmax(logits))`` (computed in float32)."""
    return -(F.log_softmax(logits.float(), dim=1) * targets).sum(1).mean()


def contrastive_loss(sim_i2t: torch.Tensor, sim_t2i: torch.Tensor, targets_i2t: torch.Tensor,
                     targets_t2i: torch.Tensor) -> torch.Tensor:
    """``(softCE(sim_i2t, targets_i2t) + softCE(sim_t2i, targets_t2i)) / 2``."""
    return (soft_cross_entropy(sim_i2t, targets_i2t) + soft_cross_entropy(sim_t2i, targets_t2i)) / 2
