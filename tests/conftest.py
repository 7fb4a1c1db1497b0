"""Shared test set-up: the same numeric settings as a real run, a file
cache (simla_bench.filecache) of the test session's own instead of the
user's ~/.cache/simla-bench, and the session's one tiny world and one tiny
model per layout.

The world and the models are those of :mod:`simla_bench.testing` (the
plugin authors' fixtures ``simla_tiny_world`` / ``simla_tiny_model``, the
tiny model being the default experiment's model at ``TINY_SIZES``), built
once per session:

* ``tiny_world`` -- the built-in world at the ``tiny`` preset (seed 0, 64 px),
  generated once; read-only (a test that writes files writes them under its
  own ``tmp_path``).  A test that needs other counts or another image size
  generates its own (and says why).
* ``tiny_models`` -- ``tiny_models[layout]`` for ``layout`` in
  :data:`TINY_LAYOUTS` (``single_stream``: the default experiment's layout;
  ``split``: ALBEF's, the top one of the two BERT layers fusing), each built
  once, when first asked for, with the tokenizer trained on the world's
  captions (``model.tokenizer``).  Shared: a test must not change it
  (tasks copy the model they are given); ``tiny_models.fresh(layout)`` is a
  copy of its own.
* ``tiny_model`` -- a fresh copy of the ``single_stream`` model
  (``simla_tiny_model``'s); ``@pytest.mark.parametrize("tiny_model",
  ["split"], indirect=True)`` picks another layout.
"""

import os
import tempfile

import pytest

from simla_bench.runtime import configure_math

configure_math()

#: layout -> the tiny model options that give it (over ``simla_bench.testing.TINY_MODEL``)
TINY_LAYOUTS = {"single_stream": {"layout": "single_stream"}, "split": {"layout": "split", "fusion_layers": 1}}


class TinyModels:
    """The session's tiny models, one per layout, each built on first use."""

    def __init__(self, world, single_stream):
        self._world = world
        self._built = {"single_stream": single_stream}

    def __getitem__(self, layout: str):
        if layout not in TINY_LAYOUTS:
            raise KeyError(f"no tiny model of layout {layout!r}; there are {sorted(TINY_LAYOUTS)}")
        if layout not in self._built:
            from simla_bench.testing.plugin_kit import tiny_model

            self._built[layout] = tiny_model(self._world, **TINY_LAYOUTS[layout])
        return self._built[layout]

    def fresh(self, layout: str = "single_stream"):
        """A copy of the layout's model that the test may change (seeded as ``simla_tiny_model``)."""
        import copy

        import torch

        model = self[layout]
        torch.manual_seed(0)
        return copy.deepcopy(model)


@pytest.fixture(scope="session")
def tiny_world(simla_tiny_world):
    return simla_tiny_world


@pytest.fixture(scope="session")
def tiny_models(tiny_world, _simla_tiny_model_template):
    assert _simla_tiny_model_template.layout == "single_stream"   # TINY_MODEL's, the default experiment's
    return TinyModels(tiny_world, _simla_tiny_model_template)


@pytest.fixture
def tiny_model(request, tiny_models):
    return tiny_models.fresh(getattr(request, "param", "single_stream"))


@pytest.fixture(autouse=True, scope="session")
def _session_file_cache():
    with tempfile.TemporaryDirectory(prefix="simla-bench-test-cache-") as folder:
        old = os.environ.get("SIMLA_BENCH_CACHE")
        os.environ["SIMLA_BENCH_CACHE"] = folder  # subprocesses of the tests inherit it
        yield folder
        if old is None:
            os.environ.pop("SIMLA_BENCH_CACHE", None)
        else:
            os.environ["SIMLA_BENCH_CACHE"] = old
