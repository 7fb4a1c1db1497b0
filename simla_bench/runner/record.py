"""The cell record: one finished (row, seed, task) cell, as stored in ``RUN_DIR/cells/<key>.json``.

:class:`CellRecord` is the record's one definition: the runner builds one,
:class:`~simla_bench.runner.store.RunStore` writes its JSON form
(:meth:`CellRecord.to_json`) and reads it back (:meth:`CellRecord.from_json`),
and the report reads the typed record.  Each field carries its description;
``docs/results.md`` ("Record fields") and ``docs/architecture.md`` list exactly
these fields (``tests/test_results_record.py`` checks it).

The on-disk form is the schema :data:`SCHEMA_VERSION` JSON object, unchanged
by this model: a record written today and one read back give the same file.
Records written before 0.4.0 lack ``components`` and ``data_checksums``; they
still read (those fields are then ``None`` and are left out of the JSON form
again).  An ``n/a`` cell (the row's model lacks a capability the task needs)
is a record too, with ``not_applicable`` set and no metrics; other records
have no such field.  ``control`` (added in 0.5.0) is present only in the records of a
control row; records without it read as before.  ``predictions`` (added later) lists the
cell's prediction files, when its task returned any.  A file that is not a record of this schema (a missing field, a field of
the wrong type, an unknown field, another schema, a key that is not its file
name's) is *corrupt*: :class:`CorruptRecordError` says why in one line.

Hooks (``on_cell_finished``, ``on_run_finished``) and the report's tables get
the JSON form, a plain dict with the same fields.
"""

from __future__ import annotations

import math
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

#: version of the record (and run directory) layout; a directory of another schema is refused
SCHEMA_VERSION = 1

#: fields added while the schema stayed 1, which a record may lack: ``components`` and
#: ``data_checksums`` (written before simla-bench 0.4.0), ``control`` (only control rows have it),
#: ``not_applicable`` (only n/a cells have it),
#: ``predictions`` (only cells whose task returned prediction files; older records lack it)
ADDED_IN_SCHEMA_1 = ("components", "data_checksums", "control", "not_applicable", "predictions")


class CorruptRecordError(ValueError):
    """A cell record file that does not match :class:`CellRecord`; the message is one line."""


class Timings(BaseModel):
    """How long the cell took."""

    model_config = ConfigDict(strict=True, extra="forbid")

    task_seconds: float = Field(description="wall-clock seconds the task (fine-tuning and evaluation) took")
    pretrain_seconds: Optional[float] = Field(description="seconds the row's pretraining took when it ran")
    pretrain_reused: bool = Field(description="true when this run reused a finished pretraining instead of training")


class NotApplicable(BaseModel):
    """Why a cell is ``n/a``: the row's model lacks what the task needs."""

    model_config = ConfigDict(strict=True, extra="forbid")

    model: str = Field(description="the row's model (its registered name)")
    missing: list[str] = Field(description="the capabilities the task needs that the model lacks")
    hint: str = Field("", description="how to obtain them (the model recipe's `capability_hints`)")


