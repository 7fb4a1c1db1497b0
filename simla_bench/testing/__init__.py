"""Helpers for testing simla-bench plugins (also exported as pytest fixtures
through the ``pytest11`` entry point, see :mod:`simla_bench.testing.fixtures`).

``make_step``, ``make_batch``, ``tiny_world``, ``tiny_model`` and
``task_context`` live in :mod:`simla_bench.testing.plugin_kit`; they are
re-exported here lazily, so importing this package (which pytest does in every
session) imports nothing heavy.
"""

from __future__ import annotations

from typing import Any

_KIT = ("make_step", "make_batch", "tiny_world", "tiny_model", "tiny_model_config", "task_context", "TINY_MODEL",
        "TINY_SIZES", "default_model_options")

__all__ = list(_KIT)


def __getattr__(name: str) -> Any:
    if name in _KIT:
        from simla_bench.testing import plugin_kit

        return getattr(plugin_kit, name)
    raise AttributeError(f"module 'simla_bench.testing' has no attribute {name!r}")
