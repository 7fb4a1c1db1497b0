"""Experiment YAML files shipped with simla-bench (installed as ``simla_bench.configs``)."""
