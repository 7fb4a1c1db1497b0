"""What a generated sentence means, as data, and whether it holds in a scene.

Descriptors are dicts with any of ``shape``, ``colour``, ``size`` (canonical values).
Caption meanings: ``{"kind": "exists", "objs": [d, ...]}`` (distinct objects matching each
descriptor), ``{"kind": "rel", "a": d, "rel": "left"|"right"|"above"|"below", "b": d}``,
``{"kind": "count", "obj": d, "n": k}`` (exactly k objects match).  Used by the generator to
keep every label true of its scene, and by the tests to check that it did.
"""

from __future__ import annotations

from itertools import permutations
from typing import Iterable


def margin(image_size: int) -> float:
    """Minimum centre offset (pixels) for a spatial relation to count as holding."""
    return 0.06 * image_size


def matches(obj, desc: dict) -> bool:
    return all(getattr(obj, k) == v for k, v in desc.items())


def count(objects: Iterable, desc: dict) -> int:
    return sum(matches(o, desc) for o in objects)


def relation(a, b, rel: str, image_size: int) -> bool | None:
    """True / False when clear-cut, None when the offset is under the margin."""
    m = margin(image_size)
    d = {"left": b.cx - a.cx, "right": a.cx - b.cx, "above": b.cy - a.cy, "below": a.cy - b.cy}[rel]
    if d >= m:
        return True
    if d <= -m:
        return False
    return None


def unique(objects: list, desc: dict):
    hits = [o for o in objects if matches(o, desc)]
    return hits[0] if len(hits) == 1 else None


def holds(meaning: dict, objects: list, image_size: int) -> bool:
    kind = meaning["kind"]
    if kind == "exists":
        descs = meaning["objs"]
        for combo in permutations(objects, len(descs)):
            if all(matches(o, d) for o, d in zip(combo, descs)):
                return True
        return False
    if kind == "rel":
        return any(
            a is not b and matches(a, meaning["a"]) and matches(b, meaning["b"])
            and relation(a, b, meaning["rel"], image_size) is True
            for a in objects for b in objects
        )
    if kind == "count":
        return count(objects, meaning["obj"]) == meaning["n"]
    raise ValueError(f"unknown meaning kind {kind!r}")


def says_everything(meaning: dict, objects: list) -> bool:
    """Whether a caption names every object of the scene with all three attributes (the world's
    captions never do: there is always something left for keyword recommendation to find)."""
    if meaning["kind"] == "exists":
        descs = meaning["objs"]
    elif meaning["kind"] == "rel":
        descs = [meaning["a"], meaning["b"]]
    else:
        descs = [meaning["obj"]] * meaning.get("n", 0)
    return len(descs) >= len(objects) and all(len(d) == 3 for d in descs)
