"""The plugin contract: every hook a simla-bench plugin can implement.

A plugin is any module (or object) with functions decorated by :data:`hookimpl`
whose names match the specifications below.  Built-in components use exactly
this contract, through the same ``simla_bench`` entry-point group third parties
use::

    [project.entry-points."simla_bench"]
    my_plugin = "my_package.plugin"

Registration hooks hand the plugin a ``register`` callable::

    register(name, target, summary="one line", **metadata)

``target`` is either the component itself (a class or factory) or a lazy
``"module:attribute"`` string, so that listing components imports nothing
heavy.  What each kind of target must implement is documented in
``docs/plugins.md`` and checked by :mod:`simla_bench.interfaces`.

A plugin module may declare ``SIMLA_BENCH_CONTRACT = 1`` (the major contract
version it was written for); a plugin declaring another version is refused
with a message instead of being loaded.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import pluggy

PROJECT_NAME = "simla_bench"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

Register = Callable[..., None]


@hookspec
def register_models(register: Register) -> None:
    """Register model recipes (kind ``model``): what builds a complete
    vision-language model with its tokenizer, image transform, text length and
    options (the built-in ``vlp``: SIMLA's single stream and ALBEF's split).

    The target is a class implementing :class:`simla_bench.interfaces.ModelPlugin`.
    """


@hookspec
def register_backbones(register: Register) -> None:
    """Register image/text encoders and model builders (kind ``backbone``).

    Metadata: ``modality="image"|"text"``.
    """


@hookspec
def register_objectives(register: Register) -> None:
    """Register pretraining objectives (kind ``objective``).

    The target is a class implementing :class:`simla_bench.interfaces.Objective`.
    """


@hookspec
def register_tasks(register: Register) -> None:
    """Register downstream tasks (kind ``task``).

    The target is a class implementing :class:`simla_bench.interfaces.Task`.
    """


@hookspec
def register_datasets(register: Register) -> None:
    """Register dataset sources (kind ``dataset``): the built-in world and
    loaders for official on-disk formats.  Metadata: ``provides=(...)``, the
    data kinds the source can serve (``pretrain``, ``retrieval``, ...)."""


@hookspec
def register_commands(register: Register) -> None:
    """Add commands to the ``simla-bench`` command line (kind ``command``), as
    ``llm`` plugins do: ``register(name, target, summary)``, the target a click
    command or group (or a lazy ``"module:attr"`` naming one, imported when the
    command is listed or run).  A name a built-in command has is not replaced.
    The world dataset plugin's ``world`` command is registered this way."""


@hookspec
def on_run_start(run: Mapping[str, Any]) -> None:
    """Called once when a matrix run starts (run directory, config, cells)."""


@hookspec
def on_cell_finished(record: Mapping[str, Any]) -> None:
    """Called with every finished cell record (the JSON that was written)."""


@hookspec
def on_run_finished(run: Mapping[str, Any], records: Sequence[Mapping[str, Any]]) -> None:
    """Called once when a matrix run ends, with all of its cell records."""
