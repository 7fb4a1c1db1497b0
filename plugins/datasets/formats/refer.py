"""RefCOCO+ as the refer toolkit ships it, plus a proposals file.

* ``refs(unc).p``: a pickled list of refs ``{ref_id, ann_id, image_id, split, category_id,
  file_name, sent_ids, sentences: [{sent_id, sent, raw, tokens}]}``;
* ``instances.json``: COCO-style ``images`` (id, file_name, width, height), ``annotations``
  (id, image_id, bbox x,y,w,h, category_id, area, iscrowd) and ``categories`` (id, name);
* proposals JSON: ALBEF's ``dets.json`` layout, ``{"<image_id>": [[x, y, w, h, ...], ...]}``
  (keyed by COCO image id; each detection's first four numbers are the box, as ALBEF's
  ``grounding_eval`` reads ``det[:4]``; extra numbers such as a score are ignored; a detection
  may also be ``{"box"|"bbox": [...], ...}``), or a list of ``{"image_id", "box"|"bbox"}``
  detections.  ``proposals_key="ref_id"`` reads a mapping keyed by ref id instead (the
  generated world's layout).

Records are returned one per sentence (:class:`RefRecord`).
"""

from __future__ import annotations

import pickle
from collections import defaultdict
from pathlib import Path
from typing import Any

from simla_bench.errors import DataError

from ..checks import BadRecord, Checker, box_ok, field, image_ok, read_json, require_file, resolve_image
from ..records import RefRecord


class _PlainUnpickler(pickle.Unpickler):
    """Unpickles only plain data (lists, dicts, strings, numbers): a refs file that tries to
    import anything is refused instead of executed."""

    def find_class(self, module: str, name: str):  # noqa: D401
        raise pickle.UnpicklingError(f"refuses to load {module}.{name} (plain data only)")


def load_refs(path: Path) -> list[dict]:
    path = require_file(path, "refer refs pickle")
    try:
        with open(path, "rb") as fh:
            # latin1: the official file was pickled by Python 2
            refs = _PlainUnpickler(fh, encoding="latin1").load()
    except Exception as exc:  # noqa: BLE001
        raise DataError(f"refs file {path} is not a readable pickle: {type(exc).__name__}: {exc}") from None
    if not isinstance(refs, list):
        raise DataError(f"refs file {path} should hold a list of refs, got {type(refs).__name__}")
    return refs


#: what the keys of a proposals mapping are
PROPOSAL_KEYS = ("image_id", "ref_id")


def _proposal_index(data: Any, path: Path) -> tuple[dict[str, list], str]:
    """Map key -> boxes; returns (index, 'mapping'|'image_id')."""
    if isinstance(data, dict):
        return {str(k): v for k, v in data.items()}, "mapping"
    if isinstance(data, list):
        index: dict[str, list] = defaultdict(list)
        for i, det in enumerate(data):
            if not isinstance(det, dict) or "image_id" not in det or ("box" not in det and "bbox" not in det):
                raise DataError(f"{path}: detection {i} should be an object with image_id and box")
            index[str(det["image_id"])].append(det.get("box", det.get("bbox")))
        return dict(index), "image_id"
    raise DataError(f"proposals file {path} should be a JSON object or list, got {type(data).__name__}")


def _proposal_box(det: Any) -> Any:
    """The x,y,w,h of one detection: its first four numbers, or its ``box``/``bbox`` field."""
    if isinstance(det, dict):
        return det.get("box", det.get("bbox"))
    if isinstance(det, (list, tuple)) and len(det) > 4:
        return list(det[:4])
    return det


def read_grounding(refs_file: Path, instances_file: Path, proposals_file: Path, image_root: Path | None,
                   split: str, checker: Checker, proposals_key: str = "image_id") -> list[RefRecord]:
    """Records of one split (``val``, ``testA``, ...), one per sentence.  ``proposals_key``:
    what a proposals mapping is keyed by (``image_id``: ALBEF's dets.json; ``ref_id``)."""
    refs = load_refs(refs_file)
    instances = read_json(require_file(instances_file, "COCO instances"), "COCO instances")
    if not isinstance(instances, dict):
        raise DataError(f"{instances_file}: instances file should be a JSON object with images/annotations/categories")
    for key in ("images", "annotations", "categories"):
        if not isinstance(instances.get(key), list):
            raise DataError(f"{instances_file}: missing list '{key}' (not a COCO instances file?)")
    images = {im.get("id"): im for im in instances["images"] if isinstance(im, dict)}
    anns = {a.get("id"): a for a in instances["annotations"] if isinstance(a, dict)}
    cats = {c.get("id"): c.get("name", str(c.get("id"))) for c in instances["categories"] if isinstance(c, dict)}
    proposals_path = require_file(proposals_file, "proposals")
    proposals, layout = _proposal_index(read_json(proposals_path, "proposals"), proposals_path)
    by = "image_id" if layout == "image_id" else proposals_key

    out: list[RefRecord] = []
    for i, ref in enumerate(refs):
        if not isinstance(ref, dict) or ref.get("split") != split:
            if not isinstance(ref, dict):
                with checker.record(refs_file, f"ref #{i}"):
                    raise BadRecord(f"is a {type(ref).__name__}, not a dict")
            continue
        label = f"ref_id {ref.get('ref_id', '?')} (#{i})"
        with checker.record(refs_file, label):
            ref_id = field(ref, "ref_id", int)
            ann_id = field(ref, "ann_id", int)
            image_id = field(ref, "image_id", int)
            sentences = field(ref, "sentences", list)
            if not sentences:
                raise BadRecord("field 'sentences' is empty")
            texts = []
            for s in sentences:
                text = s.get("sent", s.get("raw")) if isinstance(s, dict) else None
                if not isinstance(text, str) or not text.strip():
                    raise BadRecord(f"sentence {s!r} has no 'sent' text")
                sid = s.get("sent_id")
                texts.append((text.strip(), sid if isinstance(sid, int) and not isinstance(sid, bool) else None))
            img = images.get(image_id)
            if img is None:
                raise BadRecord(f"image_id {image_id} is not in {instances_file}")
            ann = anns.get(ann_id)
            if ann is None:
                raise BadRecord(f"ann_id {ann_id} is not in {instances_file}")
            width, height = field(img, "width", int), field(img, "height", int)
            box = box_ok(field(ann, "bbox", list), width, height, f"ground-truth box of ann {ann_id}")
            path = resolve_image(image_root, field(img, "file_name", str))
            image_ok(checker, path)
            key = image_id if by == "image_id" else ref_id
            boxes = proposals.get(str(key))
            if not boxes:
                raise BadRecord(f"no proposals for {by} {key} in {proposals_path} (keyed by {by}; "
                                f"dataset option proposals_key)")
            props = [box_ok(_proposal_box(b), width, height, "proposal") for b in boxes]
            category = cats.get(ann.get("category_id", ref.get("category_id")), "?")
        if not checker.ok:
            continue
        for text, sid in texts:
            out.append(RefRecord(ref_id, path, image_id, text, box, props, category, (width, height), sid))
    return out
