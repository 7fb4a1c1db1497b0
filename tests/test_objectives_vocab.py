"""Visual codebook (k-means default, user tokenizer option) and PSL keyword selection."""

import pytest
import torch

from simla_bench.errors import ConfigError
from simla_bench.plugins.objectives.keywords import hard_targets, keyword_vocabulary, select_keyword_positions
from simla_bench.plugins.objectives.visual_vocab import KMeansCodebook, load_user_tokenizer, patch_vectors


def _images(n=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 16, 16, generator=g)


def test_patch_vectors_half_resolution():
    img = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8)
    vec = patch_vectors(img, patch=4)  # 2x2 grid of 4x4 patches -> 2x2 at half resolution
    assert vec.shape == (2, 4, 3 * 2 * 2)
    expected = img[0, 0, 0:2, 0:2].mean()
    assert vec[0, 0, 0].item() == pytest.approx(expected.item())


def test_kmeans_codebook_deterministic_and_nearest():
    imgs = _images()
    a = KMeansCodebook.fit([imgs[:12], imgs[12:]], vocab_size=8, patch=4, seed=3)
    b = KMeansCodebook.fit([imgs[:12], imgs[12:]], vocab_size=8, patch=4, seed=3)
    assert torch.equal(a.centroids, b.centroids)
    codes = a(imgs[:5])
    assert codes.shape == (5, 16) and codes.dtype == torch.long and int(codes.max()) < 8
    vec = patch_vectors(imgs[:5], 4)
    brute = torch.cdist(vec, a.centroids[None].expand(5, -1, -1)).argmin(-1)
    assert torch.equal(codes, brute)
    restored = KMeansCodebook(1, 2)
    restored.load_state_dict(a.state_dict())
    assert torch.equal(restored(imgs), a(imgs))


def test_user_tokenizer_spec_errors():
    with pytest.raises(ConfigError, match="module:attr"):
        load_user_tokenizer("no_colon_here", None)
    with pytest.raises(ConfigError, match="cannot be imported"):
        load_user_tokenizer("simla_bench.plugins.objectives.visual_vocab:nope", None)


def test_keyword_positions_on_constructed_attention():
    # B=1, H=3, L=8; position 7 is PAD.  Heads' top-4 sets:
    # h0: 1,2,3,4   h1: 2,3,5,6   h2: 3,2,1,7(pad, excluded -> 0 instead)
    att = torch.zeros(1, 3, 8)
    att[0, 0, [1, 2, 3, 4]] = torch.tensor([0.4, 0.3, 0.2, 0.1])
    att[0, 1, [2, 3, 5, 6]] = torch.tensor([0.4, 0.3, 0.2, 0.05])
    att[0, 2, [3, 2, 1, 7]] = torch.tensor([0.5, 0.2, 0.1, 0.2])
    att[0, 2, 0] = 0.02
    mask = torch.tensor([[1, 1, 1, 1, 1, 1, 1, 0]])
    pos, valid = select_keyword_positions(att, mask, per_head=4, keep=5)
    # votes: 2->3, 3->3, 1->2, 4/5/6/0 -> 1 each; ties by attention mass: 3 (1.0) > 2 (0.9);
    # among 1-vote positions mass: 5 (0.2) > 4 (0.1) > 6 (0.05) > 0 (0.02)
    assert pos[0].tolist() == [3, 2, 1, 5, 4]
    assert valid.all()
    assert 7 not in pos[0].tolist()


def test_keyword_positions_short_caption_and_targets():
    att = torch.rand(2, 2, 6)
    mask = torch.tensor([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1]])
    pos, valid = select_keyword_positions(att, mask, per_head=4, keep=5)
    assert valid[0].sum() == 3 and set(pos[0][valid[0]].tolist()) == {0, 1, 2}
    ids = torch.tensor([[1, 9, 2, 0, 0, 0], [1, 7, 8, 7, 2, 0]])  # CLS=1 SEP=2 PAD=0
    kw = keyword_vocabulary(12, [0, 1, 2])
    tgt = hard_targets(ids, pos, valid, kw, 12, [0, 1, 2])
    assert tgt.shape == (2, 12)
    assert tgt[0].nonzero().flatten().tolist() == [9]  # CLS/SEP zeroed, PAD never voted
    assert set(tgt[1].nonzero().flatten().tolist()) <= {7, 8}


def test_keyword_vocabulary_top_k_and_restricted_targets():
    caps = [[1, 5, 6, 2], [1, 5, 7, 2], [1, 5, 6, 2, 0], [1, 9, 2]]
    kw = keyword_vocabulary(12, [0, 1, 2], top_k=2, tokenized_captions=caps)
    assert kw.tolist() == [5, 6]  # 5 x3, 6 x2; specials excluded
    ids = torch.tensor([[1, 6, 9, 2]])
    pos = torch.tensor([[1, 2, 0]])
    tgt = hard_targets(ids, pos, torch.ones(1, 3, dtype=torch.bool), kw, 12, [0, 1, 2])
    assert tgt.tolist() == [[0.0, 1.0]]  # 9 is outside the keyword vocabulary
