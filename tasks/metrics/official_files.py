"""Readers of the label fields of official annotation and prediction files.

Owns: turning files in the official formats into the plain inputs of the
metric functions, with one clear :class:`~simla_bench.errors.DataError` line
(naming the file and the entry/line) for anything malformed.

Annotation formats: VQA v2 annotations JSON (``{"annotations": [...]}``, with
an optional questions JSON), ALBEF retrieval JSON (``[{"image", "caption":
[...]}]``), the refer toolkit's ``refs(unc).p`` + ``instances.json``, NLVR2
JSON lines.  Prediction formats: VQA ``[{"question_id", "answer"}]``, NLVR2
CSV lines ``identifier,prediction`` (True/False), grounding ``[{"ref_id",
"box"}]`` (optional ``sent_id``), retrieval ``.npy`` score matrix (image x
text) or ranked-lists JSON ``{"i2t": [[text idx...] per image], "t2i":
[[image idx...] per text]}``, or the same matrix stored sparse (``.npz``,
:func:`sparse_matrix_bytes`: per row the indices and scores of its kept
entries, every other entry ``fill``; read back dense, bit for bit).
"""

from __future__ import annotations

import io
import json
import math
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from simla_bench.errors import DataError
from simla_bench.textfiles import read_json_file, read_text_file


def _load_json(path: Path, what: str) -> Any:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} file not found: {path}", "check the path")
    return read_json_file(path, f"{what} file")  # one line for bytes that are not UTF-8 or JSON


def _id_text(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, str) else repr(value)


# ----------------------------------------------------------------------------- VQA
def read_vqa_annotations(path: Path, questions_path: Path | None = None) -> list[dict]:
    """Official VQA annotations -> [{question_id, answers: [10 raw str], answer_type, question_type}].

    Order is the annotation file's order (the official summation order).  When a
    questions file is given, its question ids must be the same set.
    """
    data = _load_json(path, "VQA annotations")
    anns = data.get("annotations") if isinstance(data, dict) else None
    if not isinstance(anns, list):
        raise DataError(f"VQA annotations file {path} has no 'annotations' list",
                        "pass the official *_annotations.json (not the questions file)")
    out, seen = [], set()
    for i, ann in enumerate(anns):
        try:
            qid = ann["question_id"]
            answers = [a["answer"] if isinstance(a, dict) else a for a in ann["answers"]]
            rec = {"question_id": qid, "answers": answers,
                   "answer_type": ann["answer_type"], "question_type": ann["question_type"]}
        except (KeyError, TypeError) as exc:
            raise DataError(f"VQA annotation #{i} in {path} lacks field {exc}",
                            "each needs question_id, answers, answer_type, question_type")
        if not answers or not all(isinstance(a, str) for a in answers):
            raise DataError(f"VQA annotation for question_id {qid} in {path} has no string answers")
        if qid in seen:
            raise DataError(f"question_id {qid} appears twice in {path}")
        seen.add(qid)
        out.append(rec)
    if questions_path is not None:
        qdata = _load_json(questions_path, "VQA questions")
        questions = qdata.get("questions") if isinstance(qdata, dict) else None
        if not isinstance(questions, list):
            raise DataError(f"VQA questions file {questions_path} has no 'questions' list")
        qids = {q.get("question_id") for q in questions if isinstance(q, dict)}
        if qids != seen:
            extra = sorted(map(str, qids ^ seen))[:1]
            raise DataError(f"questions file {questions_path} and annotations {path} disagree on question ids "
                            f"(e.g. {extra[0] if extra else '?'})", "use the matching pair of official files")
    return out


def read_vqa_predictions(path: Path) -> dict:
    """``[{"question_id", "answer"}]`` -> {question_id: answer}."""
    data = _load_json(path, "VQA predictions")
    if not isinstance(data, list):
        raise DataError(f"VQA predictions {path} must be a JSON list of {{question_id, answer}}")
    out: dict = {}
    for i, entry in enumerate(data):
        if not isinstance(entry, dict) or "question_id" not in entry or "answer" not in entry:
            raise DataError(f"VQA prediction #{i} in {path} is malformed: {json.dumps(entry)[:80]}",
                            'expected {"question_id": 1, "answer": "yes"}')
        qid, ans = entry["question_id"], entry["answer"]
        if not isinstance(ans, str):
            raise DataError(f"VQA prediction for question_id {qid} in {path}: answer must be a string")
        if qid in out:
            raise DataError(f"question_id {qid} is predicted twice in {path}", "keep one answer per question")
        out[qid] = ans
    return out


