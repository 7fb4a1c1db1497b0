"""The component registry over the pluggy plugin manager.

Loads every ``simla_bench`` entry point (built-ins first), isolates plugins that
fail (import error, contract mismatch, unknown hook, duplicate name, exception
while registering) and records each failure with the plugin's distribution, so
one broken plugin never takes the others down.

Look-ups are by kind (``model``, ``backbone``, ``objective``, ``task``, ``dataset``) and
name; listing takes fnmatch wildcards (``vit_*``); an unknown name raises
:class:`~simla_bench.errors.UnknownNameError` with close matches.

Environment variables (in the style of ``LLM_LOAD_PLUGINS`` and
``PYTEST_DISABLE_PLUGIN_AUTOLOAD``):

* ``SIMLA_BENCH_LOAD_PLUGINS=dist1,dist2`` loads only these third-party
  distributions (built-ins always load; an empty value loads none).
* ``SIMLA_BENCH_DISABLE_PLUGINS=dist1,dist2`` skips these distributions.
* ``SIMLA_BENCH_STRICT_PLUGINS=1`` turns any plugin problem into an error
  (and makes ``simla-bench list plugins`` import every target, as ``--check``).

Components are registered lazily (``module:attr`` strings, imported on first
use); :meth:`Registry.check_targets` imports them all (``list plugins --check``).
What a component declares on its class (an objective's or task's ``needs``, a
task's ``primary_metric`` and ``data_kind``, a dataset's ``provides``) is read
from the class, in one place: ``register`` takes only the name, the target, a
summary and metadata of factories (a backbone's ``modality``);
:attr:`Entry.metadata` imports the class to read it (``list --json`` does; the
``list`` tables show names and summaries only and import nothing).
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import os
import threading
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Iterable, Mapping

import pluggy

from simla_bench import CONTRACT_VERSION, hookspecs
from simla_bench.errors import PluginError, UnknownNameError, UserError

KINDS = ("model", "backbone", "objective", "task", "dataset")
PLURALS = {"models": "model", "backbones": "backbone", "objectives": "objective", "tasks": "task", "datasets": "dataset"}
_REGISTER_HOOKS = {
    "model": "register_models",
    "backbone": "register_backbones",
    "objective": "register_objectives",
    "task": "register_tasks",
    "dataset": "register_datasets",
    "command": "register_commands",
}
BUILTIN_DIST = "simla-bench"
#: what a component of each kind declares on its class, read from there (never passed to ``register``)
CLASS_METADATA = {
    "model": (),
    "objective": ("needs",),
    "task": ("needs", "primary_metric", "data_kind"),
    "dataset": ("provides",),
}


@dataclass(frozen=True)
class PluginInfo:
    """Where a plugin came from: entry-point name, module and distribution."""

    name: str
    module: str
    dist_name: str
    dist_version: str
    hooks: tuple[str, ...] = ()

    @property
    def builtin(self) -> bool:
        return self.dist_name == BUILTIN_DIST

    @property
    def label(self) -> str:
        return f"{self.dist_name} {self.dist_version}"


@dataclass(frozen=True)
class PluginProblem:
    """A plugin that was refused or partly refused, and why."""

    plugin: str
    dist_name: str
    message: str

    def one_line(self) -> str:
        return f"plugin '{self.plugin}' from distribution '{self.dist_name}': {self.message}"


@dataclass(frozen=True)
class TargetCheck:
    """The outcome of importing one registered component (``simla-bench list plugins --check``)."""

    kind: str
    name: str
    origin: str
    plugin: PluginInfo
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class Entry:
    """One registered component.

    ``registered``: the metadata given to ``register`` (e.g. a backbone's
    ``modality``); :attr:`metadata` adds what the class declares
    (:data:`CLASS_METADATA`), which loads the class."""

    kind: str
    name: str
    target: Any
    summary: str
    plugin: PluginInfo
    registered: dict[str, Any] = field(default_factory=dict)
    _loaded: Any = field(default=None, repr=False)

    @property
    def metadata(self) -> dict[str, Any]:
        """The registered metadata and the class's own (``needs``, ``primary_metric``,
        ``data_kind``, ``provides``; sets as sorted lists): importing a lazy target."""
        out = dict(self.registered)
        if CLASS_METADATA.get(self.kind):
            cls = self.load()
            for key in CLASS_METADATA[self.kind]:
                value = getattr(cls, key)
                out[key] = sorted(value) if isinstance(value, (set, frozenset)) else (
                    list(value) if isinstance(value, tuple) else value)
        return out

    @property
    def origin(self) -> str:
        if isinstance(self.target, str):
            return self.target
        return f"{getattr(self.target, '__module__', '?')}:{getattr(self.target, '__qualname__', '?')}"

    def load(self) -> Any:
        """Resolve the target (importing a lazy ``module:attr`` once) and check
        that it satisfies the interface for its kind."""
        if self._loaded is not None:
            return self._loaded
        target = self.target
        if isinstance(target, str):
            module_name, _, attr = target.partition(":")
            try:
                module = importlib.import_module(module_name)
                target = getattr(module, attr) if attr else module
            except Exception as exc:  # noqa: BLE001 - reported with the distribution
                raise PluginError(
                    f"{self.kind} '{self.name}' from distribution '{self.plugin.dist_name}' "
                    f"could not be loaded from '{self.target}': {type(exc).__name__}: {exc}",
                    hint="fix or uninstall that plugin",
                ) from exc
        from simla_bench.interfaces import check_component

        problem = check_component(self.kind, target)
        if problem:
            raise PluginError(
                f"{self.kind} '{self.name}' from distribution '{self.plugin.dist_name}' {problem}",
                hint="the plugin does not follow docs/plugins.md",
            )
        self._loaded = target
        return target


def _normalise_kind(kind: str) -> str:
    kind = PLURALS.get(kind, kind)
    if kind not in KINDS:
        raise UserError(f"unknown component kind '{kind}'", hint=f"use one of {', '.join(PLURALS)}")
    return kind


def _env_list(name: str) -> set[str] | None:
    value = os.environ.get(name)
    if value is None:
        return None
    return {v.strip() for v in value.split(",") if v.strip()}


class Registry:
    """All components of all loaded plugins, by kind and name."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self.plugins: list[PluginInfo] = []
        self.problems: list[PluginProblem] = []
        #: by kind, and ``"command"``: the CLI commands plugins add (:meth:`commands`)
        self._entries: dict[str, dict[str, Entry]] = {k: {} for k in (*KINDS, "command")}
        self._spec_names = {
            n for n in dir(hookspecs) if callable(getattr(hookspecs, n)) and hasattr(getattr(hookspecs, n), "simla_bench_spec")
        }

    # ------------------------------------------------------------------ loading
    def load_entry_points(self) -> None:
        only = _env_list("SIMLA_BENCH_LOAD_PLUGINS")
        skip = _env_list("SIMLA_BENCH_DISABLE_PLUGINS") or set()
        eps = list(metadata.entry_points(group=hookspecs.PROJECT_NAME))

        def dist_of(ep: metadata.EntryPoint) -> tuple[str, str]:
            dist = getattr(ep, "dist", None)
            if dist is None:
                return ("unknown", "?")
            return (dist.metadata["Name"] or "unknown", dist.version or "?")

        # Built-ins first, then third parties in a stable order.
        eps.sort(key=lambda ep: (dist_of(ep)[0] != BUILTIN_DIST, dist_of(ep)[0], ep.name))
        seen: set[tuple[str, str]] = set()
        for ep in eps:
            dist_name, dist_version = dist_of(ep)
            if (dist_name, ep.name) in seen:  # the same dist found twice on sys.path
                continue
            seen.add((dist_name, ep.name))
            if dist_name in skip:
                continue
            if dist_name != BUILTIN_DIST and only is not None and dist_name not in only:
                continue
            info = PluginInfo(ep.name, ep.value, dist_name, dist_version)
            try:
                obj = ep.load()
            except Exception as exc:  # noqa: BLE001
                self._problem(info, f"failed to import '{ep.value}': {type(exc).__name__}: {exc}")
                continue
            self.add_plugin(obj, info)

    def add_plugin(self, obj: Any, info: PluginInfo | None = None) -> PluginInfo | None:
        """Register one plugin object (module or instance) and collect its
        components.  Used for entry points and, in tests, for in-process plugins."""
        if info is None:
            name = getattr(obj, "__name__", type(obj).__name__)
            info = PluginInfo(name, name, getattr(obj, "SIMLA_BENCH_DIST", "<in-process>"), "0")
        declared = getattr(obj, "SIMLA_BENCH_CONTRACT", CONTRACT_VERSION)
        if declared != CONTRACT_VERSION:
            self._problem(
                info,
                f"declares plugin contract {declared!r} but this simla-bench speaks contract "
                f"{CONTRACT_VERSION}; upgrade the plugin or install a matching simla-bench",
            )
            return None
        impl_names = [
            n for n in dir(obj) if callable(getattr(obj, n, None)) and hasattr(getattr(obj, n), "simla_bench_impl")
        ]
        unknown = sorted(set(impl_names) - self._spec_names)
        if unknown:
            self._problem(info, f"implements unknown hook(s) {', '.join(unknown)}; known hooks: {', '.join(sorted(self._spec_names))}")
            return None
        pm_name = f"{info.dist_name}:{info.name}"
        suffix = 1
        while self.pm.has_plugin(pm_name):  # two in-process plugins may share a module name
            suffix += 1
            pm_name = f"{info.dist_name}:{info.name}#{suffix}"
        try:
            self.pm.register(obj, name=pm_name)
        except Exception as exc:  # noqa: BLE001
            self._problem(info, f"could not be registered: {exc}")
            return None
        info = PluginInfo(info.name, info.module, info.dist_name, info.dist_version, tuple(sorted(impl_names)))
        self.plugins.append(info)
        for kind, hook in _REGISTER_HOOKS.items():
            fn = getattr(obj, hook, None)
            if fn is None or not hasattr(fn, "simla_bench_impl"):
                continue
            try:
                fn(register=self._register_fn(kind, info))
            except Exception as exc:  # noqa: BLE001
                self._problem(info, f"raised in {hook}: {type(exc).__name__}: {exc}")
        return info

    def _register_fn(self, kind: str, info: PluginInfo):
        def register(name: str, target: Any, summary: str = "", **meta: Any) -> None:
            if not isinstance(name, str) or not name:
                self._problem(info, f"registered a {kind} with an invalid name {name!r}")
                return
            existing = self._entries[kind].get(name)
            if existing is not None:
                self._problem(
                    info,
                    f"registers {kind} '{name}', which distribution '{existing.plugin.dist_name}' "
                    f"already provides; the second registration is ignored (rename it)",
                )
                return
            declared = sorted(set(meta) & set(CLASS_METADATA.get(kind, ())))
            if declared:
                self._problem(
                    info,
                    f"passes {', '.join(declared)} to register for {kind} '{name}'; a {kind} declares "
                    f"{' and '.join(declared)} on its class only (the passed value is ignored)",
                )
                meta = {k: v for k, v in meta.items() if k not in declared}
            if not summary:
                doc = getattr(target, "__doc__", None) if not isinstance(target, str) else None
                summary = (doc or "").strip().splitlines()[0] if doc else ""
            self._entries[kind][name] = Entry(kind, name, target, summary, info, dict(meta))

        return register

    def _problem(self, info: PluginInfo, message: str) -> None:
        problem = PluginProblem(info.name, info.dist_name, message)
        if os.environ.get("SIMLA_BENCH_STRICT_PLUGINS", "") not in ("", "0"):
            raise PluginError(problem.one_line(), hint="unset SIMLA_BENCH_STRICT_PLUGINS to skip broken plugins")
        self.problems.append(problem)

    # ------------------------------------------------------------------ queries
    def names(self, kind: str) -> list[str]:
        return sorted(self._entries[_normalise_kind(kind)])

    def list(self, kind: str, pattern: str = "*") -> list[Entry]:
        kind = _normalise_kind(kind)
        return [self._entries[kind][n] for n in sorted(self._entries[kind]) if fnmatch.fnmatchcase(n, pattern)]

    def get(self, kind: str, name: str) -> Entry:
        kind = _normalise_kind(kind)
        entry = self._entries[kind].get(name)
        if entry is None:
            raise UnknownNameError(unknown_name_message(kind, name, self._entries[kind]))
        return entry

    def load(self, kind: str, name: str) -> Any:
        return self.get(kind, name).load()

    def commands(self) -> list[Entry]:
        """The ``simla-bench`` commands plugins register (``register_commands``), by name;
        :meth:`Entry.load` gives the click command."""
        return [self._entries["command"][n] for n in sorted(self._entries["command"])]

    def __contains__(self, item: tuple[str, str]) -> bool:
        kind, name = item
        return name in self._entries[_normalise_kind(kind)]

    def check_targets(self) -> list[TargetCheck]:
        """Import every registered component of every kind (lazy ``module:attr``
        targets included, which listing never imports) and check it against its
        interface; one :class:`TargetCheck` per component, failures as one line.
        Plugins that failed to import or register at all are in :attr:`problems`."""
        checks = []
        for kind in (*KINDS, "command"):
            for entry in (self.commands() if kind == "command" else self.list(kind)):
                try:
                    entry.load()
                    error = None
                except UserError as exc:
                    error = exc.message
                except Exception as exc:  # noqa: BLE001 - e.g. an interface check that itself raised
                    error = (f"{kind} '{entry.name}' from distribution '{entry.plugin.dist_name}': "
                             f"{type(exc).__name__}: {exc}")
                checks.append(TargetCheck(kind, entry.name, entry.origin, entry.plugin,
                                          None if error is None else " ".join(error.split())))
        return checks

    # ---------------------------------------------------------------- observers
    def notify(self, hook: str, **kwargs: Any) -> list[str]:
        """Call an observer hook on every plugin, isolating failures.  Returns
        one warning line per plugin that raised."""
        warnings: list[str] = []
        caller = getattr(self.pm.hook, hook)
        for impl in caller.get_hookimpls():
            try:
                impl.function(**{k: kwargs[k] for k in impl.argnames if k in kwargs})
            except Exception as exc:  # noqa: BLE001
                warnings.append(f"observer plugin '{impl.plugin_name}' failed in {hook}: {type(exc).__name__}: {exc}")
        return warnings


