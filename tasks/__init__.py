"""Built-in downstream tasks (installed as ``simla_bench.tasks``): image-text
retrieval, RefCOCO+-style weakly supervised grounding, VQA v2 and NLVR2.

This module is the plugin registered under the ``simla_bench`` entry-point
group; each task is registered lazily as a ``"module:attr"`` string.
"""

from simla_bench.hookspecs import hookimpl

SIMLA_BENCH_CONTRACT = 1

#: name -> (target, one-line summary, metadata)
COMPONENTS: dict[str, tuple[str, str, dict]] = {
    "retrieval": (
        "simla_bench.tasks.retrieval:RetrievalTask",
        "image-text retrieval: ITC top-k re-ranked by ITM; TR/IR@1/5/10 (COCO/Flickr protocol)",
        {"data_kind": "retrieval", "primary_metric": "test/r_mean"},
    ),
    "grounding": (
        "simla_bench.tasks.grounding:GroundingTask",
        "weakly supervised RefCOCO+ grounding: Grad-CAM proposal ranking, acc@IoU>=0.5",
        {"data_kind": "grounding", "primary_metric": "val/acc"},
    ),
    "vqa": (
        "simla_bench.tasks.vqa:VQATask",
        "VQA v2: answer classifier on the pooled fused states; official VQA accuracy",
        {"data_kind": "vqa", "primary_metric": "test/overall"},
    ),
    "nlvr2": (
        "simla_bench.tasks.nlvr2:NLVR2Task",
        "NLVR2: two-image fusion + MLP head; accuracy and consistency",
        {"data_kind": "nlvr2", "primary_metric": "test/acc"},
    ),
}


@hookimpl
def register_tasks(register):
    for name, (target, summary, meta) in COMPONENTS.items():
        register(name, target, summary, **meta)
