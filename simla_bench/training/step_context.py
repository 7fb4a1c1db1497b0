"""The per-step context every objective receives (``Objective.loss(step)``).

Shared encodings are memoised: each is computed at most once per step and only
when an objective first reads it, so objectives that share the unimodal
forward pass never recompute it.  Momentum (EMA) encodings run under
``torch.no_grad``.  :meth:`StepContext.gather` is the single distributed hook:
an all-gather across ranks (identity on one process) through which the
contrastive objectives see the global batch.
"""

from __future__ import annotations

from typing import Any, Callable

import torch


class StepContext:
    """What one (micro-)step of pretraining knows.

    Attributes: ``batch`` (dict: images, input_ids, attention_mask, captions,
    image_ids, indices), ``model``, ``momentum`` (the EMA model or None),
    ``alpha`` (ramped distillation weight), ``step`` (optimizer step, 0-based),
    ``micro_step``, ``tokenizer``, ``rank``, ``world_size``.
    """

    def __init__(self, *, batch: dict[str, Any], model: Any, momentum: Any, alpha: float, step: int,
                 micro_step: int = 0, gather: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 rank: int = 0, world_size: int = 1):
        self.batch = batch
        self.model = model
        self.momentum = momentum
        self.alpha = float(alpha)
        self.step = int(step)
        self.micro_step = int(micro_step)
        self.tokenizer = getattr(model, "tokenizer", None)
        self.rank = rank
        self.world_size = world_size
        self._gather = gather
        self._memo: dict[str, Any] = {}
        #: how many times each shared encoding was computed (tests check 1)
        self.computed: dict[str, int] = {}

    # -- distributed hook -------------------------------------------------
    def gather(self, tensor: torch.Tensor) -> torch.Tensor:
        """Concatenate ``tensor`` (dim 0) over all ranks, in rank order.

        Gradients flow back to this rank's slice (and, through the backward
        all-reduce, from every rank's loss).  Identity on one process.
        """
        if self._gather is None or self.world_size == 1:
            return tensor
        return self._gather(tensor)

    # -- memoisation ------------------------------------------------------
    def _get(self, key: str, fn: Callable[[], Any], no_grad: bool = False) -> Any:
        if key not in self._memo:
            if no_grad:
                with torch.no_grad():
                    value = fn()
            else:
                value = fn()
            self._memo[key] = value
            self.computed[key] = self.computed.get(key, 0) + 1
        return self._memo[key]

    def _need_momentum(self) -> Any:
        if self.momentum is None:
            raise AttributeError("this model has no momentum (EMA) copy; the objective needs capability 'momentum'")
        return self.momentum

    @property
    def images(self) -> torch.Tensor:
        return self.batch["images"]

    @property
    def input_ids(self) -> torch.Tensor:
        return self.batch["input_ids"]

    @property
    def attention_mask(self) -> torch.Tensor:
        return self.batch["attention_mask"]

    @property
    def image_embeds(self) -> torch.Tensor:
        return self._get("image_embeds", lambda: self.model.encode_image(self.images))

    @property
    def text_embeds(self) -> torch.Tensor:
        return self._get("text_embeds", lambda: self.model.encode_text(self.input_ids, self.attention_mask))

    @property
    def image_feat(self) -> torch.Tensor:
        return self._get("image_feat", lambda: self.model.image_feat(self.image_embeds))

    @property
    def text_feat(self) -> torch.Tensor:
        return self._get("text_feat", lambda: self.model.text_feat(self.text_embeds, self.attention_mask))

    @property
    def m_image_embeds(self) -> torch.Tensor:
        return self._get("m_image_embeds", lambda: self._need_momentum().encode_image(self.images), no_grad=True)

    @property
    def m_text_embeds(self) -> torch.Tensor:
        return self._get("m_text_embeds",
                         lambda: self._need_momentum().encode_text(self.input_ids, self.attention_mask), no_grad=True)

    @property
    def m_image_feat(self) -> torch.Tensor:
        return self._get("m_image_feat", lambda: self._need_momentum().image_feat(self.m_image_embeds), no_grad=True)

    @property
    def m_text_feat(self) -> torch.Tensor:
        return self._get("m_text_feat", lambda: self._need_momentum().text_feat(self.m_text_embeds, self.attention_mask), no_grad=True)

    def memo(self, key: str, fn: Callable[[], Any], no_grad: bool = False) -> Any:
        """Memoise any other shared computation under ``key`` for this step."""
        return self._get(key, fn, no_grad=no_grad)
