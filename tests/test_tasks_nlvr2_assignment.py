"""ALBEF's NLVR2 text-assignment stage: the triples it builds and the stage
inside the NLVR2 task (run, reported, skipped when there are no pairs)."""

from __future__ import annotations

import pytest
import torch

from simla_bench.errors import ConfigError, DataError
from simla_bench.registry import get_registry
from simla_bench.tasks.nlvr2_assignment import IMAGE_1, IMAGE_2, NEITHER, assignment_triples


def test_triples_put_the_caption_image_where_the_label_says():
    image_ids = ["a", "a", "b", "c", "d", "d", "e"]
    caption, first, second, labels = assignment_triples(image_ids, 600, torch.Generator().manual_seed(0))
    assert len(caption) == len(first) == len(second) == len(labels) == 600
    for c, f, s, y in zip(caption, first, second, labels):
        own = image_ids[c]
        shown = (image_ids[f] == own, image_ids[s] == own)
        assert shown == {IMAGE_1: (True, False), IMAGE_2: (False, True), NEITHER: (False, False)}[y]
    # all three classes, roughly uniform
    for y in (IMAGE_1, IMAGE_2, NEITHER):
        assert 150 < labels.count(y) < 250


def test_triples_are_seeded():
    ids = list(range(20))
    a = assignment_triples(ids, 50, torch.Generator().manual_seed(3))
    b = assignment_triples(ids, 50, torch.Generator().manual_seed(3))
    c = assignment_triples(ids, 50, torch.Generator().manual_seed(4))
    assert a == b and a != c


def test_negative_ta_steps_is_refused():
    with pytest.raises(ConfigError, match="ta_steps"):
        get_registry().load("task", "nlvr2")("nlvr2", {"ta_steps": -1})


def test_nlvr2_runs_text_assignment_first(tiny_world, tiny_models, tmp_path):
    from simla_bench.interfaces import TaskContext

    world = tiny_world
    model = tiny_models["single_stream"]          # shared: the task fine-tunes a copy
    tok = model.tokenizer
    task = get_registry().load("task", "nlvr2")("nlvr2", {"ta_steps": 3, "max_steps": 2, "batch_size": 8})
    ctx = TaskContext(model=model, tokenizer=tok, data=world, options=task.options, seed=0, device="cpu",
                      workdir=tmp_path / "work")
    result = task.run(ctx)
    ta = result.extra["text_assignment"]
    assert ta["steps"] == 3 and len(ta["loss_curve"]) == 3
    # a 3-way head starts near ln 3
    assert abs(ta["loss_first"] - 1.0986) < 0.3
    assert result.extra["seconds"]["text_assignment"] > 0

    class NoPairs:
        def load(self, kind, split):
            if kind == "pretrain":
                raise DataError("dataset 'nlvr2' provides nlvr2, not 'pretrain'")
            return world.load(kind, split)

    ctx = TaskContext(model=model, tokenizer=tok, data=NoPairs(), options=task.options, seed=0, device="cpu",
                      workdir=tmp_path / "work2")
    result = task.run(ctx)
    assert "no pretrain/train pairs" in result.extra["text_assignment"]["skipped"]
