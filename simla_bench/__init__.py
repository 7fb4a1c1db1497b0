"""simla-bench: a plugin-based benchmark harness for vision-language pretraining.

This package is the core: the plugin contract (:mod:`simla_bench.hookspecs`),
the registry, configuration, the CLI, the matrix runner, results, reporting and
metrics.  It knows no particular backbone, objective or task; those arrive as
plugins, the built-in ones included.
"""

__version__ = "0.4.0"

#: Major version of the plugin contract.  A plugin module may declare
#: ``SIMLA_BENCH_CONTRACT = <int>``; a different major version is refused.
CONTRACT_VERSION = 1

__all__ = ["__version__", "CONTRACT_VERSION"]
