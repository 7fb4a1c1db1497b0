"""ITC against a hand computation with the queue; queue bookkeeping; ITM hard-negative sampling."""

import math

import pytest
import torch
import torch.nn.functional as F

from simla_bench.plugins.objectives.itc import ITC, FeatureQueue
from simla_bench.plugins.objectives.itm import sample_hard_negatives
from simla_bench.training.step_context import StepContext


class _Feats:
    """Hands out fixed features: the encoders pass their input through, the
    projections return ``feats`` (also the momentum copy, with its own)."""

    def __init__(self, img, txt):
        self.feats = (img, txt)

    def encode_image(self, images):
        return images

    def encode_text(self, ids, att):
        return ids

    def image_feat(self, e):
        return self.feats[0]

    def text_feat(self, e, attention_mask=None):
        return self.feats[1]


class _FeatModel(torch.nn.Module, _Feats):
    """Just enough model for ITC: fixed features and a learnable temperature."""

    def __init__(self, img, txt):
        torch.nn.Module.__init__(self)
        _Feats.__init__(self, img, txt)
        self.temp = torch.nn.Parameter(torch.tensor(0.1))
        self.embed_dim = img.shape[1]
        self.queue_size = 3


def _unit(*shape, seed):
    return F.normalize(torch.randn(*shape, generator=torch.Generator().manual_seed(seed)), dim=-1)


def _hand_itc(img, txt, m_img, m_txt, keys_i, keys_t, pos, temp, alpha):
    b, m = len(img), len(keys_i)
    total = 0.0
    for a, b_feats, keys, m_feats in ((img, txt, keys_t, m_img), (txt, img, keys_i, m_txt)):
        for i in range(b):
            logits = [float(a[i] @ keys[j]) / temp for j in range(m)]
            mlog = [float(m_feats[i] @ keys[j]) / temp for j in range(m)]
            lse = math.log(sum(math.exp(x) for x in logits))
            mz = sum(math.exp(x) for x in mlog)
            npos = sum(pos[i])
            for j in range(m):
                target = alpha * math.exp(mlog[j]) / mz + (1 - alpha) * (pos[i][j] / npos)
                total -= target * (logits[j] - lse) / b
    return total / 2


def test_itc_with_queue_matches_hand_computation():
    torch.manual_seed(0)
    img, txt, m_img, m_txt = (_unit(2, 4, seed=s) for s in range(4))
    model = _FeatModel(img, txt)
    itc = ITC("itc")
    itc.setup(model, None)
    qi, qt = _unit(3, 4, seed=10), _unit(3, 4, seed=11)
    itc.queue.image, itc.queue.text = qi.clone(), qt.clone()
    itc.queue.ids = torch.tensor([7, -1, -1])  # one queued caption of image id 7
    batch = {"images": torch.zeros(2, 1), "input_ids": torch.zeros(2, 1), "attention_mask": torch.ones(2, 1),
             "image_ids": [7, 8]}
    step = StepContext(batch=batch, model=model, momentum=_Feats(m_img, m_txt), alpha=0.4, step=0)
    loss = itc.loss(step)
    keys_i, keys_t = torch.cat([m_img, qi]), torch.cat([m_txt, qt])
    pos = [[1, 0, 1, 0, 0], [0, 1, 0, 0, 0]]
    expected = _hand_itc(img, txt, m_img, m_txt, keys_i, keys_t, pos, 0.1, 0.4)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    # the batch's momentum features were enqueued at the pointer (ring of 3: slots 0, 1)
    assert torch.allclose(itc.queue.image[:2], m_img) and torch.allclose(itc.queue.text[:2], m_txt)
    assert itc.queue.ptr == 2 and itc.queue.ids[:2].tolist() == [7, 8]


def test_itc_temperature_is_clamped_and_learnable():
    img, txt, m_img, m_txt = (_unit(2, 4, seed=s) for s in range(4))
    model = _FeatModel(img.requires_grad_(), txt)
    with torch.no_grad():
        model.temp.fill_(0.9)
    itc = ITC("itc", {"queue_size": 0})
    batch = {"images": torch.zeros(2, 1), "input_ids": torch.zeros(2, 1), "attention_mask": torch.ones(2, 1)}
    loss = itc.loss(StepContext(batch=batch, model=model, momentum=_Feats(m_img, m_txt), alpha=0.0, step=0))
    assert model.temp.item() == pytest.approx(0.5)
    loss.backward()
    assert model.temp.grad is not None and img.grad is not None


def test_feature_queue_wraps_and_round_trips():
    torch.manual_seed(0)
    q = FeatureQueue(5, 2)
    for k in range(3):
        q.enqueue(torch.full((2, 2), float(k)), torch.full((2, 2), float(-k)), torch.tensor([k, k]))
    assert q.ptr == 1
    # slots: k=0 -> 0,1; k=1 -> 2,3; k=2 -> 4, then wraps to 0
    assert q.image[:, 0].tolist() == [2.0, 0.0, 1.0, 1.0, 2.0]
    assert q.text[:, 0].tolist() == [-2.0, 0.0, -1.0, -1.0, -2.0]
    assert q.ids.tolist() == [2, 0, 1, 1, 2]
    r = FeatureQueue(1, 1)
    r.load_state_dict(q.state_dict())
    assert torch.equal(r.image, q.image) and r.ptr == 1 and r.size == 5


def test_hard_negatives_never_the_positive():
    torch.manual_seed(0)
    b = 6
    sim = torch.randn(b, b) * 5 + torch.eye(b) * 50  # the positive dominates the softmax
    ids = torch.tensor([0, 1, 2, 2, 3, 4])  # rows 2 and 3 show the same image
    same = ids[:, None] == ids[None, :]
    counts = torch.zeros(b, b)
    for _ in range(2000):
        idx, valid = sample_hard_negatives(sim, same)
        assert valid.all()
        counts[torch.arange(b), idx] += 1
    assert (counts[same] == 0).all(), "a positive (or a duplicate of it) was drawn as a negative"
    assert (counts[~same] > 0).sum() >= b  # sampling, not argmax


def test_hard_negatives_follow_similarity_and_handle_all_same():
    torch.manual_seed(0)
    sim = torch.tensor([[0.0, 2.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    same = torch.eye(3, dtype=torch.bool)
    picks = torch.stack([sample_hard_negatives(sim, same)[0][0] for _ in range(3000)])
    frac = (picks == 1).float().mean().item()
    assert frac == pytest.approx(math.exp(2) / (math.exp(2) + 1), abs=0.03)
    idx, valid = sample_hard_negatives(torch.zeros(2, 2), torch.ones(2, 2, dtype=torch.bool))
    assert not valid.any()
