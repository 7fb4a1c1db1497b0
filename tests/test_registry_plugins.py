"""The plugin contract and registry: in-process plugins, entry points,
wildcards, did-you-mean, isolation of broken plugins, contract versions."""

from __future__ import annotations

import sys
import textwrap
import types

import pytest

from simla_bench.errors import ConfigError, PluginError, UnknownNameError
from simla_bench.hookspecs import hookimpl
from simla_bench.interfaces import Objective, Task, TaskResult
from simla_bench.registry import Registry


class _EchoTask(Task):
    """A task used only by these tests."""

    primary_metric = "acc"

    def run(self, ctx):
        return TaskResult(metrics={"acc": 1.0})


def _plugin(**hooks):
    module = types.ModuleType("test_plugin")
    for name, fn in hooks.items():
        setattr(module, name, hookimpl(fn))
    return module


def _registry(**hooks) -> Registry:
    """A registry holding one in-process plugin with these hooks."""
    registry = Registry()
    registry.add_plugin(_plugin(**hooks))
    return registry


def test_in_process_plugin_is_listed_and_resolved():
    registry = _registry(register_tasks=lambda register: register("echo", _EchoTask, "echoes"))
    assert registry.names("tasks") == ["echo"]
    entry = registry.get("task", "echo")
    assert entry.summary == "echoes"
    assert registry.load("task", "echo") is _EchoTask


def test_lazy_string_target_is_imported_on_load():
    registry = _registry(register_tasks=lambda register: register("echo", f"{__name__}:_EchoTask"))
    assert registry.get("task", "echo").origin == f"{__name__}:_EchoTask"
    assert registry.load("task", "echo") is _EchoTask


def test_wildcards_filter_names():
    registry = Registry()

    def register_backbones(register):
        for name in ("vit_tiny", "vit_base", "bert_base"):
            register(name, lambda **kw: None, "x")

    registry.add_plugin(_plugin(register_backbones=register_backbones))
    assert [e.name for e in registry.list("backbones", "vit_*")] == ["vit_base", "vit_tiny"]
    assert [e.name for e in registry.list("backbone", "*base")] == ["bert_base", "vit_base"]


def test_duplicate_name_is_refused_and_reported_with_distribution():
    registry = Registry()
    first = _plugin(register_tasks=lambda register: register("echo", _EchoTask, "first"))
    second = _plugin(register_tasks=lambda register: register("echo", _EchoTask, "second"))
    second.SIMLA_BENCH_DIST = "other-dist"
    registry.add_plugin(first)
    registry.add_plugin(second)
    assert registry.get("task", "echo").summary == "first"
    assert len(registry.problems) == 1
    problem = registry.problems[0].one_line()
    assert "other-dist" in problem and "echo" in problem


def test_plugin_raising_while_registering_does_not_take_others_down():
    registry = Registry()

    def broken(register):
        register("fine_before_crash", _EchoTask)
        raise RuntimeError("boom")

    registry.add_plugin(_plugin(register_tasks=broken))
    registry.add_plugin(_plugin(register_tasks=lambda register: register("echo", _EchoTask)))
    assert "echo" in registry.names("task")
    assert any("boom" in p.message for p in registry.problems)


def test_unknown_hook_is_refused():
    registry = _registry(register_taks=lambda register: None)
    assert registry.plugins == []
    assert "register_taks" in registry.problems[0].message


def test_incompatible_contract_version_is_refused():
    registry = Registry()
    plugin = _plugin(register_tasks=lambda register: register("echo", _EchoTask))
    plugin.SIMLA_BENCH_CONTRACT = 99
    registry.add_plugin(plugin)
    assert registry.names("task") == []
    assert "contract 99" in registry.problems[0].message


