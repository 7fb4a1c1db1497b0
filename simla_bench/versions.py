"""Version strings of simla-bench and the libraries its results depend on.

Recorded in every cell record and run manifest (``versions``) and printed by
``simla-bench --version``; the runner and the CLI both read them from here.
"""

from __future__ import annotations

from importlib import metadata


def package_version(name: str) -> str:
    """The installed version of distribution ``name``, or ``"not installed"``."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def versions() -> dict[str, str]:
    """``{"simla-bench": ..., "torch": ..., "timm": ..., "transformers": ...}``."""
    import simla_bench

    return {
        "simla-bench": simla_bench.__version__,
        "torch": package_version("torch"),
        "timm": package_version("timm"),
        "transformers": package_version("transformers"),
    }


def versions_line() -> str:
    """The versions as one line: ``simla-bench 0.4.0, torch 2.x, ...``."""
    return ", ".join(f"{k} {v}" for k, v in versions().items())
