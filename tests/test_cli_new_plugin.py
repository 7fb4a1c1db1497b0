"""``simla-bench new-plugin``: each kind of skeleton is generated, installed with
pip the way a user would (offline, into a temporary ``--target``), listed by
``simla-bench list`` in a subprocess, and its own generated tests pass.
Also: bad names, refusing to overwrite, refusing a taken component name, and
that the templates ship as package data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from simla_bench.cli import main
from simla_bench.cli.plugin_cmd import KINDS, render_skeleton, skeleton_names, write_skeleton
from simla_bench.errors import UserError

from test_plugins_external import cli, pip_install


def _generated_tests(project: Path, site: Path, *extra: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIMLA_BENCH_")}
    env["PYTHONPATH"] = str(site)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *extra, "tests"],
                          cwd=project, capture_output=True, text=True, env=env, timeout=timeout)


@pytest.fixture(scope="module")
def skeletons(tmp_path_factory):
    """One generated-and-installed skeleton of each kind: (projects, site)."""
    root = tmp_path_factory.mktemp("skeletons")
    projects = {}
    for kind in KINDS:
        result = CliRunner().invoke(main, ["new-plugin", f"probe_{kind}", "--kind", kind, "--out", str(root / kind)])
        assert result.exit_code == 0, result.output
        projects[kind] = root / kind
    site = root / "site"
    pip_install(list(projects.values()), site)
    return projects, site


def test_skeleton_layout_and_entry_point(tmp_path):
    out = write_skeleton("my-loss", "objective", tmp_path / "p", check_registry=False)
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == ["README.md", "pyproject.toml", "simla_bench_my_loss/__init__.py",
                     "simla_bench_my_loss/objective.py", "tests/test_my_loss.py"]
    pyproject = (out / "pyproject.toml").read_text()
    assert '[project.entry-points."simla_bench"]\nmy_loss = "simla_bench_my_loss"' in pyproject
    assert 'name = "simla-bench-my-loss"' in pyproject
    init = (out / "simla_bench_my_loss/__init__.py").read_text()
    assert "SIMLA_BENCH_CONTRACT = 1" in init and '"simla_bench_my_loss.objective:MyLossObjective"' in init
    for text in render_skeleton("x", "backbone").values():
        assert "{{" not in text
    for kind in KINDS:  # every generated Python file compiles
        for rel, text in render_skeleton("probe", kind).items():
            if rel.endswith(".py"):
                compile(text, rel, "exec")


def test_each_kind_installs_and_is_listed(skeletons):
    projects, site = skeletons
    proc = cli(["list", "all", "--json"], site, SIMLA_BENCH_STRICT_PLUGINS="1")
    assert proc.returncode == 0, proc.stderr
    listed = json.loads(proc.stdout)
    for kind in KINDS:
        names = skeleton_names(f"probe_{kind}", kind)
        entries = [e for e in listed[f"{kind}s"] if e["name"] == names["component"]]
        assert entries, f"{kind} skeleton not listed"
        assert entries[0]["distribution"] == names["dist"] and entries[0]["version"] == "0.1.0"
    backbone = [e for e in listed["backbones"] if e["name"] == "probe_backbone"][0]
    assert backbone["modality"] == "image"


def test_generated_backbone_unit_tests_pass(skeletons):
    """The fast part of the backbone skeleton's tests (no world, no full model)."""
    projects, site = skeletons
    proc = _generated_tests(projects["backbone"], site, "-k", "not plugs_into")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "3 passed, 1 deselected" in proc.stdout


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_generated_tests_pass(skeletons, kind):
    projects, site = skeletons
    proc = _generated_tests(projects[kind], site)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and "failed" not in proc.stdout


def test_generated_registration_is_found_through_the_entry_point_in_process(skeletons, monkeypatch):
    _, site = skeletons
    monkeypatch.syspath_prepend(str(site))
    from simla_bench.registry import Registry

    registry = Registry()
    registry.load_entry_points()
    assert registry.problems == []
    cls = registry.load("objective", "probe_objective")
    assert cls.__name__ == "ProbeObjectiveObjective" and cls.defaults == {"temperature": 0.07}
    task = registry.load("task", "probe_task")
    assert task.primary_metric == "test/acc"
    for name in list(sys.modules):
        if name.startswith("simla_bench_probe_"):
            sys.modules.pop(name)


def test_refuses_to_overwrite(tmp_path):
    target = tmp_path / "exists"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    result = CliRunner().invoke(main, ["new-plugin", "foo", "--kind", "task", "--out", str(target)])
    assert result.exit_code != 0
    assert "already exists" in result.output and "never overwrites" in result.output
    assert [p.name for p in target.iterdir()] == ["keep.txt"]


@pytest.mark.parametrize("bad", ["1abc", "Foo", "a b", "a__b", "x-", "ä"])
def test_rejects_unusable_names(bad, tmp_path):
    with pytest.raises(UserError, match="not usable"):
        write_skeleton(bad, "task", tmp_path / "p", check_registry=False)
    assert not (tmp_path / "p").exists()


def test_refuses_a_name_an_installed_plugin_provides(tmp_path, monkeypatch):
    import types

    from simla_bench.hookspecs import hookimpl
    from simla_bench.interfaces import Task, TaskResult
    from simla_bench.registry import Registry, set_registry

    class Taken(Task):
        primary_metric = "acc"

        def run(self, ctx):
            return TaskResult(metrics={"acc": 0.0})

    plugin = types.ModuleType("taken_plugin")
    plugin.SIMLA_BENCH_DIST = "simla-bench-owner"
    plugin.register_tasks = hookimpl(lambda register: register("taken", Taken))
    registry = Registry()
    registry.add_plugin(plugin)
    set_registry(registry)
    try:
        result = CliRunner().invoke(main, ["new-plugin", "taken", "--kind", "task", "--out", str(tmp_path / "t")])
    finally:
        set_registry(None)
    assert result.exit_code != 0
    assert "already provided by distribution 'simla-bench-owner'" in result.output
    assert not (tmp_path / "t").exists()


def test_templates_are_package_data():
    from importlib import resources

    names = {p.name for p in resources.files("simla_bench.templates").iterdir()}
    for kind in KINDS:
        assert {f"{kind}.py.txt", f"test_{kind}.py.txt"} <= names
    assert {"pyproject.toml.txt", "README.md.txt", "plugin_init.py.txt"} <= names
    # pyproject.toml packages *.txt files of every package; the templates must match that glob
    assert all(n.endswith((".txt", ".py")) or n == "__pycache__" for n in names)