@pytest.mark.parametrize("kind, target, look_up, error, words", [
    pytest.param("task", _EchoTask, ("get", "retreival"), UnknownNameError, ["did you mean 'retrieval'"],
                 id="unknown-name-suggests-close-matches"),
    pytest.param("objective", _EchoTask, ("load", "retrieval"), PluginError,
                 ["not a subclass of simla_bench.interfaces.Objective"], id="wrong-type-reported-on-load"),
    pytest.param("objective", "no_such_module_xyz:Thing", ("load", "retrieval"), PluginError,
                 ["ghost-dist", "no_such_module_xyz"], id="unimportable-lazy-target-names-distribution"),
])
def test_a_bad_look_up_is_one_clear_error(kind, target, look_up, error, words):
    plugin = _plugin(**{f"register_{kind}s": lambda register: register("retrieval", target)})
    plugin.SIMLA_BENCH_DIST = "ghost-dist"
    registry = Registry()
    registry.add_plugin(plugin)
    method, name = look_up
    with pytest.raises(error) as info:
        getattr(registry, method)(kind, name)
    assert all(word in str(info.value) for word in words), str(info.value)


def test_strict_mode_turns_problems_into_errors(monkeypatch):
    monkeypatch.setenv("SIMLA_BENCH_STRICT_PLUGINS", "1")
    registry = Registry()
    with pytest.raises(PluginError):
        registry.add_plugin(_plugin(register_taks=lambda register: None))


def test_observer_failures_are_isolated():
    registry = Registry()
    seen = []

    def good(record):
        seen.append(record["key"])

    def bad(record):
        raise ValueError("observer broke")

    registry.add_plugin(_plugin(on_cell_finished=bad))
    registry.add_plugin(_plugin(on_cell_finished=good))
    warnings = registry.notify("on_cell_finished", record={"key": "k1"})
    assert seen == ["k1"]
    assert len(warnings) == 1 and "observer broke" in warnings[0]


