"""Content-addressed keys for pretraining runs and matrix cells.

A key is the SHA-256 (first 20 hex digits) of a canonical JSON document made
of everything that determines a result and nothing else:

* pretraining key (one row, one seed): the model config, the pretraining
  schedule (with the row's data fraction), the objective set with weights and
  options (as a set: order does not matter), the pretraining dataset's config
  and data-manifest checksum, the seed, and the simla-bench version;
* cell key: the pretraining key plus the task name, task version, task
  options, the task dataset's config and manifest checksum.

Left out on purpose (they do not change the numbers): output directory,
experiment name, other seeds/tasks/rows, executor, ``num_workers``,
``checkpoint_every`` and the device (recorded in every record instead, so a
CPU run and a GPU run of the same cell share the cache; rerun with ``--force``
to recompute on another device).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping

#: bump when the meaning of a key changes (old cells are then recomputed)
KEY_VERSION = 1
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


def pretrain_key_parts(cfg_dump: Mapping[str, Any], objectives: Mapping[str, Mapping[str, Any]],
                       data_fraction: float, seed: int, data_checksum: str, version: str) -> dict[str, Any]:
    """The documented parts of a pretraining key (also stored in each record)."""
    pretrain = {k: v for k, v in dict(cfg_dump["pretrain"]).items() if k not in _NOT_RESULT_FIELDS}
    pretrain["data_fraction"] = float(data_fraction)
    dataset_name = pretrain["dataset"]
    return {
        "key_version": KEY_VERSION,
        "simla_bench": version,
        "model": cfg_dump["model"],
        "pretrain": pretrain,
        "objectives": {name: dict(objectives[name]) for name in sorted(objectives)},
        "dataset": cfg_dump["datasets"][dataset_name],
        "data_checksum": data_checksum,
        "seed": int(seed),
    }


def cell_key_parts(pretrain_key: str, task: str, task_version: str, task_cfg: Mapping[str, Any],
                   dataset_cfg: Mapping[str, Any], data_checksum: str) -> dict[str, Any]:
    return {
        "pretrain_key": pretrain_key,
        "task": task,
        "task_version": str(task_version),
        "task_config": dict(task_cfg),
        "dataset": dict(dataset_cfg),
        "data_checksum": data_checksum,
    }


def row_key_of(pretrain_parts: Mapping[str, Any]) -> str:
    """A row's identity across seeds: the pretraining key parts without the seed
    (the report groups a row's seeds by it)."""
    return digest({k: v for k, v in pretrain_parts.items() if k != "seed"})
