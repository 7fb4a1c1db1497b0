"""XMM: SIMLA's symmetric cross-modality reconstruction = image-conditioned MLM + text-conditioned MIM.

``loss = text_weight * MLM + image_weight * MIM`` (both 1 in SIMLA).  The
options are the union of :class:`MLM`'s and :class:`MIM`'s (``distill``
applies to both).  ``last_parts`` holds the two terms of the latest step for
logging.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch

from simla_bench.interfaces import Objective

from simla_bench.plugins.objectives.mim import MIM
from simla_bench.plugins.objectives.mlm import MLM


class XMM(Objective):
    """Symmetric cross-modality reconstruction (masked text and masked image)."""

    needs = MLM.needs | MIM.needs
    defaults = {**MLM.defaults, **MIM.defaults, "text_weight": 1.0, "image_weight": 1.0}

    def __init__(self, name: str = "xmm", options: Mapping[str, Any] | None = None):
        super().__init__(name, options)
        opts = self.options
        self.text = MLM(name, {k: opts[k] for k in MLM.defaults})
        self.image = MIM(name, {k: opts[k] for k in MIM.defaults})
        self.last_parts: dict[str, float] = {}

    def setup(self, model: Any, data: Any) -> None:
        self.text.setup(model, data)
        self.image.setup(model, data)

    def loss(self, step: Any) -> torch.Tensor:
        text = self.text.loss(step)
        image = self.image.loss(step)
        self.last_parts = {"text": float(text.detach()), "image": float(image.detach())}
        return self.options["text_weight"] * text + self.options["image_weight"] * image

    def state_dict(self) -> dict[str, Any]:
        return self.image.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.image.load_state_dict(state)
