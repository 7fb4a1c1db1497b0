"""ALBEF-style annotation JSON: pretraining pairs and Karpathy-split retrieval files.

* pretraining: a list of ``{"image": path, "caption": str | [str, ...]}``;
* retrieval train: a list of ``{"image", "caption", "image_id"}`` (one per caption);
* retrieval val/test: a list of ``{"image", "caption": [5 captions]}``.

Image paths are relative to an image root (or absolute).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

from ..checks import BadRecord, Checker, field, image_ok, read_json, resolve_image
from ..records import PairRecord, RetrievalSplit


def _records(path: Path, what: str) -> list:
    data = read_json(path, what)
    if not isinstance(data, list):
        from simla_bench.errors import DataError

        raise DataError(f"{path}: {what} file should hold a JSON list of records, got {type(data).__name__}")
    return data


def _caption(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BadRecord(f"caption {value!r} is not a non-empty string")
    return value.strip()


def read_pretrain(files: Iterable[Path], image_root: Path | None, checker: Checker) -> list[PairRecord]:
    """Pairs from one or more ALBEF pretraining JSON files (a list caption gives one pair each)."""
    out: list[PairRecord] = []
    for file in files:
        for i, rec in enumerate(_records(Path(file), "pretraining annotation")):
            with checker.record(file, f"record {i}"):
                image = resolve_image(image_root, field(rec, "image", str))
                raw = field(rec, "caption", (str, list))
                caps = [_caption(c) for c in (raw if isinstance(raw, list) else [raw])]
                if not caps:
                    raise BadRecord("field 'caption' is an empty list")
                image_ok(checker, image)
                image_id = str(rec.get("image_id", Path(rec["image"]).stem))
                out.extend(PairRecord(image, c, image_id) for c in caps)
    return out


def read_retrieval_train(file: Path, image_root: Path | None, checker: Checker) -> list[PairRecord]:
    out: list[PairRecord] = []
    for i, rec in enumerate(_records(Path(file), "retrieval train annotation")):
        with checker.record(file, f"record {i}"):
            image = resolve_image(image_root, field(rec, "image", str))
            caption = _caption(field(rec, "caption", str))
            image_id = field(rec, "image_id", (str, int))
            image_ok(checker, image)
            out.append(PairRecord(image, caption, str(image_id)))
    return out


def read_retrieval_eval(file: Path, image_root: Path | None, checker: Checker) -> RetrievalSplit:
    split = RetrievalSplit([], [], [], [])
    for i, rec in enumerate(_records(Path(file), "retrieval evaluation annotation")):
        with checker.record(file, f"record {i}"):
            image = resolve_image(image_root, field(rec, "image", str))
            caps = field(rec, "caption", list)
            if not caps:
                raise BadRecord("field 'caption' is an empty list")
            caps = [_caption(c) for c in caps]
            image_ok(checker, image)
        if not checker.ok:
            continue
        img_index = len(split.images)
        split.images.append(image)
        split.img2txt.append([])
        for cap in caps:
            split.img2txt[img_index].append(len(split.texts))
            split.texts.append(cap)
            split.txt2img.append(img_index)
    return split


def write_json(path: Path, data: object) -> bytes:
    """Write JSON deterministically (sorted keys off, fixed separators); returns the bytes."""
    raw = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(raw)
    return raw
