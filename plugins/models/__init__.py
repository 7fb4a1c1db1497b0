"""Built-in model recipes (kind ``model``): the ``vlp`` vision-language model
in SIMLA's single-stream and ALBEF's split layouts.

This module is the plugin registered under the ``simla_bench`` entry-point
group, exactly as a third-party model plugin is; it imports nothing heavy.
"""

from simla_bench.hookspecs import hookimpl

SIMLA_BENCH_CONTRACT = 1

_PKG = "simla_bench.plugins.models"


@hookimpl
def register_models(register):
    register("vlp", f"{_PKG}.vlp_plugin:VLPRecipe",
             "ViT + BERT with ITC/ITM/MLM/MIM/PSL heads: SIMLA single stream or ALBEF split; "
             "loads released ALBEF/SIMLA checkpoints (option checkpoint)")
