"""Third-party plugins tested from the outside, the way users meet them.

The example distribution ``plugins/examples/simla-bench-extras`` is installed
from its own directory with pip (offline, ``--target`` a temporary folder) and
the ``simla-bench`` CLI is run in subprocesses with that folder on
``PYTHONPATH``.  Deliberately broken distributions are built and installed the
same way: one whose entry point does not import, one registering a name the
extras already have, one registering the wrong type, and objectives returning
a non-scalar or a NaN loss.  Each must give one clear line naming its
distribution while everything else keeps working.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXTRAS_SRC = REPO / "plugins" / "examples" / "simla-bench-extras"


# ---------------------------------------------------------------- helpers
def pip_install(sources: list[Path], target: Path) -> None:
    """``pip install --no-deps --target`` from local directories, offline.  Each
    source is copied first so that the build leaves nothing in the repository."""
    copies = []
    for src in sources:
        dst = target.parent / f"src-{src.name}"
        shutil.rmtree(dst, ignore_errors=True)
        shutil.copytree(src, dst, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
        copies.append(str(dst))
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
           "--target", str(target), *copies]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"pip install failed:\n{proc.stdout}\n{proc.stderr}"


def cli(args: list[str], *paths: Path, timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
    """Run ``simla-bench ARGS`` in a subprocess with PATHS on PYTHONPATH."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SIMLA_BENCH_")}
    full_env["PYTHONPATH"] = os.pathsep.join(str(p) for p in paths)
    full_env["COLUMNS"] = "250"
    full_env.update(env)
    return subprocess.run([sys.executable, "-m", "simla_bench", *args], capture_output=True, text=True,
                          env=full_env, timeout=timeout)


def python(code: str, *paths: Path, **env: str) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SIMLA_BENCH_")}
    full_env["PYTHONPATH"] = os.pathsep.join(str(p) for p in paths)
    full_env.update(env)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env=full_env, timeout=120)


def make_distribution(root: Path, dist: str, module: str, source: str) -> Path:
    """A minimal plugin source tree: pyproject.toml with the entry point + one module."""
    root.mkdir(parents=True)
    (root / "pyproject.toml").write_text(textwrap.dedent(f"""\
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "{dist}"
        version = "0.0.1"

        [project.entry-points."simla_bench"]
        {module} = "{module}"

        [tool.setuptools]
        py-modules = ["{module}"]
        """))
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    return root


def warnings_of(proc: subprocess.CompletedProcess) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.startswith("warning:")]


# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def extras_site(tmp_path_factory) -> Path:
    site = tmp_path_factory.mktemp("extras") / "site"
    pip_install([EXTRAS_SRC], site)
    return site


BAD_PLUGINS = {
    # distribution: (module, source)
    "simla-bench-broken-import": ("broken_import_plugin", """\
        import simla_bench_no_such_dependency_xyz  # the entry point's module does not import
        """),
    "simla-bench-name-clash": ("name_clash_plugin", """\
        from simla_bench.hookspecs import hookimpl
        from simla_bench.interfaces import Objective

        class Other(Objective):
            '''Another loss that wants the name siglip.'''
            def loss(self, step):
                return step.image_feat.sum() * 0

        @hookimpl
        def register_objectives(register):
            register("siglip", Other, "clashes with simla-bench-extras")
            register("clash_free_loss", Other, "registered fine")
        """),
    "simla-bench-wrong-type": ("wrong_type_plugin", """\
        from simla_bench.hookspecs import hookimpl

        def not_an_objective(step):
            return 0.0

        @hookimpl
        def register_objectives(register):
            register("wrong_type", "wrong_type_plugin:not_an_objective", "a function, not an Objective")
        """),
    "simla-bench-bad-loss": ("bad_loss_plugin", """\
        import math
        from simla_bench.hookspecs import hookimpl
        from simla_bench.interfaces import Objective

        class VectorLoss(Objective):
            '''Returns one loss per pair instead of a scalar.'''
            def loss(self, step):
                return 1 - (step.image_feat * step.text_feat).sum(-1)

        class NaNLoss(Objective):
            '''Returns NaN.'''
            def loss(self, step):
                return step.image_feat.sum() * math.nan

        @hookimpl
        def register_objectives(register):
            register("vector_loss", "bad_loss_plugin:VectorLoss")
            register("nan_loss", "bad_loss_plugin:NaNLoss")
        """),
}


