"""Built-in dataset sources: the generated world and loaders for the official formats (ALBEF JSON, refer toolkit RefCOCO+, VQA v2, NLVR2).

This module is the plugin registered under the ``simla_bench`` entry-point
group.  It imports nothing heavy: each component is registered as a lazy
``"module:attr"`` string and only imported when used.
"""

from simla_bench.hookspecs import hookimpl

SIMLA_BENCH_CONTRACT = 1

#: name -> (target, one-line summary, metadata)
COMPONENTS: dict[str, tuple[str, str, dict]] = {}


@hookimpl
def register_datasets(register):
    for name, (target, summary, meta) in COMPONENTS.items():
        register(name, target, summary, **meta)
