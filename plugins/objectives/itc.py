"""ITC: image-text contrastive loss with momentum feature queues and momentum distillation (ALBEF/SIMLA).

Similarities are taken between the online features of this rank's batch and
all momentum features (the global batch through ``step.gather``, then the
queues).  Targets: ``alpha * softmax(momentum similarities) + (1 - alpha) *
positives``, where positives are the entries with the same image id (the
diagonal when every image differs), normalised per row.  Loss = mean of the
image->text and text->image soft cross-entropies.  After the loss, the
gathered momentum features (and their image ids) are enqueued.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn.functional as F

from simla_bench.interfaces import Objective
from simla_bench.training.contrastive import (TEMP_MAX, TEMP_MIN, contrastive_loss, distilled_targets,
                                              positive_targets)

from simla_bench.plugins.objectives.common import batch_ids


class FeatureQueue:
    """Ring buffers of momentum image/text features and their image ids."""

    def __init__(self, size: int, dim: int, device: torch.device | str = "cpu"):
        self.size = int(size)
        self.dim = int(dim)
        # ALBEF initialises the queues with random unit vectors (ids -1 never match a real id).
        self.image = F.normalize(torch.randn(self.size, self.dim), dim=-1).to(device)
        self.text = F.normalize(torch.randn(self.size, self.dim), dim=-1).to(device)
        self.ids = torch.full((self.size,), -1, dtype=torch.long, device=device)
        self.ptr = 0

    def to(self, device: torch.device | str) -> "FeatureQueue":
        self.image, self.text, self.ids = self.image.to(device), self.text.to(device), self.ids.to(device)
        return self

    @torch.no_grad()
    def enqueue(self, image: torch.Tensor, text: torch.Tensor, ids: torch.Tensor) -> None:
        n = image.shape[0]
        if self.size == 0:
            return
        if n >= self.size:
            image, text, ids, n = image[-self.size:], text[-self.size:], ids[-self.size:], self.size
        index = (self.ptr + torch.arange(n, device=self.image.device)) % self.size
        self.image[index] = image.detach().to(self.image.dtype)
        self.text[index] = text.detach().to(self.text.dtype)
        self.ids[index] = ids.to(self.ids.device)
        self.ptr = int((self.ptr + n) % self.size)

    def state_dict(self) -> dict[str, Any]:
        return {"image": self.image.cpu().clone(), "text": self.text.cpu().clone(),
                "ids": self.ids.cpu().clone(), "ptr": self.ptr}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.image, self.text, self.ids = state["image"].clone(), state["text"].clone(), state["ids"].clone()
        self.size, self.dim = self.image.shape
        self.ptr = int(state["ptr"])


def clamp_temperature(model: Any, step: Any = None) -> torch.Tensor:
    """The learnable temperature, clamped to [0.001, 0.5] as ALBEF does.

    The in-place clamp runs once per step (memoised on ``step``) and only when
    the value is out of range: clamping again after another objective already
    used the temperature would invalidate that objective's autograd graph.
    """
    memo = getattr(step, "memo", None)
    if callable(memo):
        return memo("temperature", lambda: _clamp(model))
    return _clamp(model)


def _clamp(model: Any) -> torch.Tensor:
    temp = model.temp
    if not TEMP_MIN <= float(temp.detach()) <= TEMP_MAX:
        if callable(getattr(model, "temperature", None)):
            return model.temperature()
        with torch.no_grad():
            temp.clamp_(TEMP_MIN, TEMP_MAX)
    return temp


def itc_loss(image_feat: torch.Tensor, text_feat: torch.Tensor, image_keys: torch.Tensor, text_keys: torch.Tensor,
             m_image_feat: torch.Tensor | None, m_text_feat: torch.Tensor | None, positives: torch.Tensor,
             temp: torch.Tensor | float, alpha: float) -> torch.Tensor:
    """The distilled contrastive loss (the math is the core's
    :mod:`simla_bench.training.contrastive`, which task fine-tuning calls too).

    ``image_keys``/``text_keys`` ``[M, E]``: every momentum feature compared
    against (global batch then queue); ``positives`` ``bool[B, M]``.
    """
    sim_i2t = image_feat @ text_keys.T / temp
    sim_t2i = text_feat @ image_keys.T / temp
    with torch.no_grad():
        hard = positive_targets(positives)
        if alpha > 0.0 and m_image_feat is not None and m_text_feat is not None:
            tgt_i2t = distilled_targets(hard, m_image_feat @ text_keys.T / temp, alpha)
            tgt_t2i = distilled_targets(hard, m_text_feat @ image_keys.T / temp, alpha)
        else:
            tgt_i2t = tgt_t2i = hard
    return contrastive_loss(sim_i2t, sim_t2i, tgt_i2t, tgt_t2i)


class ITC(Objective):
    """Image-text contrastive loss with momentum queue and distillation."""

    needs = frozenset({"text", "momentum"})
    defaults = {
        #: queue length per modality; null = the model's ``queue_size`` (config model.options.queue_size)
        "queue_size": None,
        #: momentum distillation (soft targets weighted by the trainer's alpha)
        "distill": True,
        #: treat every entry with the same image id as a positive (else only the diagonal)
        "id_positives": True,
    }

    def __init__(self, name: str = "itc", options: Mapping[str, Any] | None = None):
        super().__init__(name, options)
        self.queue: FeatureQueue | None = None
        self._pending_state: Mapping[str, Any] | None = None

    def _queue_size(self, model: Any) -> int:
        size = self.options["queue_size"]
        if size is None:
            size = getattr(model, "queue_size", None)
            if size is None:
                size = getattr(getattr(model, "cfg", None), "queue_size", 4096)
        return int(size)

    def setup(self, model: Any, data: Any) -> None:
        dim = getattr(model, "embed_dim", None)
        if dim is not None:
            self.queue = FeatureQueue(self._queue_size(model), int(dim))

    def loss(self, step: Any) -> torch.Tensor:
        model = step.model
        temp = clamp_temperature(model, step)
        image_feat, text_feat = step.image_feat, step.text_feat
        m_image, m_text = step.m_image_feat, step.m_text_feat
        device = image_feat.device
        if self.queue is None or self.queue.dim != image_feat.shape[1]:
            self.queue = FeatureQueue(self._queue_size(model), image_feat.shape[1])
            if self._pending_state is not None:
                self.queue.load_state_dict(self._pending_state)
                self._pending_state = None
        self.queue.to(device)
        if self.options["id_positives"]:
            ids = batch_ids(step, device)
        else:  # only the diagonal: this rank's slice of the global batch
            n = image_feat.shape[0]
            ids = torch.arange(n, device=device) + getattr(step, "rank", 0) * n
        g_image, g_text, g_ids = step.gather(m_image), step.gather(m_text), step.gather(ids)
        queue_ids = self.queue.ids if self.options["id_positives"] else torch.full_like(self.queue.ids, -1)
        image_keys = torch.cat([g_image, self.queue.image])
        text_keys = torch.cat([g_text, self.queue.text])
        key_ids = torch.cat([g_ids, queue_ids])
        positives = ids[:, None] == key_ids[None, :]
        loss = itc_loss(image_feat, text_feat, image_keys, text_keys,
                        m_image if self.options["distill"] else None, m_text, positives, temp, step.alpha)
        self.queue.enqueue(g_image, g_text, g_ids)
        return loss

    def state_dict(self) -> dict[str, Any]:
        return {"queue": self.queue.state_dict()} if self.queue is not None else {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if "queue" not in state:
            return
        if self.queue is None:
            self._pending_state = state["queue"]
        else:
            self.queue.load_state_dict(state["queue"])