@pytest.fixture(scope="module")
def bad_site(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bad")
    sources = [make_distribution(root / dist, dist, module, source) for dist, (module, source) in BAD_PLUGINS.items()]
    site = root / "site"
    pip_install(sources, site)
    return site


# ---------------------------------------------------------------- the example distribution
def test_extras_installs_and_is_listed(extras_site):
    proc = cli(["list", "plugins", "--json"], extras_site, SIMLA_BENCH_STRICT_PLUGINS="1")
    assert proc.returncode == 0, proc.stderr
    plugins = {p["distribution"]: p for p in json.loads(proc.stdout)}
    extras = plugins["simla-bench-extras"]
    assert extras["version"] == "0.1.0" and extras["module"] == "simla_bench_extras"
    assert set(extras["hooks"]) == {"register_objectives", "register_tasks"}
    assert "simla-bench" in plugins  # the built-ins are still there

    proc = cli(["list", "all", "--json"], extras_site, SIMLA_BENCH_STRICT_PLUGINS="1")
    listed = json.loads(proc.stdout)
    siglip = [e for e in listed["objectives"] if e["name"] == "siglip"]
    snli = [e for e in listed["tasks"] if e["name"] == "snli_ve"]
    assert siglip and siglip[0]["distribution"] == "simla-bench-extras" and "sigmoid" in siglip[0]["summary"]
    assert snli and snli[0]["distribution"] == "simla-bench-extras"

    table = cli(["list", "objectives"], extras_site)
    assert "siglip" in table.stdout and "simla-bench-extras 0.1.0" in table.stdout


def test_extras_components_load_and_pass_the_interface_checks(extras_site):
    proc = python("""
        from simla_bench.registry import get_registry
        from simla_bench.interfaces import Objective, Task
        r = get_registry()
        assert issubclass(r.load("objective", "siglip"), Objective)
        task = r.load("task", "snli_ve")
        assert issubclass(task, Task) and task.primary_metric == "test/acc"
        print("ok")
        """, extras_site)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def test_listing_with_extras_imports_no_torch(extras_site):
    proc = python("""
        import sys
        from click.testing import CliRunner
        from simla_bench.cli import main
        r = CliRunner().invoke(main, ["list", "all"])
        assert r.exit_code == 0, r.output
        assert "siglip" in r.output
        print("torch" in sys.modules)
        """, extras_site)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False", "the extras' plugin module must stay light"


def test_extras_can_be_disabled_or_excluded(extras_site):
    off = cli(["list", "objectives", "--json"], extras_site, SIMLA_BENCH_DISABLE_PLUGINS="simla-bench-extras")
    assert "siglip" not in {e["name"] for e in json.loads(off.stdout)["objectives"]}
    only_none = cli(["list", "objectives", "--json"], extras_site, SIMLA_BENCH_LOAD_PLUGINS="")
    assert "siglip" not in {e["name"] for e in json.loads(only_none.stdout)["objectives"]}
    only_it = cli(["list", "objectives", "--json"], extras_site, SIMLA_BENCH_LOAD_PLUGINS="simla-bench-extras")
    assert "siglip" in {e["name"] for e in json.loads(only_it.stdout)["objectives"]}


def test_unknown_name_suggests_the_plugin_component(extras_site):
    proc = python("""
        from simla_bench.registry import get_registry
        from simla_bench.errors import UnknownNameError
        try:
            get_registry().get("objective", "sigllip")
        except UnknownNameError as exc:
            print(exc.one_line())
        """, extras_site)
    assert "did you mean 'siglip'" in proc.stdout, proc.stdout + proc.stderr


# ---------------------------------------------------------------- bad plugins
def test_each_bad_plugin_is_one_line_naming_its_distribution(extras_site, bad_site):
    proc = cli(["list", "objectives", "--json"], extras_site, bad_site)
    assert proc.returncode == 0, proc.stderr  # broken plugins never take the others down
    names = {e["name"]: e["distribution"] for e in json.loads(proc.stdout)["objectives"]}
    # the extras and the healthy parts of the bad plugins are still there
    assert names["siglip"] == "simla-bench-extras"
    assert names["clash_free_loss"] == "simla-bench-name-clash"
    assert names["wrong_type"] == "simla-bench-wrong-type"  # refused on first use, below
    warnings = warnings_of(proc)
    broken = [w for w in warnings if "simla-bench-broken-import" in w]
    assert len(broken) == 1 and "failed to import" in broken[0] and "simla_bench_no_such_dependency_xyz" in broken[0]
    clash = [w for w in warnings if "simla-bench-name-clash" in w]
    assert len(clash) == 1
    assert "objective 'siglip'" in clash[0] and "simla-bench-extras" in clash[0] and "ignored" in clash[0]
    assert len(warnings) == 2, warnings


def test_strict_mode_refuses_a_broken_plugin(extras_site, bad_site):
    proc = cli(["list", "objectives"], extras_site, bad_site, SIMLA_BENCH_STRICT_PLUGINS="1")
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    error = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "simla-bench-broken-import" in error[0]


def test_disabling_the_broken_plugins_silences_them(extras_site, bad_site):
    proc = cli(["list", "objectives"], extras_site, bad_site,
               SIMLA_BENCH_DISABLE_PLUGINS="simla-bench-broken-import,simla-bench-name-clash")
    assert warnings_of(proc) == []


def test_wrong_type_is_refused_on_use_naming_the_distribution(extras_site, bad_site):
    proc = python("""
        from simla_bench.registry import get_registry
        from simla_bench.errors import PluginError
        try:
            get_registry().load("objective", "wrong_type")
        except PluginError as exc:
            print(exc.one_line())
        """, extras_site, bad_site)
    line = proc.stdout.strip()
    assert "simla-bench-wrong-type" in line and "not a subclass of simla_bench.interfaces.Objective" in line, proc.stderr
    assert "\n" not in line


def test_incompatible_contract_is_refused_with_a_message(tmp_path):
    src = make_distribution(tmp_path / "future", "simla-bench-from-the-future", "future_plugin", """\
        from simla_bench.hookspecs import hookimpl
        SIMLA_BENCH_CONTRACT = 2

        @hookimpl
        def register_tasks(register):
            register("future_task", "future_plugin:Nothing")
        """)
    site = tmp_path / "site"
    pip_install([src], site)
    proc = cli(["list", "tasks", "--json"], site)
    assert proc.returncode == 0
    assert "future_task" not in {e["name"] for e in json.loads(proc.stdout)["tasks"]}
    (line,) = warnings_of(proc)
    assert "simla-bench-from-the-future" in line and "contract 2" in line and "speaks contract 1" in line


# ---------------------------------------------------------------- end to end through `simla-bench run`
def _experiment(tmp_path: Path, objectives: dict, matrix: list | None = None) -> Path:
    import yaml

    from simla_bench.testing.plugin_kit import TINY_MODEL

    data = {
        "base": "default.yaml",
        "name": "extras-e2e",
        "seeds": [0],
        "device": "cpu",
        "output_dir": str(tmp_path / "run"),
        "datasets": {"world": {"source": "world", "options": {"preset": "tiny", "root": str(tmp_path / "world")}}},
        "model": dict(TINY_MODEL),
        "objectives": objectives,
        "pretrain": {"steps": 3, "batch_size": 8, "warmup_steps": 1, "checkpoint_every": 3, "augment": False},
        "tasks": {
            "snli_ve": {"dataset": "world", "options": {"steps": 3, "batch_size": 8, "max_eval": 24}},
            "retrieval": {"dataset": "world", "options": {"max_steps": 2, "batch_size": 8, "k": 10,
                                                          "eval_splits": ["test"]}},
        },
    }
    if matrix is not None:
        data["matrix"] = matrix
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.mark.slow
def test_run_with_the_extras_shows_the_new_columns(extras_site, tmp_path):
    config = _experiment(tmp_path, {"itc": 1.0, "siglip": {"weight": 1.0, "options": {"bias": -2.0}}})
    proc = cli(["run", "--config", str(config), "--world", "tiny", "--objectives", "itc,siglip",
                "--tasks", "snli_ve,retrieval", "--quiet"], extras_site, timeout=1500,
               SIMLA_BENCH_STRICT_PLUGINS="1")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "snli_ve" in proc.stdout and "retrieval" in proc.stdout  # the leaderboard printed at the end
    report = cli(["report", str(tmp_path / "run"), "--format", "json"], extras_site)
    assert report.returncode == 0, report.stderr
    (row,) = json.loads(report.stdout)
    assert row["objectives"] == ["itc", "siglip"]
    assert set(row["tasks"]) == {"snli_ve", "retrieval"}
    snli = row["tasks"]["snli_ve"]
    assert 0.0 <= snli["test/acc"]["mean"] <= 100.0 and snli["test/acc"]["n"] == 1
    markdown = cli(["report", str(tmp_path / "run"), "--format", "markdown"], extras_site)
    assert "snli_ve" in markdown.stdout and "itc,siglip" in markdown.stdout
    # the records carry the plugin's losses and the task's version, like any built-in
    records = [json.loads(p.read_text()) for p in (tmp_path / "run" / "cells").glob("*.json")]
    assert {r["task"] for r in records} == {"snli_ve", "retrieval"}
    assert all(r["objectives"] == ["itc", "siglip"] for r in records)
    snli_record = [r for r in records if r["task"] == "snli_ve"][0]
    assert {"val/acc", "test/acc"} <= set(snli_record["metrics"]) and snli_record["primary_metric"] == "test/acc"
    assert len(snli_record["per_example"]["test/acc"]) == 24


@pytest.mark.slow
def test_bad_losses_stop_their_row_only_naming_objective_and_distribution(extras_site, bad_site, tmp_path):
    matrix = [{"objectives": ["itc"]}, {"objectives": ["itc", "vector_loss"]}, {"objectives": ["itc", "nan_loss"]}]
    config = _experiment(tmp_path, {"itc": 1.0, "vector_loss": 1.0, "nan_loss": 1.0}, matrix=matrix)
    proc = cli(["run", "--config", str(config), "--tasks", "retrieval", "--quiet"], extras_site, bad_site,
               timeout=1500, SIMLA_BENCH_DISABLE_PLUGINS="simla-bench-broken-import,simla-bench-name-clash")
    output = proc.stdout + proc.stderr
    lines = output.splitlines()
    vector = [line for line in lines if "vector_loss" in line and "scalar" in line]
    nan = [line for line in lines if "nan_loss" in line and "non-finite" in line]
    assert vector and nan, output[-4000:]
    # the healthy row finished: its cell record exists
    records = [json.loads(p.read_text()) for p in (tmp_path / "run" / "cells").glob("*.json")]
    assert [r["objectives"] for r in records] == [["itc"]]
    assert "simla-bench-bad-loss" in vector[0] and "simla-bench-bad-loss" in nan[0], vector + nan


@pytest.mark.slow
def test_the_extras_own_test_suite_passes_when_installed(extras_site, tmp_path):
    """The distribution's tests, run against the installed copy (not the source
    tree), with the fixtures simla-bench exports to plugin authors."""
    work = tmp_path / "extras-tests"
    shutil.copytree(EXTRAS_SRC / "tests", work / "tests")
    shutil.copy(EXTRAS_SRC / "pyproject.toml", work / "pyproject.toml")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIMLA_BENCH_")}
    env["PYTHONPATH"] = str(extras_site)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "", "tests"],
                          cwd=work, capture_output=True, text=True, env=env, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "failed" not in proc.stdout and "error" not in proc.stdout.lower().split("passed")[-1]
