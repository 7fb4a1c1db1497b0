"""Built-in downstream tasks (installed as ``simla_bench.tasks``): image-text
retrieval, RefCOCO+-style weakly supervised grounding, VQA v2 and NLVR2.

This module is the plugin registered under the ``simla_bench`` entry-point
group; each task is registered lazily as a ``"module:attr"`` string.  What a
task declares (``primary_metric``, ``data_kind``, ``needs``) is on its class
only: the registry reads it from there.
"""

from simla_bench.hookspecs import hookimpl

SIMLA_BENCH_CONTRACT = 1

#: name -> (target, one-line summary)
COMPONENTS: dict[str, tuple[str, str]] = {
    "retrieval": (
        "simla_bench.tasks.retrieval:RetrievalTask",
        "image-text retrieval: ITC top-k re-ranked by ITM; TR/IR@1/5/10 (COCO/Flickr protocol)",
    ),
    "grounding": (
        "simla_bench.tasks.grounding:GroundingTask",
        "weakly supervised RefCOCO+ grounding: Grad-CAM proposal ranking, acc@IoU>=0.5",
    ),
    "vqa": (
        "simla_bench.tasks.vqa:VQATask",
        "VQA v2: answer classifier on the pooled fused states; official VQA accuracy",
    ),
    "nlvr2": (
        "simla_bench.tasks.nlvr2:NLVR2Task",
        "NLVR2: two-image fusion + MLP head; accuracy and consistency",
    ),
}


@hookimpl
def register_tasks(register):
    for name, (target, summary) in COMPONENTS.items():
        register(name, target, summary)
