"""Every label of the generated world is true of the rendered scene: object records match the
pixels, grounding boxes cover their referents, VQA answers recomputed from the scene by an
independent question parser, NLVR2 labels from recounting, captions true of their image (and
the twin-discriminative captions false of the twin), and the compositional split held out."""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from simla_bench.plugins.datasets.world import semantics as sem
from simla_bench.plugins.datasets.world.language import nlvr2_truth
from simla_bench.plugins.datasets.world.meta import META_FILE, read_world_meta
from simla_bench.plugins.datasets.world.scene import Obj, object_mask
from simla_bench.plugins.datasets.world.vocab import (COLOURS, GROUP_A, GROUP_B, HELD_OUT, NUMBER_WORDS, SHAPE_PLURALS,
                                                      SHAPES)


@pytest.fixture(scope="module")
def world(tiny_world):
    return tiny_world            # the session's (tests/conftest.py); read only


@pytest.fixture(scope="module")
def meta(world):
    out = {}
    for record in read_world_meta(world.root):  # the typed ground truth (docs/world.md)
        rec = record.to_dict()
        rec["objs"] = [Obj(o.shape, o.colour, o.size, o.cx, o.cy, o.r, o.box) for o in record.objects]
        out[str((world.root / rec["image"]).resolve())] = rec
    return out


def test_world_meta_lines_are_exactly_the_documented_record(world):
    """Every line of world_meta.jsonl parses strictly into ImageMeta (no key
    missing, none unknown) and writes back byte for byte."""
    lines = [line for line in (world.root / META_FILE).read_text().splitlines() if line]
    records = list(read_world_meta(world.root))
    assert len(records) == len(lines) > 0
    for line, record in zip(lines, records):
        assert json.dumps(record.to_dict(), separators=(",", ":")) == line
    sections = {r.section.split("/")[0] for r in records}
    assert sections == {"pretrain", "retrieval", "grounding", "vqa", "nlvr2"}
    kinds = Counter(t.meaning.get("kind", "nlvr2" if "form" in t.meaning else "?") for r in records for t in r.texts)
    assert set(kinds) == {"exists", "rel", "count", "ref", "vqa", "nlvr2"}
    assert all((t.referent is not None) == (t.meaning.get("kind") == "ref") for r in records for t in r.texts)