# ----------------------------------------------------------------------------- retrieval
@dataclass
class RetrievalAnnotations:
    """Images and texts in the official (ALBEF) order and their links."""

    images: list[str]
    texts: list[str]
    txt2img: list[int]
    img2txt: list[list[int]]


def read_retrieval_annotations(path: Path) -> RetrievalAnnotations:
    """ALBEF ``[{"image", "caption": [...]}]`` -> images, flattened texts, txt2img, img2txt."""
    data = _load_json(path, "retrieval annotations")
    if not isinstance(data, list) or not data:
        raise DataError(f"retrieval annotations {path} must be a non-empty JSON list of {{image, caption}}")
    images, texts, txt2img, img2txt = [], [], [], []
    for i, ann in enumerate(data):
        if not isinstance(ann, dict) or "image" not in ann or "caption" not in ann:
            raise DataError(f"retrieval annotation #{i} in {path} needs 'image' and 'caption'")
        caps = ann["caption"] if isinstance(ann["caption"], list) else [ann["caption"]]
        images.append(ann["image"])
        img2txt.append([])
        for cap in caps:
            img2txt[-1].append(len(texts))
            txt2img.append(i)
            texts.append(cap)
    return RetrievalAnnotations(images, texts, txt2img, img2txt)


#: the arrays of a sparse score matrix file (``.npz``); ``itc`` is optional
SPARSE_KEYS = ("indices", "scores", "fill", "shape")
#: rows per block when a matrix is made sparse
_BLOCK = 1024


def _index_dtype(n: int) -> np.dtype:
    return np.dtype(np.uint16 if n <= np.iinfo(np.uint16).max + 1 else np.uint32)


def sparse_matrix_bytes(matrix: np.ndarray, fill: float, k: int, itc: np.ndarray | None = None) -> bytes | None:
    """``matrix`` [N, M] as a sparse ``.npz`` (compressed): per row the indices (``uint16``
    when M <= 65536) and scores of ``min(k, M)`` entries holding every entry that is not
    ``fill`` (padded with ``fill`` entries), plus ``fill`` and ``shape``; ``itc``, when
    given, adds that matrix's values at the same indices.  ``None`` when some row has more
    than ``k`` entries other than ``fill`` (the matrix is then not sparse at ``k``)."""
    matrix = np.asarray(matrix)
    n, m = matrix.shape
    kk = min(k, m)
    idx = np.empty((n, kk), dtype=_index_dtype(m))
    for start in range(0, n, _BLOCK):  # blocks of rows: the sort's index array stays small
        is_fill = matrix[start:start + _BLOCK] == matrix.dtype.type(fill)
        if (m - is_fill.sum(axis=1)).max(initial=0) > kk:
            return None
        # entries that are not fill first (stable: ascending column order), then fill entries as padding
        idx[start:start + _BLOCK] = np.argsort(is_fill, axis=1, kind="stable")[:, :kk]
    rows = idx.astype(np.int64)
    arrays = {"indices": idx, "scores": np.take_along_axis(matrix, rows, axis=1),
              "fill": np.array(fill, dtype=matrix.dtype), "shape": np.array([n, m], dtype=np.int64)}
    if itc is not None:
        arrays["itc"] = np.take_along_axis(np.asarray(itc, dtype=np.float32), rows, axis=1)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def read_sparse_arrays(path: Path, what: str) -> dict[str, np.ndarray]:
    """The arrays of a sparse score matrix ``.npz``, checked (one-line DataError)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {name: z[name] for name in z.files}
    except (ValueError, OSError, KeyError) as exc:
        raise DataError(f"{what} {path} is not a .npz archive ({exc})", "write it with sparse_matrix_bytes")
    missing = [name for name in SPARSE_KEYS if name not in arrays]
    if missing:
        raise DataError(f"{what} {path} lacks array(s) {', '.join(missing)}",
                        f"a sparse score matrix holds {', '.join(SPARSE_KEYS)} (and optionally itc)")
    idx, scores, shape = arrays["indices"], arrays["scores"], arrays["shape"]
    if shape.shape != (2,) or idx.ndim != 2 or idx.shape != scores.shape or idx.shape[0] != shape[0] \
            or not np.issubdtype(idx.dtype, np.integer) or (idx.size and int(idx.max()) >= int(shape[1])):
        raise DataError(f"{what} {path}: indices {idx.shape} / scores {scores.shape} do not fit shape "
                        f"{tuple(int(v) for v in shape.ravel())}")
    return arrays


def _dense_from_sparse(path: Path, what: str) -> np.ndarray:
    arrays = read_sparse_arrays(path, what)
    scores = arrays["scores"]
    out = np.full(tuple(int(v) for v in arrays["shape"]), arrays["fill"], dtype=scores.dtype)
    np.put_along_axis(out, arrays["indices"].astype(np.int64), scores, axis=1)
    return out


def read_score_matrix(path: Path, shape: tuple[int, int], what: str) -> np.ndarray:
    """A score matrix of the given shape, dense ``.npy`` or sparse ``.npz`` (dtype kept: it
    decides argsort ties; a sparse one is made dense exactly as it was written)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} file not found: {path}", "check the path")
    if path.suffix == ".npz":
        arr = _dense_from_sparse(path, what)
    else:
        try:
            arr = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise DataError(f"{what} {path} is not a .npy array ({exc})", "save it with numpy.save")
    if arr.shape != shape:
        raise DataError(f"{what} {path} has shape {arr.shape}, expected {shape}",
                        "rows/columns must follow the annotation file's image/caption order")
    if not np.issubdtype(arr.dtype, np.number) or not np.isfinite(arr).all():
        raise DataError(f"{what} {path} must hold finite numbers")
    return arr


