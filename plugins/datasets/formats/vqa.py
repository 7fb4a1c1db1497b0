"""VQA v2 official question and annotation JSON.

Questions file: ``{"info", "task_type", "data_type", "data_subtype", "license",
"questions": [{"image_id", "question", "question_id"}]}``.
Annotations file: ``{"info", "data_type", "data_subtype", "license", "annotations":
[{"question_id", "image_id", "question_type", "answer_type", "multiple_choice_answer",
"answers": [{"answer", "answer_confidence", "answer_id"} x 10]}]}``.
Image paths follow ``image_pattern`` (default the COCO layout
``{data_subtype}/COCO_{data_subtype}_{image_id:012d}.jpg``) under the image root.
"""

from __future__ import annotations

from pathlib import Path

from simla_bench.errors import DataError

from ..checks import BadRecord, Checker, field, image_ok, read_json, require_file, resolve_image
from ..records import VQARecord, VQASplit

DEFAULT_PATTERN = "{data_subtype}/COCO_{data_subtype}_{image_id:012d}.jpg"


def read_vqa(questions_file: Path, annotations_file: Path, image_root: Path | None, image_pattern: str,
             checker: Checker) -> VQASplit:
    qpath = require_file(questions_file, "VQA questions")
    apath = require_file(annotations_file, "VQA annotations")
    qdata = read_json(qpath, "VQA questions")
    adata = read_json(apath, "VQA annotations")
    if not isinstance(qdata, dict) or not isinstance(qdata.get("questions"), list):
        raise DataError(f"{qpath}: not a VQA questions file (no 'questions' list)")
    if not isinstance(adata, dict) or not isinstance(adata.get("annotations"), list):
        raise DataError(f"{apath}: not a VQA annotations file (no 'annotations' list)")
    subtype = str(qdata.get("data_subtype", ""))
    anns = {a.get("question_id"): a for a in adata["annotations"] if isinstance(a, dict)}
    records: list[VQARecord] = []
    for i, q in enumerate(qdata["questions"]):
        label = f"question_id {q.get('question_id', '?') if isinstance(q, dict) else '?'} (#{i})"
        with checker.record(qpath, label):
            qid = field(q, "question_id", int)
            image_id = field(q, "image_id", int)
            question = field(q, "question", str)
            if not question.strip():
                raise BadRecord("field 'question' is empty")
            ann = anns.get(qid)
            if ann is None:
                raise BadRecord(f"has no annotation in {apath}")
            try:
                answers_raw = field(ann, "answers", list)
                if len(answers_raw) != 10:
                    raise BadRecord(f"has {len(answers_raw)} answers, VQA v2 has 10")
                answers = [field(a, "answer", str) for a in answers_raw]
                mc = field(ann, "multiple_choice_answer", str)
                answer_type = field(ann, "answer_type", str)
                question_type = field(ann, "question_type", str)
                if field(ann, "image_id", int) != image_id:
                    raise BadRecord(f"image_id {image_id} differs from the annotation's {ann['image_id']}")
            except BadRecord as exc:
                raise BadRecord(f"annotation in {apath}: {exc}") from None
            try:
                rel = image_pattern.format(data_subtype=subtype, image_id=image_id)
            except (KeyError, ValueError, IndexError) as exc:
                raise DataError(f"image_pattern {image_pattern!r} is invalid ({exc})",
                                hint="use {data_subtype} and {image_id} placeholders") from None
            image = resolve_image(image_root, rel)
            image_ok(checker, image)
        if checker.ok:
            records.append(VQARecord(qid, image, image_id, question.strip(), answers, mc, answer_type, question_type))
    return VQASplit(records, qpath.resolve(), apath.resolve())
