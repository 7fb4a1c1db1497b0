"""The concrete steps the matrix runner performs, behind one small interface.

:class:`Pipeline` is what :class:`~simla_bench.runner.matrix.MatrixRunner`
calls: prepare datasets, validate every split the run will read (before any
work), build the tokenizer and model, pretrain a row, save
and reload its final weights, run one task.  :class:`DefaultPipeline` wires
these to the real parts (dataset sources from the registry, the backbones'
``build_model``, :func:`simla_bench.training.pretrain`, registry tasks); tests
inject a pipeline of fakes.  Heavy imports (torch, the model) happen inside
the methods only.
"""

from __future__ import annotations

import abc
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from simla_bench.config import ExperimentConfig
from simla_bench.interfaces import DatasetSource, Task, TaskContext, TaskResult


@dataclass
class PreparedData:
    """One prepared dataset instance and the manifest that identifies its content."""

    name: str
    source: DatasetSource
    manifest: dict[str, Any]


@dataclass
class PretrainOutcome:
    model: Any
    loss_curve: list[Any] = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0


class Pipeline(abc.ABC):
    """The steps of a matrix run.  Subclass to replace any of them; the abstract
    ones (tokenizer, model, pretraining, restoring a finished pretraining) have
    no generic form."""

    def resolve_device(self, cfg: ExperimentConfig) -> str:
        """The concrete device name of the run (:func:`simla_bench.devices.resolve_device_name`)."""
        from simla_bench.devices import resolve_device_name

        return resolve_device_name(cfg.device)

    def seed_everything(self, seed: int) -> None:
        """Seed python/numpy/torch for one cell (the runner calls it once before a row's
        model is built and once before each task): :func:`simla_bench.training.seeding.seed_everything`,
        after the run's math settings (:func:`simla_bench.runtime.configure_math`)."""
        from simla_bench.runtime import configure_math
        from simla_bench.training.seeding import seed_everything

        configure_math()
        seed_everything(seed)

    def prepare(self, cfg: ExperimentConfig, registry, names: list[str],
                progress: Callable[..., None]) -> dict[str, PreparedData]:
        """Instantiate and prepare each named dataset of the config."""
        out = {}
        for name in names:
            dc = cfg.datasets[name]
            cls = registry.load("dataset", dc.source)
            source = cls(name, dc.options)
            manifest = source.prepare(progress) or {}
            out[name] = PreparedData(name, source, dict(manifest))
        return out

    def validate(self, cfg: ExperimentConfig, registry, data: Mapping[str, PreparedData],
                 tasks: list[str]) -> list[str]:
        """Load every split the run will read, before any work: ``pretrain/train`` of the
        pretraining dataset (unless ``pretrain.steps`` is 0) and each split each task's
        :meth:`~simla_bench.interfaces.Task.data_splits` names, with its options.  Loading
        validates every record (image files decoded fully; the sources cache what passed,
        so a re-run only stats them).  A bad file raises its one-line DataError here, so the
        run stops before pretraining; with ``skip_bad: true`` the load skips and reports it.
        An optional split the source lacks is skipped; returns those notes."""
        from simla_bench.errors import DataError

        needed: dict[tuple[str, str, str], bool] = {}
        if cfg.pretrain.steps != 0:
            needed[(cfg.pretrain.dataset, "pretrain", "train")] = True
        for name in tasks:
            tc = cfg.tasks[name]
            task = registry.load("task", name)(name, tc.options)
            for kind, split, required in task.data_splits():
                key = (tc.dataset, kind, split)
                needed[key] = needed.get(key, False) or bool(required)
        notes: list[str] = []
        for (name, kind, split), required in needed.items():
            source = data[name].source
            available = source.has_split(kind, split)
            if not required and available is False:
                continue
            try:
                source.load(kind, split)
            except DataError as exc:
                if required or available:
                    raise DataError(f"dataset '{name}' {kind}/{split} (checked before any work): {exc.message}",
                                    hint=exc.hint) from None
                notes.append(f"{name}: optional {kind}/{split} skipped: {exc.one_line()}")
        return notes

    def pretrain_records(self, data: PreparedData, fraction: float) -> list[Any]:
        """The row's pretraining pairs: the ``fraction`` subset
        (:func:`simla_bench.training.data.subset_records`, the one cut; the trainer does not cut again)."""
        from simla_bench.training.data import subset_records

        return subset_records(list(data.source.load("pretrain", "train")), fraction)

    def shuffle_pairs(self, records: list[Any], seed: int) -> list[Any]:
        """A ``shuffle_pairs`` row's pretraining pairs: ``records`` with the captions
        deranged among the images, deterministic from the row's seed
        (:func:`simla_bench.training.data.shuffle_pairs`)."""
        from simla_bench.errors import DataError
        from simla_bench.training.data import shuffle_pairs

        try:
            return shuffle_pairs(records, seed)
        except ValueError as exc:
            raise DataError(str(exc), hint="the shuffled control needs pairs of many images") from None

    @abc.abstractmethod
    def build_tokenizer(self, cfg: ExperimentConfig, data: PreparedData, workdir: Path | None) -> Any:
        """See the class docstring (``workdir``: where to save it; None = do not save)."""

    @abc.abstractmethod
    def build_model(self, cfg: ExperimentConfig, tokenizer: Any) -> Any:
        """See the class docstring."""

    def capabilities(self, model: Any) -> frozenset[str]:
        return frozenset(getattr(model, "capabilities", ()))

    @abc.abstractmethod
    def pretrain(self, cfg: ExperimentConfig, objectives: Mapping[str, tuple[Any, float]], model: Any,
                 records: list[Any], workdir: Path, seed: int, progress: Callable[..., None]) -> PretrainOutcome:
        """See the class docstring."""

    @abc.abstractmethod
    def restore(self, cfg: ExperimentConfig, objectives: Mapping[str, tuple[Any, float]], model: Any,
                records: list[Any], workdir: Path, seed: int) -> Any:
        """Return the model of a pretraining that finished earlier in ``workdir``
        (the runner calls it when ``workdir/pretrain.json`` exists)."""

    def run_task(self, task: Task, ctx: TaskContext) -> TaskResult:
        """Seed the cell, run the task (it copies the model it fine-tunes: it never
        changes ``ctx.model``: the cell's one copy is the task's own)."""
        self.seed_everything(ctx.seed)
        return task.run(ctx)

    def environment(self, device: str) -> dict[str, Any]:
        from simla_bench.versions import versions

        return {"versions": versions(), "device": {"name": device}}


