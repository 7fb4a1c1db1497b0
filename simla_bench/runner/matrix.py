"""The matrix runner: plan the cells, skip the finished ones, pretrain each
(row, seed) once (resuming from its checkpoint), run its missing tasks, and
write one record per finished cell.

Faults stay local: a NaN/inf loss or an exception in a plugin stops that row
(or, inside a task, that cell) with a one-line message; the other rows go on.
Observers are told through ``registry.notify`` (``on_run_start``,
``on_cell_finished``, ``on_run_finished``).  Nothing here knows a particular
objective or task.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import math
import os
import re
import shutil
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from simla_bench import __version__, tmpfiles
from simla_bench.config import ExperimentConfig
from simla_bench.errors import PluginError, UserError
from simla_bench.interfaces import TaskContext, TaskResult
from simla_bench.runner import curves, keys
from simla_bench.assemble import build_objectives
from simla_bench.runner.cells import (Cell, Matrix, Row, check_capabilities, check_names, expand, merge_equivalent,
                                      resolve_objectives)
from simla_bench.runner.pipeline import Pipeline, PreparedData
from simla_bench.runner.progress import Progress
from simla_bench.runner.record import SCHEMA_VERSION, CellRecord, CorruptRecordError
from simla_bench.runner.store import RunStore, atomic_write_json


@dataclass
class PlannedCell:
    cell: Cell
    key: str
    pretrain_key: str
    row_key: str
    key_parts: dict[str, Any]
    task_cls: Any


@dataclass
class RunResult:
    run_dir: Path
    records: list[dict] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    cached: int = 0
    computed: int = 0
    warnings: list[str] = field(default_factory=list)


def dist_rank() -> tuple[int, int]:
    """(rank, world size) from the torchrun environment; (0, 1) outside it.
    Under torchrun every rank runs the matrix (pretraining and tasks may use
    collectives); only rank 0 takes locks and writes the run directory."""
    try:
        return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 0, 1


_FRACTION = re.compile(r" @[0-9.e+-]+%$")


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _describe_exc(exc: BaseException) -> str:
    if isinstance(exc, UserError):
        return exc.one_line()
    return f"{type(exc).__name__}: {exc}"


#: the trainer's checkpoint in a pretraining folder (``simla_bench.training.checkpoint.CHECKPOINT_NAME``;
#: named here so that the runner does not import torch)
CHECKPOINT_FILE = "checkpoint.pt"


class PretrainingKeptError(UserError):
    """A finished pretraining could not be restored, or a checkpoint not resumed;
    the files are kept (only ``--force`` deletes them)."""

    @classmethod
    def wrap(cls, what: str, ckpt: Path, workdir: Path, exc: BaseException) -> "PretrainingKeptError":
        where = ckpt if ckpt.exists() else workdir
        if isinstance(exc, UserError):  # its own hint says what to do; ours only adds that the files stay
            why, fix = exc.message, exc.hint or "fix the cause and rerun, or rerun with --force to start the row over"
        else:
            why = _describe_exc(exc).splitlines()[0] if str(exc) else type(exc).__name__
            fix = "fix the cause and rerun, or rerun with --force to start the row over"
        err = cls(f"{what} from {where}: {why}" if str(where) not in why else f"{what}: {why}",
                  hint=f"the files in {workdir} are kept; {fix}")
        for attr in ("objective", "step"):  # e.g. a NaN loss after the resume: still blame the objective
            if hasattr(exc, attr):
                setattr(err, attr, getattr(exc, attr))
        return err


class MatrixRunner:
    """Runs one experiment config into one run directory."""

    def __init__(self, cfg: ExperimentConfig, registry, pipeline: Pipeline, run_dir: str | Path,
                 progress: Progress | None = None, force: bool | Sequence[str] = False, rows: list[Row] | None = None,
                 seeds: list[int] | None = None, executor: Any = None, notify_run: bool = True):
        self.cfg = cfg
        self.registry = registry
        self.pipeline = pipeline
        self.store = RunStore(run_dir)
        self.progress = progress or Progress()
        #: True: recompute every row; a list of row labels: only those rows (``--force-row``)
        self.force = force if isinstance(force, bool) else tuple(force)
        self.only_rows = rows
        self.only_seeds = seeds
        self.executor = executor  # None: run groups here; else e.g. runner.executors.SubmititExecutor
        self.notify_run = notify_run  # False inside a submitted job (the submitter notifies)
        self.rank, self.world_size = dist_rank()
        self.main = self.rank == 0
        self.cfg_dump = cfg.model_dump(mode="json")
        self._tokenizer: Any = None
        #: row model JSON -> {task: why its cells on those rows are n/a} (check_capabilities)
        self._not_applicable: dict[str, dict[str, dict[str, Any]]] = {}
        self._tokenizers: dict[str, Any] = {}  # rows of another model family: their own tokenizer
        self._row_cfgs: dict[tuple[str, bool], tuple[ExperimentConfig, dict]] = {("", False): (cfg, self.cfg_dump)}

    def row_cfg(self, row: Row) -> ExperimentConfig:
        """The experiment as this row runs it: its ``model:`` overrides applied; for a
        row without objectives (the ``none`` control) ``pretrain.steps`` 0: the model
        as built goes through the tasks (and its key does not change with the schedule)."""
        return self._row_entry(row)[0]

    def row_dump(self, row: Row) -> dict:
        """``row_cfg(row)`` as JSON data (keys and records), computed once per row model."""
        return self._row_entry(row)[1]

    def row_objectives(self, row: Row) -> dict[str, dict[str, Any]]:
        """``name -> {"weight", "options"}`` of the row's objectives
        (:func:`~simla_bench.runner.cells.resolve_objectives`), resolved once per row."""
        memo = self.__dict__.setdefault("_row_objectives", {})
        key = (row.objective_json, tuple(sorted(row.objectives)))
        if key not in memo:
            memo[key] = resolve_objectives(self.cfg, row)
        return memo[key]

    def _row_entry(self, row: Row) -> tuple[ExperimentConfig, dict]:
        entry = (row.model_json, not row.objectives)
        if entry not in self._row_cfgs:
            cfg = self.cfg.with_model(row.model_overrides)
            if not row.objectives and cfg.pretrain.steps:
                cfg = cfg.model_copy(update={"pretrain": cfg.pretrain.model_copy(update={"steps": 0})})
            self._row_cfgs[entry] = (cfg, cfg.model_dump(mode="json"))
        return self._row_cfgs[entry]

    # ------------------------------------------------------------ planning
    def matrix(self) -> Matrix:
        matrix = expand(self.cfg)
        check_names(self.cfg, matrix, self.registry)
        merge_equivalent(self.cfg, matrix, self.registry)
        if self.only_rows is not None:
            wanted = {r.identity for r in self.only_rows}
            matrix.rows = [r for r in matrix.rows if r.identity in wanted]
        if self.only_seeds is not None:
            matrix.seeds = [s for s in matrix.seeds if s in self.only_seeds]
        return matrix

    def plan(self, matrix: Matrix, data: dict[str, PreparedData]) -> list[PlannedCell]:
        """Every cell with its key (see :mod:`simla_bench.runner.keys`): the
        components' resolved options, versions and code digests, and the data
        checksums of the datasets it reads."""
        from simla_bench.assemble import model_recipe

        reg = self.registry
        pre_ds = self.cfg.pretrain.dataset
        pre_sum = keys.manifest_checksum(data[pre_ds].manifest)
        dataset_parts = {name: keys.dataset_part(reg, d.source, self.cfg.datasets[name].source)
                         for name, d in data.items()}
        task_parts = {}
        for task in matrix.tasks:
            cls = reg.load("task", task)
            task_parts[task] = (cls, cls(task, self.cfg.tasks[task].options).options,
                                keys.component_id(reg, "task", task, cls))
        models: dict[str, dict] = {}
        planned = []
        for row in matrix.rows:
            resolved = {name: {"weight": w, "options": dict(obj.options),
                               "component": keys.component_id(reg, "objective", name, type(obj))}
                        for name, (obj, w) in build_objectives(self.row_objectives(row), reg).items()}
            if row.model_json not in models:
                mc = self.row_cfg(row).model
                recipe = model_recipe(mc, reg)
                models[row.model_json] = keys.model_part(reg, mc.name, recipe)
            for seed in matrix.seeds:
                pparts = keys.pretrain_key_parts(self.row_dump(row), models[row.model_json], resolved,
                                                 dataset_parts[pre_ds], row.data_fraction, seed, pre_sum, __version__,
                                                 row.shuffle_pairs)
                pkey, rkey = keys.digest(pparts), keys.row_key_of(pparts)
                for task in matrix.tasks:
                    tc = self.cfg.tasks[task]
                    cls, options, component = task_parts[task]
                    cparts = keys.cell_key_parts(pkey, task, cls.version, options, component, tc.dataset,
                                                 dataset_parts[tc.dataset],
                                                 keys.manifest_checksum(data[tc.dataset].manifest))
                    planned.append(PlannedCell(Cell(row, seed, task), keys.digest(cparts), pkey, rkey,
                                               {"pretrain": pparts, "cell": cparts}, cls))
        return planned

    def _finished(self, pc: PlannedCell) -> dict | None:
        """A valid stored record whose prediction files are there as written, or None
        (a corrupt record is reported and moved aside; missing or altered predictions
        are reported and the cell recomputed)."""
        read = self.store.read_record(pc.key)
        if read.problem and not self.main:
            return None
        if read.problem:
            moved = self.store.quarantine(pc.key)
            self.progress.warn(
                f"cell record {pc.key} ({pc.cell.row.label}, seed {pc.cell.seed}, {pc.cell.task}) is corrupt: "
                f"{read.problem}; moved to {moved.name} and recomputing")
        if read.record is not None and (problem := self.store.predictions_problem(pc.key, read.record.predictions)):
            self.progress.warn(f"cell {pc.key} ({pc.cell.row.label}, seed {pc.cell.seed}, {pc.cell.task}): {problem}; "
                               "recomputing")
            return None
        return read.data

    # ------------------------------------------------------------ running
    def forced_rows(self, matrix: Matrix) -> list[Row]:
        """The rows ``force`` recomputes: all (True), none (False), or those a
        label names (a row's label, one of its merged names, or its label
        without the ``@fraction`` suffix: every fraction of it)."""
        if isinstance(self.force, bool):
            return list(matrix.rows) if self.force else []
        chosen: list[Row] = []
        for name in self.force:
            hits = [r for r in matrix.rows if name == r.label or name in r.labels
                    or name in {_FRACTION.sub("", label) for label in r.labels}]
            if not hits:
                raise UserError(f"--force-row '{name}' names no row of this run",
                                hint=f"rows: {'; '.join(r.label for r in matrix.rows)}")
            chosen += [r for r in hits if r not in chosen]
        return chosen

    def run(self) -> RunResult:
        matrix = self.matrix()
        forced_rows = self.forced_rows(matrix)  # an unknown row name stops the run before any work
        for note in matrix.notes:
            self.progress.info(note)
        self.store.ensure()
        result = RunResult(self.store.root)
        device = self.pipeline.resolve_device(self.cfg)
        env = self.pipeline.environment(device)
        names = list(dict.fromkeys([self.cfg.pretrain.dataset] + [self.cfg.tasks[t].dataset for t in matrix.tasks]))
        with self.store.acquire("prepare"):  # ranks / concurrent runs: one generates, the others reuse
            data = self.pipeline.prepare(self.cfg, self.registry, names, self.progress.task_callback())
        planned = self.plan(matrix, data)

        forced = {pc.key for pc in planned if pc.cell.row in forced_rows}
        # every rank must take the same decisions: with --force nothing forced counts as done
        done = {pc.key: (None if pc.key in forced else self._finished(pc)) for pc in planned}
        result.cached = sum(1 for r in done.values() if r is not None)
        todo_tasks = list(dict.fromkeys(pc.cell.task for pc in planned if done[pc.key] is None))
        if todo_tasks:  # every split the missing cells read, checked before any work (and before --force deletes)
            for note in self.pipeline.validate(self.cfg, self.registry, data, todo_tasks):
                self.progress.info(note)
        if forced and self.main:
            for pc in planned:
                if pc.key in forced:
                    self.store.delete_record(pc.key)
            for pkey in {pc.pretrain_key for pc in planned if pc.key in forced}:
                shutil.rmtree(self.store.pretrain_dir / pkey, ignore_errors=True)

        run_info = {
            "run_dir": str(self.store.root), "config_name": self.cfg.name, "cells": len(planned),
            "cached": result.cached, "rows": [r.label for r in matrix.rows], "seeds": matrix.seeds,
            "tasks": matrix.tasks, "started": _now(),
        }
        if self.main:
            self.store.update_manifest(self._manifest(planned, data, env, run_info))
        if self.notify_run and self.main:
            result.warnings += self._notify("on_run_start", run=run_info)
        self.progress.run_start(len(planned), result.cached, str(self.store.root))
        for pc in planned:
            if done[pc.key] is not None:
                self.progress.cell_done("cached", self._cell_text(pc, done[pc.key]))

        if any(r is None for r in done.values()):
            self._prepare_model_checks(matrix, data)
        groups: dict[str, list[PlannedCell]] = {}
        for pc in planned:
            groups.setdefault(pc.pretrain_key, []).append(pc)
        todo = [(pkey, cells) for pkey, cells in groups.items() if any(done[pc.key] is None for pc in cells)]
        if self.executor is None:
            for pkey, cells in todo:
                self._run_group(pkey, cells, done, data, env, device, result)
        elif todo:
            result.failures += self.executor.run_groups(
                self.cfg_dump, self.store.root, [(cells[0].cell.row, cells[0].cell.seed) for _, cells in todo],
                self.progress)
            for _, cells in todo:
                for pc in cells:
                    if done[pc.key] is None and (record := self.store.read_record(pc.key).data) is not None:
                        done[pc.key] = record
                        result.computed += 1
                        self.progress.cell_done("done", self._cell_text(pc, record))

        # in the config's row order, each under the row's label now (a reused record keeps the one it was made under)
        result.records = [self._as_row(done[pc.key], pc.cell.row) for pc in planned if done[pc.key] is not None]
        run_info["finished"] = _now()
        run_info["failures"] = result.failures
        if self.notify_run and self.main:
            result.warnings += self._notify("on_run_finished", run=run_info, records=result.records)
        return result

    @staticmethod
    def _as_row(record: dict, row: Row) -> dict:
        """A (possibly reused) record under the row's label and control marker of this run."""
        out = {k: v for k, v in record.items() if k != "control"}
        out["row"] = row.label
        if row.control:
            out["control"] = row.control
        return out

    def _notify(self, hook: str, **kwargs: Any) -> list[str]:
        warnings = self.registry.notify(hook, **kwargs)
        for w in warnings:
            self.progress.warn(w)
        return warnings

    def _prepare_model_checks(self, matrix: Matrix, data: dict[str, PreparedData]) -> None:
        """Build the tokenizer once and a probe model per row model; refuse unusable objective
        sets and note the tasks a row's model cannot serve (their cells are n/a)."""
        pre = self._pre_data = data[self.cfg.pretrain.dataset]
        self._tokenizer = self.pipeline.build_tokenizer(self.cfg, pre, self.store.root / "tokenizer" if self.main else None)
        for model_json in dict.fromkeys(r.model_json for r in matrix.rows):
            rows = [r for r in matrix.rows if r.model_json == model_json]
            cfg = self.row_cfg(rows[0])
            probe = self.pipeline.build_model(cfg, self.tokenizer_for(cfg))
            self._not_applicable[model_json] = check_capabilities(cfg, Matrix(rows, matrix.seeds, matrix.tasks),
                                                                  self.registry, self.pipeline.capabilities(probe))

    def tokenizer_for(self, cfg: ExperimentConfig) -> Any:
        """The run's tokenizer; a row whose model is another family (``model.name``) gets
        its own, built once per distinct model config and not saved."""
        if cfg.model.name == self.cfg.model.name:
            return self._tokenizer
        key = json.dumps(cfg.model.model_dump(mode="json"), sort_keys=True)
        if key not in self._tokenizers:
            self._tokenizers[key] = self.pipeline.build_tokenizer(cfg, self._pre_data, None)
        return self._tokenizers[key]

    def _na(self, pc: PlannedCell) -> dict[str, Any] | None:
        """Why ``pc`` is n/a (its row's model lacks what its task needs), else None."""
        return self._not_applicable.get(pc.cell.row.model_json, {}).get(pc.cell.task)

    def _run_group(self, pkey: str, cells: list[PlannedCell], done: dict, data, env, device, result: RunResult) -> None:
        row, seed = cells[0].cell.row, cells[0].cell.seed
        waited = []
        lock = self.store.acquire(f"pretrain-{pkey}", on_wait=lambda n: waited.append(
            self.progress.info(f"waiting for another run that holds row '{row.label}' seed {seed} ..."))) \
            if self.main else contextlib.nullcontext()
        with lock:
            if waited:  # the other run may have finished some of our cells
                for pc in cells:
                    if done[pc.key] is None:
                        done[pc.key] = self._finished(pc)
            todo = [pc for pc in cells if done[pc.key] is None]
            if not todo:
                return
            try:
                # a row whose every missing cell is n/a needs no model (nor its pretraining)
                model, pinfo = (None, {}) if all(self._na(pc) for pc in todo) else \
                    self._pretrained(row, seed, pkey, data)
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # noqa: BLE001 - the row stops, the run goes on
                self._log_error(pkey, exc)
                msg = f"row '{row.label}' seed {seed} stopped: {_describe_exc(exc)}{self._blame(exc)}"
                result.failures.append(msg)
                self.progress.row_done(row.label, seed, "[failed] " + _describe_exc(exc))
                for pc in todo:
                    self.progress.cell_done("failed", f"{self._cell_label(pc)}: pretraining failed")
                return
            for pc in todo:
                try:
                    record = self._run_cell(pc, model, pinfo, data, env, device)
                except KeyboardInterrupt:
                    raise
                except Exception as exc:  # noqa: BLE001 - that cell fails, the others go on
                    self._log_error(pkey, exc, pc.cell.task)
                    msg = f"task '{pc.cell.task}' on row '{row.label}' seed {seed} failed: {_describe_exc(exc)}"
                    result.failures.append(msg)
                    self.progress.cell_done("failed", msg)
                    continue
                done[pc.key] = record
                result.computed += 1
                self.progress.cell_done("done", self._cell_text(pc, record))
                if self.main:
                    result.warnings += self._notify("on_cell_finished", record=record)

    def _blame(self, exc: BaseException) -> str:
        """Name the distribution of the objective an error is about, if known."""
        name = getattr(exc, "objective", None)
        if name and ("objective", name) in self.registry:
            dist = self.registry.get("objective", name).plugin.dist_name
            return f" (objective '{name}' is provided by distribution '{dist}')"
        return ""

    def _log_error(self, pkey: str, exc: BaseException, task: str | None = None) -> None:
        suffix = f".rank{self.rank}" if self.world_size > 1 else ""
        path = self.store.pretrain_dir / pkey / (f"error-{task}{suffix}.log" if task else f"error{suffix}.log")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(traceback.format_exception(exc)), encoding="utf-8")

    def _pretrained(self, row: Row, seed: int, pkey: str, data) -> tuple[Any, dict]:
        """The row's pretrained model: restored if finished (``pretrain.json``
        exists), else trained, resuming from the checkpoint the trainer left.

        A restore or a resume that fails stops the row (:class:`PretrainingKeptError`)
        and leaves every file where it is: only ``--force`` deletes a checkpoint."""
        cfg = self.row_cfg(row)
        workdir = self.store.pretrain_dir / pkey
        workdir.mkdir(parents=True, exist_ok=True)
        if self.main:
            tmpfiles.remove_stale(workdir)  # a killed checkpoint write is not a checkpoint
        info_path = workdir / "pretrain.json"
        ckpt = workdir / CHECKPOINT_FILE
        objectives = build_objectives(self.row_objectives(row), self.registry)  # fresh: objectives keep state
        records = [] if cfg.pretrain.steps == 0 else \
            self.pipeline.pretrain_records(data[self.cfg.pretrain.dataset], row.data_fraction)
        if row.shuffle_pairs and records:
            records = self.pipeline.shuffle_pairs(records, seed)
        self.pipeline.seed_everything(seed)
        model = self.pipeline.build_model(cfg, self.tokenizer_for(cfg))
        if info_path.exists():
            try:
                info = json.loads(info_path.read_text(encoding="utf-8"))
                model = self.pipeline.restore(cfg, objectives, model, records, workdir, seed)
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # noqa: BLE001 - the row stops; its files stay
                raise PretrainingKeptError.wrap("cannot restore the finished pretraining", ckpt, workdir, exc) \
                    from exc
            self.progress.row_done(row.label, seed, "reusing finished pretraining")
            return model, {**info, "reused": True}
        self.progress.row_start(row.label, seed, cfg.pretrain.steps)
        resumed = ckpt.is_file()
        start = time.time()
        try:
            outcome = self.pipeline.pretrain(cfg, objectives, model, records, workdir, seed,
                                             self.progress.pretrain_callback())
        except Exception as exc:  # noqa: BLE001
            if not resumed:
                raise
            raise PretrainingKeptError.wrap("cannot resume", ckpt, workdir, exc) from exc
        curves.check_finite(outcome.loss_curve)
        info = {"steps": outcome.steps, "seconds": outcome.seconds or time.time() - start, "pairs": len(records),
                "data_fraction": row.data_fraction, "resumed_from_checkpoint": resumed,
                "loss": curves.summarise(outcome.loss_curve)}
        if self.main:
            atomic_write_json(info_path, info)  # marks the pretraining finished
        last = info["loss"]["losses"]
        text = " ".join(f"{k}={v['last']:.3f}" for k, v in last.items())
        self.progress.row_done(row.label, seed, f"{outcome.steps} steps in {info['seconds']:.1f}s {text}")
        return outcome.model, {**info, "reused": False}

    def _run_cell(self, pc: PlannedCell, model: Any, pinfo: dict, data, env, device) -> dict:
        cell = pc.cell
        tc = self.cfg.tasks[cell.task]
        task = pc.task_cls(cell.task, tc.options)
        workdir = self.store.pretrain_dir / pc.pretrain_key / "tasks" / cell.task
        workdir.mkdir(parents=True, exist_ok=True)
        na = self._na(pc)
        if na:  # not run: the record says why the cell is n/a
            out, seconds, metrics, per_example = TaskResult(metrics={}), 0.0, {}, {}
        else:
            ctx = TaskContext(model=model, tokenizer=self.tokenizer_for(self.row_cfg(cell.row)),
                              data=data[tc.dataset].source, options=task.options, seed=cell.seed, device=device,
                              workdir=workdir, progress=self.progress.task_callback(), log=self.progress.info)
            self.progress.task_start(cell.task, cell.row.label, cell.seed)
            start = time.time()
            out = self.pipeline.run_task(task, ctx)
            seconds = time.time() - start
            metrics, per_example = self._check_result(cell.task, task, out)
        files = self._check_predictions(cell.task, out)
        record = {
            "schema": SCHEMA_VERSION, "key": pc.key, "row": cell.row.label, "row_key": pc.row_key,
            "pretrain_key": pc.pretrain_key, "objectives": list(cell.row.objectives),
            **({"control": cell.row.control} if cell.row.control else {}),
            "objective_config": self.row_objectives(cell.row), "data_fraction": cell.row.data_fraction,
            "seed": cell.seed, "task": cell.task, "task_version": str(pc.task_cls.version),
            "primary_metric": pc.task_cls.primary_metric,
            "directions": {m: pc.task_cls.directions.get(m.split("/")[-1], pc.task_cls.directions.get(m, "higher"))
                           for m in metrics},
            "metrics": metrics, "per_example": per_example, "extra": out.extra,
            "config": self.row_dump(cell.row), "key_parts": pc.key_parts,
            **self._provenance(pc),
            "data_manifest": {self.cfg.pretrain.dataset: data[self.cfg.pretrain.dataset].manifest,
                              tc.dataset: data[tc.dataset].manifest},
            "versions": env["versions"], "device": env["device"],
            "timings": {"task_seconds": seconds, "pretrain_seconds": pinfo.get("seconds"),
                        "pretrain_reused": pinfo.get("reused", False)},
            "pretrain": {k: v for k, v in pinfo.items() if k != "reused"},
            "created": _now(),
            **({"not_applicable": na} if na else {}),
            **({"predictions": {n: hashlib.sha256(c).hexdigest() for n, c in files.items()}} if files else {}),
        }
        try:  # a CellRecord of exactly what is on disk (options and extras as JSON)
            record = CellRecord.from_json(json.loads(json.dumps(record, default=str)), pc.key)
        except CorruptRecordError as exc:  # e.g. a task's extra that is not a JSON object
            raise PluginError(f"task '{cell.task}' gave a result that makes no valid cell record: {exc}") from None
        if self.main:
            if files:  # before the record: a record never lists files that are not there
                self.store.write_predictions(pc.key, files)
            self.store.write_record(record)
        return record.to_json()

    @staticmethod
    def _check_predictions(name: str, out: Any) -> dict[str, bytes]:
        """The task's prediction files as name -> bytes (a plain file name, str or bytes content)."""
        files = getattr(out, "predictions", None) or {}
        if not isinstance(files, dict):
            raise PluginError(f"task '{name}' returned predictions of type {type(files).__name__}, not a dict "
                              "of file name -> content")
        checked = {}
        for fname, content in files.items():
            if not isinstance(fname, str) or not fname or fname != Path(fname).name or fname.startswith("."):
                raise PluginError(f"task '{name}' returned a prediction file named {fname!r}, not a plain file name")
            if not isinstance(content, (str, bytes, bytearray)):
                raise PluginError(f"task '{name}' returned prediction file {fname} as {type(content).__name__}, "
                                  "not str or bytes")
            checked[fname] = content.encode("utf-8") if isinstance(content, str) else bytes(content)
        return checked

    @staticmethod
    def _provenance(pc: PlannedCell) -> dict[str, Any]:
        """The record's ``components`` (version, distribution and code digest of
        each component the cell used) and ``data_checksums`` (per dataset), from its key."""
        pre, cell = pc.key_parts["pretrain"], pc.key_parts["cell"]
        pre_ds = pre["pretrain"]["dataset"]
        return {
            "components": {
                "model": {"name": pre["model"]["name"], **pre["model"]["component"]},
                "objectives": {n: o["component"] for n, o in pre["objectives"].items()},
                "datasets": {pre_ds: {"source": pre["dataset"]["source"], **pre["dataset"]["component"]},
                             cell["dataset_name"]: {"source": cell["dataset"]["source"],
                                                    **cell["dataset"]["component"]}},
                "task": {"name": cell["task"], **cell["task_component"]},
            },
            "data_checksums": {pre_ds: pre["data_checksum"], cell["dataset_name"]: cell["data_checksum"]},
        }

    @staticmethod
    def _check_result(name: str, task: Any, out: Any) -> tuple[dict, dict]:
        if not isinstance(out, TaskResult):
            raise PluginError(f"task '{name}' returned {type(out).__name__}, not a TaskResult")
        metrics = {}
        for k, v in out.metrics.items():
            try:
                v = float(v)
            except (TypeError, ValueError):
                raise PluginError(f"task '{name}' reported metric '{k}' = {v!r}, not a number") from None
            if not math.isfinite(v):
                raise PluginError(f"task '{name}' reported a non-finite metric '{k}' = {v}")
            metrics[str(k)] = v
        if task.primary_metric not in metrics:
            raise PluginError(f"task '{name}' did not report its primary metric '{task.primary_metric}'",
                              hint=f"it reported: {', '.join(sorted(metrics)) or 'nothing'}")
        per_example = {str(k): [float(x) for x in v] for k, v in out.per_example.items()}
        return metrics, per_example

    def _cell_label(self, pc: PlannedCell) -> str:
        return f"{pc.cell.task} [{pc.cell.row.label}] seed {pc.cell.seed}"

    def _cell_text(self, pc: PlannedCell, record: dict) -> str:
        primary = record["primary_metric"]
        if record.get("not_applicable"):
            na = record["not_applicable"]
            return f"{self._cell_label(pc)}: n/a (model '{na['model']}' lacks {', '.join(na['missing'])})"
        return f"{self._cell_label(pc)}: {primary} = {record['metrics'][primary]:.2f}"

    def _manifest(self, planned: list[PlannedCell], data, env, run_info) -> dict:
        rows = {}
        for pc in planned:
            rows.setdefault(pc.row_key, {"row_key": pc.row_key, "row": pc.cell.row.label,
                                         "objectives": list(pc.cell.row.objectives),
                                         "data_fraction": pc.cell.row.data_fraction,
                                         **({"control": pc.cell.row.control} if pc.cell.row.control else {})})
        return {
            "schema": SCHEMA_VERSION, "created": _now(), "versions": env["versions"], "device": env["device"],
            "config": self.cfg_dump, "data_manifest": {k: v.manifest for k, v in data.items()},
            "rows": list(rows.values()),
            "cells": [{"key": pc.key, "row_key": pc.row_key, "pretrain_key": pc.pretrain_key, "seed": pc.cell.seed,
                       "task": pc.cell.task} for pc in planned],
            "runs": [run_info],
        }
