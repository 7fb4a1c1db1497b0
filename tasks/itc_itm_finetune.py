"""ITC + ITM fine-tuning on (image, text) pairs, shared by retrieval and
grounding (ALBEF fine-tunes both the same way: every text of an image is a
positive, momentum distillation of the ITC targets when ``alpha > 0``); a model
with only ITC or only ITM trains that half (:func:`simla_bench.tasks.itc_itm.loss_parts`)."""

from __future__ import annotations

from typing import Any, Sequence

import torch

from simla_bench.errors import DataError
from simla_bench.heads import mark_trained
from simla_bench.interfaces import TaskContext
from simla_bench.training import finetune as tune
from simla_bench.tasks.data import ImageBank, text_max_len, tokenize
from simla_bench.tasks.itc_itm import DistinctImageSampler, itc_itm_loss, loss_parts


def finetune_itc_itm(model: Any, ctx: TaskContext, options: dict, images: Sequence[Any], texts: Sequence[str],
                     image_ids: Sequence[Any], device: Any, gen: torch.Generator, label: str) -> tune.TrainLog:
    """Fine-tune ``model`` in place on the pairs ``(images[i], texts[i])``; its ITM head
    then counts as trained (:func:`simla_bench.heads.mark_trained`)."""
    o = options
    if not texts:
        raise DataError(f"{label}: the train split is empty", hint="fine-tuning needs image-text pairs")
    bank = ImageBank(list(images), model)
    rows = bank.index(list(images))
    uid = {u: i for i, u in enumerate(dict.fromkeys(image_ids))}
    idx_all = torch.tensor([uid[u] for u in image_ids])
    sampler = DistinctImageSampler(list(image_ids), gen)
    tok = ctx.tokenizer or model.tokenizer
    max_len = text_max_len(model, o)
    steps = tune.steps_for(len(texts), o["batch_size"], o["epochs"], o["max_steps"])
    use_m = o["alpha"] > 0 and "momentum" in getattr(model, "capabilities", ())
    momentum = model.momentum_model() if use_m else None

    def step_loss(i: int) -> torch.Tensor:
        pick = sampler.draw(o["batch_size"])
        ids, mask = tokenize(tok, [texts[j] for j in pick.tolist()], max_len, device)
        loss, _ = itc_itm_loss(model, bank.tensor[rows[pick]].to(device), ids, mask, idx_all[pick],
                               alpha=o["alpha"], momentum=momentum, generator=gen)
        return loss

    after = (lambda i: model.update_momentum(o["momentum"])) if use_m else None
    log = tune.train_steps([model], step_loss, steps=steps, lr=o["lr"], min_lr=o["min_lr"],
                         warmup_steps=o["warmup_steps"], weight_decay=o["weight_decay"],
                         grad_clip=o["grad_clip"], after_step=after, progress=ctx.progress, log=ctx.log,
                         label=f"{label} fine-tune")
    if log.steps > 0 and loss_parts(model)[1]:  # the ITM loss trained this copy's ITM head
        mark_trained(model, {"itm_head"})
    return log
