"""Pytest fixtures for plugin authors (loaded automatically by pytest when
simla-bench is installed, through the ``pytest11`` entry point).  Importing
this module must stay light: everything heavy is imported inside fixtures.

* ``simla_registry`` — a fresh registry loaded from the installed entry points,
  made the process-wide one for the test; ``simla_registry.add_plugin(obj)``
  registers an in-process plugin.
* ``simla_tiny_world`` — the built-in world at the ``tiny`` preset, generated
  once per session in a temporary folder (a prepared ``DatasetSource``).
* ``simla_tiny_model`` — a fresh tiny vision-language model (2-layer ViT and
  BERT, width 64) with its tokenizer; every test gets its own copy.
* ``simla_batch`` — a pretraining batch of 8 pairs of the tiny world for it.
* ``simla_task_context`` — a ``TaskContext`` for ``simla_tiny_model`` on
  ``simla_tiny_world`` (CPU, seed 0, ``workdir`` a temporary folder).

``simla_bench.testing.make_step(model, batch)`` builds the per-step context an
objective's ``loss`` receives.  See docs/plugins.md, "Testing a plugin".
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


@pytest.fixture(scope="session")
def simla_tiny_world(tmp_path_factory):
    from simla_bench.testing.plugin_kit import tiny_world

    return tiny_world(tmp_path_factory.mktemp("simla_world") / "world")


@pytest.fixture(scope="session")
def _simla_tiny_model_template(simla_tiny_world):
    from simla_bench.testing.plugin_kit import tiny_model

    return tiny_model(simla_tiny_world)


@pytest.fixture
def simla_tiny_model(_simla_tiny_model_template):
    import copy

    import torch

    torch.manual_seed(0)
    return copy.deepcopy(_simla_tiny_model_template)


@pytest.fixture
def simla_batch(simla_tiny_model, simla_tiny_world):
    from simla_bench.testing.plugin_kit import make_batch

    return make_batch(simla_tiny_model, simla_tiny_world)


@pytest.fixture
def simla_task_context(simla_tiny_model, simla_tiny_world, tmp_path):
    from simla_bench.testing.plugin_kit import task_context

    return task_context(simla_tiny_model, simla_tiny_world, tmp_path / "task")
