"""The fast retrieval re-ranking path against the per-query loop: the model's
fusion from cached parts (``fusion_text_cache`` / ``fusion_image_cache`` /
``fuse_cached``) gives ``fuse``'s numbers, ``rerank`` with
:class:`CachedITMScorer` and per-image, length-sorted batches gives
``rerank_reference``'s score matrices (ties in the similarities, the -100
fill) on both layouts, and re-ranking never holds an images x texts x hidden
tensor."""

from __future__ import annotations

import pytest
import torch

from simla_bench.tasks.data import tokenize
from simla_bench.tasks.rerank import (FILL, CachedITMScorer, cached_itm_scorer, itm_scorer, pair_batches, rerank,
                                      rerank_reference)

LAYOUTS = ["single_stream", "split"]


def _inputs(model, world, n_img: int, n_txt: int, seed: int = 0):
    """Encoded random images and real world captions (varied lengths)."""
    captions = [r.caption for r in world.load("pretrain", "train")]
    texts = [captions[(7 * i) % len(captions)] + " a" * (i % 5) for i in range(n_txt)]
    ids, mask = tokenize(model.tokenizer, texts, model.max_text_len)
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(n_img, 3, model.image_size, model.image_size, generator=g)
    with torch.inference_mode():
        image_embeds = model.encode_image(images)
        text_embeds = model.encode_text(ids, mask)
    return image_embeds, ids, mask, text_embeds


@pytest.mark.parametrize("layout", LAYOUTS)
def test_fuse_cached_gives_fuse_numbers(tiny_models, tiny_world, layout):
    model = tiny_models[layout].eval()
    image_embeds, ids, mask, text_embeds = _inputs(model, tiny_world, 3, 6)
    pairs_img = torch.tensor([0, 0, 1, 2, 2, 1])
    with torch.inference_mode():
        want = model.fuse(ids, mask, image_embeds[pairs_img], text_embeds=text_embeds)
        text_cache = model.fusion_text_cache(ids, mask, text_embeds)
        per_row = [(k[pairs_img], v[pairs_img]) for k, v in model.fusion_image_cache(image_embeds)]
        got = model.fuse_cached(text_cache, mask, per_row)
        # one image's cache (batch 1) for every row: queries as one sequence
        one = model.fuse_cached(text_cache, mask, model.fusion_image_cache(image_embeds[:1]))
        want_one = model.fuse(ids, mask, image_embeds[:1].expand(6, -1, -1), text_embeds=text_embeds)
        logits = [model.itm_logits(out) for out in (got, want, one, want_one)]
    keep = mask.bool()
    assert torch.allclose(got.hidden[keep], want.hidden[keep], atol=1e-5)
    assert torch.allclose(logits[0], logits[1], atol=1e-5)
    assert torch.allclose(one.hidden[keep], want_one.hidden[keep], atol=1e-5)
    assert torch.allclose(logits[2], logits[3], atol=1e-5)


def test_fuse_cached_is_evaluation_only(tiny_model, tiny_world):
    image_embeds, ids, mask, _ = _inputs(tiny_model, tiny_world, 1, 2)
    tiny_model.train()
    with pytest.raises(RuntimeError, match="evaluation-only"):
        tiny_model.fusion_image_cache(image_embeds)
    # a model in training mode gets the plain scorer
    assert not isinstance(cached_itm_scorer(tiny_model, image_embeds, ids, mask), CachedITMScorer)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("lengths", [True, False], ids=["per-image batches", "mixed batches"])
def test_rerank_cached_matches_per_query_loop(tiny_models, tiny_world, layout, lengths):
    model = tiny_models[layout].eval()
    n_img, n_txt, k = 7, 20, 4
    image_embeds, ids, mask, text_embeds = _inputs(model, tiny_world, n_img, n_txt)
    g = torch.Generator().manual_seed(1)
    sims = torch.randn(n_img, n_txt, generator=g).round()     # a handful of values: many ties
    sims[:, 3] = sims[:, 4]                                   # two texts tied for every image
    sims[2] = sims[5]                                         # two images tied for every text
    ref = rerank_reference(sims, k, itm_scorer(model, image_embeds, ids, mask, text_embeds))
    scorer = cached_itm_scorer(model, image_embeds, ids, mask, text_embeds, batch_size=8)
    assert isinstance(scorer, CachedITMScorer)
    fast = rerank(sims, k, scorer, batch_size=8, text_lengths=mask.sum(1) if lengths else None)
    for got, want in zip(fast, ref):
        assert torch.equal(got == FILL, want == FILL)          # the same candidates, the rest -100
        assert (want != FILL).sum(1).eq(k).all()
        assert float((got - want).abs().max()) <= 1e-5


def test_pair_batches_one_image_each_shortest_first():
    g = torch.Generator().manual_seed(0)
    keys = torch.unique(torch.randint(0, 9 * 40, (300,), generator=g))
    img, txt = keys // 40, keys % 40
    lengths = torch.randint(3, 20, (40,), generator=g)
    batches = pair_batches(img, txt, 16, lengths)
    seen = torch.cat(batches)
    assert torch.equal(seen.sort().values, torch.arange(len(img)))          # every pair exactly once
    for b in batches:
        assert 0 < len(b) <= 16 and len(torch.unique(img[b])) == 1
        assert torch.all(lengths[txt[b]].diff() >= 0)
    for i in torch.unique(img).tolist():                                    # near-equal split of an image's pairs
        sizes = [len(b) for b in batches if int(img[b[0]]) == i]
        assert len(sizes) == -(-int((img == i).sum()) // 16) and max(sizes) - min(sizes) <= 1
    assert [len(b) for b in pair_batches(img, txt, 16)] == [16] * (len(img) // 16) + ([len(img) % 16] if len(img) % 16 else [])


class _LargestTensors(torch.utils._python_dispatch.TorchDispatchMode):
    """Records the largest new tensor (not a view of an input) of 3 or more
    dimensions any op produces."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {a.untyped_storage().data_ptr() for a in torch.utils._pytree.tree_leaves((args, kwargs))
                  if isinstance(a, torch.Tensor)}
        for t in torch.utils._pytree.tree_leaves(out):
            if isinstance(t, torch.Tensor) and t.dim() >= 3 and t.untyped_storage().data_ptr() not in inputs:
                self.largest = max(self.largest, t.numel())
        return out


def test_rerank_streams_pairs_never_an_images_x_texts_x_hidden_tensor(tiny_models, tiny_world):
    """Every tensor of re-ranking beyond the two score matrices is bounded by one
    batch of pairs (batch x length x FFN width), at any number of images and texts."""
    model = tiny_models["single_stream"].eval()
    ffn = model.text_encoder.config.intermediate_size
    batch = 16
    for n_img, n_txt in [(12, 60), (24, 120)]:
        image_embeds, ids, mask, text_embeds = _inputs(model, tiny_world, n_img, n_txt)
        scorer = CachedITMScorer(model, image_embeds, ids, mask, text_embeds, batch_size=batch)
        sims = torch.randn(n_img, n_txt, generator=torch.Generator().manual_seed(n_img))
        with _LargestTensors() as seen:
            rerank(sims, 4, scorer, batch_size=batch, text_lengths=mask.sum(1))
        assert seen.largest <= batch * ids.shape[1] * ffn < n_img * n_txt * model.text_width
