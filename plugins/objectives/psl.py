"""PSL: pseudo-keyword supervision of the visual encoder (SIMLA).

Without gradient: the momentum model runs the multimodal pass on the clean
caption; the last layer's CLS self-attention rows vote for keyword positions
(top ``per_head`` per head, keep the ``keep`` most voted); their token ids
form a multi-hot hard target over the keyword vocabulary (special tokens
zeroed).  Soft target ("keywords the image shows but the caption misses") =
sigmoid of the momentum concept head on the momentum image feature.
Prediction = the online concept head on the online image feature, so only the
visual encoder, the image projection and the concept head get gradient.
Loss = ``(1 - alpha) * BCE(pred, hard) + alpha * BCE(pred, soft)``.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn.functional as F

from simla_bench.errors import ConfigError
from simla_bench.interfaces import Objective

from simla_bench.plugins.objectives.common import (
    check_choice, cls_self_attention, concept_logits, special_token_ids, vocab_size_of)
from simla_bench.plugins.objectives.keywords import hard_targets, keyword_vocabulary, select_keyword_positions


class PSL(Objective):
    """Pseudo-labelled keyword prediction from the image alone."""

    needs = frozenset({"fusion", "concept_head", "momentum"})
    defaults = {
        "per_head": 4,
        "keep": 5,
        #: keyword vocabulary: 0 = the whole text vocabulary (SIMLA); K > 0 = the K most frequent caption tokens
        "top_k_keywords": 0,
        #: image the momentum multimodal pass attends to: "momentum" (EMA image encoder) or
        #: "online" (the online image embedding, detached, as SIMLA's released code does)
        "keyword_image": "momentum",
    }

    def __init__(self, name: str = "psl", options: Mapping[str, Any] | None = None):
        super().__init__(name, options)
        check_choice(name, self.options, "keyword_image", ("momentum", "online"))
        if self.options["per_head"] < 1 or self.options["keep"] < 1:
            raise ConfigError(f"objective '{name}': per_head and keep must be >= 1")
        self.keyword_ids: torch.Tensor | None = None

    def setup(self, model: Any, data: Any) -> None:
        tok = model.tokenizer
        captions = None
        if self.options["top_k_keywords"] > 0:
            texts = [r.caption for r in (data or [])]
            if not texts:
                raise ConfigError(f"objective '{self.name}': top_k_keywords needs pretraining captions",
                                  hint="set top_k_keywords: 0 to use the whole text vocabulary")
            max_len = int(getattr(model, "max_text_len", None) or getattr(getattr(model, "cfg", None), "max_text_len", 25))
            captions = tok(texts, truncation=True, max_length=max_len)["input_ids"]
        self.keyword_ids = keyword_vocabulary(vocab_size_of(model), special_token_ids(tok),
                                              self.options["top_k_keywords"], captions)

    def loss(self, step: Any) -> torch.Tensor:
        model, mom = step.model, step.momentum
        if self.keyword_ids is None:
            self.setup(model, None)
        tok = model.tokenizer
        input_ids, att = step.batch["input_ids"], step.batch["attention_mask"]
        kw = self.keyword_ids.to(input_ids.device)
        with torch.no_grad():
            image = step.m_image_embeds if self.options["keyword_image"] == "momentum" else step.image_embeds.detach()
            cls_att = cls_self_attention(mom, input_ids, att, image)
            positions, valid = select_keyword_positions(cls_att, att, self.options["per_head"], self.options["keep"])
            hard = hard_targets(input_ids, positions, valid, kw, vocab_size_of(model), special_token_ids(tok))
            soft = torch.sigmoid(concept_logits(mom, step.m_image_feat).float()[:, kw])
        pred = concept_logits(model, step.image_feat).float()[:, kw]
        loss_hard = F.binary_cross_entropy_with_logits(pred, hard)
        if step.alpha <= 0:
            return loss_hard
        loss_soft = F.binary_cross_entropy_with_logits(pred, soft)
        return (1.0 - step.alpha) * loss_hard + step.alpha * loss_soft

    def state_dict(self) -> dict[str, Any]:
        return {"keyword_ids": self.keyword_ids.clone()} if self.keyword_ids is not None else {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if "keyword_ids" in state:
            self.keyword_ids = state["keyword_ids"].clone()
