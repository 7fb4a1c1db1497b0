"""NLVR2 JSON lines.

Each line: ``{"identifier": "<split>-<set>-<pair>-<sentence>", "sentence", "label": "True"|"False",
"left_url", "right_url", "directory" (train only), ...}``.  The two images of an example are
``<image_root>/[<directory>/]<split>-<set>-<pair>-img0.png`` (left) and ``...-img1.png``
(right), as in the official release.  The ALBEF-preprocessed form ``{"images": [left, right],
"sentence", "label"}`` is also read (paths relative to the image root).
"""

from __future__ import annotations

from pathlib import Path

from simla_bench.errors import DataError

from ..checks import BadRecord, Checker, field, image_ok, require_file, resolve_image
from ..records import NLVR2Record


def image_names(identifier: str) -> tuple[str, str]:
    stem = identifier.rsplit("-", 1)[0]
    return f"{stem}-img0.png", f"{stem}-img1.png"


def read_nlvr2(file: Path, image_root: Path | None, checker: Checker) -> list[NLVR2Record]:
    import json

    path = require_file(file, "NLVR2 JSON lines")
    out: list[NLVR2Record] = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            with checker.record(path, f"line {lineno}"):
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise BadRecord(f"is not valid JSON ({exc})") from None
                identifier = str(rec.get("identifier", f"{path.stem}-{lineno}")) if isinstance(rec, dict) else ""
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
