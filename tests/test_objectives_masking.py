"""BERT token masking rates and BEiT block masking ratio / block shapes."""

import random

import pytest
import torch

from simla_bench.plugins.objectives.masking import BlockMaskGenerator, bert_mask, default_min_block

SPECIAL = [0, 1, 2]  # PAD, CLS, SEP


def _ids(n=400, length=30):
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(10, 100, (n, length), generator=g)
    ids[:, 0] = 1
    ids[:, 20] = 2
    ids[:, 21:] = 0
    att = (ids != 0).long()
    return ids, att


def test_bert_mask_rates_and_specials():
    torch.manual_seed(0)
    ids, att = _ids()
    masked, labels = bert_mask(ids, mask_token_id=3, vocab_size=100, special_ids=SPECIAL, attention_mask=att)
    selected = labels != -100
    eligible = (ids >= 10)
    assert not (selected & ~eligible).any(), "PAD/CLS/SEP must never be selected"
    assert torch.equal(labels[selected], ids[selected])
    rate = selected.sum().item() / eligible.sum().item()
    assert 0.13 < rate < 0.17
    n = selected.sum().item()
    to_mask = (masked[selected] == 3).sum().item() / n
    unchanged = (masked[selected] == ids[selected]).sum().item() / n
    assert 0.76 < to_mask < 0.84
    assert 0.07 < unchanged < 0.14  # 10% kept + random draws that hit the same id
    assert torch.equal(masked[~selected], ids[~selected])


def test_bert_mask_ensures_one_selection():
    torch.manual_seed(0)
    ids = torch.tensor([[1, 50, 2, 0]])
    for _ in range(20):
        _, labels = bert_mask(ids, mask_token_id=3, vocab_size=100, special_ids=SPECIAL, probability=0.01)
        assert (labels != -100).sum() == 1 and labels[0, 1] == 50


@pytest.mark.parametrize("grid", [(16, 16), (14, 14), (8, 8), (4, 4)])
def test_block_mask_ratio(grid):
    gen = BlockMaskGenerator(*grid)
    torch.manual_seed(1)
    masks = gen.batch(300)
    assert masks.shape == (300, grid[0] * grid[1]) and masks.dtype == torch.bool
    ratio = masks.float().mean().item()
    assert abs(ratio - 0.29) < 0.04, ratio
    assert (masks.sum(1) <= gen.num_masking).all()
    assert (masks.sum(1) >= gen.min_block).all()


def test_block_shape_constraints():
    gen = BlockMaskGenerator(8, 8)
    assert gen.min_block == default_min_block(64) == 4
    rng = random.Random(0)
    seen = 0
    for _ in range(2000):
        block = gen.sample_block(gen.num_masking, rng)
        if block is None:
            continue
        seen += 1
        top, left, h, w = block
        assert h * w >= 4 and 0.3 - 1e-9 <= h / w <= 1 / 0.3 + 1e-9
        assert 0 <= top and top + h <= 8 and 0 <= left and left + w <= 8 and h < 8 and w < 8
    assert seen > 500
    # the first block of a fresh mask is one rectangle
    mask = [[False] * 8 for _ in range(8)]
    gen._add_block(mask, gen.num_masking, random.Random(3))
    t = torch.tensor(mask)
    rows, cols = t.any(1).nonzero().flatten(), t.any(0).nonzero().flatten()
    assert t.sum() == len(rows) * len(cols) >= 4


def test_block_mask_deterministic_from_torch_seed():
    gen = BlockMaskGenerator(8, 8)
    torch.manual_seed(5)
    a = gen.batch(4)
    torch.manual_seed(5)
    b = gen.batch(4)
    assert torch.equal(a, b)
