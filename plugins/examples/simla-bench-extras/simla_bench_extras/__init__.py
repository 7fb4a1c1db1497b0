"""simla-bench-extras: the plugin module (the ``simla_bench`` entry point).

Registers the objective ``siglip`` and the task ``snli_ve`` lazily, as
``"module:attr"`` strings, so that ``simla-bench list`` imports nothing heavy.
"""

from simla_bench.hookspecs import hookimpl

#: the plugin contract version this distribution was written for
SIMLA_BENCH_CONTRACT = 1


@hookimpl
def register_objectives(register):
    register(
        "siglip",
        "simla_bench_extras.siglip:SigLIP",
        "SigLIP sigmoid pairwise image-text loss with learnable temperature and bias",
    )


@hookimpl
def register_tasks(register):
    register(
        "snli_ve",
        "simla_bench_extras.snli_ve:VisualEntailment",
        "SNLI-VE-style visual entailment on the world: 3-way MLP on the pooled fused states, val/test accuracy",
    )