def unknown_name_message(kind: str, name: str, known: Iterable[str]) -> str:
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    msg = f"unknown {kind} '{name}'"
    if close:
        msg += f"; did you mean {' or '.join(repr(c) for c in close)}?"
    elif known:
        msg += f"; known: {', '.join(known)}"
    else:
        msg += f"; no {kind} is registered (is the plugin providing it installed?)"
    return msg + f" (see `simla-bench list {kind}s`)"


_DEFAULT: Registry | None = None
_LOCK = threading.Lock()


def get_registry() -> Registry:
    """The process-wide registry, loaded from entry points on first use."""
    global _DEFAULT
    with _LOCK:
        if _DEFAULT is None:
            registry = Registry()
            registry.load_entry_points()
            _DEFAULT = registry
        return _DEFAULT


def set_registry(registry: Registry | None) -> None:
    """Replace (or, with ``None``, reset) the process-wide registry; for tests."""
    global _DEFAULT
    with _LOCK:
        _DEFAULT = registry


def describe(entry: Entry) -> Mapping[str, Any]:
    """One component for ``simla-bench list --json``: its registration and, read
    from its class (which this imports), its metadata; a class that does not
    load gives ``error`` instead."""
    try:
        metadata = entry.metadata
    except UserError as exc:
        metadata = {**entry.registered, "error": exc.message}
    return {
        "kind": entry.kind,
        "name": entry.name,
        "summary": entry.summary,
        "distribution": entry.plugin.dist_name,
        "version": entry.plugin.dist_version,
        "origin": entry.origin,
        **metadata,
    }
