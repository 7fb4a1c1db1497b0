"""``simla-bench new-plugin``: write a ready-to-install third-party plugin skeleton.

The skeleton is a small distribution of its own (``pyproject.toml`` with the
``[project.entry-points."simla_bench"]`` entry, a registration module, one
module implementing a working component of the chosen kind, one passing test).
The file templates are package data under ``simla_bench/templates/``.  This
module imports nothing heavy.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import click

from simla_bench import CONTRACT_VERSION, __version__
from simla_bench.cli.common import console
from simla_bench.errors import UserError

KINDS = ("objective", "task", "backbone")
_HOOKS = {"objective": "register_objectives", "task": "register_tasks", "backbone": "register_backbones"}
_CLASS_SUFFIX = {"objective": "Objective", "task": "Task", "backbone": "Encoder"}
_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,48}[a-z0-9]$|^[a-z]$")

#: template file (under simla_bench/templates) -> path in the generated project
_SHARED = {
    "pyproject.toml.txt": "pyproject.toml",
    "README.md.txt": "README.md",
    "plugin_init.py.txt": "{package}/__init__.py",
}
_PER_KIND = {
    "{kind}.py.txt": "{package}/{kind}.py",
    "test_{kind}.py.txt": "tests/test_{component}.py",
}


def skeleton_names(name: str, kind: str) -> dict[str, str]:
    """The names used in a skeleton for plugin NAME of KIND."""
    if kind not in KINDS:
        raise UserError(f"unknown plugin kind '{kind}'", hint=f"use one of {', '.join(KINDS)}")
    if not _NAME_RE.match(name) or "__" in name or "--" in name:
        raise UserError(
            f"plugin name '{name}' is not usable",
            hint="use lowercase letters, digits, '_' or '-', starting with a letter (e.g. my_loss)",
        )
    component = name.replace("-", "_")
    return {
        "name": name,
        "kind": kind,
        "component": component,
        "dist": "simla-bench-" + component.replace("_", "-"),
        "package": "simla_bench_" + component,
        "class": "".join(part.capitalize() for part in component.split("_")) + _CLASS_SUFFIX[kind],
        "hook": _HOOKS[kind],
        "target": "build" if kind == "backbone" else "".join(part.capitalize() for part in component.split("_")) + _CLASS_SUFFIX[kind],
        "meta": '\n        modality="image",' if kind == "backbone" else "",
        "contract": str(CONTRACT_VERSION),
        "simla_version": __version__,
    }


def _template(filename: str) -> str:
    return resources.files("simla_bench.templates").joinpath(filename).read_text(encoding="utf-8")


def _fill(text: str, names: dict[str, str]) -> str:
    for key, value in names.items():
        text = text.replace("{{" + key + "}}", value)
    leftover = re.search(r"\{\{(\w+)\}\}", text)
    if leftover:  # a template bug, not a user error: fail loudly
        raise RuntimeError(f"template placeholder {{{{{leftover.group(1)}}}}} has no value")
    return text


def render_skeleton(name: str, kind: str) -> dict[str, str]:
    """Relative path -> file content of the skeleton (nothing is written)."""
    names = skeleton_names(name, kind)
    files: dict[str, str] = {}
    for source, target in list(_SHARED.items()) + list(_PER_KIND.items()):
        source = source.format(**names)
        files[target.format(**names)] = _fill(_template(source), names)
    return files


def write_skeleton(name: str, kind: str, out: Path | None = None, check_registry: bool = True) -> Path:
    """Write the skeleton of plugin NAME (KIND) into OUT (default
    ``./simla-bench-NAME``) and return that directory.  Refuses to touch an
    existing path, and a component name that an installed plugin already uses."""
    names = skeleton_names(name, kind)
    target = Path(out) if out is not None else Path.cwd() / names["dist"]
    if target.exists():
        raise UserError(f"'{target}' already exists; new-plugin never overwrites", hint="choose another --out or remove it")
    if check_registry:
        from simla_bench.registry import get_registry

        registry = get_registry()
        if (kind, names["component"]) in registry:
            owner = registry.get(kind, names["component"]).plugin.dist_name
            raise UserError(
                f"{kind} '{names['component']}' is already provided by distribution '{owner}'",
                hint="pick another NAME; names are unique per kind",
            )
    files = render_skeleton(name, kind)
    target.mkdir(parents=True)
    for rel, content in files.items():
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
    return target


@click.command("new-plugin")
@click.argument("name")
@click.option("--kind", type=click.Choice(KINDS), required=True, help="What the plugin provides.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Directory to create (default: ./simla-bench-NAME). Must not exist.")
def new_plugin_command(name: str, kind: str, out: Path | None) -> None:
    """Write a ready-to-install plugin package for a new objective, task or backbone.

    The package has a pyproject.toml with the entry point, a registration
    module, one module with a working component, and one passing test.
    See docs/plugins.md for the contract.

    \b
    Example:
      simla-bench new-plugin my_loss --kind objective
      cd simla-bench-my-loss && pip install -e . && simla-bench list objectives
      pytest tests
    """
    target = write_skeleton(name, kind, out)
    names = skeleton_names(name, kind)
    from rich.markup import escape  # a path may hold [brackets]

    console.print(f"[green]wrote[/] {kind} plugin [bold]{escape(names['dist'])}[/] in {escape(str(target))}",
                  highlight=False, soft_wrap=True)
    for path in sorted(p for p in target.rglob("*") if p.is_file()):
        console.print(f"  {path.relative_to(target)}", highlight=False, soft_wrap=True, markup=False)
    console.print(
        f"next: [bold]pip install -e {escape(str(target))}[/] then [bold]simla-bench list {kind}s[/] "
        f"and [bold]pytest {escape(str(target / 'tests'))}[/]",
        highlight=False,
        soft_wrap=True,
    )


COMMANDS = [new_plugin_command]
