"""The interfaces each kind of component implements, and their checks.

These are the Python shapes behind the hooks in :mod:`simla_bench.hookspecs`:

* **model** — a subclass of :class:`ModelPlugin`: the recipe for a whole
  vision-language model (its options, tokenizer, image transform, text length,
  capability explanations, checkpoint loading).
* **backbone** — a factory ``build(**options) -> torch.nn.Module`` (metadata
  ``modality="image"|"text"``).  Image encoders return modules whose
  ``forward(images, patch_mask=None)`` gives ``[B, 1 + N, D]`` (CLS + patches).
* **objective** — a subclass of :class:`Objective`.
* **task** — a subclass of :class:`Task`.
* **dataset** — a subclass of :class:`DatasetSource`.

This module imports nothing heavy: it is read by ``simla-bench list``.
"""

from __future__ import annotations

import abc
import inspect
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping


class ModelPlugin(abc.ABC):
    """A model recipe: everything the harness needs to build and feed one
    family of vision-language model.

    The runner never imports a model by path: it looks the recipe up by the
    config's ``model.name`` and calls, in order, :meth:`build_tokenizer`,
    :meth:`build` and :meth:`load_weights`.  ``defaults`` are the options the
    config's ``model.options`` overrides (unknown keys are refused, as for
    objectives).  The built model must expose

    * ``capabilities`` (a set of names objectives and tasks declare in ``needs``),
    * ``tokenizer`` and ``max_text_len`` (the one text length the trainer and
      every task use unless a task option says otherwise),
    * ``image_size`` and ``image_transform(train, size=None)`` (PIL -> tensor).
    """

    #: the component's version: bump it when a change alters its results; it is part of
    #: every cell key that uses the component (with its distribution's version and a
    #: digest of its source file, docs/results.md "What a cell key covers")
    version: ClassVar[str] = "1"
    defaults: ClassVar[Mapping[str, Any]] = {}
    #: capability -> what to change in this model's options to obtain it (the
    #: hint of the error when an objective or task needs what the model lacks)
    capability_hints: ClassVar[Mapping[str, str]] = {}
    #: options a matrix row may not override (they shape the run's shared tokenizer)
    row_fixed_options: ClassVar[tuple[str, ...]] = ()

    def __init__(self, name: str, options: Mapping[str, Any] | None = None):
        self.name = name
        self.options = self.validate_options(dict(options or {}))

    def validate_options(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """Merge ``given`` over :attr:`defaults`; one-line ConfigError on a bad key or value."""
        return resolve_options(f"model '{self.name}'", self.defaults, given)

    @property
    @abc.abstractmethod
    def max_text_len(self) -> int:
        """Tokens per text at pretraining and, unless a task says otherwise, in every task."""

    def tokenizer_needs_captions(self) -> bool:
        """Whether :meth:`build_tokenizer` learns its vocabulary from the pretraining captions."""
        return False

    @abc.abstractmethod
    def build_tokenizer(self, captions: Any = None, save_dir: Path | None = None) -> Any:
        """The tokenizer (saved under ``save_dir`` when given)."""

    @abc.abstractmethod
    def build(self, tokenizer: Any) -> Any:
        """A freshly initialised model using ``tokenizer``."""

    def check(self) -> None:
        """Refuse, before anything runs or is written, what can be known to
        fail from the options alone (e.g. an unreadable checkpoint file)."""

    def load_weights(self, model: Any) -> Any:
        """Load the weights the options name (a released or saved checkpoint)
        into ``model``; return a report with ``summary()`` (or None when the
        options name no checkpoint)."""
        return None

    def describe(self) -> str:
        """A few words naming this model's configuration, for messages."""
        return f"model '{self.name}'"

    def components(self) -> list[tuple[str, str]]:
        """Other registered components this model is built from, as ``(kind, name)``
        (e.g. its image and text backbones): their versions and code are part of
        every cell key, like the recipe's own."""
        return []

    def input_files(self) -> dict[str, str]:
        """Files or folders the options make this model read (a checkpoint,
        backbone weights, a tokenizer directory), by role: their content is part
        of every cell key, so replacing a file behind the same path recomputes."""
        return {}


class Objective(abc.ABC):
    """A pretraining loss over one batch.

    ``needs`` names model capabilities the objective requires (for example
    ``{"fusion", "itm_head"}``); the trainer refuses an objective set whose
    needs the configured model does not provide, before training starts.
    ``defaults`` are the options it accepts (the config's
    ``objectives.<name>`` mapping overrides them; unknown keys are refused).
    """

    #: the component's version: bump it when a change alters its results; it is part of
    #: every cell key that uses the component (with its distribution's version and a
    #: digest of its source file, docs/results.md "What a cell key covers")
    version: ClassVar[str] = "1"
    needs: ClassVar[frozenset[str]] = frozenset()
    #: model heads (capability names) this objective trains, e.g. ``{"itm_head"}``: the trainer records
    #: them in ``model.trained_heads`` (:mod:`simla_bench.heads`), so that a task can tell a trained
    #: head from one still at its random initialisation
    trains: ClassVar[frozenset[str]] = frozenset()
    defaults: ClassVar[Mapping[str, Any]] = {}

    def __init__(self, name: str, options: Mapping[str, Any] | None = None):
        self.name = name
        self.options = resolve_options(f"objective '{name}'", self.defaults, options or {})

    def setup(self, model: Any, data: Any) -> None:  # noqa: B027 - optional hook
        """Called once before training (e.g. fit a visual codebook, allocate
        queues).  ``data`` is the list of pretraining records."""

    @abc.abstractmethod
    def loss(self, step: Any) -> Any:
        """Return a scalar loss tensor for this step (``step`` is the trainer's
        per-step context holding the batch, model and shared encodings)."""

    def state_dict(self) -> dict[str, Any]:
        """Objective state to checkpoint (queues, codebooks): plain values only
        (tensors, dicts, lists, tuples, str, int, float, bool, None), since
        checkpoints are read with ``torch.load(weights_only=True)``."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:  # noqa: B027
        """Restore what :meth:`state_dict` returned."""


@dataclass
class TaskResult:
    """What a task returns for one cell.

    ``metrics``: every metric, flat (e.g. ``{"test/acc": 71.3}``).
    ``per_example``: for the primary metric (and optionally others), one score
    per test example such that the metric is ``100 * mean(scores)``; the report
    uses it for paired bootstrap significance.  ``extra``: anything JSON-able.
    ``predictions``: the cell's prediction files in the task's official formats,
    file name (no folder) -> content (``bytes`` or ``str``); the runner writes them
    into ``RUN_DIR/cells/<key>/`` before the record, which lists each with its
    sha256 (optional: a task that returns none still works).
    """

    metrics: dict[str, float]
    per_example: dict[str, list[float]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    predictions: dict[str, bytes | str] = field(default_factory=dict)


@dataclass
class Example:
    """One test example of a finished cell, read back from the cell's saved
    predictions by :meth:`Task.examples`: what ``simla-bench compare``, the HTML
    report and ``report --examples`` show.

    ``id``: the example's official id (question_id, ref_id, NLVR2 identifier, or
    ``"i2t:<image id>"`` / ``"t2i:<text id>"`` for retrieval queries).  ``value``:
    its score under the task's primary metric (the entry of the cell's
    ``per_example`` list, so the metric is ``100 * mean(value)``; ``None`` for an
    example that is shown but not part of that list, e.g. a retrieval text query).
    ``measure``/``measure_name``/``lower_is_better``: a finer per-example number
    where the task has one (the ground-truth rank, the IoU), used to order
    differences.  ``prediction``/``truth``: JSON-able.  ``text``: the question,
    caption, expression or statement.  ``images``: image files, for thumbnails."""

    id: str
    value: float | None
    prediction: Any
    truth: Any = None
    text: str = ""
    images: tuple[str, ...] = ()
    measure: float | None = None
    measure_name: str = ""
    lower_is_better: bool = False
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class TaskContext:
    """Everything a task gets for one cell."""

    model: Any
    tokenizer: Any
    data: "DatasetSource"
    options: Mapping[str, Any]
    seed: int
    device: str
    workdir: Path
    progress: Callable[..., None] = lambda *a, **k: None
    log: Callable[[str], None] = lambda msg: None


@dataclass(frozen=True)
class ScoreOption:
    """One option of a task's :meth:`Task.score_files` beyond the predictions and
    annotations files: ``simla-bench score TASK`` offers it as ``--<name with dashes>``
    and passes it as the keyword ``name``.  ``choices``: the allowed values;
    ``path``: the value is a file (given as a :class:`~pathlib.Path`); ``multiple``:
    the option may repeat (a tuple is passed); ``record``: the value is written
    into the ``--json`` file next to the metrics."""

    name: str
    help: str
    choices: tuple[str, ...] = ()
    default: Any = None
    path: bool = False
    multiple: bool = False
    record: bool = False


@dataclass
class FileScores:
    """What :meth:`Task.score_files` returns: the metrics (in the order to show them)
    and how many ids had no prediction (scored as wrong, with ``allow_missing``)."""

    metrics: dict[str, float]
    missing: int = 0


class Task(abc.ABC):
    """A downstream task: data it needs, how it adapts a pretrained model,
    how it predicts, and which metrics it reports.

    A task may also score prediction files in its official format
    (:meth:`score_files`, with :attr:`score_options`): ``simla-bench score TASK``
    calls it, so a third-party task gets the command too."""

    #: the component's version: bump it when a change alters its results; it is part of
    #: every cell key that uses the component (with its distribution's version and a
    #: digest of its source file, docs/results.md "What a cell key covers")
    version: ClassVar[str] = "1"
    primary_metric: ClassVar[str] = ""
    #: metric name -> "higher" or "lower" (default "higher")
    directions: ClassVar[Mapping[str, str]] = {}
    needs: ClassVar[frozenset[str]] = frozenset()
    data_kind: ClassVar[str] = ""
    defaults: ClassVar[Mapping[str, Any]] = {}

    def __init__(self, name: str, options: Mapping[str, Any] | None = None):
        self.name = name
        self.options = resolve_options(f"task '{name}'", self.defaults, options or {})

    @abc.abstractmethod
    def run(self, ctx: TaskContext) -> TaskResult:
        """Adapt (zero-shot or fine-tune), predict and score."""

    #: the options :meth:`score_files` takes besides the two files and ``allow_missing``
    score_options: ClassVar[tuple[ScoreOption, ...]] = ()

    def score_files(self, predictions: Path, annotations: Path, *, allow_missing: bool = False,
                    **options: Any) -> FileScores:
        """Score an official-format predictions file against official annotations
        (optional: a task that does not override it cannot be scored from files).
        ``allow_missing``: score ids without a prediction as wrong instead of refusing;
        ``options``: the values of :attr:`score_options`.  Bad files raise one-line
        :class:`~simla_bench.errors.DataError`s."""
        raise NotImplementedError(f"task '{self.name}' does not score prediction files")

    def examples(self, predictions: Path, data: "DatasetSource") -> list[Example]:
        """The test examples of a finished cell, read from its saved predictions
        folder ``predictions`` and the task's test split in ``data`` (optional: a
        task that does not override it has no per-example view)."""
        raise NotImplementedError(f"task '{self.name}' does not show per-example results")

    def score_predictions(self, predictions: Path, data: "DatasetSource", **options: Any) -> dict[str, float]:
        """The metrics of a finished cell (its record's ``split/metric`` names) recomputed
        from its saved predictions folder ``predictions`` with :meth:`score_files`, against
        the annotations of the task's test splits in ``data``; ``options``: values of
        :attr:`score_options` (default: the task's own).  Optional: ``report --rescore``
        skips a task that does not override it."""
        raise NotImplementedError(f"task '{self.name}' does not re-score saved predictions")

    @classmethod
    def rescores(cls) -> bool:
        """Whether this task implements :meth:`score_predictions`."""
        return cls.score_predictions is not Task.score_predictions

    @classmethod
    def has_examples(cls) -> bool:
        """Whether this task implements :meth:`examples`."""
        return cls.examples is not Task.examples

    @classmethod
    def scores_files(cls) -> bool:
        """Whether this task implements :meth:`score_files`."""
        return cls.score_files is not Task.score_files

    def data_splits(self) -> list[tuple[str, str, bool]]:
        """``(kind, split, required)`` of every split :meth:`run` will load with these options.

        The runner loads (validates) each before any pretraining starts, so a bad file
        stops the run before work.  ``required=False``: a split the task skips when the
        source lacks it (e.g. ``test_comp`` of a real dataset).  Default: ``train`` and
        ``test`` of :attr:`data_kind`, both optional (override to say exactly)."""
        return [(self.data_kind, "train", False), (self.data_kind, "test", False)] if self.data_kind else []


class DatasetSource(abc.ABC):
    """A source of records for one or more data kinds (``pretrain``,
    ``retrieval``, ``grounding``, ``vqa``, ``nlvr2``, ...)."""

    #: the component's version: bump it when a change alters its results; it is part of
    #: every cell key that uses the component (with its distribution's version and a
    #: digest of its source file, docs/results.md "What a cell key covers")
    version: ClassVar[str] = "1"
    provides: ClassVar[tuple[str, ...]] = ()
    defaults: ClassVar[Mapping[str, Any]] = {}

    def __init__(self, name: str, options: Mapping[str, Any] | None = None):
        self.name = name
        self.options = resolve_options(f"dataset '{name}'", self.defaults, options or {})

    def prepare(self, progress: Callable[..., None] | None = None) -> dict[str, Any]:
        """Make the data available (e.g. generate the world) and return a
        manifest (counts, checksum) that identifies its content."""
        return {}

    @abc.abstractmethod
    def load(self, kind: str, split: str) -> Any:
        """Return the records of one data kind and split."""

    def has_split(self, kind: str, split: str) -> bool | None:
        """Whether :meth:`load` can give this split with the configured options (``True``:
        it can, and a failure is an error; ``False``: it cannot, an optional split is then
        skipped; ``None``, the default: unknown, try it)."""
        return None


def resolve_options(owner: str, defaults: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """Merge options over defaults; refuse unknown keys and wrong types in one line."""
    from simla_bench.errors import ConfigError

    unknown = sorted(set(given) - set(defaults))
    if unknown:
        allowed = ", ".join(sorted(defaults)) or "no options"
        raise ConfigError(f"{owner}: unknown option(s) {', '.join(unknown)}; allowed: {allowed}")
    merged = dict(defaults)
    for key, value in given.items():
        default = defaults[key]
        if default is not None and value is not None and not _compatible(default, value):
            raise ConfigError(
                f"{owner}: option '{key}' expects {type(default).__name__} (default {default!r}), got {value!r}"
            )
        if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        merged[key] = value
    return merged


def _compatible(default: Any, value: Any) -> bool:
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(float(value))
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, (list, tuple)):
        return isinstance(value, (list, tuple))
    return isinstance(value, type(default))


_BASES = {"model": ModelPlugin, "objective": Objective, "task": Task, "dataset": DatasetSource}


def check_component(kind: str, target: Any) -> str | None:
    """Return a short complaint if ``target`` does not implement the interface
    of ``kind`` (used when a lazily registered component is first loaded)."""
    if kind == "backbone":
        return None if callable(target) else f"is a {type(target).__name__}, not a callable factory"
    if kind == "command":  # a click command or group (click is not imported here)
        is_command = any(c.__module__.startswith("click.") and c.__name__ == "Command" for c in type(target).__mro__)
        return None if is_command else f"is {target!r}, not a click command"
    base = _BASES[kind]
    if not (inspect.isclass(target) and issubclass(target, base)):
        return f"is {target!r}, not a subclass of simla_bench.interfaces.{base.__name__}"
    if inspect.isabstract(target):
        missing = ", ".join(sorted(getattr(target, "__abstractmethods__", ())))
        return f"does not implement {missing}"
    if kind == "task" and not target.primary_metric:
        return "declares no primary_metric"
    return None
