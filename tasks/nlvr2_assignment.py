"""ALBEF's NLVR2 "text assignment" (TA) stage, run before NLVR2 fine-tuning.

ALBEF (and SIMLA after it) pretrain the two-image fusion for one more epoch on
the pretraining pairs before NLVR2: given a caption and two images, say
whether the caption belongs to image 1, image 2 or neither (a 3-way head on
the pooled fused states, discarded afterwards).  It teaches the fusion to keep the two
images apart, which NLVR2's statements ("the left image ...", "both images
...") need.

Triples are built from the source's ``pretrain/train`` pairs: a caption, its
own image and images of other ids, with the three classes drawn uniformly.
:func:`text_assignment` trains the model in place and returns the training
log, or ``None`` (with the reason) when the source has no pretraining pairs.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F

from simla_bench.training import finetune as tune
from simla_bench.tasks.data import ImageBank, load_split, tokenize
from simla_bench.tasks.heads import mlp_head

#: class ids of the 3-way head
IMAGE_1, IMAGE_2, NEITHER = 0, 1, 2


def assignment_triples(image_ids: list[Any], n: int, generator: torch.Generator) -> tuple[list[int], list[int],
                                                                                          list[int], list[int]]:
    """``n`` triples over pairs ``0..len(image_ids)-1``: ``(caption, first, second, label)``
    as pair indices; ``label`` says which of first/second shows the caption's
    image id (or ``NEITHER``).  Other images are drawn among pairs of a
    different image id, so a "neither" never shows the caption's image."""
    count = len(image_ids)
    caption = torch.randint(count, (n,), generator=generator).tolist()
    labels = torch.randint(3, (n,), generator=generator).tolist()
    first, second = [], []
    for c, y in zip(caption, labels):
        others = []
        while len(others) < (2 if y == NEITHER else 1):
            j = int(torch.randint(count, (1,), generator=generator))
            if image_ids[j] != image_ids[c]:
                others.append(j)
        pair = {IMAGE_1: (c, others[0]), IMAGE_2: (others[0], c), NEITHER: (others[0], others[-1])}[y]
        first.append(pair[0])
        second.append(pair[1])
    return caption, first, second, labels


def text_assignment(model, fused_pooled: Callable[..., torch.Tensor], width: int, source, tok, options: dict[str, Any],
                    generator: torch.Generator, device: torch.device, max_len: int, progress=None,
                    log=None) -> tuple[tune.TrainLog | None, str | None]:
    """Run ``options["ta_steps"]`` steps of text assignment with a 3-way head
    on the pooled fused states (``width`` wide); ``(log, None)`` or ``(None, reason)``."""
    steps = int(options["ta_steps"])
    if steps <= 0:
        return None, "ta_steps is 0"
    unavailable: list[str] = []
    pairs = load_split(source, "pretrain", "train", False, unavailable)
    if pairs is None:  # a real NLVR2 source has no pretraining pairs
        return None, f"the dataset has no pretrain/train pairs ({unavailable[0]})"
    if len({r.image_id for r in pairs}) < 3:
        return None, "the pretraining pairs show fewer than 3 images"
    batch = int(options["batch_size"])
    caption, first, second, labels = assignment_triples([r.image_id for r in pairs], steps * batch, generator)
    used = sorted(set(first) | set(second))
    bank = ImageBank([pairs[i].image for i in used], model)
    rows = dict(zip(used, [int(k) for k in bank.index([pairs[i].image for i in used])]))
    head = mlp_head(width, 3).to(device)

    def step_loss(i: int) -> torch.Tensor:
        span = slice(i * batch, (i + 1) * batch)
        ids, mask = tokenize(tok, [pairs[c].caption for c in caption[span]], max_len, device)
        left = bank.tensor[torch.tensor([rows[j] for j in first[span]])].to(device)
        right = bank.tensor[torch.tensor([rows[j] for j in second[span]])].to(device)
        return F.cross_entropy(head(fused_pooled(model, left, right, ids, mask)),
                               torch.tensor(labels[span], device=device))

    return tune.train_steps([model, head], step_loss, steps=steps, lr=options["lr"], min_lr=options["min_lr"],
                          warmup_steps=options["warmup_steps"], weight_decay=options["weight_decay"],
                          grad_clip=options["grad_clip"], lr_mults=[1.0, options["head_lr_mult"]],
                          progress=progress, log=log, label="nlvr2 text assignment"), None
