"""ITM: image-text matching on the pooled fused states with in-batch hard negatives (ALBEF/SIMLA).

For each text one negative image and for each image one negative text are
drawn (``torch.multinomial``) from the softmax of the in-batch ITC
similarities, with every pair that shares the image id (the positive, and
duplicates of the same image) excluded.  Option ``negatives: random`` draws
them uniformly among the same allowed pairs instead (UNITER's random
negatives; from scratch they teach the fusion to ground words sooner:
docs/objectives.md, "ITM negatives"); B positives + 2B negatives go through
the multimodal pass and the ITM head; cross-entropy, no distillation.
Negatives are drawn from this rank's batch (their fused pass needs the local
embeddings), as in ALBEF.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn.functional as F

from simla_bench.interfaces import Objective
from simla_bench.training.errors import NonFiniteValuesError

from simla_bench.plugins.objectives.common import batch_ids, check_choice
from simla_bench.plugins.objectives.itc import clamp_temperature


@torch.no_grad()
def sample_hard_negatives(sim: torch.Tensor, same: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For each row of ``sim`` ``[B, B]`` draw one column with probability
    ``softmax(sim)`` restricted to columns where ``same`` is False.

    Returns ``(index [B], valid bool[B])``; a row with no allowed column (all
    of the batch shows the same image) is invalid and its index is 0.  NaN or
    infinite similarities (a diverged model) raise :class:`NonFiniteValuesError`,
    which the trainer reports with the objective and the step.
    """
    if not bool(torch.isfinite(sim.float()[~same]).all()):
        raise NonFiniteValuesError("hard-negative similarity weights (NaN/inf ITC similarities: "
                                   "the image or text features are not finite)")
    logits = sim.float().masked_fill(same, float("-inf"))
    valid = (~same).any(dim=1)
    index = torch.zeros(sim.shape[0], dtype=torch.long, device=sim.device)
    if valid.any():
        weights = F.softmax(logits[valid], dim=1)
        index[valid] = torch.multinomial(weights, 1).squeeze(1)
    return index, valid


class ITM(Objective):
    """Image-text matching with hard negatives mined from ITC similarities (or random ones)."""

    needs = frozenset({"text", "fusion", "itm_head"})
    trains = frozenset({"itm_head"})
    defaults: Mapping[str, Any] = {
        #: hard: drawn from the softmax of the ITC similarities (ALBEF, SIMLA); random: uniform (UNITER)
        "negatives": "hard",
    }

    def __init__(self, name: str = "itm", options: Mapping[str, Any] | None = None):
        super().__init__(name, options)
        check_choice(name, self.options, "negatives", ("hard", "random"))

    def loss(self, step: Any) -> torch.Tensor:
        model = step.model
        input_ids, att = step.batch["input_ids"], step.batch["attention_mask"]
        image_embeds, text_embeds = step.image_embeds, step.text_embeds
        temp = clamp_temperature(model, step)
        bsz = input_ids.shape[0]
        with torch.no_grad():
            if self.options["negatives"] == "hard":
                sim_i2t = step.image_feat @ step.text_feat.T / temp
            else:  # equal weights: a uniform draw among the allowed pairs
                sim_i2t = torch.zeros(bsz, bsz, device=input_ids.device)
            ids = batch_ids(step, input_ids.device)
            same = ids[:, None] == ids[None, :]
            neg_image, ok_t = sample_hard_negatives(sim_i2t.T, same)  # a negative image for each text
            neg_text, ok_i = sample_hard_negatives(sim_i2t, same)  # a negative text for each image
        pos = model.fuse(input_ids, att, image_embeds, text_embeds=text_embeds).pooled
        # negatives: (text b, hard image) for valid b, then (hard text, image b) for valid b
        t_ids = torch.cat([input_ids[ok_t], input_ids[neg_text[ok_i]]])
        t_att = torch.cat([att[ok_t], att[neg_text[ok_i]]])
        t_emb = torch.cat([text_embeds[ok_t], text_embeds[neg_text[ok_i]]])
        i_emb = torch.cat([image_embeds[neg_image[ok_t]], image_embeds[ok_i]])
        pooled = [pos]
        if len(t_ids):
            pooled.append(model.fuse(t_ids, t_att, i_emb, text_embeds=t_emb).pooled)
        logits = model.itm_logits(torch.cat(pooled))  # pooled fused states ([CLS] or token mean)
        labels = torch.cat([torch.ones(bsz, dtype=torch.long), torch.zeros(len(t_ids), dtype=torch.long)])
        return F.cross_entropy(logits.float(), labels.to(logits.device))
