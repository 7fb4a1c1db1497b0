"""Built-in backbones: timm vision transformers, BERT-family text/fusion encoders (transformers), and the VLP model they form.

This module is the plugin registered under the ``simla_bench`` entry-point
group.  It imports nothing heavy: each component is registered as a lazy
``"module:attr"`` string and only imported when used.  Each target is a
factory ``build(**options) -> nn.Module``; the VLP model itself is assembled
by :func:`simla_bench.plugins.backbones.vlp.build_model`.
"""

from simla_bench.hookspecs import hookimpl

SIMLA_BENCH_CONTRACT = 1

_PKG = "simla_bench.plugins.backbones"

#: name -> (target, one-line summary, metadata)
COMPONENTS: dict[str, tuple[str, str, dict]] = {
    "vit_world_tiny": (f"{_PKG}.vit:vit_world_tiny",
                       "tiny timm ViT for the built-in world: 64px, patch 8, width 192, depth 4, 3 heads",
                       {"modality": "image"}),
    "vit_base_patch16_256": (f"{_PKG}.vit:vit_base_patch16_256",
                             "ViT-B/16 (DeiT-base shape) at 256px, as SIMLA/ALBEF; local weights via option 'weights'",
                             {"modality": "image"}),
    "vit_timm": (f"{_PKG}.vit:vit_timm",
                 "any timm vision transformer by name (option model_name; local weights via option 'weights')",
                 {"modality": "image"}),
    "bert_world_tiny": (f"{_PKG}.bert:bert_world_tiny",
                        "tiny BERT text/fusion encoder: width 192, 4 layers, 3 heads, FFN 768",
                        {"modality": "text"}),
    "bert_base": (f"{_PKG}.bert:bert_base",
                  "BERT-base text/fusion encoder (768 wide, 12 layers); local HF weights via option 'weights'",
                  {"modality": "text"}),
}


@hookimpl
def register_backbones(register):
    for name, (target, summary, meta) in COMPONENTS.items():
        register(name, target, summary, **meta)
