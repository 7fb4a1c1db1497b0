"""What a plugin author gets: the test kit builds the default experiment's model
(at tiny sizes), and the ``new-plugin --kind task`` skeleton works on it, its
own generated tests included; ``simla-bench list plugins --check`` imports
every registered target and reports each one that fails."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from simla_bench.cli.plugin_cmd import write_skeleton
from simla_bench.config import load_config
from simla_bench.testing.plugin_kit import TINY_MODEL, TINY_SIZES


def test_the_kit_model_is_the_default_model_at_tiny_sizes(simla_tiny_model):
    default = load_config().model.options
    for key, value in default.items():
        if key not in TINY_SIZES:
            assert TINY_MODEL[key] == value, key
    assert simla_tiny_model.text_pool == default["text_pool"] == "mean"


def _import_file(name: str, path) -> object:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def task_skeleton(tmp_path, monkeypatch):
    project = write_skeleton("probe_mask", "task", tmp_path / "probe", check_registry=False)
    monkeypatch.syspath_prepend(str(project))
    yield project
    for name in list(sys.modules):
        if name.startswith("simla_bench_probe_mask"):
            sys.modules.pop(name)


def test_generated_task_and_its_own_tests_run_on_the_default_model(task_skeleton, simla_task_context):
    """The skeleton's generated tests, called with the kit's fixtures (the
    default model pools the token mean, so a task that drops the attention
    mask raises there and scores padding differently per batch)."""
    tests = _import_file("probe_mask_generated_tests", task_skeleton / "tests" / "test_probe_mask.py")
    tests.test_runs_on_the_tiny_world(simla_task_context)
    tests.test_scores_do_not_depend_on_the_batch_padding(simla_task_context)
    tests.test_unknown_option_is_refused()
    task_mod = importlib.import_module("simla_bench_probe_mask.task")
    result = task_mod.ProbeMaskTask("probe_mask").run(simla_task_context)
    assert 0.0 <= result.metrics["test/acc"] <= 100.0
