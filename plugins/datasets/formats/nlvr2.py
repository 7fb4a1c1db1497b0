"""NLVR2 annotation files: the official JSON lines, or ALBEF's JSON arrays.

Official release (one JSON object per line): ``{"identifier": "<split>-<set>-<pair>-<sentence>", "sentence", "label": "True"|"False",
"left_url", "right_url", "directory" (train only), ...}``.  The two images of an example are
``<image_root>/[<directory>/]<split>-<set>-<pair>-img0.png`` (left) and ``...-img1.png``
(right), as in the official release.  ALBEF's files (``nlvr_train.json``, ``nlvr_dev.json``,
``nlvr_test.json``) are one JSON **array** of ``{"images": [left, right], "sentence", "label":
"True"|"False"}`` (image paths relative to the image root, no identifier); a file whose first
character is ``[`` is read as such an array.  A record without an identifier gets one made from
its left image's name (``dev-850-0-img0.png`` -> ``dev-850-0-s<digest of the sentence>``), so
the consistency metric still groups the examples of one sentence of one set, as the official
identifiers do; an image name without that pattern gives ``<file stem>-<index>-0-<index>``.
"""

from __future__ import annotations

from pathlib import Path

from simla_bench.errors import DataError

from ..checks import BadRecord, Checker, field, image_ok, read_json, require_file, resolve_image
from ..records import NLVR2Record


def made_identifier(left_image: str, sentence: str, fallback: str) -> str:
    """The identifier of a record that has none (see the module docstring)."""
    import hashlib
    import re

    m = re.match(r"^(.+-.+-.+)-img[01]$", Path(left_image).stem)
    if not m:
        return fallback
    return f"{m.group(1)}-s{hashlib.sha1(sentence.strip().encode('utf-8')).hexdigest()[:10]}"


def image_names(identifier: str) -> tuple[str, str]:
    stem = identifier.rsplit("-", 1)[0]
    return f"{stem}-img0.png", f"{stem}-img1.png"


def _entries(path: Path):
    """``(label, fallback identifier, parsed record or the JSON error)`` of each record of the file."""
    import json

    from simla_bench.textfiles import read_text_file

    text = read_text_file(path, "NLVR2 annotation file")  # a byte that is not UTF-8: one line with its offset
    if text.lstrip().startswith("["):
        data = read_json(path, "NLVR2 annotation")
        for i, rec in enumerate(data):
            yield f"record {i}", f"{path.stem}-{i}-0-{i}", rec
        return
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            rec = BadRecord(f"is not valid JSON ({exc})")
        yield f"line {lineno}", f"{path.stem}-{lineno}-0-{lineno}", rec


def read_nlvr2(file: Path, image_root: Path | None, checker: Checker) -> list[NLVR2Record]:
    path = require_file(file, "NLVR2 annotation")
    out: list[NLVR2Record] = []
    for label_, fallback, rec in _entries(path):
        with checker.record(path, label_):
            if isinstance(rec, BadRecord):
                raise rec
            identifier = str(rec.get("identifier", fallback)) if isinstance(rec, dict) else ""
            sentence = field(rec, "sentence", str)
            label = field(rec, "label", (str, bool))
            if isinstance(label, str):
                if label not in ("True", "False"):
                    raise BadRecord(f"label {label!r} is not \"True\" or \"False\"")
                label = label == "True"
            if "images" in rec:
                imgs = field(rec, "images", list)
                if len(imgs) != 2 or not all(isinstance(p, str) for p in imgs):
                    raise BadRecord("field 'images' should hold two image paths")
                left, right = (resolve_image(image_root, p) for p in imgs)
                if "identifier" not in rec:
                    identifier = made_identifier(imgs[0], sentence, identifier)
            else:
                identifier = field(rec, "identifier", str)
                if identifier.count("-") < 3:
                    raise BadRecord(f"identifier {identifier!r} is not <split>-<set>-<pair>-<sentence>")
                sub = rec.get("directory")
                base = Path(image_root or ".") / str(sub) if sub not in (None, "") else Path(image_root or ".")
                left, right = (resolve_image(base, n) for n in image_names(identifier))
            image_ok(checker, left)
            image_ok(checker, right)
        if checker.ok:
            out.append(NLVR2Record(identifier, left, right, sentence.strip(), bool(label)))
    if not out and not checker.report.skipped:
        raise DataError(f"{path}: no NLVR2 records in the file")
    return out
