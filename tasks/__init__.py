"""Built-in downstream tasks (installed as ``simla_bench.tasks``): image-text
retrieval, RefCOCO+-style weakly supervised grounding, VQA v2 and NLVR2.

This module is the plugin registered under the ``simla_bench`` entry-point
group; each task is registered lazily as a ``"module:attr"`` string.
"""

from simla_bench.hookspecs import hookimpl

SIMLA_BENCH_CONTRACT = 1

#: name -> (target, one-line summary, metadata)
COMPONENTS: dict[str, tuple[str, str, dict]] = {}


@hookimpl
def register_tasks(register):
    for name, (target, summary, meta) in COMPONENTS.items():
        register(name, target, summary, **meta)
