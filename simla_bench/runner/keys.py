"""Content-addressed keys for pretraining runs and matrix cells.

A key is the SHA-256 (first 20 hex digits) of a canonical JSON document made
of everything that determines a result and nothing else (the full list, and
what is left out on purpose, is in ``docs/results.md``, "What a cell key
covers"):

* pretraining key (one row, one seed): the model (name, its *resolved*
  options: the recipe's defaults merged with the config's, and its component
  identity), the pretraining schedule (with the row's data fraction), each
  objective's weight, resolved options and component identity (as a set:
  order does not matter), the pretraining dataset's source, resolved options,
  component identity and data checksum, whether the pairs are shuffled
  (``shuffle_pairs: true``, only when they are), the seed, and the simla-bench
  version;
* cell key: the pretraining key plus the task name, version, resolved options
  and component identity, and the task dataset's source, resolved options,
  component identity and data checksum.

A component's identity (:func:`component_id`) is its ``version`` class
attribute, the name and version of the distribution that registered it, and a
short digest of the source file(s) of its class (and of its base classes
outside the simla-bench core), so editing a plugin's code or a default
recomputes exactly the cells that use it, while writing an option explicitly
equal to its default does not change a key.

Left out on purpose (they do not change the numbers): output directory,
experiment name, other seeds/tasks/rows, executor, ``num_workers``,
``checkpoint_every`` and the device (recorded in every record instead, so a
CPU run and a GPU run of the same cell share the cache; rerun with ``--force``
to recompute on another device).
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import inspect
import json
import os
import sys
import sysconfig
from pathlib import Path
from typing import Any, Mapping

#: bump when the meaning of a key changes (old cells are then recomputed)
KEY_VERSION = 2
#: the simla-bench core: its code is covered by the simla-bench version, not by code digests
_CORE_DIR = Path(__file__).resolve().parent.parent
#: the standard library (``abc.ABC`` and the like are not part of a component's code)
_STDLIB_DIR = Path(sysconfig.get_paths()["stdlib"]).resolve()
_FILE_DIGESTS: dict[tuple[str, int, int], str] = {}
_NOT_RESULT_FIELDS = ("num_workers", "checkpoint_every")


def canonical_json(data: Any) -> str:
    """Deterministic JSON: sorted keys, no whitespace, floats via repr."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), default=str, allow_nan=True)


def digest(data: Any, length: int = 20) -> str:
    return hashlib.sha256(canonical_json(data).encode("utf-8")).hexdigest()[:length]


def manifest_checksum(manifest: Mapping[str, Any] | None) -> str:
    """The checksum a dataset source reported, else a digest of its manifest."""
    manifest = dict(manifest or {})
    for field in ("checksum", "sha256", "digest"):
        if manifest.get(field):
            return str(manifest[field])
    return digest(manifest)


def _file_digest(path: str) -> str | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    cache_key = (path, st.st_mtime_ns, st.st_size)
    if cache_key not in _FILE_DIGESTS:
        try:
            _FILE_DIGESTS[cache_key] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        except OSError:
            return None
    return _FILE_DIGESTS[cache_key]


def _in_stdlib(path: Path) -> bool:
    """In the standard library (not in an installed package under it)."""
    return path.is_relative_to(_STDLIB_DIR) and not ({"site-packages", "dist-packages"} & set(path.parts))


def _imports(path: str, module: str) -> list[str]:
    """Absolute names of the modules ``path`` (module ``module``) imports
    anywhere, function bodies included (``from x import y`` gives ``x`` and
    ``x.y``: ``y`` may be a submodule).  Read, not executed."""
    try:
        tree = ast.parse(Path(path).read_bytes())
    except (OSError, SyntaxError, ValueError):
        return []
    package = module if Path(path).name == "__init__.py" else module.rpartition(".")[0]
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] if node.level > 1 else parts)
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module or ""
            names += [base] + [f"{base}.{alias.name}" for alias in node.names if alias.name != "*"]
    return names


def _module_file(name: str) -> str | None:
    """The source file of module ``name`` if it is one (found without importing it, where it is not already)."""
    mod = sys.modules.get(name)
    if mod is not None:
        origin = getattr(mod, "__file__", None)
    else:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError, AttributeError):
            return None
        origin = spec.origin if spec is not None else None
    return str(Path(origin).resolve()) if origin and origin.endswith(".py") else None


def _counted(path: str) -> bool:
    """Part of a component's code: neither the simla-bench core (covered by its version) nor the standard library."""
    return not Path(path).is_relative_to(_CORE_DIR) and not _in_stdlib(Path(path))


