"""Zero-shot retrieval re-ranks with the ITM head only when that head was
trained (an objective, a fine-tuning or a loaded checkpoint filled it):
otherwise it ranks by ITC similarities alone and says so (issue 16, item 6).
The trainer and the checkpoint loader record trained heads (simla_bench.heads)."""

from __future__ import annotations

import copy

import pytest
import torch

from simla_bench.heads import is_trained, mark_trained, trained_heads


def _zero_shot(model, world, tmp_path):
    from simla_bench.tasks.retrieval import RetrievalTask
    from simla_bench.testing.plugin_kit import task_context

    task = RetrievalTask("retrieval", {"mode": "zero_shot", "k": 10, "eval_splits": []})
    logged: list[str] = []
    ctx = task_context(model, world, tmp_path, options=task.options)
    ctx.log = logged.append
    return task.run(ctx), logged


def _expected(model, world, itm: bool) -> dict[str, float]:
    """test/* recall of the ITC-only (itm=False) or ITM re-ranked scores, computed directly."""
    from simla_bench.tasks.metrics.retrieval import itm_eval
    from simla_bench.tasks.data import load_split
    from simla_bench.tasks.retrieval import METRICS, retrieval_scores

    split = load_split(world, "retrieval", "test", True, [])
    model = copy.deepcopy(model)
    if itm:
        s_i2t, s_t2i = retrieval_scores(model, split, model.tokenizer, k=10, image_size=model.image_size,
                                        max_len=model.max_text_len, batch_size=64, device="cpu", itm=True)
    else:  # the ITC similarities, no re-ranking
        from simla_bench.tasks.data import ImageBank, encode_images, encode_texts, tokenize

        model.eval()
        with torch.no_grad():
            bank = ImageBank(split.images, model)
            ie = encode_images(model, bank.tensor[bank.index(split.images)], 64, "cpu")
            ids, mask = tokenize(model.tokenizer, split.texts, model.max_text_len, "cpu")
            sims = (model.image_feat(ie) @ model.text_feat(encode_texts(model, ids, mask, 64), mask).t()).float()
        s_i2t, s_t2i = sims.numpy(), sims.t().numpy()
    result = itm_eval(s_i2t, s_t2i, split.txt2img, split.img2txt)
    return {f"test/{m}": float(result[m]) for m in METRICS}


def test_untrained_itm_head_ranks_by_itc_and_says_so(simla_tiny_model, simla_tiny_world, tmp_path):
    assert not is_trained(simla_tiny_model, "itm_head")  # a freshly built model: no head trained
    result, logged = _zero_shot(simla_tiny_model, simla_tiny_world, tmp_path)
    assert result.extra["ranking"] == "itc (no trained ITM head)"
    assert any("no trained ITM head" in line and "ITC similarities alone" in line for line in logged), logged
    want = _expected(simla_tiny_model, simla_tiny_world, itm=False)
    assert result.metrics == pytest.approx(want, abs=1e-9)
    # the untrained head's re-ranking would have given other numbers (so the test tells them apart)
    assert _expected(simla_tiny_model, simla_tiny_world, itm=True) != pytest.approx(want, abs=1e-9)


def test_trained_itm_head_re_ranks(simla_tiny_model, simla_tiny_world, tmp_path):
    mark_trained(simla_tiny_model, {"itm_head"})
    result, logged = _zero_shot(simla_tiny_model, simla_tiny_world, tmp_path)
    assert result.extra["ranking"].startswith("itm")
    assert not any("no trained ITM head" in line for line in logged)
    assert result.metrics == pytest.approx(_expected(simla_tiny_model, simla_tiny_world, itm=True), abs=1e-9)


def test_trainer_marks_the_heads_its_objectives_train(tmp_path):
    from simla_bench.training import pretrain
    from helpers.training_toys import ToyITC, toy_cfg, toy_model, toy_records

    class HeadTrainer(ToyITC):
        trains = frozenset({"toy_head"})

    records = toy_records(tmp_path / "data")
    plain = pretrain(toy_cfg(steps=1), {"toy_itc": (ToyITC(), 1.0)}, toy_model(), records, tmp_path / "a", seed=0)
    assert trained_heads(plain.model) == frozenset()
    marked = pretrain(toy_cfg(steps=1), {"toy_itc": (ToyITC(), 1.0), "head": (HeadTrainer(), 1.0)}, toy_model(),
                      records, tmp_path / "b", seed=0)
    assert is_trained(marked.model, "toy_head")
    saved = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)
    assert saved["trained_heads"] == ["toy_head"]  # a checkpoint load reads it back (next test)


