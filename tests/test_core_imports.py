"""The core (``simla_bench/``) imports no built-in plugin or task by module path.

Every built-in component is reached through the registry, as a third party's
is; this reads every import statement in the core, including those inside
functions, and fails on one that names ``simla_bench.plugins`` or
``simla_bench.tasks`` (or the top-level folders ``plugins`` / ``tasks``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import simla_bench

CORE = Path(simla_bench.__file__).parent
FORBIDDEN = ("simla_bench.plugins", "simla_bench.tasks", "plugins", "tasks")


def _imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def _forbidden(name: str) -> bool:
    return any(name == f or name.startswith(f + ".") for f in FORBIDDEN)


def test_core_imports_no_plugin_or_task_module():
    offenders = [f"{path.relative_to(CORE.parent)}:{line}: {name}"
                 for path in sorted(CORE.rglob("*.py")) for line, name in _imports(path) if _forbidden(name)]
    assert not offenders, "the core imports plugins/tasks by path:\n" + "\n".join(offenders)


def test_the_check_catches_an_import_inside_a_function(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from simla_bench.plugins.backbones.vlp import build_model\n")
    assert any(_forbidden(name) for _, name in _imports(bad))
    from_pkg = tmp_path / "ok.py"
    from_pkg.write_text("from simla_bench import registry\nimport simla_bench.config\n")
    assert not any(_forbidden(name) for _, name in _imports(from_pkg))