def code_files(cls: type) -> list[str]:
    """The source files whose edits can change what ``cls`` computes: the files
    of ``cls`` and its base classes, and every module of the same top-level
    package that they import, transitively (found by reading the import
    statements, function bodies included), leaving out the simla-bench core
    and the standard library."""
    files: dict[str, str] = {}  # path -> module name
    todo: list[tuple[str, str]] = []
    for klass in inspect.getmro(cls) if inspect.isclass(cls) else (cls,):
        try:
            src = inspect.getsourcefile(klass)
        except (TypeError, OSError):
            continue
        if src:
            todo.append((str(Path(src).resolve()), klass.__module__))
    while todo:
        path, module = todo.pop()
        if path in files or not _counted(path):
            continue
        files[path] = module
        top = module.split(".")[0]
        for name in _imports(path, module):
            if name.split(".")[0] == top and (found := _module_file(name)) and found not in files:
                todo.append((found, name))
    return sorted(files)


def code_digest(cls: type) -> str | None:
    """A short digest of :func:`code_files` of ``cls`` (None when no source can
    be found, e.g. a class made in ``__main__`` or a frozen module)."""
    digests = [d for d in (_file_digest(f) for f in code_files(cls)) if d]
    if not digests:
        return None
    return hashlib.sha256("".join(digests).encode("ascii")).hexdigest()[:12]


def input_digest(path: str | Path) -> str:
    """A digest of the content of a file, or of a folder's files (their
    relative names and contents), from :mod:`simla_bench.filecache` where a
    file is unchanged; ``"missing"`` when nothing is there."""
    from simla_bench import filecache

    path = Path(path).expanduser()
    if path.is_file():
        return filecache.content_hash(path)[:20]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        return digest([[str(p.relative_to(path)), filecache.content_hash(p)] for p in files])
    return "missing"


def model_part(registry: Any, name: str, recipe: Any) -> dict[str, Any]:
    """A model in a key: its resolved options, its identity and that of every
    component it is built from, and the content of the files it reads."""
    built_from = {}
    for kind, comp in recipe.components():
        try:
            cls = registry.load(kind, comp)
        except Exception:  # noqa: BLE001 - an unknown name fails later, in one line, where it is built
            continue
        built_from[f"{kind}:{comp}"] = component_id(registry, kind, comp, cls)
    return {"name": name, "options": dict(recipe.options),
            "component": component_id(registry, "model", name, type(recipe)),
            "components": built_from,
            "inputs": {role: input_digest(path) for role, path in sorted(recipe.input_files().items())}}


def component_id(registry: Any, kind: str, name: str, cls: Any) -> dict[str, Any]:
    """What identifies the code of one registered component: its ``version``
    attribute, the distribution that registered it and a digest of its source."""
    try:
        plugin = registry.get(kind, name).plugin
        dist = f"{plugin.dist_name} {plugin.dist_version}"
    except Exception:  # noqa: BLE001 - a component used without a registry entry
        dist = None
    return {"version": str(getattr(cls, "version", "")), "dist": dist, "code": code_digest(cls)}


def dataset_part(registry: Any, source: Any, source_name: str) -> dict[str, Any]:
    """A prepared dataset instance in a key: its source, resolved options and identity."""
    return {"source": source_name, "options": dict(source.options),
            "component": component_id(registry, "dataset", source_name, type(source))}


def pretrain_key_parts(cfg_dump: Mapping[str, Any], model: Mapping[str, Any],
                       objectives: Mapping[str, Mapping[str, Any]], dataset: Mapping[str, Any],
                       data_fraction: float, seed: int, data_checksum: str, version: str,
                       shuffle_pairs: bool = False) -> dict[str, Any]:
    """The documented parts of a pretraining key (also stored in each record).

    ``model``: ``{name, options, component}`` (resolved options); ``objectives``:
    ``{name: {weight, options, component}}``; ``dataset``: :func:`dataset_part`.
    ``shuffle_pairs`` adds ``"shuffle_pairs": true`` (absent otherwise, so the
    keys of ordinary rows are those of before the option existed).
    """
    pretrain = {k: v for k, v in dict(cfg_dump["pretrain"]).items() if k not in _NOT_RESULT_FIELDS}
    pretrain["data_fraction"] = float(data_fraction)
    shuffled = {"shuffle_pairs": True} if shuffle_pairs else {}
    return {
        **shuffled,
        "key_version": KEY_VERSION,
        "simla_bench": version,
        "model": dict(model),
        "pretrain": pretrain,
        "objectives": {name: dict(objectives[name]) for name in sorted(objectives)},
        "dataset": dict(dataset),
        "data_checksum": data_checksum,
        "seed": int(seed),
    }


def cell_key_parts(pretrain_key: str, task: str, task_version: str, task_options: Mapping[str, Any],
                   task_component: Mapping[str, Any], dataset_name: str, dataset: Mapping[str, Any],
                   data_checksum: str) -> dict[str, Any]:
    return {
        "pretrain_key": pretrain_key,
        "task": task,
        "task_version": str(task_version),
        "task_config": dict(task_options),
        "task_component": dict(task_component),
        "dataset_name": dataset_name,
        "dataset": dict(dataset),
        "data_checksum": data_checksum,
    }


def row_key_of(pretrain_parts: Mapping[str, Any]) -> str:
    """A row's identity across seeds: the pretraining key parts without the seed
    (the report groups a row's seeds by it)."""
    return digest({k: v for k, v in pretrain_parts.items() if k != "seed"})
