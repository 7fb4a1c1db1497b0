"""The built-in tasks' prediction files: what goes in a cell's predictions folder
(``RUN_DIR/cells/<key>/``), and the official annotation files rebuilt from a
split's records so that those files can be scored again (``report --rescore``).

Files are named ``<split>_<what>`` (``test_answers.json``, ``val_boxes.json``,
``test_scores_i2t.npz``, ``test_predictions.csv``), in the formats
``simla-bench score`` reads (:mod:`simla_bench.tasks.metrics.official_files`).
Annotations are written from the records the task scored (the loaded split), so
a re-score checks the files against exactly what the cell was scored on, with
the official readers and scorers; VQA uses the split's own annotations file.
"""

from __future__ import annotations

import io
import json
import pickle
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from simla_bench.errors import DataError


def json_bytes(data: Any) -> bytes:
    """Compact JSON, UTF-8, one trailing newline."""
    return (json.dumps(data, separators=(",", ":")) + "\n").encode("utf-8")


def npy_bytes(matrix: np.ndarray) -> bytes:
    """A dense ``.npy`` file's bytes (dtype kept)."""
    buf = io.BytesIO()
    np.save(buf, np.asarray(matrix), allow_pickle=False)
    return buf.getvalue()


def matrix_file(matrix: np.ndarray, *, fill: float | None = None, k: int = 0,
                itc: np.ndarray | None = None) -> tuple[str, bytes]:
    """``(suffix, bytes)`` of a score matrix: sparse ``.npz`` when every row has at most
    ``k`` entries other than ``fill`` (the ITM re-ranked matrices), else dense ``.npy``."""
    from simla_bench.tasks.metrics.official_files import sparse_matrix_bytes

    if fill is not None:
        data = sparse_matrix_bytes(matrix, fill, k, itc)
        if data is not None:
            return ".npz", data
    return ".npy", npy_bytes(matrix)


def split_files(folder: Path, what: str, splits: Iterable[str] | None = None) -> dict[str, Path]:
    """``split -> file`` of the files named ``<split>_<what>`` in ``folder`` (``what`` may end
    in ``.*``: any suffix), in ``splits`` order when given, else sorted."""
    found: dict[str, Path] = {}
    any_suffix = what.endswith(".*")
    tail = "_" + (what[:-2] if any_suffix else what)
    for path in sorted(Path(folder).iterdir()):
        name = path.stem if any_suffix else path.name
        if name.endswith(tail) and len(name) > len(tail):
            found[name[: -len(tail)]] = path
    if splits is not None:
        return {s: found[s] for s in splits if s in found}
    return found


def one_split_file(folder: Path, what: str, split: str) -> Path:
    """The ``<split>_<what>`` file of a cell's folder, or a one-line DataError."""
    files = split_files(folder, what, [split])
    if split not in files:
        raise DataError(f"{folder} has no {split} predictions ({split}_{what})",
                        hint="the cell did not evaluate that split")
    return files[split]


# ------------------------------------------------------------------ annotations, rebuilt from records
def write_retrieval_annotations(split: Any, path: Path) -> Path:
    """ALBEF retrieval JSON ``[{image, caption: [...]}]`` of a ``RetrievalSplit`` (its
    texts must be listed image by image, as the official files list them)."""
    if [t for texts in split.img2txt for t in texts] != list(range(len(split.texts))):
        raise DataError("retrieval split lists its texts out of image order; its score matrix columns cannot be "
                        "written as ALBEF's annotation file")
    entries = [{"image": str(img), "caption": [split.texts[t] for t in texts]}
               for img, texts in zip(split.images, split.img2txt)]
    path.write_bytes(json_bytes(entries))
    return path


def sentence_ids(records: list[Any]) -> list[int]:
    """Each grounding record's ``sent_id`` (the refs file's), or where a source gives none
    its sentence number within its ref (0, 1, ... in record order)."""
    seen: dict[int, int] = {}
    out = []
    for r in records:
        given = getattr(r, "sent_id", None)
        out.append(given if given is not None else seen.get(r.ref_id, 0))
        seen[r.ref_id] = seen.get(r.ref_id, 0) + 1
    return out


def has_several_sentences(records: list[Any]) -> bool:
    """Whether some ref has more than one expression among ``records``."""
    return len({r.ref_id for r in records}) < len(records)


def write_refer_annotations(records: list[Any], split: str, folder: Path) -> tuple[Path, Path]:
    """The refer toolkit's ``refs(unc).p`` and ``instances.json`` of one split's
    ``RefRecord``s (one ref per ref_id, its sentences numbered as :func:`sentence_ids`)."""
    refs: dict[int, dict] = {}
    for r, sid in zip(records, sentence_ids(records)):
        ref = refs.setdefault(r.ref_id, {"ref_id": r.ref_id, "ann_id": r.ref_id, "image_id": r.image_id,
                                         "split": split, "sentences": [], "box": [float(v) for v in r.box]})
        ref["sentences"].append({"sent_id": sid, "sent": r.sentence})
    refs_path, inst_path = folder / "refs(unc).p", folder / "instances.json"
    with open(refs_path, "wb") as fh:
        pickle.dump([{k: v for k, v in ref.items() if k != "box"} for ref in refs.values()], fh)
    inst_path.write_bytes(json_bytes({"annotations": [{"id": ref["ann_id"], "bbox": ref["box"],
                                                       "image_id": ref["image_id"]} for ref in refs.values()]}))
    return refs_path, inst_path


def write_nlvr2_labels(records: list[Any], path: Path) -> Path:
    """NLVR2 JSON lines ``{identifier, sentence, label}`` of one split's records."""
    lines = [json.dumps({"identifier": r.identifier, "sentence": r.sentence, "label": str(bool(r.label))})
             for r in records]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
