"""The CLI shell: --version, --help with examples, list tables, clean errors."""

from __future__ import annotations

import json
import types

from click.testing import CliRunner

from simla_bench.cli import main
from simla_bench.hookspecs import hookimpl
from simla_bench.interfaces import Task, TaskResult
from simla_bench.registry import Registry, set_registry


def test_version_lists_libraries():
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    for name in ("simla-bench", "torch", "timm", "transformers"):
        assert name in result.output


def test_every_command_help_shows_an_example():
    runner = CliRunner()
    for name, command in main.commands.items():
        result = runner.invoke(main, [name, "--help"])
        assert result.exit_code == 0, name
        assert "Example" in result.output, f"`simla-bench {name} --help` shows no example"


def test_list_plugins_shows_builtins():
    set_registry(None)
    result = CliRunner().invoke(main, ["list", "plugins", "--json"])
    assert result.exit_code == 0
    rows = json.loads(result.output)
    assert {r["plugin"] for r in rows} >= {"backbones", "objectives", "tasks", "datasets", "observers"}
    assert all(r["distribution"] == "simla-bench" for r in rows if r["plugin"] == "objectives")


class _Probe(Task):
    """A probe task registered in-process."""

    primary_metric = "acc"

    def run(self, ctx):
        return TaskResult(metrics={"acc": 0.0})


def test_in_process_plugin_appears_in_list():
    registry = Registry()
    plugin = types.ModuleType("probe_plugin")
    plugin.register_tasks = hookimpl(lambda register: register("probe_task", _Probe, "a probe"))
    registry.add_plugin(plugin)
    set_registry(registry)
    try:
        result = CliRunner().invoke(main, ["list", "tasks"])
        assert result.exit_code == 0
        assert "probe_task" in result.output and "a probe" in result.output
        result = CliRunner().invoke(main, ["list", "tasks", "probe*", "--json"])
        assert [e["name"] for e in json.loads(result.output)["tasks"]] == ["probe_task"]
    finally:
        set_registry(None)


def test_list_rejects_unknown_kind():
    result = CliRunner().invoke(main, ["list", "widgets"])
    assert result.exit_code != 0
    assert "widgets" in result.output


def test_help_and_list_import_no_torch():
    """Listing must stay fast: no torch-heavy import on `--help` or `list`."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from simla_bench.cli import main\n"
        "r = CliRunner().invoke(main, ['list'])\n"
        "assert r.exit_code == 0, r.output\n"
        "r = CliRunner().invoke(main, ['--help'])\n"
        "heavy = sorted(m for m in ('torch', 'timm', 'transformers') if m in sys.modules)\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout, out.stdout