def test_itm_objective_declares_its_head():
    from simla_bench.registry import get_registry

    reg = get_registry()
    assert reg.load("objective", "itm").trains == frozenset({"itm_head"})
    assert "itm_head" not in reg.load("objective", "itc").trains


def test_checkpoint_load_marks_the_heads_it_filled(simla_tiny_model, tmp_path):
    from simla_bench.plugins.models.checkpoint_load import load_checkpoint

    src = simla_tiny_model
    base = {"model": src.state_dict(), "momentum": src.momentum_model().state_dict(), "objectives": {}}
    for recorded, want in (([], set()), (["itm_head"], {"itm_head"}), (None, {"itm_head", "mlm_head"})):
        state = dict(base) if recorded is None else {**base, "trained_heads": recorded}
        torch.save(state, tmp_path / "ck.pt")
        dst = copy.deepcopy(simla_tiny_model)
        report = load_checkpoint(dst, tmp_path / "ck.pt")
        # a run's checkpoint says which heads were trained; one without the record: every head it filled
        assert want <= trained_heads(dst) and ("itm_head" in want) == is_trained(dst, "itm_head"), recorded
        assert set(report.trained_heads) == trained_heads(dst)


def test_released_albef_checkpoint_has_a_trained_itm_head(tmp_path):
    """An ALBEF retrieval checkpoint carries its ITM head; a VQA one has none."""
    from simla_bench.plugins.backbones.tokenizer import train_wordpiece
    from simla_bench.plugins.models.checkpoint_load import load_checkpoint
    from test_checkpoint_load import CAPTIONS, make, to_official

    tok = train_wordpiece(CAPTIONS, vocab_size=120)
    src = make(tok, "split", seed=0)
    torch.save({"model": to_official(src, "albef_retrieval")}, tmp_path / "ret.pth")
    dst = make(tok, "split", seed=1)
    load_checkpoint(dst, tmp_path / "ret.pth")
    assert is_trained(dst, "itm_head")


def test_zero_shot_grounding_says_when_its_itm_head_is_untrained(simla_tiny_model, simla_tiny_world, tmp_path):
    from simla_bench.tasks.grounding import GroundingTask
    from simla_bench.testing.plugin_kit import task_context

    def run(model):
        task = GroundingTask("grounding", {"mode": "zero_shot", "eval_splits": []})
        logged: list[str] = []
        ctx = task_context(model, simla_tiny_world, tmp_path, options=task.options)
        ctx.log = logged.append
        return task.run(ctx), logged

    model = copy.deepcopy(simla_tiny_model)
    result, logged = run(model)
    assert result.extra["itm_head"] == "untrained" and any("never trained" in line for line in logged)
    mark_trained(model, {"itm_head"})
    result, logged = run(model)
    assert result.extra["itm_head"] == "trained" and not any("never trained" in line for line in logged)


def test_itc_itm_fine_tuning_marks_the_itm_head_trained(simla_tiny_model, simla_tiny_world, tmp_path):
    from simla_bench.tasks.itc_itm_finetune import finetune_itc_itm
    from simla_bench.tasks.retrieval import RetrievalTask
    from simla_bench.testing.plugin_kit import task_context

    model = copy.deepcopy(simla_tiny_model)
    task = RetrievalTask("retrieval", {"max_steps": 1, "batch_size": 4})
    records = simla_tiny_world.load("retrieval", "train")
    ctx = task_context(model, simla_tiny_world, tmp_path, options=task.options)
    finetune_itc_itm(model, ctx, task.options, [r.image for r in records], [r.caption for r in records],
                     [r.image_id for r in records], "cpu", torch.Generator().manual_seed(0), "retrieval")
    assert is_trained(model, "itm_head")
