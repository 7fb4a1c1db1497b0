"""The layering rules, executable: which of simla-bench's three layers may
import which.

* core (``simla_bench/``, i.e. every ``simla_bench.*`` module outside the
  ``simla_bench.plugins`` and ``simla_bench.tasks`` packages) imports nothing
  of ``simla_bench.plugins`` or ``simla_bench.tasks``: it reaches every
  built-in component through the registry, as a third party's;
* tasks (``tasks/``, installed as ``simla_bench.tasks``) import nothing of
  ``simla_bench.plugins``: they reach models, objectives and datasets through
  the interfaces, the registry or the model object they are given (their own
  package, ``simla_bench.tasks.*``, and the core are theirs to import);
* plugins (``plugins/``, installed as ``simla_bench.plugins``; not the
  separate example distributions in ``plugins/examples/``) import nothing of
  ``simla_bench.tasks``.

Every ``import`` / ``from ... import`` of every module is read, those inside
functions and classes too, relative imports resolved against the module's
package, and ``importlib.import_module("...")`` / ``__import__("...")`` with a
literal name.  docs/architecture.md "Layering rules" states the same rules in a
table; :func:`test_the_doc_states_the_rules_the_test_enforces` holds the two
together.
"""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

import pytest

import simla_bench
import simla_bench.plugins
import simla_bench.tasks

CORE = Path(simla_bench.__file__).parent
TASKS = Path(simla_bench.tasks.__file__).parent
PLUGINS = Path(simla_bench.plugins.__file__).parent
DOC = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"

#: layer -> the module prefixes it may not import (the bare top-level folder
#: names too: they are not installed, and an import of them works only from a
#: source checkout)
RULES: dict[str, tuple[str, ...]] = {
    "core": ("simla_bench.plugins", "simla_bench.tasks"),
    "tasks": ("simla_bench.plugins",),
    "plugins": ("simla_bench.tasks",),
}
_BARE = {"simla_bench.plugins": "plugins", "simla_bench.tasks": "tasks"}


def _module_name(path: Path) -> str:
    """The installed name of a source file of one of the three folders."""
    for root, prefix in ((TASKS, "simla_bench.tasks"), (PLUGINS, "simla_bench.plugins"), (CORE, "simla_bench")):
        if path.is_relative_to(root):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            return ".".join([prefix, *parts])
    raise ValueError(f"{path} is in none of the three layers")


def layer_of(module: str) -> str:
    for layer, prefix in (("tasks", "simla_bench.tasks"), ("plugins", "simla_bench.plugins")):
        if module == prefix or module.startswith(prefix + "."):
            return layer
    return "core"


def _package(path: Path, module: str) -> str:
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def imports(path: Path, module: str | None = None) -> list[tuple[int, str]]:
    """``(line, absolute module name)`` for every import in ``path`` (module
    ``module``, which resolves its relative imports), at any depth; a
    ``from M import a`` gives ``M`` and ``M.a`` (``a`` may be a module)."""
    package = _package(path, module) if module else ""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = importlib.util.resolve_name("." * node.level + base, package)
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names if alias.name != "*"]
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name in ("import_module", "__import__"):
                found.append((node.lineno, node.args[0].value))
    return found


def forbidden(layer: str, name: str) -> bool:
    for prefix in RULES[layer]:
        for banned in (prefix, _BARE[prefix]):
            if name == banned or name.startswith(banned + "."):
                return True
    return False


def _sources() -> list[Path]:
    files = {p.resolve() for root in (CORE, TASKS) for p in root.rglob("*.py")}
    files |= {p.resolve() for p in PLUGINS.rglob("*.py") if not p.is_relative_to(PLUGINS / "examples")}
    return sorted(files)