def _write_distribution(root, dist, module_name, source):
    (root / f"{module_name}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist.replace('-', '_')}-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(f"[simla_bench]\n{module_name} = {module_name}\n")


def test_entry_point_plugins_load_and_broken_ones_are_isolated(tmp_path, monkeypatch):
    _write_distribution(
        tmp_path,
        "good-plugin",
        "good_plugin_mod",
        """
        from simla_bench.hookspecs import hookimpl
        from simla_bench.interfaces import Objective

        class Const(Objective):
            '''A constant loss.'''
            def loss(self, step):
                return 0.0

        @hookimpl
        def register_objectives(register):
            register("const_loss", Const)
        """,
    )
    _write_distribution(tmp_path, "broken-plugin", "broken_plugin_mod", "raise ImportError('missing dependency xyz')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = Registry()
    registry.load_entry_points()
    assert "const_loss" in registry.names("objectives")
    entry = registry.get("objective", "const_loss")
    assert (entry.plugin.dist_name, entry.plugin.dist_version) == ("good-plugin", "1.2.3")
    assert issubclass(entry.load(), Objective)
    broken = [p for p in registry.problems if p.dist_name == "broken-plugin"]
    assert broken and "missing dependency xyz" in broken[0].message
    # built-ins still load
    assert any(p.builtin for p in registry.plugins)
    sys.modules.pop("good_plugin_mod", None)


def test_disable_and_allow_lists(tmp_path, monkeypatch):
    _write_distribution(
        tmp_path,
        "extra-plugin",
        "extra_plugin_mod",
        """
        from simla_bench.hookspecs import hookimpl
        @hookimpl
        def register_tasks(register):
            register("extra_task", "extra_plugin_mod:missing")
        """,
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("SIMLA_BENCH_DISABLE_PLUGINS", "extra-plugin")
    registry = Registry()
    registry.load_entry_points()
    assert "extra_task" not in registry.names("tasks")
    monkeypatch.delenv("SIMLA_BENCH_DISABLE_PLUGINS")
    monkeypatch.setenv("SIMLA_BENCH_LOAD_PLUGINS", "")
    registry = Registry()
    registry.load_entry_points()
    assert "extra_task" not in registry.names("tasks")
    monkeypatch.setenv("SIMLA_BENCH_LOAD_PLUGINS", "extra-plugin")
    registry = Registry()
    registry.load_entry_points()
    assert "extra_task" in registry.names("tasks")
    sys.modules.pop("extra_plugin_mod", None)


# ------------------------------------------------------------------ metadata in one place
def test_metadata_is_read_from_the_class_and_not_taken_from_register():
    class Kinded(_EchoTask):
        data_kind = "vqa"
        needs = frozenset({"text", "fusion"})

    registry = _registry(register_tasks=lambda register: register("kinded", Kinded, "k"))
    assert registry.get("task", "kinded").metadata == {"needs": ["fusion", "text"], "primary_metric": "acc",
                                                      "data_kind": "vqa"}
    registry.add_plugin(_plugin(register_tasks=lambda register: register("told", Kinded, "t", data_kind="nlvr2")))
    assert registry.get("task", "told").metadata["data_kind"] == "vqa"  # the class's, not the call's
    assert len(registry.problems) == 1 and "declares data_kind on its class only" in registry.problems[0].message


def test_builtin_metadata_comes_from_the_classes(simla_registry):
    from simla_bench.registry import describe

    vqa = describe(simla_registry.get("task", "vqa"))
    assert vqa["data_kind"] == "vqa" and vqa["primary_metric"] == "test/overall"
    assert describe(simla_registry.get("dataset", "world"))["provides"] == ["pretrain", "retrieval", "grounding",
                                                                           "vqa", "nlvr2"]
    assert describe(simla_registry.get("objective", "itm"))["needs"] == ["fusion", "itm_head", "text"]
    assert simla_registry.get("backbone", "vit_world_tiny").metadata == {"modality": "image"}


def test_the_plan_refuses_a_task_whose_dataset_does_not_provide_its_data_kind(tmp_path):
    from simla_bench.runner.matrix import MatrixRunner
    from helpers.runner_fakes import FakePipeline, FakeTask, make_config, make_registry

    class VQALike(FakeTask):
        data_kind = "vqa"

    class PretrainLike(FakeTask):
        data_kind = "pretrain"

    registry = make_registry()
    registry.add_plugin(_plugin(register_tasks=lambda register: (register("vqa_like", VQALike, "v"),
                                                                 register("pre_like", PretrainLike, "p"))))
    cfg = make_config(tmp_path, tasks={"pre_like": {}, "vqa_like": {}})
    pipe = FakePipeline()
    with pytest.raises(ConfigError) as info:
        MatrixRunner(cfg, registry, pipe, cfg.output_dir).run()
    assert info.value.message == ("task 'vqa_like' reads data kind 'vqa', which dataset 'world' (source "
                                  "'fakeworld') does not provide (it provides: pretrain, toy)")
    assert "tasks.vqa_like.dataset" in info.value.hint
    assert pipe.pretrain_calls == [] and not (tmp_path / "run" / "manifest.json").exists()
    ok = make_config(tmp_path, tasks={"pre_like": {}})
    assert MatrixRunner(ok, registry, FakePipeline(), ok.output_dir).run().failures == []


# ------------------------------------------------------------------ plugin commands
def test_a_plugin_adds_a_command_to_simla_bench(simla_registry):
    import click
    from click.testing import CliRunner

    from simla_bench.cli import main

    @click.command("hello")
    @click.option("--name", default="world")
    def hello(name):
        """Say hello from a plugin."""
        click.echo(f"hello {name}")

    broken = _plugin(register_commands=lambda register: (register("hello", hello),
                                                         register("list", hello, "tries to replace a built-in"),
                                                         register("gone", f"{__name__}:_no_such_command", "x")))
    broken.SIMLA_BENCH_DIST = "simla-bench-hello"
    simla_registry.add_plugin(broken)
    runner = CliRunner()
    result = runner.invoke(main, ["hello", "--name", "there"])
    assert result.exit_code == 0 and result.output == "hello there\n"
    listing = runner.invoke(main, ["--help"])
    assert listing.exit_code == 0
    assert "Say hello from a plugin." in listing.stdout and "world" in listing.stdout  # the world plugin's own
    assert "simla-bench-hello" in listing.stderr and "_no_such_command" in listing.stderr  # one warning line
    assert runner.invoke(main, ["list", "plugins", "--json"]).exit_code == 0  # the built-in 'list' is kept
    gone = runner.invoke(main, ["gone"])
    assert gone.exit_code != 0 and len(gone.stderr.strip().splitlines()) == 1
    assert "command 'gone' from distribution 'simla-bench-hello'" in gone.stderr


def test_a_plugin_command_that_is_no_click_command_is_refused_on_load():
    registry = _registry(register_commands=lambda register: register("bad", print, "not click"))
    with pytest.raises(PluginError, match="not a click command"):
        registry.commands()[0].load()
    assert [c.name for c in registry.check_targets() if not c.ok] == ["bad"]
