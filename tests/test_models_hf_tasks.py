"""The built-in tasks on the hf_* models, end to end on the tiny world: each task
through what the family has (docs/models.md) -- ITC-only retrieval for the dual
encoders, ITC + ITM for BLIP, ITM over every pair for ViLT, Grad-CAM grounding on
BLIP's cross-attention, ViLT's own VQA and NLVR2 heads zero-shot, the task's NLVR2
head on ViLT's two pooled states -- and the cells a family cannot run named by the
capability it lacks.  Budgets are a few steps: these check the paths, not scores."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import hf_checkpoints as hc
from simla_bench.assemble import assemble
from simla_bench.config import ModelConfig
from simla_bench.heads import is_trained
from simla_bench.imagefiles import load_image
from simla_bench.registry import get_registry
from simla_bench.testing.plugin_kit import task_context
from simla_bench.training.needs import missing_needs

FAST = {"max_steps": 2, "batch_size": 8, "eval_batch_size": 64}


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def model_of(name, path):
    return assemble(ModelConfig(name=name, options={"path": str(path)})).model


def run_task(task_name, model, world, tmp_path, **options):
    task = get_registry().load("task", task_name)(task_name, options)
    assert not missing_needs({task_name: task}, model.capabilities)
    torch.manual_seed(0)
    return task.run(task_context(model, world, tmp_path))


def gaps(model, **options_by_task):
    reg = get_registry()
    return missing_needs({t: reg.load("task", t)(t, options_by_task.get(t, {}))
                          for t in ("retrieval", "grounding", "vqa", "nlvr2")}, model.capabilities)


def test_clip_retrieval_fine_tunes_itc_alone(tmp_path, tiny_world):
    from simla_bench.tasks.retrieval import RANKING_ITC

    model = model_of("hf_clip", hc.clip(tiny_world, tmp_path / "clip"))
    result = run_task("retrieval", model, tiny_world, tmp_path, eval_splits=["test"], **FAST)
    assert 0 <= result.metrics["test/r_mean"] <= 100 and result.extra["ranking"] == RANKING_ITC
    assert result.extra["finetune"]["steps"] == 2
    assert gaps(model) == {"grounding": ["fusion", "itm_head"], "vqa": ["fusion"],
                           "nlvr2": ["fusion", "two_image_fusion"]}


def test_siglip_zero_shot_retrieval_ranks_as_its_own_logits(tmp_path, tiny_world):
    from simla_bench.tasks.data import ImageBank, tokenize
    from simla_bench.tasks.retrieval import retrieval_scores

    model = model_of("hf_siglip", hc.siglip(tiny_world, tmp_path / "siglip")).eval()
    result = run_task("retrieval", model, tiny_world, tmp_path, mode="zero_shot", eval_splits=["test"])
    assert 0 <= result.metrics["test/r_mean"] <= 100
    split = tiny_world.load("retrieval", "test")
    s_i2t, _ = retrieval_scores(model, split, model.tokenizer, k=12, image_size=model.image_size, max_len=24,
                                batch_size=64, device="cpu", itm=False)
    with torch.no_grad():
        pixels = ImageBank(split.images, model).tensor
        ids, mask = tokenize(model.tokenizer, split.texts, 24)
        logits = model.similarity(model.image_feat(model.encode_image(pixels)),
                                  model.text_feat(model.encode_text(ids, mask)))
    assert (np.argsort(-s_i2t, axis=1, kind="stable") == np.argsort(-logits.numpy(), axis=1, kind="stable")).all()


def test_blip_retrieval_and_gradcam_grounding(tmp_path, tiny_world):
    from simla_bench.tasks.retrieval import RANKING_ITM

    model = model_of("hf_blip", hc.blip(tiny_world, tmp_path / "blip"))
    assert gaps(model) == {}
    result = run_task("retrieval", model, tiny_world, tmp_path, mode="zero_shot", eval_splits=["test"])
    assert result.extra["ranking"] == RANKING_ITM  # the checkpoint's ITM head re-ranks ITC's top k
    grounding = run_task("grounding", model, tiny_world, tmp_path, mode="zero_shot", eval_splits=[])
    assert set(grounding.metrics) == {"val/acc", "testA/acc", "testB/acc", "mean/acc"}
    assert grounding.extra["itm_head"] == "trained" and grounding.extra["gradcam_layer"] == 1


def test_vilt_scores_every_pair_and_answers_with_its_own_heads(tmp_path, tiny_world):
    from simla_bench.tasks.retrieval import RANKING_ITM_ALL, retrieval_scores

    model = model_of("hf_vilt", hc.vilt(tiny_world, tmp_path / "r", head="ViltForImageAndTextRetrieval"))
    split = tiny_world.load("retrieval", "test")
    s_i2t, s_t2i = retrieval_scores(model, split, model.tokenizer, k=12, image_size=model.image_size, max_len=40,
                                    batch_size=64, device="cpu")
    assert (s_i2t > -100).all() and np.allclose(s_i2t, s_t2i.T, atol=1e-5)  # every pair scored by ITM
    retrieval = get_registry().load("task", "retrieval")("retrieval", {"mode": "zero_shot"})
    assert retrieval.ranking(model, task_context(model, tiny_world, tmp_path), "the model") == RANKING_ITM_ALL

    vqa_model = model_of("hf_vilt", hc.vilt(tiny_world, tmp_path / "q", head="ViltForQuestionAnswering"))
    vqa = run_task("vqa", vqa_model, tiny_world, tmp_path, mode="zero_shot", eval_splits=["test"])
    assert vqa.extra["head"] == "the model's own" and vqa.extra["vocab_size"] == len(vqa_model.vqa_answers)
    assert vqa.extra["finetune"]["steps"] == 0 and 0 <= vqa.metrics["test/overall"] <= 100

    nlvr2_model = model_of("hf_vilt", hc.vilt(tiny_world, tmp_path / "n", head="ViltForImagesAndTextClassification"))
    nlvr2 = run_task("nlvr2", nlvr2_model, tiny_world, tmp_path, mode="zero_shot", eval_splits=["test"])
    assert nlvr2.extra["mode"] == "zero_shot" and 0 <= nlvr2.metrics["test/acc"] <= 100
    # a model without the head: zero-shot VQA classification is n/a, naming it
    assert gaps(model, vqa={"mode": "zero_shot"})["vqa"] == ["vqa_head"]


def test_vilt_fine_tunes_itm_alone_and_a_head_on_its_two_pooled_states(tmp_path, tiny_world):
    from simla_bench.tasks.itc_itm import itc_itm_loss

    model = model_of("hf_vilt", hc.vilt(tiny_world, tmp_path / "q"))
    assert not is_trained(model, "itm_head")
    pairs = tiny_world.load("retrieval", "train")[:4]
    images = torch.stack([model.image_transform(False)(load_image(p.image)) for p in pairs])
    tok = model.tokenizer([p.caption for p in pairs], padding="longest", return_tensors="pt")
    loss, parts = itc_itm_loss(model, images, tok.input_ids, tok.attention_mask, torch.arange(4),
                               generator=torch.Generator().manual_seed(0))
    assert set(parts) == {"itm"} and torch.isfinite(loss)
    result = run_task("nlvr2", model, tiny_world, tmp_path, eval_splits=["test"], **FAST)
    assert result.extra["finetune"]["steps"] == 2 and 0 <= result.metrics["test/acc"] <= 100
