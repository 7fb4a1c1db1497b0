"""Masking for the reconstruction objectives: BERT token masking and BEiT block-wise patch masking.

* :func:`bert_mask` — BERT's recipe: each eligible token is selected with
  probability ``p`` (default 0.15); of the selected, 80% become ``[MASK]``, 10%
  a random token, 10% stay unchanged.  PAD, CLS and SEP (and any id in
  ``special_ids``) are never selected.  Labels are ``-100`` where not selected.
* :class:`BlockMaskGenerator` — BEiT's block-wise masking of a patch grid:
  rectangles of at least ``min_block`` patches with aspect ratio in
  ``[min_aspect, 1/min_aspect]`` are added until ``ratio`` of the grid is masked.

All randomness comes from the global torch RNG (directly, or through a
``random.Random`` seeded from it), so the trainer's RNG checkpoint covers it.
"""

from __future__ import annotations

import math
import random
from typing import Iterable

import torch

IGNORE_INDEX = -100


def bert_mask(
    input_ids: torch.Tensor,
    *,
    mask_token_id: int,
    vocab_size: int,
    special_ids: Iterable[int],
    probability: float = 0.15,
    attention_mask: torch.Tensor | None = None,
    ensure_one: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(masked_input_ids, labels)`` for masked language modelling.

    ``ensure_one``: if no token of the whole batch was selected (possible for
    tiny batches), select one eligible token at random so the loss is defined.
    """
    ids = input_ids.clone()
    device = ids.device
    eligible = torch.ones_like(ids, dtype=torch.bool)
    for sid in set(int(s) for s in special_ids if s is not None):
        eligible &= ids != sid
    if attention_mask is not None:
        eligible &= attention_mask.bool()
    prob = torch.full(ids.shape, float(probability))
    selected = torch.bernoulli(prob).bool().to(device) & eligible
    if ensure_one and not selected.any() and eligible.any():
        flat = eligible.flatten().nonzero().squeeze(1)
        pick = flat[torch.randint(len(flat), (1,)).item()]
        selected.view(-1)[pick] = True
    labels = torch.where(selected, ids, torch.full_like(ids, IGNORE_INDEX))
    replaced = torch.bernoulli(torch.full(ids.shape, 0.8)).bool().to(device) & selected
    ids[replaced] = mask_token_id
    randomised = torch.bernoulli(torch.full(ids.shape, 0.5)).bool().to(device) & selected & ~replaced
    random_words = torch.randint(vocab_size, ids.shape, dtype=ids.dtype).to(device)
    ids[randomised] = random_words[randomised]
    return ids, labels


def default_min_block(num_patches: int) -> int:
    """BEiT/SIMLA use blocks of >= 16 patches on a 16x16 (SIMLA, 256px) grid;
    keep that 1/16 of the grid on smaller grids, but at least 2 patches
    (8x8 -> 4, 4x4 -> 2)."""
    return max(2, round(16 * num_patches / 256))


class BlockMaskGenerator:
    """BEiT block-wise masking of an ``height x width`` patch grid."""

    def __init__(
        self,
        height: int,
        width: int,
        ratio: float = 0.29,
        min_block: int | None = None,
        min_aspect: float = 0.3,
        max_aspect: float | None = None,
    ):
        if height < 2 or width < 2:
            raise ValueError(f"block masking needs a patch grid of at least 2x2, got {height}x{width}")
        if not 0.0 < ratio < 1.0:
            raise ValueError(f"mask ratio must be in (0, 1), got {ratio}")
        self.height, self.width = height, width
        self.num_patches = height * width
        self.num_masking = max(1, int(round(ratio * self.num_patches)))
        self.min_block = default_min_block(self.num_patches) if min_block is None else int(min_block)
        self.min_block = max(1, min(self.min_block, self.num_masking))
        max_aspect = max_aspect or 1.0 / min_aspect
        self.min_aspect, self.max_aspect = min_aspect, max_aspect
        self.log_aspect = (math.log(min_aspect), math.log(max_aspect))

    def __repr__(self) -> str:
        return (f"BlockMaskGenerator({self.height}x{self.width}, target={self.num_masking}, "
                f"min_block={self.min_block}, aspect={self.min_aspect:.2f}-{self.max_aspect:.2f})")

    def sample_block(self, budget: int, rng: random.Random) -> tuple[int, int, int, int] | None:
        """One candidate rectangle ``(top, left, h, w)`` of area in ``[min_block, budget]``
        (up to rounding) and aspect ratio ``h/w`` in ``[min_aspect, max_aspect]``; None if
        the drawn shape does not fit the grid or breaks those constraints."""
        area = rng.uniform(self.min_block, max(self.min_block, budget))
        aspect = math.exp(rng.uniform(*self.log_aspect))
        h = int(round(math.sqrt(area * aspect)))
        w = int(round(math.sqrt(area / aspect)))
        # BEiT only requires h < H and w < W; rounding can then leave a block below the
        # minimum area or outside the aspect range, which we reject (small grids make it common).
        if not (1 <= h < self.height and 1 <= w < self.width):
            return None
        if h * w < self.min_block or not (self.min_aspect - 1e-9 <= h / w <= self.max_aspect + 1e-9):
            return None
        return rng.randint(0, self.height - h), rng.randint(0, self.width - w), h, w

    def _add_block(self, mask: list[list[bool]], budget: int, rng: random.Random) -> int:
        delta = 0
        for _ in range(10):
            block = self.sample_block(budget, rng)
            if block is not None:
                top, left, h, w = block
                already = sum(mask[i][j] for i in range(top, top + h) for j in range(left, left + w))
                if 0 < h * w - already <= budget:
                    for i in range(top, top + h):
                        for j in range(left, left + w):
                            if not mask[i][j]:
                                mask[i][j] = True
                                delta += 1
            if delta > 0:
                break
        return delta

    def sample(self, rng: random.Random) -> torch.Tensor:
        """One mask, ``bool[height, width]``."""
        mask = [[False] * self.width for _ in range(self.height)]
        count = 0
        while count < self.num_masking:
            delta = self._add_block(mask, self.num_masking - count, rng)
            if delta == 0:
                break
            count += delta
        return torch.tensor(mask, dtype=torch.bool)

    def batch(self, batch_size: int, device: torch.device | str | None = None) -> torch.Tensor:
        """``bool[B, height*width]`` masks, seeded from the global torch RNG."""
        seed = int(torch.randint(0, 2**62, (1,)).item())
        rng = random.Random(seed)
        masks = torch.stack([self.sample(rng).flatten() for _ in range(batch_size)])
        return masks.to(device) if device is not None else masks
