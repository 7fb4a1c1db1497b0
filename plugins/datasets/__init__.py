"""Built-in dataset sources: the generated world and loaders for the official formats (ALBEF JSON, refer toolkit RefCOCO+, VQA v2, NLVR2), and the world's ``simla-bench world`` command.

This module is the plugin registered under the ``simla_bench`` entry-point
group.  It imports nothing heavy: each component is registered as a lazy
``"module:attr"`` string and only imported when used.  The data kinds a
source ``provides`` are declared on its class only: the registry reads them
from there.
"""

from simla_bench.hookspecs import hookimpl

SIMLA_BENCH_CONTRACT = 1

#: name -> (target, one-line summary)
COMPONENTS: dict[str, tuple[str, str]] = {
    "world": ("simla_bench.plugins.datasets.world.source:WorldSource",
              "generated multimodal world (pretrain, retrieval, grounding, vqa, nlvr2) in the official formats"),
    "albef_pretrain": ("simla_bench.plugins.datasets.sources:AlbefPretrain",
                       "image-caption pairs from ALBEF pretraining JSON files"),
    "coco_karpathy": ("simla_bench.plugins.datasets.sources:CocoKarpathy",
                      "COCO retrieval, ALBEF Karpathy-split JSON"),
    "flickr30k": ("simla_bench.plugins.datasets.sources:Flickr30k",
                  "Flickr30K retrieval, ALBEF JSON"),
    "refcoco+": ("simla_bench.plugins.datasets.sources:RefCOCOPlus",
                 "RefCOCO+ grounding, refer toolkit refs(unc).p + instances.json + proposals"),
    "vqa_v2": ("simla_bench.plugins.datasets.sources:VQAv2",
               "VQA v2, official questions + annotations JSON"),
    "nlvr2": ("simla_bench.plugins.datasets.sources:NLVR2",
              "NLVR2, official JSON lines"),
}


@hookimpl
def register_commands(register):
    register("world", "simla_bench.plugins.datasets.world.cli:world_group",
             "Generate and inspect the built-in procedurally generated world.")


@hookimpl
def register_datasets(register):
    for name, (target, summary) in COMPONENTS.items():
        register(name, target, summary)
