"""Each objective trains a tiny model (loss goes down), gradients reach exactly
the parameters they should, shared encodings are computed once, unmet needs are refused."""

import functools

import pytest
import torch

from simla_bench.plugins.objectives.itc import ITC
from simla_bench.plugins.objectives.itm import ITM
from simla_bench.plugins.objectives.mim import MIM
from simla_bench.plugins.objectives.mlm import MLM
from simla_bench.plugins.objectives.psl import PSL
from simla_bench.plugins.objectives.visual_vocab import KMeansCodebook
from simla_bench.plugins.objectives.xmm import XMM

from helpers.objectives_tiny import COLOUR_WORDS, FILLER, PLACE_WORDS, TinyVLP, make_batch, make_step


@functools.lru_cache(maxsize=None)
def _codebook(seed=0):
    g = torch.Generator().manual_seed(100 + seed)
    return KMeansCodebook.fit([make_batch(64, g)["images"]], vocab_size=8, patch=4, seed=seed)


def _make(cls, **options):
    obj = cls(cls.__name__.lower(), options)
    if isinstance(obj, MIM):
        obj.tokenizer = _codebook()
    if isinstance(obj, XMM):
        obj.image.tokenizer = _codebook()
    return obj


def train(obj, steps=30, lr=1e-2, batch=12, seed=0, alpha=0.4, records=None):
    torch.manual_seed(seed)
    model = TinyVLP().enable_momentum()
    obj.setup(model, records)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)
    g = torch.Generator().manual_seed(seed)
    losses = []
    for i in range(steps):
        step = make_step(model, make_batch(batch, g), alpha=alpha, step=i)
        loss = obj.loss(step)
        opt.zero_grad()
        loss.backward()
        opt.step()
        model.update_momentum(0.9)
        losses.append(loss.item())
    return model, losses


@pytest.mark.parametrize("cls", [ITC, ITM, MLM, MIM, XMM, PSL])
def test_loss_decreases(cls):
    _, losses = train(_make(cls))
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert all(torch.isfinite(torch.tensor(losses)))
    assert last < 0.9 * first, (cls.__name__, first, last)


def test_psl_teaches_the_image_its_keywords():
    """With a keyword vocabulary of the corpus's top-10 tokens, the image alone
    learns to name its colour (chance 0.25)."""
    from types import SimpleNamespace

    captions = make_batch(200, torch.Generator().manual_seed(7))["captions"]
    records = [SimpleNamespace(caption=c, image=None, image_id=str(i)) for i, c in enumerate(captions)]
    obj = PSL("psl", {"top_k_keywords": 10})
    model, losses = train(obj, steps=60, records=records)
    assert sorted(obj.keyword_ids.tolist()) == sorted(FILLER + COLOUR_WORDS + PLACE_WORDS)
    batch = make_batch(64, torch.Generator().manual_seed(999))
    with torch.no_grad():
        logits = model.concept_logits(model.image_feat(model.encode_image(batch["images"])))
    pred = logits[:, COLOUR_WORDS].argmax(1)
    truth = torch.tensor([COLOUR_WORDS.index(int(t)) for t in batch["input_ids"][:, 2]])
    assert (pred == truth).float().mean() > 0.7


def _one_step(*objs):
    """A tiny model with its momentum copy (seed 0), ``objs`` set up on it, and one step of 8 examples."""
    torch.manual_seed(0)
    model = TinyVLP().enable_momentum()
    for obj in objs:
        obj.setup(model, None)
    return model, make_step(model, make_batch(8, torch.Generator().manual_seed(1)), alpha=0.4)


def _grads(model):
    return {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}


VISUAL = ("patch_embed", "cls_token", "pos", "vit.", "mask_token")


def test_psl_gradient_reaches_only_visual_side():
    obj = _make(PSL)
    model, step = _one_step(obj)
    obj.loss(step).backward()
    got = _grads(model)
    allowed = {n for n, _ in model.named_parameters() if n.startswith(VISUAL + ("vision_proj", "concept_head"))}
    assert got <= allowed, got - allowed
    assert any(n.startswith("vit.") for n in got) and any(n.startswith("concept_head") for n in got)
    assert any(n.startswith("vision_proj") for n in got)
    assert all(p.grad is None for p in model.momentum_model().parameters())


@pytest.mark.parametrize("cls", [ITC, ITM, MLM, MIM, XMM])
def test_momentum_model_gets_no_gradient(cls):
    obj = _make(cls)
    model, step = _one_step(obj)
    obj.loss(step).backward()
    assert all(p.grad is None for p in model.momentum_model().parameters())
    got = _grads(model)
    if cls in (MLM, MIM, XMM, ITM):
        assert any(n.startswith("bert.") for n in got) and any(n.startswith("vit.") for n in got)
    if cls is ITC:
        assert "temp" in got and any(n.startswith("text_proj") for n in got)
        assert not any(n.startswith(("itm_head", "mlm_head", "mim_head", "concept_head")) for n in got)
    if cls in (MIM, XMM):
        assert "mask_token" in got and any(n.startswith("mim_head") for n in got)


