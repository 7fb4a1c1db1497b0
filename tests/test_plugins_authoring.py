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
from test_registry_plugins import _write_distribution


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


# ------------------------------------------------------------------ list plugins --check


@pytest.fixture
def broken_lazy_plugin(tmp_path, monkeypatch):
    """A distribution that registers fine but whose lazy targets do not import
    (or are not what their kind needs); listing never notices."""
    (tmp_path / "lazy_impl_broken.py").write_text("import no_such_dependency_xyz\n")
    (tmp_path / "lazy_impl_ok.py").write_text(
        "from simla_bench.interfaces import Objective\n"
        "class Fine(Objective):\n    def loss(self, step):\n        return 0.0\n"
        "NOT_A_TASK = 42\n")
    _write_distribution(tmp_path, "lazy-plugin", "lazy_plugin_mod", """
        from simla_bench.hookspecs import hookimpl

        @hookimpl
        def register_objectives(register):
            register("lazy_fine", "lazy_impl_ok:Fine")
            register("lazy_gone", "lazy_impl_ok:Missing")

        @hookimpl
        def register_tasks(register):
            register("lazy_broken", "lazy_impl_broken:Task")
            register("lazy_not_a_task", "lazy_impl_ok:NOT_A_TASK")
        """)
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("SIMLA_BENCH_STRICT_PLUGINS", "SIMLA_BENCH_LOAD_PLUGINS", "SIMLA_BENCH_DISABLE_PLUGINS"):
        monkeypatch.delenv(name, raising=False)
    from simla_bench.registry import set_registry

    set_registry(None)
    yield tmp_path
    set_registry(None)
    for name in ("lazy_plugin_mod", "lazy_impl_ok", "lazy_impl_broken"):
        sys.modules.pop(name, None)


def _list(*args, **env):
    from click.testing import CliRunner

    from simla_bench.cli import main
    from simla_bench.registry import set_registry

    set_registry(None)
    return CliRunner().invoke(main, ["list", *args], env=env)


def test_list_plugins_check_imports_every_target_and_reports_each_failure(broken_lazy_plugin):
    plain = _list("plugins")
    assert plain.exit_code == 0 and "lazy-plugin" in plain.output  # listing imports nothing lazy
    res = _list("plugins", "--check")
    assert res.exit_code == 1
    failed = [line for line in res.output.splitlines() if line.startswith("failed:")]
    assert len(failed) == 3, res.output
    text = "\n".join(failed)
    assert "objective 'lazy_gone' from distribution 'lazy-plugin' could not be loaded from 'lazy_impl_ok:Missing'" in text
    assert "task 'lazy_broken' from distribution 'lazy-plugin'" in text and "no_such_dependency_xyz" in text
    assert "task 'lazy_not_a_task' from distribution 'lazy-plugin'" in text
    assert "lazy_fine" not in text and "3 problem(s)" in res.output


def test_strict_plugins_list_plugins_imports_the_lazy_targets_too(broken_lazy_plugin):
    res = _list("plugins", SIMLA_BENCH_STRICT_PLUGINS="1")
    assert res.exit_code == 1 and "lazy_gone" in res.output and "Traceback" not in res.output


def test_check_passes_on_the_built_in_components():
    res = _list("plugins", "--check", SIMLA_BENCH_LOAD_PLUGINS="")
    assert res.exit_code == 0, res.output
    assert "every one imports" in res.output
