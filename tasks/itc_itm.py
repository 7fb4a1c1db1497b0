"""The ITC + ITM fine-tuning loss that retrieval and grounding use
(ALBEF's ``model_retrieval``): every text of the same image is a positive.

* ITC: in-batch image->text and text->image soft cross-entropy with the
  model's learnable temperature (clamped to [0.001, 0.5], out of place); the
  loss math is the one the ``itc`` objective uses,
  :mod:`simla_bench.training.contrastive` (tasks reach the core, never
  ``plugins/``); targets spread
  over all same-image pairs; with ``alpha > 0`` and a momentum model they are
  mixed with the momentum model's softmax similarities (distillation).
  Unlike pretraining there is no feature queue (ALBEF keeps one of 65,536;
  on the world's small splits a queue would be mostly stale duplicates).
* ITM: the positive pairs plus, per text, one hard-negative image and, per
  image, one hard-negative text, sampled from the in-batch softmax
  similarities with same-image entries zeroed; cross-entropy on the ITM head.
* A model with only one of the two (its ``capabilities``, :func:`loss_parts`)
  gets that half alone: a dual encoder (CLIP, SigLIP) ITC, a single stream
  without separate encoders (ViLT) ITM with negatives drawn uniformly from the
  batch's other images.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from simla_bench.training.contrastive import clamp_temperature, contrastive_loss, distilled_targets, positive_targets


def _sample(weights: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One index per row drawn from ``weights`` (rows that are all zero,
    possible only when a whole batch is one image, fall back to uniform)."""
    weights = weights.float().cpu()
    if not torch.isfinite(weights).all():  # torch.multinomial would fail with a bare RuntimeError
        from simla_bench.training.errors import NonFiniteValuesError

        raise NonFiniteValuesError("ITC similarity weights for the ITM hard negatives of task fine-tuning")
    empty = weights.sum(dim=1) <= 0
    if empty.any():
        weights[empty] = 1.0
    return torch.multinomial(weights, 1, generator=generator).squeeze(1)


#: what the two halves of the loss need of the model (a model with only one gets only that half)
ITC_CAPABILITIES = frozenset({"image_feat", "text_feat"})
ITM_CAPABILITIES = frozenset({"fusion", "itm_head"})


def loss_parts(model) -> tuple[bool, bool]:
    """``(itc, itm)``: which halves of the loss ``model``'s capabilities allow (a dual
    encoder: ITC only; a single stream without separate encoders: ITM only)."""
    caps = frozenset(getattr(model, "capabilities", ()))
    return ITC_CAPABILITIES <= caps, ITM_CAPABILITIES <= caps


def itc_itm_loss(model, images: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                 idx: torch.Tensor, *, alpha: float = 0.0, momentum=None,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """Return ``(loss_itc + loss_itm, parts)`` for one batch.  ``idx[b]`` is
    the image id of pair ``b`` (pairs sharing it are positives).  A model without
    ITC (:func:`loss_parts`) gets ITM alone, its negatives drawn uniformly from the
    other images' pairs; a model without ITM gets ITC alone."""
    use_itc, use_itm = loss_parts(model)
    image_embeds = model.encode_image(images)
    idx = idx.to(images.device).view(-1, 1)
    same = idx == idx.t()
    losses: dict[str, torch.Tensor] = {}
    text_embeds = sim_i2t = sim_t2i = None
    if use_itc:
        text_embeds = model.encode_text(input_ids, attention_mask)
        image_feat = model.image_feat(image_embeds)
        text_feat = model.text_feat(text_embeds, attention_mask)
        temp = clamp_temperature(model.temp)
        sim_i2t = image_feat @ text_feat.t() / temp
        sim_t2i = text_feat @ image_feat.t() / temp
        targets = positive_targets(same)
        t_i2t, t_t2i = targets, targets
        if alpha > 0 and momentum is not None:
            with torch.no_grad():
                m_img = momentum.image_feat(momentum.encode_image(images))
                m_txt = momentum.text_feat(momentum.encode_text(input_ids, attention_mask), attention_mask)
                m_sim = m_img @ m_txt.t() / temp
                t_i2t = distilled_targets(targets, m_sim, alpha)
                t_t2i = distilled_targets(targets, m_sim.t(), alpha)
        losses["itc"] = contrastive_loss(sim_i2t, sim_t2i, t_i2t, t_t2i)
    if use_itm:
        losses["itm"] = _itm_loss(model, image_embeds, text_embeds, input_ids, attention_mask, same,
                                  sim_i2t, sim_t2i, generator)
    return sum(losses.values()), {name: float(value.detach()) for name, value in losses.items()}


def _itm_loss(model, image_embeds, text_embeds, input_ids, attention_mask, same, sim_i2t, sim_t2i,
              generator) -> torch.Tensor:
    """ITM cross-entropy on the positives, one negative image per text and one negative
    text per image: hard ones drawn from the ITC similarities when there are any, else uniform."""
    bs = image_embeds.shape[0]
    device = image_embeds.device
    out_pos = model.fuse(input_ids, attention_mask, image_embeds, text_embeds=text_embeds)
    with torch.no_grad():
        if sim_i2t is not None:
            w_i2t = F.softmax(sim_i2t.float(), dim=1).masked_fill(same, 0)
            w_t2i = F.softmax(sim_t2i.float(), dim=1).masked_fill(same, 0)
        else:
            w_i2t = w_t2i = (~same).float()
    neg_img = _sample(w_t2i, generator).to(device)   # a negative image per text
    neg_txt = _sample(w_i2t, generator).to(device)   # a negative text per image
    ids_all = torch.cat([input_ids, input_ids[neg_txt]])
    mask_all = torch.cat([attention_mask, attention_mask[neg_txt]])
    txt_emb_all = None if text_embeds is None else torch.cat([text_embeds, text_embeds[neg_txt]])
    img_all = torch.cat([image_embeds[neg_img], image_embeds])
    out_neg = model.fuse(ids_all, mask_all, img_all, text_embeds=txt_emb_all)
    logits = model.itm_logits(torch.cat([out_pos.pooled, out_neg.pooled]))
    labels = torch.cat([torch.ones(bs, dtype=torch.long), torch.zeros(2 * bs, dtype=torch.long)]).to(logits.device)
    return F.cross_entropy(logits, labels)


class DistinctImageSampler:
    """Draws batches of pairs with distinct image ids: ``batch_size`` images
    at random, then one random pair (e.g. caption) of each."""

    def __init__(self, image_ids: list, generator: torch.Generator):
        groups: dict = {}
        for row, image_id in enumerate(image_ids):
            groups.setdefault(image_id, []).append(row)
        self.groups = [torch.tensor(rows) for rows in groups.values()]
        self.generator = generator

    def __len__(self) -> int:
        return len(self.groups)

    def draw(self, batch_size: int) -> torch.Tensor:
        chosen = torch.randperm(len(self.groups), generator=self.generator)[:batch_size].tolist()
        return torch.stack([
            self.groups[g][torch.randint(len(self.groups[g]), (1,), generator=self.generator)[0]] for g in chosen
        ])
