"""MLM: image-conditioned masked language modelling (XMM's text side), distilled from the momentum model.

BERT masking (15%: 80% [MASK], 10% random, 10% kept; never PAD/CLS/SEP) of
the caption; the masked caption goes through the multimodal pass attending to
the clean image; loss on masked positions ``(1 - alpha) * CE + alpha *
softCE(softmax(momentum logits))`` where the momentum model sees the same
masked caption and its own image embedding (ALBEF/SIMLA).
"""

from __future__ import annotations

from typing import Any, Mapping

import torch

from simla_bench.interfaces import Objective

from simla_bench.plugins.objectives.common import (
    check_distill, check_fraction, distilled_token_loss, special_token_ids, vocab_size_of)
from simla_bench.plugins.objectives.masking import bert_mask


class MLM(Objective):
    """Masked language modelling conditioned on the image."""

    needs = frozenset({"fusion", "mlm_head"})
    defaults = {
        "mask_prob": 0.15,
        #: distil from the momentum model's logits (weight = the trainer's alpha); needs 'momentum'
        "distill": True,
    }

    def __init__(self, name: str = "mlm", options: Mapping[str, Any] | None = None):
        super().__init__(name, options)
        check_fraction(name, self.options, "mask_prob")

    def setup(self, model: Any, data: Any) -> None:
        check_distill(self, model)

    def loss(self, step: Any) -> torch.Tensor:
        model = step.model
        tok = model.tokenizer
        input_ids, att = step.batch["input_ids"], step.batch["attention_mask"]
        masked, labels = bert_mask(input_ids, mask_token_id=tok.mask_token_id, vocab_size=vocab_size_of(model),
                                   special_ids=special_token_ids(tok), probability=self.options["mask_prob"],
                                   attention_mask=att)
        logits = model.mlm_logits(model.fuse(masked, att, step.image_embeds).hidden)
        m_logits = None
        if self.options["distill"] and step.momentum is not None and step.alpha > 0:
            with torch.no_grad():
                mom = step.momentum
                m_logits = mom.mlm_logits(mom.fuse(masked, att, step.m_image_embeds).hidden)
        return distilled_token_loss(logits, labels, m_logits, step.alpha)
