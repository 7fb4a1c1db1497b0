"""Unit tests of the task building blocks that need no world or model:
vectorised re-ranking vs a reference loop, Grad-CAM math, the answer
vocabulary and its soft targets, and the fine-tuning schedule/loop."""

from __future__ import annotations

import pytest
import torch

from simla_bench.tasks import finetune as ft
from simla_bench.training import finetune as tune
from simla_bench.training.schedule import warmup_cosine
from simla_bench.training.seeding import generator
from simla_bench.tasks.answers import AnswerVocab
from simla_bench.tasks.gradcam import cam_from_attention, upsample
from simla_bench.tasks.rerank import FILL, candidates, rerank, rerank_reference


# ---------------------------------------------------------------- re-ranking
class FakeITM:
    """A deterministic pair scorer (a fixed random table) that counts calls."""

    def __init__(self, n_img: int, n_txt: int, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.table = torch.randn(n_img, n_txt, generator=g) * 5
        self.pairs_scored = 0
        self.calls = 0

    def __call__(self, img_idx, txt_idx):
        self.calls += 1
        self.pairs_scored += len(img_idx)
        return self.table[img_idx, txt_idx]


@pytest.mark.parametrize("n_img,n_txt,k,bs", [(7, 35, 4, 16), (5, 11, 20, 3), (12, 60, 1, 1000), (3, 3, 3, 2)])
def test_rerank_matches_reference_loop(n_img, n_txt, k, bs):
    torch.manual_seed(n_img * 100 + k)
    sims = torch.randn(n_img, n_txt)
    fast_scorer, slow_scorer = FakeITM(n_img, n_txt), FakeITM(n_img, n_txt)
    fast = rerank(sims, k, fast_scorer, batch_size=bs)
    slow = rerank_reference(sims, k, slow_scorer)
    assert torch.equal(fast[0], slow[0])
    assert torch.equal(fast[1], slow[1])
    # batched: far fewer scorer calls than pairs, and every pair scored once
    assert fast_scorer.pairs_scored <= slow_scorer.pairs_scored
    assert fast_scorer.calls == -(-fast_scorer.pairs_scored // bs)


def test_rerank_fill_and_candidate_scores():
    sims = torch.tensor([[0.9, 0.1, 0.5, 0.3], [0.0, 0.8, 0.2, 0.7]])   # 2 images x 4 texts
    table = torch.arange(8, dtype=torch.float32).view(2, 4)             # ITM score = 4*i + t
    s_i2t, s_t2i = rerank(sims, 2, lambda i, t: table[i, t])
    # image 0's top-2 texts are 0 and 2; image 1's are 1 and 3
    assert s_i2t.tolist() == [[0.0, FILL, 2.0, FILL], [FILL, 5.0, FILL, 7.0]]
    # every text has only 2 images, so both are candidates (k=2)
    assert s_t2i.tolist() == [[0.0, 4.0], [1.0, 5.0], [2.0, 6.0], [3.0, 7.0]]
    # the final score is the ITM logit alone, not mixed with the ITC similarity
    s_i2t, _ = rerank(sims, 1, lambda i, t: -table[i, t])
    assert s_i2t[0, 0] == 0.0 and s_i2t[1, 1] == -5.0


def test_rerank_deduplicates_pairs_shared_by_both_directions():
    sims = torch.randn(6, 6)
    scorer = FakeITM(6, 6)
    rerank(sims, 6, scorer)            # k = everything: each of the 36 pairs is a candidate twice
    assert scorer.pairs_scored == 36


def test_candidates_clip_k():
    assert candidates(torch.randn(3, 5), 99).shape == (3, 5)


# ---------------------------------------------------------------- Grad-CAM
def test_cam_from_attention_hand_computed():
    # B=1, H=2, L=2 text tokens (second is padding), 1 CLS + 2 patches
    attn = torch.tensor([[[[0.2, 0.5, 0.3], [0.1, 0.1, 0.8]],
                          [[0.4, 0.4, 0.2], [0.3, 0.3, 0.4]]]])
    grad = torch.tensor([[[[9.0, 2.0, -1.0], [5.0, 5.0, 5.0]],
                          [[9.0, 1.0, 3.0], [5.0, 5.0, 5.0]]]])
    mask = torch.tensor([[1, 0]])
    cam = cam_from_attention(attn, grad, mask)
    # head 0 token 0: [0.5*2, 0.3*0] ; head 1 token 0: [0.4*1, 0.2*3]; token 1 masked -> 0
    # mean over heads then over the L=2 tokens (ALBEF averages padded rows as zeros)
    expected = torch.tensor([[(1.0 + 0.4) / 2 / 2, (0.0 + 0.6) / 2 / 2]])
    assert torch.allclose(cam, expected)


def test_cam_ignores_negative_gradients_and_cls():
    attn = torch.rand(2, 3, 4, 5)
    grad = -torch.rand(2, 3, 4, 5)
    assert torch.all(cam_from_attention(attn, grad, torch.ones(2, 4)) == 0)
    grad = torch.zeros(2, 3, 4, 5)
    grad[..., 0] = 10.0                                  # only the CLS column has gradient
    assert torch.all(cam_from_attention(attn, grad, torch.ones(2, 4)) == 0)


def test_upsample_keeps_the_hot_region():
    cams = torch.zeros(1, 16)
    cams[0, 4 * 1 + 3] = 1.0                             # row 1, column 3 of a 4x4 grid
    heat = upsample(cams, (4, 4), (64, 32))              # size is (W, H)
    assert heat.shape == (1, 32, 64)
    y, x = divmod(int(heat[0].argmax()), 64)
    assert 48 <= x < 64 and 8 <= y < 16
    with pytest.raises(ValueError):
        upsample(torch.zeros(1, 15), (4, 4), (8, 8))


# ---------------------------------------------------------------- answers
def test_answer_vocab_frequency_order_and_cap():
    vocab = AnswerVocab.build([["yes"] * 10, ["no"] * 6 + ["yes"] * 4, ["2"] * 5 + ["two"] * 5], max_answers=3)
    assert vocab.answers == ["yes", "no", "2"]          # 14, 6, then the 5-5 tie broken alphabetically
    assert len(AnswerVocab.build([["a", "b", "c"]], max_answers=0)) == 3


def test_answer_targets_are_official_accuracies():
    from simla_bench.tasks.metrics.vqa import question_accuracy

    vocab = AnswerVocab(["red", "blue", "2", "two", "green"])
    gts = [["red"] * 2 + ["blue"] * 8, ["two"] * 10, ["2"] * 4 + ["two"] * 6]
    t = vocab.targets(gts)
    for q, answers in enumerate(gts):
        for j, a in enumerate(vocab.answers):
            assert t[q, j].item() == pytest.approx(question_accuracy(a, answers)), (q, a)
    assert t[0, 0].item() == pytest.approx(0.6)          # 2 of 10 "red": official 0.6 (not 2/3)
    assert t[1, 2].item() == 0.0 and t[1, 3].item() == 0.0   # all ten "two" are compared raw; "two" -> "2" misses
    assert t[2, 2].item() == 1.0 and t[2, 3].item() == 1.0   # mixed answers: "two" normalises to "2"
    assert vocab.coverage(gts) == pytest.approx((1.0 + 0.0 + 1.0) / 3)


# ---------------------------------------------------------------- fine-tuning
def test_schedule_warmup_then_cosine():
    lrs = [warmup_cosine(i, 100, 1e-3, 1e-5, 10, warmup_offset=tune.FINETUNE_WARMUP_OFFSET) for i in range(100)]
    assert lrs[0] < lrs[5] < lrs[9] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert lrs[-1] < 2e-5
    assert tune.steps_for(100, 32, 2.0, 0) == 7 and tune.steps_for(100, 32, 2.0, 5) == 5 and tune.steps_for(0, 32, 1, 0) == 0


def test_train_steps_lowers_the_loss_and_is_deterministic():
    def fit(seed):
        g = generator(seed)
        torch.manual_seed(seed)
        x = torch.randn(64, 5, generator=g)
        y = x @ torch.tensor([1.0, -2.0, 0.5, 0.0, 3.0])
        model = torch.nn.Linear(5, 1)
        head = torch.nn.Identity()
        return tune.train_steps([model, head], lambda i: ((model(x).squeeze(1) - y) ** 2).mean(), steps=150,
                              lr=0.2, min_lr=1e-4, warmup_steps=3, weight_decay=0.0, grad_clip=0.0)

    log = fit(0)
    assert log.losses[-1] < 0.05 * log.losses[0]
    assert fit(0).losses == log.losses
    assert log.summary()["steps"] == 150


def test_train_steps_refuses_nan():
    from simla_bench.errors import PluginError

    p = torch.nn.Linear(1, 1)
    with pytest.raises(PluginError, match="loss became nan"):
        tune.train_steps([p], lambda i: p.weight.sum() * float("nan"), steps=2, lr=0.1, min_lr=0.0,
                       warmup_steps=0, weight_decay=0.0, grad_clip=0.0)


def test_defaults_come_from_yaml_and_bad_options_are_refused():
    from simla_bench.errors import ConfigError
    from simla_bench.tasks.retrieval import RetrievalTask

    assert RetrievalTask.defaults == ft.load_defaults("retrieval")
    assert RetrievalTask("retrieval", {"k": 12}).options["k"] == 12
    with pytest.raises(ConfigError, match="mode"):
        RetrievalTask("retrieval", {"mode": "zeroshot"})
    with pytest.raises(ConfigError, match="unknown option"):
        RetrievalTask("retrieval", {"kk": 3})
    with pytest.raises(ConfigError, match="k=5 is below 10"):
        RetrievalTask("retrieval", {"k": 5})
    with pytest.raises(ConfigError, match="'k' must be > 0"):
        RetrievalTask("retrieval", {"k": 0})