def test_a_line_that_is_not_the_record_is_one_line_naming_the_file_and_line(tmp_path, world):
    from simla_bench.errors import DataError

    good = (world.root / META_FILE).read_text().splitlines()[0]
    bad = json.loads(good)
    bad["objects"][0].pop("box")
    (tmp_path / META_FILE).write_text(good + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(DataError, match=r"world_meta.jsonl, line 2: an object lacks 'box'"):
        list(read_world_meta(tmp_path))


def scene_of(meta, path: Path) -> dict:
    return meta[str(Path(path).resolve())]


def test_objects_match_pixels(world, meta):
    """Each recorded object is drawn in its colour where it is visible, inside its box."""
    checked = 0
    for key, rec in list(meta.items())[::7]:
        img = np.asarray(Image.open(key).convert("RGB")).astype(int)
        size = rec["size"]
        covered = np.zeros((size, size), bool)
        for o in reversed(rec["objs"]):  # later objects are drawn on top
            mask = object_mask(o, size)
            x, y, w, h = o.box
            ys, xs = np.nonzero(mask)
            assert xs.min() >= x and xs.max() < x + w and ys.min() >= y and ys.max() < y + h
            visible = mask & ~covered
            assert visible.sum() >= 0.5 * mask.sum(), "objects overlap only a little"
            err = np.abs(img[visible] - np.array(COLOURS[o.colour])).max(axis=1)
            assert np.mean(err <= 12 + 9) > 0.97, (key, o)
            covered |= mask
            checked += 1
    assert checked > 50


def test_grounding_boxes_cover_referents(world, meta):
    location_words = {"left", "right", "top", "bottom", "above", "below", "middle", "corner", "center"}
    for split in ("train", "val", "testA", "testB", "test_comp"):
        recs = world.load("grounding", split)
        assert recs
        for r in recs:
            rec = scene_of(meta, r.image)
            texts = [t for t in rec["texts"] if t["text"] == r.sentence]
            assert texts, r
            target = rec["objs"][texts[0]["referent"]]
            assert r.box == tuple(float(v) for v in target.box)
            assert r.box in r.proposals and len(r.proposals) == len(rec["objs"])
            # the expression's meaning singles out the referent, by appearance only
            assert sem.unique(rec["objs"], texts[0]["meaning"]["desc"]) is target
            assert not set(r.sentence.split()) & location_words
            assert r.category == target.shape
            if split == "testA":
                assert target.shape in GROUP_A
            if split == "testB":
                assert target.shape in GROUP_B
            if split == "test_comp":
                assert target.combo in HELD_OUT


_COLOUR = "|".join(COLOURS)
_SHAPE = "|".join(SHAPES)
_PLURAL = {v: k for k, v in SHAPE_PLURALS.items()}


def _desc(words: str) -> dict:
    d = {}
    for w in words.split():
        if w in COLOURS:
            d["colour"] = w
        elif w in SHAPES:
            d["shape"] = w
        elif w in _PLURAL:
            d["shape"] = _PLURAL[w]
        elif w in ("small", "large"):
            d["size"] = w
        elif w not in ("objects", "shapes", "object", "shape"):
            raise AssertionError(f"unexpected word {w!r}")
    return d


def _one(objs, desc):
    hits = [o for o in objs if sem.matches(o, desc)]
    assert len(hits) == 1, (desc, hits)
    return hits[0]


def answer(question: str, objs, size: int) -> str:
    """An independent reading of the world's question templates."""
    if m := re.fullmatch(r"how many (.+?) are (?:there|in the picture)\?", question):
        return str(sem.count(objs, _desc(m[1])))
    if m := re.fullmatch(r"is there an? (.+)\?", question):
        return "yes" if sem.count(objs, _desc(m[1])) else "no"
    if m := re.fullmatch(r"are there any (.+)\?", question):
        return "yes" if sem.count(objs, _desc(m[1])) else "no"
    if m := re.fullmatch(r"what color is the (.+)\?", question):
        return _one(objs, _desc(m[1])).colour
    if m := re.fullmatch(r"what shape is the (.+)\?", question):
        return _one(objs, _desc(m[1])).shape
    if m := re.fullmatch(r"what size is the (.+)\?", question):
        return _one(objs, _desc(m[1])).size
    if m := re.fullmatch(r"is the (.+?) (left of|right of|above|below) the (.+)\?", question):
        a, b = _one(objs, _desc(m[1])), _one(objs, _desc(m[3]))
        dx, dy = b.cx - a.cx, b.cy - a.cy
        d = {"left of": dx, "right of": -dx, "above": dy, "below": -dy}[m[2]]
        assert abs(d) >= sem.margin(size)
        return "yes" if d > 0 else "no"
    raise AssertionError(f"unknown question form: {question}")


def test_vqa_answers_match_scene(world, meta):
    types = Counter()
    for split in ("train", "val", "test", "test_comp"):
        vs = world.load("vqa", split)
        for q in vs.records:
            rec = scene_of(meta, q.image)
            truth = answer(q.question, rec["objs"], rec["size"])
            assert q.multiple_choice_answer == truth, q
            assert len(q.answers) == 10 and Counter(q.answers).most_common(1)[0][0] == truth
            types[q.answer_type] += 1
            if split == "test_comp":
                assert any(o.combo in HELD_OUT for o in rec["objs"])
    assert set(types) == {"yes/no", "number", "other"}
    # annotator variation exists (so the 10-answer rule matters): '2' vs 'two', synonyms
    all_answers = [a for s in ("train",) for q in world.load("vqa", s).records for a in q.answers]
    assert any(a in NUMBER_WORDS for a in all_answers)
    assert sum(len(set(q.answers)) > 1 for q in world.load("vqa", "train").records) > 20


def test_nlvr2_labels_match_scene(world, meta):
    for split in ("train", "dev", "test", "test_comp"):
        recs = world.load("nlvr2", split)
        by_sentence = defaultdict(list)
        for r in recs:
            left, right = scene_of(meta, r.left), scene_of(meta, r.right)
            m = left["texts"][0]["meaning"]
            assert left["texts"][0]["text"] == r.sentence
            L, R = sem.count(left["objs"], m["thing"]), sem.count(right["objs"], m["thing"])
            assert nlvr2_truth(m, L, R) == r.label, (r, L, R)
            set_id = r.identifier.split("-")[1]
            by_sentence[set_id].append(r.label)
            if split == "test_comp":
                assert (m["thing"]["colour"], m["thing"]["shape"]) in HELD_OUT
        for labels in by_sentence.values():
            assert sorted(labels) == [False, False, True, True]


def test_captions_true_and_twins_discriminative(world, meta):
    pairs = world.load("pretrain", "train")
    for p in pairs:
        rec = scene_of(meta, p.image)
        meanings = [t["meaning"] for t in rec["texts"] if t["text"] == p.caption]
        assert meanings and sem.holds(meanings[0], rec["objs"], rec["size"]), p
        assert not sem.says_everything(meanings[0], rec["objs"]), p
        for o in rec["objs"]:
            assert o.combo not in HELD_OUT  # held-out combinations never appear in pretraining
    for split in ("val", "test", "test_comp"):
        rs = world.load("retrieval", split)
        assert all(len(t) == 5 for t in rs.img2txt)
        for i, image in enumerate(rs.images):
            rec = scene_of(meta, image)
            for t in rec["texts"]:
                assert sem.holds(t["meaning"], rec["objs"], rec["size"]), t
            twin = scene_of(meta, rs.images[i ^ 1])
            first = rec["texts"][0]["meaning"]
            assert not sem.holds(first, twin["objs"], twin["size"]), "twin caption must be false of the twin"
            if split == "test_comp":  # every caption names a held-out colour-shape pair
                assert any(o.combo in HELD_OUT for o in rec["objs"])
                for t in rec["texts"]:
                    m = t["meaning"]
                    descs = m.get("objs") or [m[k] for k in ("a", "b", "obj") if k in m]
                    assert any((d.get("colour"), d.get("shape")) in HELD_OUT for d in descs), t
            else:
                assert not any(o.combo in HELD_OUT for o in rec["objs"])


def test_says_everything_on_hand_made_scenes():
    a = Obj("circle", "red", "small", 10, 10, 5)
    b = Obj("square", "blue", "large", 40, 40, 9)
    full_a = {"shape": "circle", "colour": "red", "size": "small"}
    full_b = {"shape": "square", "colour": "blue", "size": "large"}
    assert sem.says_everything({"kind": "exists", "objs": [full_a]}, [a])
    assert not sem.says_everything({"kind": "exists", "objs": [{"shape": "circle", "colour": "red"}]}, [a])
    assert not sem.says_everything({"kind": "exists", "objs": [full_a]}, [a, b])
    assert sem.says_everything({"kind": "rel", "a": full_a, "rel": "left", "b": full_b}, [a, b])
    assert sem.holds({"kind": "rel", "a": full_a, "rel": "above", "b": full_b}, [a, b], 64)
    assert not sem.holds({"kind": "rel", "a": full_a, "rel": "right", "b": full_b}, [a, b], 64)
    assert sem.holds({"kind": "count", "obj": {"colour": "blue"}, "n": 1}, [a, b], 64)
    assert not sem.holds({"kind": "exists", "objs": [{"shape": "circle"}, {"shape": "circle"}]}, [a, b], 64)


def test_caption_text_says_what_meaning_says(world, meta):
    for rec in list(meta.values())[:200]:
        for t in rec["texts"]:
            m = t["meaning"]
            descs = m.get("objs") or [m[k] for k in ("a", "b", "obj", "desc", "thing") if k in m]
            for d in descs:
                if "shape" in d and d["shape"] in ("triangle", "star", "hexagon"):  # no synonyms for these
                    assert d["shape"] in t["text"] or SHAPE_PLURALS[d["shape"]] in t["text"]
            if m.get("kind") == "rel":
                word = {"left": "left", "right": "right", "above": ("above", "over"), "below": ("below", "under", "beneath")}
                w = word[m["rel"]]
                assert any(x in t["text"] for x in (w if isinstance(w, tuple) else (w,)))