class CellRecord(BaseModel):
    """One finished cell: its scores, what produced them, and where it ran."""

    model_config = ConfigDict(strict=True, extra="forbid", populate_by_name=True)

    schema_version: int = Field(alias="schema", description="the record schema version, `1`")
    key: str = Field(description="the cell key (a digest of `key_parts`); also the file name")
    row: str = Field(
        description="the row label when the cell was computed (name from the matrix YAML, or `itc,itm`; `@10%` "
                    "with a data sweep); not in the key, so `report` shows the label of the latest run")
    row_key: str = Field(description="the row key: groups a row's cells (objectives, data fraction, model)")
    pretrain_key: str = Field(description="the pretraining key; names the `pretrain/<pretrain_key>/` folder")
    objectives: list[str] = Field(description="the row's objective names as given")
    objective_config: dict[str, Any] = Field(description="objective name -> `{weight, options}`, resolved")
    data_fraction: float = Field(description="the pretraining data fraction of the row")
    control: Optional[Literal["none", "shuffled"]] = Field(
        None, description="`none` (no pretraining) or `shuffled` (pretrained on shuffled pairs) on a control row "
                          "(`run --controls`); absent on other rows")
    seed: int = Field(description="the cell's seed (pretraining and task)")
    task: str = Field(description="the task's name in the config")
    task_version: str = Field(description="the task's `version`")
    primary_metric: str = Field(description="the task's primary metric (`split/metric`), one of `metrics`")
    directions: dict[str, str] = Field(description="metric -> `higher` / `lower` (which is better)")
    metrics: dict[str, float] = Field(description="every metric the task reported, `split/metric` -> finite number")
    per_example: dict[str, list[float]] = Field(
        description="metric -> one score per test unit (`metric = 100 * mean`), for paired bootstrap")
    extra: dict[str, Any] = Field(description="anything else the task returned (a JSON object)")
    config: dict[str, Any] = Field(description="the fully resolved experiment config of the row")
    key_parts: dict[str, Any] = Field(
        description="the documents the pretrain and cell keys were hashed from (`pretrain`, `cell`)")
    components: Optional[dict[str, Any]] = Field(
        None, description="what code computed the cell: `model` (`name`), `objectives`, `datasets` (`source`) and "
                          "`task` (`name`), each with `version`, `dist` (distribution and version) and `code` "
                          "(source digest); absent in records written before 0.4.0")
    data_checksums: Optional[dict[str, str]] = Field(
        None, description="dataset name -> the data checksum in the key (pretraining and task data); absent in "
                          "records written before 0.4.0")
    data_manifest: dict[str, Any] = Field(
        description="dataset name -> the manifest its source reported (counts, checksum)")
    versions: dict[str, str] = Field(description="simla-bench, torch, timm and transformers versions")
    device: dict[str, Any] = Field(description="the device the cell ran on: `name` (e.g. `cpu`, `cuda`)")
    timings: Timings = Field(description="`task_seconds`, `pretrain_seconds`, `pretrain_reused`")
    pretrain: dict[str, Any] = Field(
        description="`steps`, `seconds`, `pairs`, `data_fraction`, `resumed_from_checkpoint`, `loss`: per loss "
                    "`first/last/min/tail_mean` and a curve thinned to <= 50 points")
    created: str = Field(description="UTC time the record was made (ISO 8601)")
    not_applicable: Optional[NotApplicable] = Field(
        None, description="present when the cell is `n/a`: the row's model lacks a capability the task needs "
                          "(`model`, `missing`, `hint`); such a record has no metrics, is shown as n/a and is left "
                          "out of every mean and comparison")
    predictions: Optional[dict[str, str]] = Field(
        None, description="the cell's prediction files in `cells/<key>/` (the task's official formats), file name "
                          "-> sha256 of its content; a cached cell whose files are missing or altered is recomputed; "
                          "absent when the task returned none (n/a cells, tasks without predictions, records "
                          "written before prediction files were kept)")

    @field_validator("metrics")
    @classmethod
    def _finite(cls, metrics: dict[str, float]) -> dict[str, float]:
        for name, value in metrics.items():
            if not math.isfinite(value):
                raise ValueError(f"metric '{name}' is {value}, not a finite number")
        return metrics

    # ------------------------------------------------------------- JSON form
    def to_json(self) -> dict[str, Any]:
        """The record as stored: a JSON object (fields an old record lacked stay absent)."""
        return self.model_dump(by_alias=True, exclude_unset=True)

    @classmethod
    def from_json(cls, data: Any, key: str | None = None) -> "CellRecord":
        """Validate a stored record (``key``: the file's name, which its ``key`` must equal)."""
        problem = _precheck(data)
        if problem is None:
            try:
                record = cls.model_validate(data)
            except ValidationError as exc:
                problem = _one_line(exc)
            else:
                if key is not None and record.key != key:
                    problem = f"its key field is {record.key!r}, not the file name's {key!r}"
                elif record.primary_metric not in record.metrics and record.not_applicable is None:
                    problem = f"primary metric {record.primary_metric!r} is not among its metrics"
                else:
                    return record
        raise CorruptRecordError(problem)

    @classmethod
    def fields_described(cls) -> dict[str, str]:
        """``{JSON field name: description}`` in record order (what the docs list)."""
        return {(f.alias or name): f.description or "" for name, f in cls.model_fields.items()}

    @classmethod
    def markdown_table(cls) -> str:
        """The "Record fields" table of ``docs/results.md``, generated from the fields."""
        rows = [f"| `{name}` | {text} |" for name, text in cls.fields_described().items()]
        return "\n".join(["| field | content |", "|---|---|", *rows])


def _precheck(data: Any) -> str | None:
    if not isinstance(data, dict):
        return "not a JSON object"
    if "schema" in data and data["schema"] != SCHEMA_VERSION:
        return f"schema {data['schema']!r}, expected {SCHEMA_VERSION}"
    return None


def _one_line(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False)
    missing = [".".join(map(str, e["loc"])) for e in errors if e["type"] == "missing"]
    if missing:
        return f"missing field(s) {', '.join(missing)}"
    first = errors[0]
    where = ".".join(map(str, first["loc"]))
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown field"
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    return f"field '{where}': {msg}{more}"
