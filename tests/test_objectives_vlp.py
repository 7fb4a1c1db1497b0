"""The objectives on the real VLPModel (plugins/backbones/vlp.py) and the tiny generated world."""

import pytest
import torch

from simla_bench.plugins.objectives.itc import ITC
from simla_bench.plugins.objectives.itm import ITM
from simla_bench.plugins.objectives.psl import PSL
from simla_bench.plugins.objectives.xmm import XMM



@pytest.fixture(scope="module")
def setup_world(tiny_world):
    """The session's tiny world (tests/conftest.py), and the tiny model with an ITC queue (32
    entries; the shared models have none): its pretraining pairs, tokenizer, options and template."""
    from simla_bench.testing.plugin_kit import TINY_MODEL, tiny_model

    from types import SimpleNamespace

    return SimpleNamespace(world=tiny_world, records=tiny_world.load("pretrain", "train"),
                           options={**TINY_MODEL, "queue_size": 32}, template=tiny_model(tiny_world, queue_size=32))


def _batch(setup_world, model):
    from simla_bench.testing.plugin_kit import make_batch

    return make_batch(model, setup_world.world, size=8)


def _model(setup_world):
    import copy

    torch.manual_seed(0)
    model = copy.deepcopy(setup_world.template)
    model.momentum_model()
    return model


def test_simla_objective_set_on_real_model(setup_world):
    from simla_bench.training.step_context import StepContext

    records = setup_world.records
    model = _model(setup_world)
    objs = {"itc": ITC("itc"), "itm": ITM("itm"), "xmm": XMM("xmm", {"codebook_size": 16, "fit_images": 20}),
            "psl": PSL("psl", {"top_k_keywords": 50})}
    for o in objs.values():
        o.setup(model, records)
    assert model.mim_vocab_size == 16 and model.momentum_model().mim_vocab_size == 16
    assert len(objs["psl"].keyword_ids) == 50
    step = StepContext(batch=_batch(setup_world, model), model=model, momentum=model.momentum_model(), alpha=0.4,
                       step=0)
    losses = {n: o.loss(step) for n, o in objs.items()}
    assert all(torch.isfinite(v) and v.ndim == 0 for v in losses.values()), losses
    sum(losses.values()).backward()
    assert set(step.computed.values()) == {1}
    assert all(p.grad is None for p in model.momentum_model().parameters())
    assert objs["itc"].queue.ptr == 8
    assert objs["xmm"].last_parts["text"] > 0 and objs["xmm"].last_parts["image"] > 0


def test_psl_trains_only_the_visual_side_of_the_real_model(setup_world):
    from simla_bench.training.step_context import StepContext

    model = _model(setup_world)
    psl = PSL("psl")
    psl.setup(model, setup_world.records)
    step = StepContext(batch=_batch(setup_world, model), model=model, momentum=model.momentum_model(), alpha=0.4,
                       step=0)
    psl.loss(step).backward()
    got = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert got and all(n.startswith(("visual_encoder.", "vision_proj.", "concept_head.")) for n in got), got
    assert any(n.startswith("visual_encoder.") for n in got)


@pytest.mark.slow
def test_simla_set_trains_through_the_trainer(setup_world, tmp_path):
    """End to end: the trainer with ITC+ITM+XMM+PSL on the tiny world; every loss goes down."""
    from simla_bench.config import ExperimentConfig, PretrainConfig
    from simla_bench.training import pretrain

    records = setup_world.records
    model = _model(setup_world)
    exp = ExperimentConfig(model={"name": "vlp", "options": setup_world.options}, device="cpu",
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
