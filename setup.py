"""Package discovery for the design-card layout.

The built-in plugins live in the top-level folders ``plugins/`` and ``tasks/``
but are installed as ``simla_bench.plugins`` and ``simla_bench.tasks`` (see
``[tool.setuptools.package-dir]`` in pyproject.toml).  ``find_packages`` cannot
follow that mapping by itself, so the package list is assembled here.  The
example third-party distributions under ``plugins/examples/`` are separate
projects and are not part of this one.
"""

from setuptools import find_packages, setup


def _mapped(folder: str, prefix: str) -> list[str]:
    subpackages = find_packages(folder, exclude=["examples", "examples.*"])
    return [prefix] + [f"{prefix}.{name}" for name in subpackages]


setup(
    packages=find_packages(include=["simla_bench", "simla_bench.*"])
    + _mapped("plugins", "simla_bench.plugins")
    + _mapped("tasks", "simla_bench.tasks")
    + ["simla_bench.configs"],
)
