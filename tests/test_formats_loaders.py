"""The official-format loaders: the world's files round-trip through the same sources a user
points at real data, and every kind of bad record is one clear DataError naming the file, the
record and the problem (or, with skip_bad, a counted skip)."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import pytest

from simla_bench.errors import DataError
from simla_bench.plugins.datasets.sources import NLVR2, AlbefPretrain, CocoKarpathy, Flickr30k, RefCOCOPlus, VQAv2
from simla_bench.plugins.datasets.world import presets as P


@pytest.fixture(scope="module")
def world(tiny_world):
    return tiny_world            # the session's (tests/conftest.py); read only, files are written under tmp_path


def _bad_png(tmp_path: Path) -> str:
    p = tmp_path / "broken.png"
    p.write_bytes(b"\x89PNG\r\n\x1a\nthis is not really a png")
    return str(p)


# --------------------------------------------------------------------------- round trips
def test_world_round_trips_through_real_sources(world):
    r = world.root
    ret = Flickr30k("flickr30k", {"image_root": str(r), **{f"{s}_file": str(r / P.retrieval_file(s))
                                                           for s in P.RETRIEVAL_SPLITS}})
    assert ret.load("retrieval", "test") == world.load("retrieval", "test")
    split = ret.load("retrieval", "test")
    assert len(split.texts) == 5 * len(split.images) and all(split.img2txt[split.txt2img[t]].count(t) == 1
                                                             for t in range(len(split.texts)))
    assert ret.load("retrieval", "train") == world.load("retrieval", "train")
    pre = AlbefPretrain("p", {"files": [str(r / P.PRETRAIN_FILE)], "image_root": str(r)})
    assert pre.load("pretrain", "train") == world.load("pretrain", "train")
    ref = RefCOCOPlus("r", {"refs_file": str(r / P.REFS_FILE), "instances_file": str(r / P.INSTANCES_FILE),
                            "proposals_file": str(r / P.PROPOSALS_FILE), "image_root": str(r)})
    for s in P.GROUNDING_SPLITS:
        assert ref.load("grounding", s) == world.load("grounding", s)
    q, a = P.vqa_files("val")
    vqa = VQAv2("v", {"val_questions": str(r / q), "val_annotations": str(r / a), "image_root": str(r),
                      "image_pattern": P.VQA_PATTERN})
    assert vqa.load("vqa", "val").records == world.load("vqa", "val").records
    nl = NLVR2("n", {"dev_file": str(r / P.nlvr2_file("dev")), "dev_images": str(r / P.nlvr2_images("dev"))})
    assert nl.load("nlvr2", "dev") == world.load("nlvr2", "dev")
    for recs in (world.load("pretrain", "train"), world.load("nlvr2", "dev")):
        for rec in recs:
            for f in ("image", "left", "right"):
                if hasattr(rec, f):
                    assert getattr(rec, f).is_absolute() and getattr(rec, f).is_file()


def test_official_variants_are_read(world, tmp_path):
    """ALBEF list captions, ALBEF-preprocessed NLVR2 'images', MAttNet-style detection lists."""
    r = world.root
    recs = json.loads((r / P.PRETRAIN_FILE).read_text())[:4]
    f = tmp_path / "pre.json"
    f.write_text(json.dumps([{"image": recs[0]["image"], "caption": [recs[0]["caption"], recs[1]["caption"]]}]))
    out = AlbefPretrain("p", {"files": [str(f)], "image_root": str(r)}).load("pretrain", "train")
    assert [p.caption for p in out] == [recs[0]["caption"], recs[1]["caption"]]
    line = json.loads((r / P.nlvr2_file("dev")).read_text().splitlines()[0])
    f = tmp_path / "nl.json"
    f.write_text(json.dumps({"images": [line["left_url"], line["right_url"]], "sentence": "s", "label": True}) + "\n")
    (ex,) = NLVR2("n", {"dev_file": str(f), "image_root": str(r)}).load("nlvr2", "dev")
    assert ex.left == (r / line["left_url"]).resolve() and ex.label is True
    props = json.loads((r / P.PROPOSALS_FILE).read_text())
    refs = pickle.loads((r / P.REFS_FILE).read_bytes())
    dets = [{"image_id": ref["image_id"], "box": b, "score": 1.0} for ref in refs for b in props[str(ref["ref_id"])]]
    f = tmp_path / "dets.json"
    f.write_text(json.dumps(dets))
    src = RefCOCOPlus("r", {"refs_file": str(r / P.REFS_FILE), "instances_file": str(r / P.INSTANCES_FILE),
                            "proposals_file": str(f), "image_root": str(r)})
    assert src.load("grounding", "val") == world.load("grounding", "val")


# ------------------------------------------------------------------------------ bad records
def _raises(fn, *needles):
    with pytest.raises(DataError) as info:
        fn()
    line = info.value.one_line()
    assert "\n" not in line
    for n in needles:
        assert n in line, (n, line)
    return line


def test_albef_pretrain_rejects_bad_records(world, tmp_path):
    r = world.root
    good = json.loads((r / P.PRETRAIN_FILE).read_text())[:3]
    cases = {
        "missing field 'caption'": {"image": good[0]["image"]},
        "does not exist": {"image": "images/nowhere.png", "caption": "a red circle"},
        "does not decode": {"image": _bad_png(tmp_path), "caption": "a red circle"},
        "not a non-empty string": {"image": good[0]["image"], "caption": ""},
    }
    for problem, bad in cases.items():
        f = tmp_path / "pre.json"
        f.write_text(json.dumps(good[:1] + [bad] + good[1:]))
        src = AlbefPretrain("p", {"files": [str(f)], "image_root": str(r)})
        _raises(lambda: src.load("pretrain", "train"), str(f), "record 1", problem)
        skip = AlbefPretrain("p", {"files": [str(f)], "image_root": str(r), "skip_bad": True})
        assert len(skip.load("pretrain", "train")) == 3 and skip.last_report.skipped == 1
    f.write_text("{not json")
    _raises(lambda: AlbefPretrain("p", {"files": [str(f)]}).load("pretrain", "train"), "not valid JSON")


def test_retrieval_rejects_bad_records(world, tmp_path):
    r = world.root
    test = json.loads((r / P.retrieval_file("test")).read_text())
    train = json.loads((r / P.retrieval_file("train")).read_text())
    f = tmp_path / "k.json"
    for split, data, bad, problem in (
        ("test", test, {"image": test[0]["image"]}, "missing field 'caption'"),
        ("test", test, {"image": "x/y.png", "caption": ["a"] * 5}, "does not exist"),
        ("test", test, {"image": test[0]["image"], "caption": "one string"}, "should be list"),
        ("train", train, {"image": train[0]["image"], "caption": "a red star"}, "missing field 'image_id'"),
    ):
        f.write_text(json.dumps(data[:2] + [bad]))
        src = CocoKarpathy("coco", {f"{split}_file": str(f), "image_root": str(r)})
        _raises(lambda: src.load("retrieval", split), str(f), "record 2", problem)
    _raises(lambda: CocoKarpathy("coco", {}).load("retrieval", "val"), "needs option 'val_file'")


def test_refcoco_rejects_bad_records(world, tmp_path):
    r = world.root
    refs = pickle.loads((r / P.REFS_FILE).read_bytes())
    inst = json.loads((r / P.INSTANCES_FILE).read_text())
    props = json.loads((r / P.PROPOSALS_FILE).read_text())
    target = next(x for x in refs if x["split"] == "val")

    def run(refs_, inst_, props_, **extra):
        (tmp_path / "refs.p").write_bytes(pickle.dumps(refs_))
        (tmp_path / "inst.json").write_text(json.dumps(inst_))
        (tmp_path / "props.json").write_text(json.dumps(props_))
        return RefCOCOPlus("refcoco+", {"refs_file": str(tmp_path / "refs.p"), "instances_file": str(tmp_path / "inst.json"),
                                        "proposals_file": str(tmp_path / "props.json"), "image_root": str(r), **extra})

    label = f"ref_id {target['ref_id']}"
    bad = [dict(x) for x in refs]
    del next(x for x in bad if x["ref_id"] == target["ref_id"])["sentences"]
    _raises(lambda: run(bad, inst, props).load("grounding", "val"), "refs.p", label, "missing field 'sentences'")
    skip = run(bad, inst, props, skip_bad=True)
    assert len(skip.load("grounding", "val")) == len(world.load("grounding", "val")) - 2  # 2 sentences skipped
    assert skip.last_report.skipped == 1
    inst2 = json.loads(json.dumps(inst))
    next(a for a in inst2["annotations"] if a["id"] == target["ann_id"])["bbox"] = [50, 50, 30, 30]
    _raises(lambda: run(refs, inst2, props).load("grounding", "val"), label, "outside the 64x64 image")
    props2 = dict(props)
    props2[str(target["ref_id"])] = [[0, 0, 10, 10], [-20, 0, 5, 5]]
    _raises(lambda: run(refs, inst, props2).load("grounding", "val"), label, "proposal", "outside")
    del props2[str(target["ref_id"])]
    _raises(lambda: run(refs, inst, props2).load("grounding", "val"), label, "no proposals")
    inst3 = json.loads(json.dumps(inst))
    next(i for i in inst3["images"] if i["id"] == target["image_id"])["file_name"] = "gone.png"
    _raises(lambda: run(refs, inst3, props).load("grounding", "val"), label, "gone.png does not exist")
    bad = [dict(x, ann_id=-1) if x["ref_id"] == target["ref_id"] else x for x in refs]
    _raises(lambda: run(bad, inst, props).load("grounding", "val"), label, "ann_id -1 is not in")
    import os

    (tmp_path / "evil.p").write_bytes(pickle.dumps(os.getcwd))  # a pickle that imports something
    _raises(lambda: RefCOCOPlus("r", {"refs_file": str(tmp_path / "evil.p"), "instances_file": "x", "proposals_file": "y"})
            .load("grounding", "val"), "evil.p", "plain data only")
    (tmp_path / "junk.p").write_bytes(b"not a pickle")
    _raises(lambda: RefCOCOPlus("r", {"refs_file": str(tmp_path / "junk.p"), "instances_file": "x", "proposals_file": "y"})
            .load("grounding", "val"), "junk.p", "not a readable pickle")


def test_vqa_rejects_bad_records(world, tmp_path):
    r = world.root
    qf, af = P.vqa_files("val")
    q = json.loads((r / qf).read_text())
    a = json.loads((r / af).read_text())
    qid = q["questions"][1]["question_id"]

    def run(q_, a_):
        (tmp_path / "q.json").write_text(json.dumps(q_))
        (tmp_path / "a.json").write_text(json.dumps(a_))
        return VQAv2("vqa_v2", {"val_questions": str(tmp_path / "q.json"), "val_annotations": str(tmp_path / "a.json"),
                                "image_root": str(r), "image_pattern": P.VQA_PATTERN}).load("vqa", "val")

    label = f"question_id {qid}"
    q2 = json.loads(json.dumps(q))
    del q2["questions"][1]["question"]
    _raises(lambda: run(q2, a), "q.json", label, "missing field 'question'")
    a2 = json.loads(json.dumps(a))
    a2["annotations"][1]["answers"] = a2["annotations"][1]["answers"][:9]
    _raises(lambda: run(q, a2), label, "has 9 answers")
    a3 = json.loads(json.dumps(a))
    del a3["annotations"][1]["answer_type"]
    _raises(lambda: run(q, a3), label, "a.json", "missing field 'answer_type'")
    a4 = dict(a, annotations=[x for x in a["annotations"] if x["question_id"] != qid])
    _raises(lambda: run(q, a4), label, "has no annotation")
    q3 = json.loads(json.dumps(q))
    q3["questions"][1]["image_id"] = 999
    a5 = json.loads(json.dumps(a))
    a5["annotations"][1]["image_id"] = 999
    _raises(lambda: run(q3, a5), label, "does not exist")
    _raises(lambda: run({"nope": []}, a), "not a VQA questions file")


def test_nlvr2_rejects_bad_records(world, tmp_path):
    r = world.root
    lines = (r / P.nlvr2_file("dev")).read_text().splitlines()
    rec = json.loads(lines[2])
    f = tmp_path / "dev.json"

    def run(bad_line, **extra):
        f.write_text("\n".join(lines[:2] + [bad_line] + lines[3:]) + "\n")
        return NLVR2("nlvr2", {"dev_file": str(f), "dev_images": str(r / P.nlvr2_images("dev")), **extra})

    _raises(lambda: run(json.dumps(dict(rec, label="yes"))).load("nlvr2", "dev"), str(f), "line 3", "is not \"True\"")
    _raises(lambda: run(json.dumps({k: v for k, v in rec.items() if k != "sentence"})).load("nlvr2", "dev"),
            "line 3", "missing field 'sentence'")
    _raises(lambda: run(json.dumps(dict(rec, identifier="dev-999-0-0"))).load("nlvr2", "dev"),
            "line 3", "dev-999-0-img0.png does not exist")
    _raises(lambda: run("{broken").load("nlvr2", "dev"), "line 3", "not valid JSON")
    src = run("{broken", skip_bad=True)
    assert len(src.load("nlvr2", "dev")) == len(lines) - 1 and src.last_report.skipped == 1
    bad_img = tmp_path / "imgs"
    shutil.copytree(r / P.nlvr2_images("dev"), bad_img)
    stem = rec["identifier"].rsplit("-", 1)[0]
    (bad_img / f"{stem}-img1.png").write_bytes(b"garbage")
    src = NLVR2("nlvr2", {"dev_file": str(r / P.nlvr2_file("dev")), "dev_images": str(bad_img)})
    _raises(lambda: src.load("nlvr2", "dev"), f"{stem}-img1.png does not decode")
