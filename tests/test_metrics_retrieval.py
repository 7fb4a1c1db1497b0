"""Retrieval recall (ALBEF itm_eval): hand cases, ties, several captions per image,
and equality with a literal loop transcription of the official code."""

from __future__ import annotations

import numpy as np
import pytest

from simla_bench.tasks.metrics.retrieval import i2t_ranks, itm_eval, ranks_from_lists, recall_metrics, t2i_ranks


def literal_itm_eval(scores_i2t, scores_t2i, txt2img, img2txt):
    """The official loops, written out plainly."""
    ranks = np.zeros(scores_i2t.shape[0])
    for index, score in enumerate(scores_i2t):
        inds = np.argsort(score)[::-1]
        rank = 1e20
        for i in img2txt[index]:
            tmp = np.where(inds == i)[0][0]
            if tmp < rank:
                rank = tmp
        ranks[index] = rank
    tr = [100.0 * len(np.where(ranks < k)[0]) / len(ranks) for k in (1, 5, 10)]
    ranks = np.zeros(scores_t2i.shape[0])
    for index, score in enumerate(scores_t2i):
        inds = np.argsort(score)[::-1]
        ranks[index] = np.where(inds == txt2img[index])[0][0]
    ir = [100.0 * len(np.where(ranks < k)[0]) / len(ranks) for k in (1, 5, 10)]
    tr_mean, ir_mean = sum(tr) / 3, sum(ir) / 3
    return {"TR@1": tr[0], "TR@5": tr[1], "TR@10": tr[2], "IR@1": ir[0], "IR@5": ir[1], "IR@10": ir[2],
            "tr_mean": tr_mean, "ir_mean": ir_mean, "r_mean": (tr_mean + ir_mean) / 2}


def _links(n_img, per):
    img2txt = [list(range(i * per, (i + 1) * per)) for i in range(n_img)]
    txt2img = [i for i in range(n_img) for _ in range(per)]
    return txt2img, img2txt


def test_hand_case_several_captions_per_image():
    # 2 images, 2 captions each: texts 0,1 -> image 0; texts 2,3 -> image 1
    txt2img, img2txt = _links(2, 2)
    i2t = np.array([[0.1, 0.9, 0.5, 0.2],    # image 0: best is text 1 (its own) -> rank 0
                    [0.9, 0.8, 0.1, 0.7]])   # image 1: order 0,1,3,2 -> best own text 3 at rank 2
    t2i = np.array([[0.2, 0.1],   # text 0 -> image 0 first: rank 0
                    [0.3, 0.4],   # text 1 -> image 1 first: rank 1
                    [0.1, 0.5],   # rank 0
                    [0.6, 0.5]])  # rank 1
    res = itm_eval(i2t, t2i, txt2img, img2txt, ks=(1, 2, 3))
    assert list(res["i2t_ranks"]) == [0, 2]
    assert list(res["t2i_ranks"]) == [0, 1, 0, 1]
    assert res["TR@1"] == 50.0 and res["TR@2"] == 50.0 and res["TR@3"] == 100.0
    assert res["IR@1"] == 50.0 and res["IR@2"] == 100.0
    full = itm_eval(i2t, t2i, txt2img, img2txt)
    assert full["TR@10"] == 100.0 and full["IR@1"] == 50.0
    assert full["tr_mean"] == pytest.approx((50 + 100 + 100) / 3)
    assert full["r_mean"] == pytest.approx((full["tr_mean"] + full["ir_mean"]) / 2)
    assert list(full["t2i_hits"][1]) == [True, False, True, False]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("levels", [2, 4, 1000])
def test_equals_literal_official_loop_including_ties(dtype, levels):
    rng = np.random.default_rng(levels)
    n_img, per = 23, 5
    txt2img, img2txt = _links(n_img, per)
    # few score levels -> many ties; ALBEF's -100 for non-candidates too
    i2t = rng.integers(0, levels, size=(n_img, n_img * per)).astype(dtype)
    i2t[rng.random(i2t.shape) < 0.3] = -100
    t2i = rng.integers(0, levels, size=(n_img * per, n_img)).astype(dtype)
    ours = itm_eval(i2t, t2i, txt2img, img2txt)
    ref = literal_itm_eval(i2t, t2i, txt2img, img2txt)
    for key, value in ref.items():
        assert ours[key] == value, key  # exact, not approx


