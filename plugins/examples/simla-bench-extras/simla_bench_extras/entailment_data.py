"""Visual-entailment examples (SNLI-VE style) derived from the built-in world.

SNLI-VE pairs a premise *image* with a hypothesis sentence labelled
entailment, neutral or contradiction.  Here the premise is a world scene and
the hypothesis a spatial statement about two of its objects,
``"the <A> is <left of|right of|above|below> the <B>"``, where ``<A>`` and
``<B>`` are descriptors ("red circle", "small blue square") that each pick out
exactly one object of the scene.  The label follows from the scene's object
records (``world_meta.jsonl``, written by the world generator), by the same
rule the world's own captions use for a relation:

* **entailment**: the relation holds by at least the margin (the centre of A
  is at least ``0.06 * image_size`` pixels left of / right of / above / below
  the centre of B);
* **contradiction**: the opposite relation holds by at least the margin;
* **neutral**: the two centres are closer than the margin along that axis, so
  the image does not settle the statement (the world never captions such a
  pair with that relation).

Premise images come from disjoint sections of the world: ``train`` from the
pretraining, retrieval/train, grounding/train and vqa/train images; ``val``
from retrieval/val, grounding/val and vqa/val; ``test`` from retrieval/test,
grounding/testA, grounding/testB and vqa/test.  For each image at most
``per_label`` hypotheses of each label are drawn (seeded), which keeps the
labels roughly balanced.  Pure Python: no torch.
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass
from itertools import permutations
from pathlib import Path

LABELS = ("entailment", "neutral", "contradiction")
SECTIONS = {
    "train": ("pretrain", "retrieval/train", "grounding/train", "vqa/train"),
    "val": ("retrieval/val", "grounding/val", "vqa/val"),
    "test": ("retrieval/test", "grounding/testA", "grounding/testB", "vqa/test"),
}
#: a relation counts as holding when the centres differ by this share of the image size
#: (the world's own captions use the same margin)
MARGIN = 0.06
PHRASES = {"left": "left of", "right": "right of", "above": "above", "below": "below"}
OPPOSITE = {"left": "right", "right": "left", "above": "below", "below": "above"}
META_FILE = "world_meta.jsonl"


@dataclass(frozen=True)
class EntailmentExample:
    image: Path
    hypothesis: str
    label: int          # index into LABELS
    relation: str
    offset: float       # signed centre offset along the relation's axis, in pixels


def relation_label(a: dict, b: dict, relation: str, image_size: int) -> int:
    """The label of "A is <relation> B" for objects ``a``, ``b`` (dicts with ``cx``, ``cy``)."""
    d = _offset(a, b, relation)
    margin = MARGIN * image_size
    if d >= margin:
        return LABELS.index("entailment")
    if d <= -margin:
        return LABELS.index("contradiction")
    return LABELS.index("neutral")


def _offset(a: dict, b: dict, relation: str) -> float:
    return {"left": b["cx"] - a["cx"], "right": a["cx"] - b["cx"],
            "above": b["cy"] - a["cy"], "below": a["cy"] - b["cy"]}[relation]


def descriptor(obj: dict, objects: list[dict]) -> str | None:
    """The shortest of "colour shape" / "size colour shape" that picks out ``obj``
    alone among ``objects``; None when neither does."""
    for keys in (("colour", "shape"), ("size", "colour", "shape")):
        if sum(all(o[k] == obj[k] for k in keys) for o in objects) == 1:
            return " ".join(obj[k] for k in keys)
    return None


def examples_for_scene(image: Path, objects: list[dict], image_size: int, rng: random.Random,
                       per_label: int = 1) -> list[EntailmentExample]:
    """Up to ``per_label`` examples of each label for one scene."""
    by_label: dict[int, list[EntailmentExample]] = {i: [] for i in range(len(LABELS))}
    names = [descriptor(o, objects) for o in objects]
    for i, j in permutations(range(len(objects)), 2):
        if names[i] is None or names[j] is None:
            continue
        for relation in PHRASES:
            label = relation_label(objects[i], objects[j], relation, image_size)
            text = f"the {names[i]} is {PHRASES[relation]} the {names[j]}"
            by_label[label].append(EntailmentExample(image, text, label, relation,
                                                     _offset(objects[i], objects[j], relation)))
    chosen = []
    for label in range(len(LABELS)):
        pool = by_label[label]
        chosen += rng.sample(pool, min(per_label, len(pool)))
    return chosen


def load_split(world_root: str | Path, split: str, seed: int = 0, per_label: int = 1,
               limit: int = 0) -> list[EntailmentExample]:
    """The examples of ``split`` (``train``, ``val``, ``test``) from a world folder."""
    if split not in SECTIONS:
        raise ValueError(f"unknown split '{split}'; splits: {', '.join(SECTIONS)}")
    from simla_bench.plugins.datasets.world.meta import read_world_meta  # the typed record (docs/world.md)

    root = Path(world_root)
    out: list[EntailmentExample] = []
    for entry in read_world_meta(root):
        if entry.section not in SECTIONS[split]:
            continue
        rng = random.Random(zlib.crc32(f"{seed}/{entry.image}".encode()))
        out += examples_for_scene(root / entry.image, [o.to_dict() for o in entry.objects], entry.size, rng, per_label)
        if limit and len(out) >= limit:
            return out[:limit]
    return out
