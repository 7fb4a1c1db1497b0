"""Built-in model recipes (kind ``model``): the ``vlp`` vision-language model
in SIMLA's single-stream and ALBEF's split layouts, and the Hugging Face
families ``hf_clip``, ``hf_siglip``, ``hf_blip`` and ``hf_vilt`` (:mod:`.hf`).

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
    register("hf_clip", f"{_PKG}.hf.recipes:HFClipRecipe",
             "Hugging Face CLIPModel from a local save_pretrained directory (dual encoder: ITC retrieval)")
    register("hf_siglip", f"{_PKG}.hf.recipes:HFSiglipRecipe",
             "Hugging Face SiglipModel from a local save_pretrained directory (dual encoder: ITC retrieval)")
    register("hf_blip", f"{_PKG}.hf.recipes:HFBlipRecipe",
             "Hugging Face BlipForImageTextRetrieval from a local directory (ITC + ITM, cross-attention fusion)")
    register("hf_vilt", f"{_PKG}.hf.recipes:HFViltRecipe",
             "Hugging Face ViLT from a local directory (single stream: ITM, and its VQA or NLVR2 head)")
