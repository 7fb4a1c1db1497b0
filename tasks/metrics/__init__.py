"""Official-equivalent metrics for the downstream tasks, pure numpy / Python.

Each module reproduces one official evaluation to its last printed digit
(see docs/metrics.md): :mod:`.vqa` (vqaEval, ALBEF's copy or GT-Vision-Lab's
current master), :mod:`.retrieval` (ALBEF ``itm_eval``), :mod:`.grounding`
(ALBEF RefCOCO+ protocol, ALBEF's ``computeIoU`` or pycocotools IoU),
:mod:`.nlvr2` (lil-lab evaluation).  :mod:`.official_files`
reads the official annotation and prediction files for ``simla-bench score``.
The tasks and the score command call the very same functions.
"""

from simla_bench.tasks.metrics.grounding import (
    box_iou,
    grounding_accuracy,
    grounding_hits,
    score_proposals,
    select_proposals,
)
from simla_bench.tasks.metrics.nlvr2 import NLVR2Result, nlvr2_scores, sentence_key
from simla_bench.tasks.metrics.retrieval import i2t_ranks, itm_eval, scalar_metrics, t2i_ranks
from simla_bench.tasks.metrics.vqa import (
    VQAResult,
    normalize_prediction,
    process_digit_article,
    process_punctuation,
    question_accuracy,
    vqa_accuracy,
)

__all__ = [
    "NLVR2Result", "VQAResult", "box_iou", "grounding_accuracy", "grounding_hits", "i2t_ranks",
    "itm_eval", "nlvr2_scores", "normalize_prediction", "process_digit_article", "process_punctuation",
    "question_accuracy", "scalar_metrics", "score_proposals", "select_proposals", "sentence_key",
    "t2i_ranks", "vqa_accuracy",
]
