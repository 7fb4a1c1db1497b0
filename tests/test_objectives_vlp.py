"""The objectives on the real VLPModel (plugins/backbones/vlp.py) and the tiny generated world."""

import pytest
import torch

from simla_bench.plugins.objectives.itc import ITC
from simla_bench.plugins.objectives.itm import ITM
from simla_bench.plugins.objectives.psl import PSL
from simla_bench.plugins.objectives.xmm import XMM

SIZE = 32


@pytest.fixture(scope="module")
def setup_world(tmp_path_factory):
    from simla_bench.plugins.models.vlp_options import BackboneSpec as BackboneConfig, VLPOptions as ModelConfig
    from simla_bench.plugins.backbones.tokenizer import train_wordpiece
    from simla_bench.plugins.backbones.vlp import build_model
    from simla_bench.testing.world import make_tiny_world

    world = make_tiny_world(tmp_path_factory.mktemp("world"), image_size=SIZE, pretrain=40)
    records = world.load("pretrain", "train")
    tok = train_wordpiece([r.caption for r in records], vocab_size=200)
    cfg = ModelConfig(
        image=BackboneConfig(name="vit_world_tiny",
                             options={"img_size": SIZE, "embed_dim": 64, "depth": 1, "num_heads": 2}),
        text=BackboneConfig(name="bert_world_tiny",
                            options={"config": {"hidden_size": 64, "num_hidden_layers": 2,
                                                "num_attention_heads": 2, "intermediate_size": 128}}),
        embed_dim=32, queue_size=32)
    return records, tok, cfg, build_model


def _batch(records, tok, n=8):
    from simla_bench.plugins.datasets.images import image_transform, load_image

    tf = image_transform(SIZE, train=False)
    recs = records[:n]
    text = tok([r.caption for r in recs], padding="longest", truncation=True, max_length=25, return_tensors="pt")
    return {"images": torch.stack([tf(load_image(r.image)) for r in recs]), "input_ids": text["input_ids"],
            "attention_mask": text["attention_mask"], "image_ids": [r.image_id for r in recs],
            "captions": [r.caption for r in recs]}


def _model(setup_world):
    records, tok, cfg, build_model = setup_world
    torch.manual_seed(0)
    model = build_model(cfg, tok)
    model.momentum_model()
    return model


def test_simla_objective_set_on_real_model(setup_world):
    from simla_bench.training.step_context import StepContext

    records, tok, cfg, _ = setup_world
    model = _model(setup_world)
    objs = {"itc": ITC("itc"), "itm": ITM("itm"), "xmm": XMM("xmm", {"codebook_size": 16, "fit_images": 20}),
            "psl": PSL("psl", {"top_k_keywords": 50})}
    for o in objs.values():
        o.setup(model, records)
    assert model.mim_vocab_size == 16 and model.momentum_model().mim_vocab_size == 16
    assert len(objs["psl"].keyword_ids) == 50
    step = StepContext(batch=_batch(records, tok), model=model, momentum=model.momentum_model(), alpha=0.4, step=0)
    losses = {n: o.loss(step) for n, o in objs.items()}
    assert all(torch.isfinite(v) and v.ndim == 0 for v in losses.values()), losses
    sum(losses.values()).backward()
    assert set(step.computed.values()) == {1}
    assert all(p.grad is None for p in model.momentum_model().parameters())
    assert objs["itc"].queue.ptr == 8
    assert objs["xmm"].last_parts["text"] > 0 and objs["xmm"].last_parts["image"] > 0


def test_psl_trains_only_the_visual_side_of_the_real_model(setup_world):
    from simla_bench.training.step_context import StepContext

    records, tok, _, _ = setup_world
    model = _model(setup_world)
    psl = PSL("psl")
    psl.setup(model, records)
    step = StepContext(batch=_batch(records, tok), model=model, momentum=model.momentum_model(), alpha=0.4, step=0)
    psl.loss(step).backward()
    got = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert got and all(n.startswith(("visual_encoder.", "vision_proj.", "concept_head.")) for n in got), got
    assert any(n.startswith("visual_encoder.") for n in got)


@pytest.mark.slow
def test_simla_set_trains_through_the_trainer(setup_world, tmp_path):
    """End to end: the trainer with ITC+ITM+XMM+PSL on the tiny world; every loss goes down."""
    from simla_bench.config import ExperimentConfig, PretrainConfig
    from simla_bench.training import pretrain

    records, tok, cfg, _ = setup_world
    model = _model(setup_world)
    exp = ExperimentConfig(model={"name": "vlp", "options": cfg.model_dump(mode="json")}, device="cpu",
                           pretrain=PretrainConfig(steps=60, batch_size=8, lr=1e-3, warmup_steps=5,
                                                   checkpoint_every=1000, augment=False, alpha_warmup_steps=5))
    objs = {"itc": (ITC("itc"), 1.0), "itm": (ITM("itm"), 1.0),
            "xmm": (XMM("xmm", {"codebook_size": 16, "fit_images": 20}), 1.0), "psl": (PSL("psl"), 1.0)}
    result = pretrain(exp, objs, model, records, tmp_path, seed=0)
    curve = result.loss_curve
    for name in objs:
        first = sum(c[name] for c in curve[:10]) / 10
        last = sum(c[name] for c in curve[-10:]) / 10
        assert last < first, (name, first, last)