def offenders(layer: str) -> list[str]:
    out = []
    for path in _sources():
        module = _module_name(path)
        if layer_of(module) != layer:
            continue
        lines: dict[int, str] = {}
        for line, name in imports(path, module):
            if forbidden(layer, name):
                lines.setdefault(line, name)        # `from M import a`: M, not M.a too
        out += [f"{module} line {line}: imports {name}" for line, name in sorted(lines.items())]
    return out


@pytest.mark.parametrize("layer", sorted(RULES))
def test_layer_imports_nothing_it_may_not(layer):
    assert [p for p in _sources() if layer_of(_module_name(p)) == layer], f"no module found in layer {layer}"
    bad = offenders(layer)
    assert not bad, (f"the {layer} layer may not import {', '.join(RULES[layer])} "
                     "(docs/architecture.md 'Layering rules'):\n" + "\n".join(bad))


def test_the_check_reads_every_kind_of_import(tmp_path):
    inner = tmp_path / "bad.py"
    inner.write_text("def f():\n    from simla_bench.plugins.backbones.vlp import build_model\n")
    assert [n for _, n in imports(inner) if forbidden("core", n)]
    dynamic = tmp_path / "dyn.py"
    dynamic.write_text("import importlib\nclass A:\n    def f(self):\n"
                       "        return importlib.import_module('simla_bench.tasks.vqa')\n")
    assert [n for _, n in imports(dynamic) if forbidden("plugins", n)]
    bare = tmp_path / "bare.py"
    bare.write_text("import plugins.backbones.bert as b\n")
    assert [n for _, n in imports(bare) if forbidden("tasks", n)]
    ok = tmp_path / "ok.py"
    ok.write_text("from simla_bench import registry\nimport simla_bench.config\n")
    assert not [n for _, n in imports(ok) if forbidden("core", n)]
    own = tmp_path / "own.py"
    own.write_text("from simla_bench.tasks.metrics import vqa\nfrom simla_bench.interfaces import Task\n")
    assert not [n for _, n in imports(own) if forbidden("tasks", n)]      # a task may import its own package
    assert [n for _, n in imports(own) if forbidden("core", n)]


def test_relative_imports_are_resolved_against_the_package(tmp_path):
    """``from ...plugins.backbones import bert`` inside simla_bench.tasks.sub.mod is
    simla_bench.plugins.backbones.bert; inside a package's __init__ ``.`` is
    the package itself."""
    mod = tmp_path / "mod.py"
    mod.write_text("from ...plugins.backbones import bert\nfrom . import data\n")
    names = [n for _, n in imports(mod, "simla_bench.tasks.sub.mod")]
    assert "simla_bench.plugins.backbones.bert" in names and "simla_bench.tasks.sub.data" in names
    assert forbidden("tasks", "simla_bench.plugins.backbones.bert")
    init = tmp_path / "__init__.py"
    init.write_text("from .vqa import VQATask\n")
    assert imports(init, "simla_bench.tasks")[0][1] == "simla_bench.tasks.vqa"


def test_modules_are_assigned_to_their_layer():
    assert layer_of(_module_name(CORE / "registry.py")) == "core"
    assert layer_of(_module_name(TASKS / "vqa.py")) == "tasks"
    assert layer_of(_module_name(PLUGINS / "backbones" / "bert.py")) == "plugins"
    assert layer_of("simla_bench.tasks.metrics.vqa") == "tasks"          # a task package's own sub-package
    assert not any(p.is_relative_to(PLUGINS / "examples") for p in _sources())


def _doc_rules() -> dict[str, set[str]]:
    """The table of docs/architecture.md "Layering rules": layer -> the
    packages (backticked) in its "may not import" column."""
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## Layering rules", 1)[1].split("\n## ", 1)[0]
    rules = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0] in RULES:
            rules[cells[0]] = set(re.findall(r"`(simla_bench\.[a-z_.]+)`", cells[2]))
    return rules


def test_the_doc_states_the_rules_the_test_enforces():
    assert _doc_rules() == {layer: set(banned) for layer, banned in RULES.items()}
