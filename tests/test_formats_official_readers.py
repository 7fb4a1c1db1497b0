"""The world's files are read by the official-format readers of simla_bench.tasks.metrics (an
independent implementation) exactly as by our loaders, and the official metrics behave as
designed on them: NLVR2 consistency groups are the 4 pairs of one statement, and the VQA
10-answer rule separates a canonical answer from an annotator variant."""

from __future__ import annotations

from collections import defaultdict

import pytest

from simla_bench.plugins.datasets.world import presets as P

official = pytest.importorskip("simla_bench.tasks.metrics.official_files")


@pytest.fixture(scope="module")
def world(tiny_world):
    return tiny_world            # the session's (tests/conftest.py)


def test_nlvr2_labels_and_consistency_groups(world):
    from simla_bench.tasks.metrics.nlvr2 import sentence_key

    labels = official.read_nlvr2_labels(world.root / P.nlvr2_file("dev"))
    recs = world.load("nlvr2", "dev")
    assert labels == {r.identifier: r.label for r in recs}
    groups = defaultdict(list)
    for r in recs:
        groups[sentence_key(r.identifier)].append(r)
    assert all(len(g) == 4 and len({r.sentence for r in g}) == 1 for g in groups.values())


def test_vqa_annotations_and_ten_answer_rule(world):
    from simla_bench.tasks.metrics.vqa import question_accuracy

    qf, af = P.vqa_files("val")
    anns = official.read_vqa_annotations(world.root / af, world.root / qf)
    recs = world.load("vqa", "val").records
    assert len(anns) == len(recs)
    for q in recs:
        assert question_accuracy(q.multiple_choice_answer, q.answers) == 1.0
    varied = [q for q in recs if any(a != q.multiple_choice_answer for a in q.answers)]
    assert varied
    scores = [question_accuracy(next(a for a in q.answers if a != q.multiple_choice_answer), q.answers) for q in varied]
    assert min(scores) < 1.0  # a minority answer is not worth a majority one


def test_refer_files_read_by_metrics_reader(world):
    units = official.read_refer(world.root / P.REFS_FILE, world.root / P.INSTANCES_FILE)
    ours = [r for s in P.GROUNDING_SPLITS for r in world.load("grounding", s)]
    assert sorted((u.ref_id, u.split, u.box) for u in units) == sorted(
        (r.ref_id, s, r.box) for s in P.GROUNDING_SPLITS for r in world.load("grounding", s))
    assert len(units) == len(ours)
