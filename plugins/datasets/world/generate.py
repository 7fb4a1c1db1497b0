"""Generate the world into a directory, in the official dataset formats.

Sections (each with its own random stream derived from the seed, so the sections do not
shift each other): ALBEF pretraining pairs, Karpathy-format retrieval (images in twins that
differ only in colour binding or left/right layout), refer-toolkit RefCOCO+ grounding, VQA v2
questions/annotations, NLVR2 JSON lines.  Images are PNG files streamed to disk; the SHA-256
of every written file (in a fixed order) gives the manifest checksum.  ``world_meta.jsonl``
records each image's objects and the meaning of each sentence (used by tests and ``world show``).
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import zlib
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from . import language as lang
from . import semantics as sem
from .presets import (GENERATOR_VERSION, GROUNDING_SPLITS, INSTANCES_FILE, NLVR2_PREFIX, NLVR2_SPLITS, PRETRAIN_FILE,
                      PROPOSALS_FILE, REFS_FILE, RETRIEVAL_SPLITS, VQA_PATTERN, VQA_SPLITS, nlvr2_file, nlvr2_images,
                      retrieval_file, vqa_files, vqa_subtype)
from .scene import Scene, mirrored, render, sample_scene, with_colours
from .vocab import COLOUR_NAMES, GROUP_A, GROUP_B, HELD_OUT, SHAPES

Progress = Callable[[str, int, int], None]
_HELD = sorted(HELD_OUT)


class Writer:
    """Writes files under the root, hashing (path, bytes) in write order."""

    def __init__(self, root: Path, progress: Progress, total: int):
        self.root = root
        self.hash = hashlib.sha256()
        self._dirs: set[Path] = set()
        self.meta: list[str] = []
        self.images = 0
        self.progress = progress
        self.total = total

    def write(self, rel: str, data: bytes) -> None:
        path = self.root / rel
        if path.parent not in self._dirs:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._dirs.add(path.parent)
        path.write_bytes(data)
        self.hash.update(rel.encode() + b"\0" + hashlib.sha256(data).digest())

    def json(self, rel: str, obj) -> None:
        self.write(rel, json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode())

    def image(self, rel: str, scene: Scene, texts: list[dict] | None = None, section: str = "") -> None:
        arr = render(scene)
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="PNG", compress_level=1)
        self.write(rel, buf.getvalue())
        self.meta.append(json.dumps({"image": rel, "section": section, "size": scene.size,
                                     "objects": [o.to_dict() for o in scene.objects], "texts": texts or []},
                                    separators=(",", ":")))
        self.images += 1
        if self.images % 200 == 0:
            self.progress("rendering", self.images, self.total)


def _rng(seed: int, section: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(section.encode())])


def _n_objects(rng, lo=1, hi=6) -> int:
    weights = np.array([1.0, 2.0, 2.5, 2.0, 1.5, 1.0])[lo - 1:hi]
    return int(lo + rng.choice(len(weights), p=weights / weights.sum()))


def _scene(rng, size, specs, n_total, comp=False, forbid=None) -> Scene:
    while True:
        s = sample_scene(rng, size, specs, n_total, allow_held_out=comp, forbid=forbid)
        if s is not None and s.objects:
            return s


def _t(text: str, meaning: dict) -> dict:
    return {"text": text, "meaning": meaning}


# ------------------------------------------------------------------------------ pretraining
def gen_pretrain(w: Writer, rng, counts, size, start: int, n: int) -> list:
    records = []
    for i in range(start, start + n):
        scene = _scene(rng, size, [], _n_objects(rng))
        caps: list[tuple[str, dict]] = []
        for _ in range(20):
            text, meaning = lang.random_caption(scene, rng)
            if text not in [c for c, _ in caps]:
                caps.append((text, meaning))
            if len(caps) == counts["captions_per_image"]:
                break
        rel = f"images/pretrain/{i:07d}.png"
        w.image(rel, scene, [_t(*c) for c in caps], "pretrain")
        records.extend({"image": rel, "caption": c, "image_id": f"pretrain_{i}"} for c, _ in caps)
    return records


# -------------------------------------------------------------------------------- retrieval
def _twins(rng, size, comp: bool, kind: str):
    """Two scenes and, for each, a caption true of it and false of the other."""
    while True:
        focus_spec = [(*_HELD[rng.integers(len(_HELD))], None)] if comp else []
        A = _scene(rng, size, focus_spec, _n_objects(rng, 2, 5), comp)
        if comp:
            held = [o for o in A.objects if o.combo in HELD_OUT]
            a = held[0]
        else:
            a = A.objects[rng.integers(len(A.objects))]
        others = [o for o in A.objects if o is not a and o.colour != a.colour and o.shape != a.shape]
        if not others:
            continue
        b = others[rng.integers(len(others))]
        ia, ib = A.objects.index(a), A.objects.index(b)
        if kind == "binding":
            colours = [o.colour for o in A.objects]
            colours[ia], colours[ib] = colours[ib], colours[ia]
            B = with_colours(A, colours)
            if not comp and any(o.combo in HELD_OUT for o in B.objects):
                continue
            capA = lang.binding_caption(A, a, b, rng)
            capB = lang.binding_caption(B, B.objects[ia], B.objects[ib], rng)
        else:
            B = mirrored(A)
            capA = lang.relation_caption(A, a, b, rng, name_a=comp)
            capB = lang.relation_caption(B, B.objects[ia], B.objects[ib], rng, name_a=comp)
            if capA is None or capB is None:
                continue
        if (sem.holds(capA[1], A.objects, size) and not sem.holds(capA[1], B.objects, size)
                and sem.holds(capB[1], B.objects, size) and not sem.holds(capB[1], A.objects, size)):
            return (A, capA, ia), (B, capB, ia)


def _five(scene, first, rng, focus) -> list[tuple[str, dict]]:
    caps = [first]
    for _ in range(60):
        if len(caps) == 5:
            break
        cap = lang.random_caption(scene, rng, focus=focus)
        if cap[0] not in [c for c, _ in caps]:
            caps.append(cap)
    while len(caps) < 5:  # tiny scenes may not support five different captions
        caps.append(lang.random_caption(scene, rng, focus=focus))
    return caps


def gen_retrieval(w: Writer, rng, size, split: str, start: int, n: int) -> list:
    """Images ``start .. start + n`` (both even) of a retrieval split, as twins."""
    comp = split == "test_comp"
    records = []
    for p in range(start // 2, (start + n) // 2):
        kind = "relation" if comp or p % 2 else "binding"
        for j, (scene, cap, ifocus) in enumerate(_twins(rng, size, comp, kind)):
            focus = scene.objects[ifocus] if comp else None
            caps = _five(scene, cap, rng, focus)
            rel = f"images/retrieval/{split}/{2 * p + j:06d}.png"
            w.image(rel, scene, [_t(*c) for c in caps], f"retrieval/{split}")
            if split == "train":
                records.extend({"image": rel, "caption": c, "image_id": f"retrieval_{split}_{2 * p + j}"} for c, _ in caps)
            else:
                records.append({"image": rel, "caption": [c for c, _ in caps]})
    return records


# -------------------------------------------------------------------------------- grounding
def gen_grounding(w: Writer, rng, size, split: str, start: int, n: int) -> dict:
    """Refs, COCO images/annotations and proposals for images ``start .. start + n`` of a split."""
    refs, images, anns, proposals = [], [], [], {}
    s_index = GROUNDING_SPLITS.index(split)
    comp = split == "test_comp"
    group = GROUP_A if split == "testA" else GROUP_B if split == "testB" else None
    for i in range(start, start + n):
        while True:
            if comp:
                c, s = _HELD[rng.integers(len(_HELD))]
            else:
                while True:
                    c, s = COLOUR_NAMES[rng.integers(len(COLOUR_NAMES))], SHAPES[rng.integers(len(SHAPES))]
                    if (c, s) not in HELD_OUT and (group is None or s in group):
                        break
            z = ("small", "large")[rng.integers(2)]
            specs = [(c, s, z)]
            if rng.random() < 0.6:  # a same-shape distractor makes colour or size necessary
                specs.append((None, s, None))
            if rng.random() < 0.5:
                specs.append((c, None, None))
            scene = _scene(rng, size, specs, max(len(specs), _n_objects(rng, 2, 6)), comp)
            targets = [o for o in scene.objects if (o.colour, o.shape, o.size) == (c, s, z)]
            if len(targets) != 1:
                continue
            target = targets[0]
            descs = lang.unique_descriptors(scene.objects, target)
            if comp:
                descs = [d for d in descs if "colour" in d and "shape" in d]
            if descs:
                break
        image_id = 100000 * (s_index + 1) + i
        rel = f"refcoco+/images/COCO_world_{image_id:012d}.png"
        sents = []
        for k in range(2):
            d = descs[0] if k == 0 else descs[rng.integers(len(descs))]
            sents.append((lang.referring_expression(d, rng), {"kind": "ref", "desc": d}))
        t_index = scene.objects.index(target)
        w.image(rel, scene, [_t(*x) | {"referent": t_index} for x in sents], f"grounding/{split}")
        images.append({"id": image_id, "file_name": rel, "width": size, "height": size})
        ann_ids = []
        for k, o in enumerate(scene.objects):
            ann_ids.append(image_id * 10 + k)
            anns.append({"id": image_id * 10 + k, "image_id": image_id, "bbox": list(o.box),
                         "category_id": SHAPES.index(o.shape) + 1, "area": float(o.box[2] * o.box[3]),
                         "iscrowd": 0, "segmentation": []})
        ref_id = image_id
        sent_ids = [ref_id * 10 + k for k in range(len(sents))]
        refs.append({"ref_id": ref_id, "ann_id": ann_ids[t_index], "image_id": image_id, "split": split,
                     "category_id": SHAPES.index(target.shape) + 1, "file_name": rel, "sent_ids": sent_ids,
                     "sentences": [{"sent_id": sid, "sent": t, "raw": t, "tokens": t.split()}
                                   for sid, (t, _) in zip(sent_ids, sents)]})
        proposals[str(ref_id)] = [list(o.box) for o in scene.objects]
    return {"refs": refs, "images": images, "annotations": anns, "proposals": proposals}


# -------------------------------------------------------------------------------------- VQA
def gen_vqa(w: Writer, rng, size, split: str, start: int, n: int) -> dict:
    """Questions and annotations for images ``start .. start + n`` of a split."""
    s_index = VQA_SPLITS.index(split)
    comp = split == "test_comp"
    sub = vqa_subtype(split)
    questions, annotations = [], []
    for i in range(start, start + n):
        specs = []
        if comp:
            held = (*_HELD[rng.integers(len(_HELD))], None)
            specs += [held] * (2 if rng.random() < 0.35 else 1)
        if rng.random() < 0.5:  # repeated shapes make counting questions interesting
            shape = SHAPES[rng.integers(len(SHAPES))]
            specs += [(None, shape, None)] * int(rng.integers(2, 4))
        scene = _scene(rng, size, specs, max(len(specs), _n_objects(rng)), comp)
        focus = next((o for o in scene.objects if o.combo in HELD_OUT), None) if comp else None
        image_id = 100000 * (s_index + 1) + i
        texts = []
        for k, kind in enumerate(("yes/no", "number", "other")):
            qa = None
            for _ in range(20):
                qa = lang.vqa_question(scene, kind, rng, focus=focus, allow_held_out=comp)
                if qa is not None:
                    break
            if qa is None:
                qa = lang.vqa_question(scene, "number", rng, focus=focus, allow_held_out=comp)
            q, ans, atype, qtype, pool = qa
            answers = lang.annotator_answers(ans, pool, rng)
            qid = image_id * 1000 + k
            questions.append({"image_id": image_id, "question": q, "question_id": qid})
            annotations.append({"question_id": qid, "image_id": image_id, "question_type": qtype, "answer_type": atype,
                                "multiple_choice_answer": ans,
                                "answers": [{"answer": a, "answer_confidence": "yes", "answer_id": j + 1}
                                            for j, a in enumerate(answers)]})
            texts.append({"text": q, "meaning": {"kind": "vqa", "answer": ans, "answer_type": atype}})
        rel = VQA_PATTERN.format(data_subtype=sub, image_id=image_id)
        w.image(rel, scene, texts, f"vqa/{split}")
    return {"questions": questions, "annotations": annotations}


# ------------------------------------------------------------------------------------ NLVR2
def _thing(rng, comp: bool) -> dict:
    if comp:
        c, s = _HELD[rng.integers(len(_HELD))]
        return {"colour": c, "shape": s}
    u = rng.random()
    while True:
        c, s = COLOUR_NAMES[rng.integers(len(COLOUR_NAMES))], SHAPES[rng.integers(len(SHAPES))]
        if (c, s) not in HELD_OUT:
            break
    return {"colour": c, "shape": s} if u < 0.5 else {"shape": s} if u < 0.8 else {"colour": c}


def _nlvr2_image(rng, size, thing: dict, k: int, comp: bool) -> Scene:
    def forbid(c, s, z):
        return all({"colour": c, "shape": s}[key] == v for key, v in thing.items())

    while True:
        specs = [(thing.get("colour"), thing.get("shape"), None)] * k
        if "colour" in thing and "shape" in thing:  # binding distractors
            if rng.random() < 0.6:
                c2 = COLOUR_NAMES[rng.integers(len(COLOUR_NAMES))]
                if c2 != thing["colour"] and (comp or (c2, thing["shape"]) not in HELD_OUT):
                    specs.append((c2, thing["shape"], None))
            if rng.random() < 0.6:
                s2 = SHAPES[rng.integers(len(SHAPES))]
                if s2 != thing["shape"] and (comp or (thing["colour"], s2) not in HELD_OUT):
                    specs.append((thing["colour"], s2, None))
        n_total = min(6, max(1, len(specs) + int(rng.integers(0, 3))))
        scene = sample_scene(rng, size, specs, n_total, allow_held_out=comp, forbid=forbid)
        if scene is not None and sem.count(scene.objects, thing) == k:
            return scene


def gen_nlvr2(w: Writer, rng, size, split: str, start: int, n: int) -> list:
    """JSON lines of statements ``start .. start + n`` (4 image pairs each) of a split."""
    comp = split == "test_comp"
    prefix = NLVR2_PREFIX[split]
    lines = []
    for set_id in range(start, start + n):
        while True:
            thing = _thing(rng, comp)
            sentence, meaning = lang.nlvr2_statement(thing, rng)
            labels = [True, True, False, False]
            rng.shuffle(labels)
            pairs = []
            for label in labels:
                for _ in range(200):
                    L, R = (int(x) for x in rng.integers(0, 4, size=2))
                    if lang.nlvr2_truth(meaning, L, R) == label:
                        pairs.append((L, R, label))
                        break
            if len(pairs) == 4:
                break
        for pair_id, (L, R, label) in enumerate(pairs):
            identifier = f"{prefix}-{set_id}-{pair_id}-0"
            stem = identifier.rsplit("-", 1)[0]
            rels = []
            for side, k in (("img0", L), ("img1", R)):
                scene = _nlvr2_image(rng, size, thing, k, comp)
                rel = f"{nlvr2_images(split)}/{stem}-{side}.png"
                w.image(rel, scene, [_t(sentence, meaning | {"side": side, "label": label})], f"nlvr2/{split}")
                rels.append(rel)
            lines.append(json.dumps({"identifier": identifier, "sentence": sentence, "label": str(label),
                                     "left_url": rels[0], "right_url": rels[1], "writer": "world",
                                     "synset": lang.thing_phrase(thing, False), "query": "", "extra_validations": {}},
                                    separators=(",", ":")))
    return lines


def total_images(counts: dict) -> int:
    return (counts["pretrain"] + sum(counts[f"retrieval_{s}"] for s in RETRIEVAL_SPLITS)
            + sum(counts[f"grounding_{s}"] for s in GROUNDING_SPLITS) + sum(counts[f"vqa_{s}"] for s in VQA_SPLITS)
            + 8 * sum(counts[f"nlvr2_{s}"] for s in NLVR2_SPLITS))


#: units per chunk (images; NLVR2: statements): each chunk has its own random stream, so the
#: output does not depend on how many processes render the chunks
CHUNK = {"pretrain": 500, "retrieval": 250, "grounding": 250, "vqa": 250, "nlvr2": 40}
_FUNCS = {"pretrain": gen_pretrain, "retrieval": gen_retrieval, "grounding": gen_grounding, "vqa": gen_vqa,
          "nlvr2": gen_nlvr2}


def sections(counts: dict) -> list[tuple[str, str, int, int]]:
    """(kind, split, start, n) chunks in their fixed order."""
    out = []
    plan = [("pretrain", "train", counts["pretrain"])]
    plan += [("retrieval", s, counts[f"retrieval_{s}"]) for s in RETRIEVAL_SPLITS]
    plan += [("grounding", s, counts[f"grounding_{s}"]) for s in GROUNDING_SPLITS]
    plan += [("vqa", s, counts[f"vqa_{s}"]) for s in VQA_SPLITS]
    plan += [("nlvr2", s, counts[f"nlvr2_{s}"]) for s in NLVR2_SPLITS]
    for kind, split, total in plan:
        for start in range(0, total, CHUNK[kind]):
            out.append((kind, split, start, min(CHUNK[kind], total - start)))
    return out


def run_section(job: tuple) -> dict:
    """Render one chunk (in this or a worker process); returns its records, the digest of the
    files it wrote, its world_meta lines and its image count."""
    root, counts, seed, size, (kind, split, start, n) = job
    w = Writer(Path(root), lambda *a: None, 0)
    rng = _rng(seed, f"{kind}/{split}/{start}")
    if kind == "pretrain":
        data = gen_pretrain(w, rng, counts, size, start, n)
    else:
        data = _FUNCS[kind](w, rng, size, split, start, n)
    return {"data": data, "digest": w.hash.hexdigest(), "meta": w.meta, "images": w.images}


def _results(jobs: list, workers: int):
    if workers <= 1:
        for job in jobs:
            yield run_section(job)
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
        yield from pool.map(run_section, jobs)


def default_workers(counts: dict) -> int:
    import os

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    # spawning workers costs ~0.5 s each and measurably more CPU in total; it only pays off
    # for big worlds on machines with CPUs to spare
    return 1 if total_images(counts) < 3000 or cpus < 4 else min(cpus // 2, 4)


def generate(root: Path, counts: dict, seed: int, image_size: int, progress: Progress, workers: int = 0) -> dict:
    """Write the whole world under ``root`` (which must be empty) using ``workers`` processes
    (0: automatic); returns the record counts and the checksum (independent of ``workers``)."""
    workers = workers or default_workers(counts)
    chunks = sections(counts)
    jobs = [(str(root), counts, seed, image_size, c) for c in chunks]
    total = total_images(counts)
    merged: dict[tuple[str, str], list] = {}
    digests, meta, done = [], [], 0
    progress("rendering", 0, total)
    for (kind, split, _, _), res in zip(chunks, _results(jobs, workers)):
        merged.setdefault((kind, split), []).append(res["data"])
        digests.append(res["digest"])
        meta.extend(res["meta"])
        done += res["images"]
        progress("rendering", done, total)

    w = Writer(root, progress, total)
    n: dict[str, object] = {}
    pre = [r for part in merged[("pretrain", "train")] for r in part]
    w.json(PRETRAIN_FILE, pre)
    n["pretrain"] = len(pre)
    n["retrieval"] = {}
    for s in RETRIEVAL_SPLITS:
        recs = [r for part in merged[("retrieval", s)] for r in part]
        w.json(retrieval_file(s), recs)
        n["retrieval"][s] = len(recs)
    refs, images, anns, proposals = [], [], [], {}
    n["grounding"] = {}
    for s in GROUNDING_SPLITS:
        for part in merged[("grounding", s)]:
            refs += part["refs"]
            images += part["images"]
            anns += part["annotations"]
            proposals.update(part["proposals"])
        n["grounding"][s] = sum(len(r["sentences"]) for r in refs if r["split"] == s)
    # a JSON round trip first: pickle's memo depends on object identity, which differs between
    # records built here and records received from worker processes
    w.write(REFS_FILE, pickle.dumps(json.loads(json.dumps(refs)), protocol=4))
    w.json(INSTANCES_FILE, {"info": {"description": "simla-bench world (RefCOCO+ format)"}, "images": images,
                            "annotations": anns,
                            "categories": [{"id": k + 1, "name": s, "supercategory": "shape"} for k, s in enumerate(SHAPES)]})
    w.json(PROPOSALS_FILE, proposals)
    n["vqa"] = {}
    for s in VQA_SPLITS:
        questions = [q for part in merged[("vqa", s)] for q in part["questions"]]
        annotations = [a for part in merged[("vqa", s)] for a in part["annotations"]]
        qfile, afile = vqa_files(s)
        head = {"info": {"description": "simla-bench world (VQA v2 format)"}, "license": {"name": "CC0"},
                "data_type": "mscoco", "data_subtype": vqa_subtype(s)}
        w.json(qfile, {**head, "task_type": "Open-Ended", "questions": questions})
        w.json(afile, {**head, "annotations": annotations})
        n["vqa"][s] = len(questions)
    n["nlvr2"] = {}
    for s in NLVR2_SPLITS:
        lines = [line for part in merged[("nlvr2", s)] for line in part]
        w.write(nlvr2_file(s), ("\n".join(lines) + "\n").encode())
        n["nlvr2"][s] = len(lines)
    n["images"] = done
    w.write("world_meta.jsonl", ("\n".join(meta) + "\n").encode())
    checksum = hashlib.sha256("\n".join(digests + [w.hash.hexdigest()]).encode()).hexdigest()
    return {"records": n, "checksum": checksum, "generator_version": GENERATOR_VERSION}
