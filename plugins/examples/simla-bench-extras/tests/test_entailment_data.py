"""SNLI-VE-style examples from the world: hand cases, and label consistency
with the scene records and the world's own relation semantics."""

from types import SimpleNamespace

import pytest

from simla_bench_extras.entailment_data import LABELS, descriptor, load_split, relation_label

ENT, NEU, CON = (LABELS.index(x) for x in ("entailment", "neutral", "contradiction"))


def _obj(cx, cy, shape="circle", colour="red", size="small"):
    return {"cx": cx, "cy": cy, "shape": shape, "colour": colour, "size": size}


def test_relation_labels_by_hand():
    a, b = _obj(10, 30), _obj(30, 31)   # margin on a 64px image: 3.84 px
    assert relation_label(a, b, "left", 64) == ENT
    assert relation_label(a, b, "right", 64) == CON
    assert relation_label(a, b, "above", 64) == NEU       # 1 px apart vertically
    assert relation_label(_obj(10, 30), _obj(13.83, 0), "left", 64) == NEU
    assert relation_label(_obj(10, 30), _obj(13.84, 0), "left", 64) == ENT   # exactly the margin holds


def test_descriptors_single_out_one_object():
    objs = [_obj(0, 0, size="small"), _obj(0, 0, size="large"), _obj(0, 0, colour="blue")]
    assert descriptor(objs[0], objs) == "small red circle"
    assert descriptor(objs[2], objs) == "blue circle"
    twins = [_obj(0, 0), _obj(5, 5)]
    assert descriptor(twins[0], twins) is None


@pytest.fixture(scope="module")
def splits(simla_tiny_world):
    return {s: load_split(simla_tiny_world.root, s) for s in ("train", "val", "test")}


def test_every_label_occurs_and_splits_use_disjoint_images(splits):
    for split, examples in splits.items():
        assert {e.label for e in examples} == {ENT, NEU, CON}, split
    images = {s: {e.image for e in ex} for s, ex in splits.items()}
    assert not images["train"] & images["val"] and not images["train"] & images["test"]
    assert not images["val"] & images["test"]


def test_labels_agree_with_the_scene_and_the_world_semantics(simla_tiny_world, splits):
    import json

    from simla_bench.plugins.datasets.world import semantics

    meta = {}
    for line in (simla_tiny_world.root / "world_meta.jsonl").read_text().splitlines():
        entry = json.loads(line)
        meta[simla_tiny_world.root / entry["image"]] = entry
    checked = 0
    for e in splits["val"] + splits["test"]:
        entry = meta[e.image]
        objects = [SimpleNamespace(**o) for o in entry["objects"]]
        _, rest = e.hypothesis.split("the ", 1)
        name_a, rest = rest.split(" is ", 1)
        name_b = rest.split(" the ", 1)[1]
        words = {"left": "left of", "right": "right of", "above": "above", "below": "below"}
        assert words[e.relation] in e.hypothesis
        hits_a = [o for o in objects if " ".join(o.__dict__[k] for k in ("size", "colour", "shape")).endswith(name_a)]
        hits_b = [o for o in objects if " ".join(o.__dict__[k] for k in ("size", "colour", "shape")).endswith(name_b)]
        assert len(hits_a) == 1 and len(hits_b) == 1, e.hypothesis     # each name picks out one object
        truth = semantics.relation(hits_a[0], hits_b[0], e.relation, entry["size"])
        assert e.label == {True: ENT, False: CON, None: NEU}[truth], e
        checked += 1
    assert checked > 50


def test_derivation_is_deterministic_and_seeded(simla_tiny_world, splits):
    again = load_split(simla_tiny_world.root, "val")
    assert again == splits["val"]
    other = load_split(simla_tiny_world.root, "val", seed=1)
    assert other != splits["val"] and len(other) == len(again)
