"""Built-in plugins of simla-bench (installed as ``simla_bench.plugins``):
backbones, pretraining objectives, dataset sources and run observers.

Each subpackage is an ordinary pluggy plugin registered through the
``simla_bench`` entry-point group, exactly as a third-party plugin is.
``examples/`` holds separate third-party distributions and is not part of
this package.
"""
