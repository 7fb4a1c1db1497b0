"""Built-in pretraining objectives: ITC, ITM, MLM, XMM (text+image reconstruction) and PSL, one module each.

This module is the plugin registered under the ``simla_bench`` entry-point
group.  It imports nothing heavy: each component is registered as a lazy
``"module:attr"`` string and only imported when used.  An objective's
``needs`` is declared on its class only: the registry reads it from there.
"""

from simla_bench.hookspecs import hookimpl

SIMLA_BENCH_CONTRACT = 1

#: name -> (target, one-line summary)
COMPONENTS: dict[str, tuple[str, str]] = {
    "itc": ("simla_bench.plugins.objectives.itc:ITC",
            "image-text contrastive loss with momentum queue and distillation (ALBEF)"),
    "itm": ("simla_bench.plugins.objectives.itm:ITM",
            "image-text matching on the pooled fused states with in-batch hard negatives"),
    "mlm": ("simla_bench.plugins.objectives.mlm:MLM",
            "image-conditioned masked language modelling (BERT masking 15%), distilled"),
    "mim": ("simla_bench.plugins.objectives.mim:MIM",
            "text-conditioned masked image modelling on discrete visual tokens (block masking)"),
    "xmm": ("simla_bench.plugins.objectives.xmm:XMM",
            "SIMLA's symmetric cross-modality reconstruction: MLM + MIM"),
    "psl": ("simla_bench.plugins.objectives.psl:PSL",
            "pseudo-keyword supervision: the visual encoder predicts attention-voted caption keywords"),
}


@hookimpl
def register_objectives(register):
    for name, (target, summary) in COMPONENTS.items():
        register(name, target, summary)
