"""Pytest fixtures for plugin authors (loaded automatically by pytest when
simla-bench is installed).  Importing this module must stay light.

* ``simla_registry`` — a fresh registry loaded from the installed entry points,
  made the process-wide one for the test; ``simla_registry.add_plugin(obj)``
  registers an in-process plugin.
"""

from __future__ import annotations

import pytest


@pytest.fixture
def simla_registry():
    from simla_bench.registry import Registry, set_registry

    registry = Registry()
    registry.load_entry_points()
    set_registry(registry)
    try:
        yield registry
    finally:
        set_registry(None)