def read_ranked_lists(path: Path, n_img: int, n_txt: int) -> tuple[list[list[int]], list[list[int]]]:
    """``{"i2t": [[text idx, ...] per image], "t2i": [[image idx, ...] per text]}`` (best first)."""
    data = _load_json(path, "retrieval ranked lists")
    if not isinstance(data, dict) or "i2t" not in data or "t2i" not in data:
        raise DataError(f"ranked lists {path} must be a JSON object with 'i2t' and 't2i'")
    out = []
    for key, n_query, n_cand in (("i2t", n_img, n_txt), ("t2i", n_txt, n_img)):
        lists = data[key]
        if not isinstance(lists, list) or len(lists) != n_query:
            raise DataError(f"ranked lists {path}: '{key}' must hold one list per query ({n_query}), "
                            f"got {len(lists) if isinstance(lists, list) else type(lists).__name__}")
        for q, cands in enumerate(lists):
            if (not isinstance(cands, list) or not all(isinstance(c, int) and 0 <= c < n_cand for c in cands)
                    or len(set(cands)) != len(cands)):
                raise DataError(f"ranked lists {path}: '{key}' query {q} must list distinct indices in "
                                f"0..{n_cand - 1}")
        out.append(lists)
    return out[0], out[1]


# ----------------------------------------------------------------------------- grounding
class _PlainUnpickler(pickle.Unpickler):
    """Unpickles plain containers only: refs(unc).p holds lists/dicts/str/numbers."""

    def find_class(self, module: str, name: str):
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


@dataclass
class RefUnit:
    """One scored expression (ALBEF scores every sentence of a ref)."""

    ref_id: int
    sent_id: int
    split: str
    box: tuple[float, float, float, float]


def read_refer(refs_path: Path, instances_path: Path) -> list[RefUnit]:
    """refer toolkit ``refs(unc).p`` + ``instances.json`` -> one unit per sentence with its GT box."""
    refs_path = Path(refs_path)
    if not refs_path.is_file():
        raise DataError(f"refs file not found: {refs_path}", "pass refs(unc).p of the refer toolkit")
    try:
        with open(refs_path, "rb") as f:
            refs = _PlainUnpickler(f, encoding="latin1").load()
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad file
        raise DataError(f"refs file {refs_path} could not be read as a plain pickle ({exc})")
    inst = _load_json(instances_path, "refer instances")
    try:
        boxes = {a["id"]: a["bbox"] for a in inst["annotations"]}
    except (KeyError, TypeError):
        raise DataError(f"instances file {instances_path} needs annotations with 'id' and 'bbox'")
    if not isinstance(refs, list):
        raise DataError(f"refs file {refs_path} must hold a list of refs")
    units = []
    for i, ref in enumerate(refs):
        try:
            box = boxes[ref["ann_id"]]
            sent_ids = [s["sent_id"] for s in ref["sentences"]]
            units.extend(RefUnit(int(ref["ref_id"]), int(s), str(ref["split"]), tuple(float(v) for v in box))
                         for s in sent_ids)
        except KeyError as exc:
            raise DataError(f"ref #{i} in {refs_path} lacks {exc} (or its ann_id has no box in {instances_path})")
    return units


