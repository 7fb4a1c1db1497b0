"""The record type of the world's ground truth, ``world_meta.jsonl``, and its reader.

The generator (:mod:`.generate`, ``Writer.image``) writes one JSON line per
rendered image, in write order: where the image is, which section it belongs
to, every object drawn in it and the meaning of every sentence written about
it.  :class:`ImageMeta` is that line, typed; :func:`read_world_meta` reads the
file strictly (a missing or unknown key, or a line that is not JSON, is a
one-line :class:`~simla_bench.errors.DataError` naming the file and line), and
:meth:`ImageMeta.to_dict` gives back exactly the generator's dict, so that the
tests can check that the generated file and this type agree line for line.
The fields are documented in ``docs/world.md``, "Ground truth: world_meta.jsonl".
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Iterator, Mapping

from simla_bench.errors import DataError

from .scene import Obj

META_FILE = "world_meta.jsonl"

#: one drawn object of a line: the generator's own :class:`~.scene.Obj` (shape, colour
#: and size words, centre ``cx``, ``cy`` and radius ``r`` in pixels (floats), and
#: ``box``, the tight ``[x, y, w, h]`` pixel box of its full, unoccluded mask), read
#: back by :func:`read_object`; ``Obj.to_dict`` is its form in the file
MetaObject = Obj
OBJECT_KEYS = tuple(f.name for f in fields(Obj))


def _fields(data: Any, keys: tuple[str, ...], what: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise ValueError(f"{what} is {type(data).__name__}, not an object")
    missing = [k for k in keys if k not in data]
    unknown = [k for k in data if k not in keys]
    if missing or unknown:
        problem = f"lacks '{missing[0]}'" if missing else f"has an unknown key '{unknown[0]}'"
        raise ValueError(f"{what} {problem} (keys: {', '.join(keys)})")
    return data


def read_object(data: Any) -> Obj:
    """One entry of a line's ``objects``, checked strictly."""
    d = _fields(data, OBJECT_KEYS, "an object")
    box = d["box"]
    if not (isinstance(box, list) and len(box) == 4 and all(isinstance(v, int) for v in box)):
        raise ValueError(f"an object's box is {box!r}, not [x, y, w, h] integers")
    return Obj(str(d["shape"]), str(d["colour"]), str(d["size"]), float(d["cx"]), float(d["cy"]), float(d["r"]),
               (box[0], box[1], box[2], box[3]))


@dataclass(frozen=True)
class MetaText:
    """One sentence written about the image and what it means (a dict whose
    form depends on the section; ``docs/world.md`` lists them).  ``referent``:
    for a grounding expression, the index in ``objects`` of the object it names."""

    text: str
    meaning: dict[str, Any]
    referent: int | None = None

    @classmethod
    def from_dict(cls, data: Any) -> "MetaText":
        keys = ("text", "meaning", "referent") if isinstance(data, Mapping) and "referent" in data else ("text", "meaning")
        d = _fields(data, keys, "a text")
        if not isinstance(d["meaning"], Mapping):
            raise ValueError(f"the meaning of {d['text']!r} is not an object")
        referent = d.get("referent")
        if referent is not None and not isinstance(referent, int):
            raise ValueError(f"the referent of {d['text']!r} is {referent!r}, not an object index")
        return cls(str(d["text"]), dict(d["meaning"]), referent)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"text": self.text, "meaning": self.meaning}
        if self.referent is not None:
            out["referent"] = self.referent
        return out


@dataclass(frozen=True)
class ImageMeta:
    """One line of ``world_meta.jsonl``: the image's path relative to the world
    folder, its section (``pretrain``, ``retrieval/<split>``,
    ``grounding/<split>``, ``vqa/<split>``, ``nlvr2/<split>``), its side in
    pixels, its objects (in drawing order: later ones occlude earlier ones) and
    the sentences written about it."""

    image: str
    section: str
    size: int
    objects: tuple[Obj, ...]
    texts: tuple[MetaText, ...]

    KEYS = ("image", "section", "size", "objects", "texts")

    @classmethod
    def from_dict(cls, data: Any) -> "ImageMeta":
        d = _fields(data, cls.KEYS, "the line")
        if not isinstance(d["objects"], list) or not isinstance(d["texts"], list):
            raise ValueError("'objects' and 'texts' must be lists")
        texts = tuple(MetaText.from_dict(t) for t in d["texts"])
        objects = tuple(read_object(o) for o in d["objects"])
        for t in texts:
            if t.referent is not None and not 0 <= t.referent < len(objects):
                raise ValueError(f"the referent {t.referent} of {t.text!r} is not one of the {len(objects)} objects")
        return cls(str(d["image"]), str(d["section"]), int(d["size"]), objects, texts)

    def to_dict(self) -> dict[str, Any]:
        """Exactly the generator's dict (same keys, same order)."""
        return {"image": self.image, "section": self.section, "size": self.size,
                "objects": [o.to_dict() for o in self.objects], "texts": [t.to_dict() for t in self.texts]}

    @property
    def split(self) -> str:
        """The section's split (``train``, ``testA`` ...); ``""`` for ``pretrain``."""
        return self.section.partition("/")[2]


def read_world_meta(root: str | Path) -> Iterator[ImageMeta]:
    """Every record of ``<root>/world_meta.jsonl``, in the order written."""
    path = Path(root) / META_FILE
    if not path.is_file():
        raise DataError(f"'{path}' does not exist", hint="generate the world first (simla-bench world generate)")
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                yield ImageMeta.from_dict(json.loads(line))
            except (ValueError, TypeError) as exc:  # json.JSONDecodeError is a ValueError
                raise DataError(f"{path}, line {number}: {exc}",
                                hint="the file is not a world's ground truth; regenerate the world") from None
