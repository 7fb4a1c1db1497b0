"""A tiny generated world for tests (ours, other components' and plugin authors').

``make_tiny_world(root)`` generates (or reuses) the ``tiny`` preset of the built-in world under
``root`` in about a second and returns the prepared :class:`DatasetSource`; every data kind
(``pretrain``, ``retrieval``, ``grounding``, ``vqa``, ``nlvr2``) loads from it.  The world
folder itself is ``make_tiny_world(root).root``.
"""

from __future__ import annotations

from pathlib import Path


def make_tiny_world(root: str | Path, seed: int = 0, image_size: int = 64, **counts: int):
    """Generate the tiny world under ``root`` (reused when already there) and return the source.

    ``counts`` override preset counts (e.g. ``pretrain=40``); see
    ``simla_bench.plugins.datasets.world.presets.PRESETS``.
    """
    from simla_bench.registry import get_registry

    source = get_registry().load("dataset", "world")("world", {"preset": "tiny", "root": str(root), "seed": seed,
                                   "image_size": image_size, "counts": dict(counts)})
    source.prepare(progress=lambda *a, **k: None)
    return source