def read_grounding_predictions(path: Path) -> list[dict]:
    """``[{"ref_id", "box": [x, y, w, h]}]`` (optional ``sent_id``) -> validated list."""
    data = _load_json(path, "grounding predictions")
    if not isinstance(data, list):
        raise DataError(f"grounding predictions {path} must be a JSON list of {{ref_id, box}}")
    out = []
    for i, entry in enumerate(data):
        box = entry.get("box") if isinstance(entry, dict) else None
        ok = (isinstance(entry, dict) and isinstance(entry.get("ref_id"), int) and isinstance(box, list)
              and len(box) == 4 and all(isinstance(v, (int, float)) and math.isfinite(v) for v in box)
              and box[2] >= 0 and box[3] >= 0 and isinstance(entry.get("sent_id", 0), int))
        if not ok:
            raise DataError(f"grounding prediction #{i} in {path} is malformed: {json.dumps(entry)[:80]}",
                            'expected {"ref_id": 1, "box": [x, y, w, h]} with w, h >= 0')
        out.append({"ref_id": entry["ref_id"], "sent_id": entry.get("sent_id"), "box": [float(v) for v in box]})
    return out


# ----------------------------------------------------------------------------- NLVR2
def _nlvr2_lines(path: Path, what: str, hint: str) -> Iterator[tuple[int, str]]:
    """``(line number, line)`` of each non-blank line of an NLVR2 ``what`` file."""
    if not path.is_file():
        raise DataError(f"NLVR2 {what} file not found: {path}", hint)
    for lineno, line in enumerate(read_text_file(path, f"NLVR2 {what} file").split("\n"), 1):
        if line.strip():
            yield lineno, line


def read_nlvr2_labels(path: Path) -> dict[str, bool]:
    """NLVR2 JSON lines -> {identifier: label} in file order."""
    path = Path(path)
    out: dict[str, bool] = {}
    for lineno, line in _nlvr2_lines(path, "annotations", "pass dev.json / test1.json"):
        try:
            ex = json.loads(line)
            identifier, label = ex["identifier"], str(ex["label"]).lower()
        except (json.JSONDecodeError, KeyError, TypeError):
            raise DataError(f"{path} line {lineno} is not an NLVR2 example with identifier and label")
        if label not in ("true", "false"):
            raise DataError(f"{path} line {lineno}: label {ex['label']!r} is not True/False")
        if not isinstance(identifier, str) or len(identifier.split("-")) < 3:
            raise DataError(f"{path} line {lineno}: identifier {identifier!r} is not split-set-pair-sentence",
                            "NLVR2 identifiers look like dev-850-0-0 (the consistency score groups by them)")
        if identifier in out:
            raise DataError(f"{path} line {lineno}: identifier {identifier} appears twice")
        out[identifier] = label == "true"
    if not out:
        raise DataError(f"NLVR2 annotations file {path} has no examples")
    return out


def read_nlvr2_predictions(path: Path) -> dict[str, bool]:
    """CSV lines ``identifier,prediction`` (True/False, any case) -> {identifier: bool}."""
    path = Path(path)
    out: dict[str, bool] = {}
    for lineno, line in _nlvr2_lines(path, "predictions", "check the path"):
        # Strict on purpose: the official script compares the raw field after
        # the comma, so " True" would silently count as wrong there.
        parts = line.strip().split(",")
        if (len(parts) != 2 or not parts[0] or parts[0] != parts[0].strip()
                or parts[1].lower() not in ("true", "false")):
            raise DataError(f"{path} line {lineno} is malformed: {line.strip()[:80]!r}",
                            "expected 'identifier,True' or 'identifier,False' without spaces")
        identifier = parts[0]
        if identifier in out:
            raise DataError(f"{path} line {lineno}: identifier {identifier} is predicted twice")
        out[identifier] = parts[1].strip().lower() == "true"
    return out