def test_shared_encodings_computed_once():
    objs = [_make(c) for c in (ITC, ITM, MLM, PSL)]
    _, step = _one_step(*objs)
    sum(o.loss(step) for o in objs).backward()
    assert step.computed and set(step.computed.values()) == {1}
    assert {"image_embeds", "text_embeds", "image_feat", "text_feat", "m_image_feat", "m_text_feat"} <= set(step.computed)


def test_unmet_needs_are_described():
    from simla_bench.training.errors import UnmetNeedsError
    from simla_bench.training.needs import check_needs

    class NoFusion:
        capabilities = frozenset({"image", "text", "momentum", "concept_head"})

    objs = {"itc": ITC("itc"), "itm": ITM("itm"), "psl": PSL("psl")}
    with pytest.raises(UnmetNeedsError) as err:
        check_needs(objs, NoFusion())
    msg = err.value.one_line()
    assert "objective 'itm' needs fusion, itm_head" in msg and "objective 'psl' needs fusion" in msg
    assert "itc" not in msg.split("which")[0]


def test_distillation_without_momentum_is_refused():
    from simla_bench.errors import ConfigError

    model = TinyVLP()
    model.capabilities = model.capabilities - {"momentum"}
    with pytest.raises(ConfigError, match="distill: false"):
        MLM("mlm").setup(model, None)
    MLM("mlm", {"distill": False}).setup(model, None)


def test_objective_state_round_trip():
    """Queues (ITC) and the visual codebook (MIM) restore exactly, before or after setup."""
    itc = ITC("itc")
    model, _ = train(itc, steps=3)
    state = itc.state_dict()
    assert state["queue"]["ptr"] == (3 * 12) % 16
    after = ITC("itc")
    after.setup(model, None)
    after.load_state_dict(state)
    before = ITC("itc")
    before.load_state_dict(state)  # restored lazily at the first loss
    batch = make_batch(8, torch.Generator().manual_seed(5))
    losses = [o.loss(make_step(model, batch)).item() for o in (itc, after, before)]
    assert losses[0] == pytest.approx(losses[1], abs=1e-6) == pytest.approx(losses[2], abs=1e-6)
    assert torch.equal(itc.queue.text, after.queue.text) and torch.equal(itc.queue.text, before.queue.text)

    mim = _make(MIM)
    restored = MIM("mim")
    restored.load_state_dict(mim.state_dict())
    restored.setup(TinyVLP(), None)  # no data needed: the codebook came from the state
    images = make_batch(4, torch.Generator().manual_seed(6))["images"]
    assert torch.equal(restored.targets(images), mim.targets(images))


def test_itc_training_retrieves_above_chance():
    model, _ = train(_make(ITC), steps=30)
    batch = make_batch(64, torch.Generator().manual_seed(999))
    with torch.no_grad():
        img = model.image_feat(model.encode_image(batch["images"]))
        txt = model.text_feat(model.encode_text(batch["input_ids"], batch["attention_mask"]), batch["attention_mask"])
    ids = batch["image_ids"]
    best = (img @ txt.T).argmax(1).tolist()
    hit = sum(ids[j] == ids[best[j]] for j in range(64)) / 64
    chance = sum(sum(ids[j] == ids[k] for k in range(64)) / 64 for j in range(64)) / 64
    assert hit > 3 * chance, (hit, chance)


def test_itm_random_negatives_ignore_similarity_and_train(monkeypatch):
    """``negatives: random`` draws uniformly (the sampler sees equal weights) among the
    same allowed pairs, and the ITM loss still goes down; a bad value is refused."""
    import simla_bench.plugins.objectives.itm as itm_module
    from simla_bench.errors import ConfigError

    seen = []
    real = itm_module.sample_hard_negatives

    def spy(sim, same):
        seen.append((sim.clone(), same.clone()))
        return real(sim, same)

    monkeypatch.setattr(itm_module, "sample_hard_negatives", spy)
    for mode in ("hard", "random"):
        seen.clear()
        _, step = _one_step()
        ITM("itm", {"negatives": mode}).loss(step)
        assert len(seen) == 2 and all(s.shape == (8, 8) for s, _ in seen)
        if mode == "random":
            assert all(torch.equal(s, torch.zeros(8, 8)) for s, _ in seen)
        else:
            assert all(s.std() > 0 for s, _ in seen)
    monkeypatch.setattr(itm_module, "sample_hard_negatives", real)
    _, losses = train(_make(ITM, negatives="random"))
    assert sum(losses[-5:]) / 5 < 0.9 * sum(losses[:5]) / 5, losses
    with pytest.raises(ConfigError, match="negatives must be 'hard' or 'random'"):
        ITM("itm", {"negatives": "semi"})