class DefaultPipeline(Pipeline):
    """The real steps: world/dataset plugins, the VLP model, the trainer, tasks."""

    def build_tokenizer(self, cfg: ExperimentConfig, data: PreparedData, workdir: Path | None) -> Any:
        from simla_bench.assemble import build_tokenizer, model_recipe

        return build_tokenizer(model_recipe(cfg.model),
                               lambda: [r.caption for r in data.source.load("pretrain", "train")], workdir)

    def build_model(self, cfg: ExperimentConfig, tokenizer: Any) -> Any:
        """The model of ``cfg.model`` (its checkpoint loaded when the options name
        one; the load report is shown once per distinct model config)."""
        from simla_bench.assemble import assemble

        built = assemble(cfg.model, tokenizer=tokenizer)
        if built.load_report is not None:
            key = repr(cfg.model.model_dump(mode="json"))
            shown = self.__dict__.setdefault("_reports_shown", set())
            if key not in shown:
                shown.add(key)
                self.report_load(built.load_report)
        return built.model

    def report_load(self, report: Any) -> None:
        """Show a checkpoint load report (stderr; the runner's output stays on stdout)."""
        import sys

        summary = report.summary() if hasattr(report, "summary") else str(report)
        print(summary, file=sys.stderr)

    def pretrain(self, cfg, objectives, model, records, workdir, seed, progress) -> PretrainOutcome:
        from simla_bench.training import pretrain

        if cfg.pretrain.steps == 0:
            # evaluate the model as built (and loaded from its checkpoint): no
            # trainer, so no objective set-up changes it either; at the image
            # size pretraining would give it (the none control matches the pretrained rows)
            size = cfg.pretrain.image_size
            if size and hasattr(model, "set_image_size") and getattr(model, "image_size", None) != size:
                model.set_image_size(size)
            return PretrainOutcome(model, [], 0, 0.0)
        # the runner seeded the cell and cut the records to the row's data fraction
        result = pretrain(cfg, dict(objectives), model, records, Path(workdir), seed, progress)
        return PretrainOutcome(result.model, list(result.loss_curve), int(result.steps), float(result.seconds))

    def restore(self, cfg, objectives, model, records, workdir, seed) -> Any:
        """The trainer's final checkpoint is the saved form of a finished row:
        calling the trainer again runs the objectives' set-up (heads they add),
        loads model, momentum copy and objective state, and trains 0 steps."""
        return self.pretrain(cfg, objectives, model, records, workdir, seed, lambda *a, **k: None).model

    def run_task(self, task: Task, ctx: TaskContext) -> TaskResult:
        start = time.time()
        result = super().run_task(task, ctx)
        result.extra.setdefault("seconds", time.time() - start)
        return result

    def environment(self, device: str) -> dict[str, Any]:
        import platform

        import torch

        env = super().environment(device)
        info: dict[str, Any] = {"name": device, "torch_threads": torch.get_num_threads(),
                                "platform": platform.platform(), "python": platform.python_version()}
        if device.startswith("cuda") and torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
        env["device"] = info
        return env


_PIPELINE: Pipeline | None = None


def get_pipeline() -> Pipeline:
    """The pipeline ``simla-bench run`` uses: the real one unless replaced."""
    return _PIPELINE if _PIPELINE is not None else DefaultPipeline()


def set_pipeline(pipeline: Pipeline | None) -> None:
    """Replace (or, with ``None``, reset) the pipeline of the CLI; for tests and
    for embedding simla-bench in another program."""
    global _PIPELINE
    _PIPELINE = pipeline