def test_ties_follow_reversed_default_argsort():
    # all scores equal: the position of each item is fixed by np.argsort(row)[::-1]
    scores = np.zeros((1, 7))
    order = np.argsort(scores[0])[::-1]
    for target in range(7):
        assert t2i_ranks(scores, [target])[0] == int(np.where(order == target)[0][0])


def test_block_boundaries(monkeypatch):
    import simla_bench.tasks.metrics.retrieval as retrieval

    rng = np.random.default_rng(3)
    txt2img, img2txt = _links(10, 3)
    i2t = rng.random((10, 30))
    full = itm_eval(i2t, i2t.T, txt2img, img2txt)
    monkeypatch.setattr(retrieval, "_BLOCK_ROWS", 3)
    small = itm_eval(i2t, i2t.T, txt2img, img2txt)
    assert np.array_equal(full["i2t_ranks"], small["i2t_ranks"])
    assert np.array_equal(full["t2i_ranks"], small["t2i_ranks"])


def test_image_without_texts_never_hits():
    i2t = np.array([[0.5, 0.4], [0.9, 0.1]])
    ranks = i2t_ranks(i2t, [[0, 1], []])
    assert ranks[0] == 0 and ranks[1] > 10**12
    assert recall_metrics(ranks, np.array([0, 0]))["TR@10"] == 50.0


def test_ranked_lists():
    # image 0's texts are 0,1 ; listed 3, 1 -> rank 1
    assert list(ranks_from_lists([[3, 1, 0], [2]], [[0, 1], [5]])) == [1, np.iinfo(np.int64).max]


def test_shape_mismatch_is_rejected():
    with pytest.raises(ValueError):
        itm_eval(np.zeros((2, 4)), np.zeros((4, 3)), [0, 0, 1, 1], [[0, 1], [2, 3]])


def literal_ranks(scores, targets):
    out = []
    for row, wanted in zip(scores, targets):
        inds = np.argsort(row)[::-1]
        out.append(min(int(np.where(inds == t)[0][0]) for t in wanted))
    return np.array(out)


@pytest.mark.parametrize("n_candidates", [3, 8, 40])
def test_albef_style_minus_100_matrices(n_candidates):
    # ALBEF keeps -100 for everything outside the ITC top-k: huge ties
    rng = np.random.default_rng(n_candidates)
    n_img, per = 12, 5
    txt2img, img2txt = _links(n_img, per)
    i2t = np.full((n_img, n_img * per), -100.0, dtype=np.float32)
    for i in range(n_img):
        i2t[i, rng.choice(n_img * per, min(n_candidates, n_img * per), replace=False)] = rng.random(min(n_candidates, n_img * per))
    t2i = np.full((n_img * per, n_img), -100.0, dtype=np.float32)
    for t in range(n_img * per):
        k = min(n_candidates, n_img)
        t2i[t, rng.choice(n_img, k, replace=False)] = rng.random(k)
    ref = literal_itm_eval(i2t, t2i, txt2img, img2txt)
    fast = itm_eval(i2t, t2i, txt2img, img2txt)
    exact = itm_eval(i2t, t2i, txt2img, img2txt, exact_ranks=True)
    for key, value in ref.items():
        assert fast[key] == value and exact[key] == value, key
    true_i2t = literal_ranks(i2t, img2txt)
    true_t2i = literal_ranks(t2i, [[t] for t in txt2img])
    assert np.array_equal(exact["i2t_ranks"], true_i2t) and np.array_equal(exact["t2i_ranks"], true_t2i)
    # default: exact below max(ks)=10, otherwise a lower bound that is >= 10
    for fast_r, true_r in ((fast["i2t_ranks"], true_i2t), (fast["t2i_ranks"], true_t2i)):
        below = true_r < 10
        assert np.array_equal(fast_r[below], true_r[below])
        assert (fast_r[~below] >= 10).all() and (fast_r[~below] <= true_r[~below]).all()


def test_nan_rows_use_the_official_order():
    scores = np.array([[0.5, np.nan, 0.2, 0.9]])
    for target in range(4):
        assert t2i_ranks(scores, [target])[0] == literal_ranks(scores, [[target]])[0]
