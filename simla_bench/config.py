"""Experiment configuration: YAML files under ``configs/`` validated into typed
objects, plus CLI overrides.

A wrong key or type is one :class:`~simla_bench.errors.ConfigError` line that
names the file, the key and what is allowed.  Component-specific options
(objective, task, dataset and backbone options) are plain mappings here and
are validated by the component itself (see :func:`interfaces.resolve_options`).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal, Mapping

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from simla_bench.errors import ConfigError
from simla_bench.textfiles import read_text_file



def _config_dir() -> Path:
    """The packaged experiment configs (the repository's ``configs/`` folder)."""
    from importlib import resources

    return Path(str(resources.files("simla_bench.configs")))


CONFIG_DIR = _config_dir()


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


#: the keys of ``model:`` itself; anything else is a legacy (pre-0.3) model option
MODEL_KEYS = ("name", "options")


def normalise_model_section(value: Any, where: str = "model") -> Any:
    """``model: {name, options}``; the legacy form (the ``vlp`` model's options
    written directly under ``model:``, as configs before 0.3 did) is read as
    ``{name: vlp, options: {...}}``.  Mixing the two forms is refused."""
    if not isinstance(value, Mapping):
        return value
    legacy = [k for k in value if k not in MODEL_KEYS]
    if not legacy:
        return dict(value)
    if any(k in value for k in MODEL_KEYS):
        raise ValueError(f"{where}: '{legacy[0]}' is a model option; write it under {where}.options "
                         f"({where}: {{name: ..., options: {{{legacy[0]}: ...}}}})")
    return {"name": "vlp", "options": dict(value)}


class ModelConfig(_Strict):
    """Which registered model (``simla-bench list models``) and its options,
    validated by the model plugin itself."""

    name: str = "vlp"
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _legacy(cls, value: Any) -> Any:
        return normalise_model_section(value)


class ObjectiveConfig(_Strict):
    weight: float = Field(1.0, ge=0.0)
    options: dict[str, Any] = Field(default_factory=dict)


class DatasetConfig(_Strict):
    """A dataset instance: which registered source, with which options."""

    source: str
    options: dict[str, Any] = Field(default_factory=dict)


class PretrainConfig(_Strict):
    dataset: str = "world"
    steps: int = Field(300, ge=0)
    batch_size: int = Field(32, ge=2)
    lr: float = Field(3e-4, gt=0.0)
    min_lr: float = Field(1e-5, ge=0.0)
    warmup_steps: int = Field(30, ge=0)
    weight_decay: float = Field(0.02, ge=0.0)
    grad_clip: float = Field(5.0, ge=0.0)
    #: momentum-distillation weight; ramped linearly from 0 over alpha_warmup_steps
    alpha: float = Field(0.4, ge=0.0, le=1.0)
    alpha_warmup_steps: int | None = None
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    grad_accum: int = Field(1, ge=1)
    checkpoint_every: int = Field(50, ge=1)
    num_workers: int = Field(0, ge=0)
    data_fraction: float = Field(1.0, gt=0.0, le=1.0)
    image_size: int | None = None
    augment: bool = True


class TaskConfig(_Strict):
    dataset: str = "world"
    options: dict[str, Any] = Field(default_factory=dict)
    #: ``false``: the task is configured but not a column of this run unless named
    #: (``--tasks all`` or ``--tasks <name>``), e.g. a column the budget cannot make
    #: informative; ``note`` says why (printed when the run leaves it out)
    enabled: bool = True
    note: str = ""


class RowObjective(_Strict):
    """A matrix row's own setting of one of its objectives.  ``weight`` unset:
    the experiment's ``objectives:`` weight (else 1); ``options`` are merged
    key by key over the experiment's options for that objective."""

    weight: float | None = Field(None, ge=0.0)
    options: dict[str, Any] = Field(default_factory=dict)


_ROW_OBJECTIVE_FORMS = "a name (itc), or {name: {weight: w, options: {...}}}, {name: w} or {name: {options: {...}}}"


def normalise_row_objectives(value: Any) -> Any:
    """A row's ``objectives``: a list whose entries are a name or a one-key
    mapping ``{name: spec}``, or a mapping ``{name: spec}`` (as the experiment's
    ``objectives:`` section).  ``spec`` is ``null``, a weight, or
    ``{weight: w, options: {...}}``.  Returns ``{name: spec}`` in row order."""
    if value is None:
        return {}
    if isinstance(value, Mapping):
        entries = list(value.items())
    elif isinstance(value, (list, tuple)):
        entries = []
        for entry in value:
            if isinstance(entry, str):
                entries.append((entry, None))
            elif isinstance(entry, Mapping) and len(entry) == 1:
                entries.append(next(iter(entry.items())))
            else:
                raise ValueError(f"objectives entry {entry!r} is not {_ROW_OBJECTIVE_FORMS}")
    else:
        raise ValueError(f"objectives must be a list of entries, each {_ROW_OBJECTIVE_FORMS}")
    out: dict[str, Any] = {}
    for name, spec in entries:
        if not isinstance(name, str) or not name:
            raise ValueError(f"objective name {name!r} is not a name; each entry is {_ROW_OBJECTIVE_FORMS}")
        if spec is None:
            spec = {}
        elif isinstance(spec, (int, float)) and not isinstance(spec, bool):
            spec = {"weight": spec}
        elif isinstance(spec, Mapping):
            unknown = [k for k in spec if k not in RowObjective.model_fields]
            if unknown:
                raise ValueError(f"objective '{name}': '{unknown[0]}' is not weight or options; write an objective's "
                                 f"options under options: ({{{name}: {{options: {{{unknown[0]}: ...}}}}}})")
            spec = dict(spec)
        else:
            raise ValueError(f"objective '{name}': {spec!r} is not a weight or {{weight: w, options: {{...}}}}")
        if name in out and out[name] != spec:
            raise ValueError(f"objective '{name}' is listed twice with different settings; list it once")
        out[name] = spec
    return out


#: the control rows ``controls: true`` adds, by kind, with their labels
CONTROL_ROWS = {"none": "none (control)", "shuffled": "shuffled (control)"}


class MatrixRow(_Strict):
    """One row of ``matrix:``: its label, its objectives (names, or names with
    their own weight/options), its ``model:`` overrides, whether its pretraining
    pairs are shuffled, and whether it is a control row."""

    name: str | None = Field(None, min_length=1)
    #: name -> the row's own weight/options, in the order listed (see :func:`normalise_row_objectives`)
    objectives: dict[str, RowObjective]
    #: overrides of the experiment's ``model:`` for this row only (e.g. ALBEF's
    #: split layout next to SIMLA's single stream): ``{options: {...}}``, merged
    #: key by key (the legacy form, options directly under ``model:``, is read too)
    model: dict[str, Any] = Field(default_factory=dict)
    #: pretrain on pairs whose captions are permuted among the images (a seeded
    #: derangement: no caption stays with its image): the objectives run, the
    #: image-text signal is gone (the ``shuffled`` control)
    shuffle_pairs: bool = False
    #: a control row, for the report: ``none`` (no objectives: the model as built,
    #: through the same tasks) or ``shuffled`` (``shuffle_pairs``)
    control: Literal["none", "shuffled"] | None = None

    @model_validator(mode="before")
    @classmethod
    def _shuffled_control_shuffles(cls, value: Any) -> Any:
        if isinstance(value, Mapping) and value.get("control") == "shuffled" and "shuffle_pairs" not in value:
            return {**value, "shuffle_pairs": True}
        return value

    @model_validator(mode="after")
    def _control_consistent(self) -> "MatrixRow":
        if self.control == "none" and self.objectives:
            raise ValueError(f"matrix row '{self.label}' is the none control (control: none) but lists objectives; "
                             "the none control pretrains nothing: write objectives: []")
        if self.control == "shuffled" and not self.shuffle_pairs:
            raise ValueError(f"matrix row '{self.label}' is the shuffled control but sets shuffle_pairs: false; "
                             "drop shuffle_pairs (control: shuffled shuffles the pairs)")
        if self.shuffle_pairs and not self.objectives:
            raise ValueError(f"matrix row '{self.label}' shuffles its pretraining pairs but has no objectives; "
                             "list the objectives to run on the shuffled pairs")
        return self

    @field_validator("model", mode="before")
    @classmethod
    def _model_keys(cls, value: Any) -> Any:
        return normalise_model_section(value, "matrix row model")

    @field_validator("objectives", mode="before")
    @classmethod
    def _objective_entries(cls, value: Any) -> Any:
        return normalise_row_objectives(value)

    @property
    def label(self) -> str:
        return self.name or ",".join(self.objectives) or self.model.get("name") or "none"


class ExecutorConfig(_Strict):
    kind: Literal["local", "slurm", "submitit_local"] = "local"
    slurm: dict[str, Any] = Field(default_factory=dict)


class ExperimentConfig(_Strict):
    name: str = "default"
    seeds: list[int] = Field(default_factory=lambda: [0])
    device: str = "auto"
    output_dir: str = "runs/default"
    model: ModelConfig = ModelConfig()
    datasets: dict[str, DatasetConfig] = Field(
        default_factory=lambda: {"world": DatasetConfig(source="world", options={"preset": "small"})}
    )
    objectives: dict[str, ObjectiveConfig] = Field(default_factory=dict)
    pretrain: PretrainConfig = PretrainConfig()
    tasks: dict[str, TaskConfig] = Field(default_factory=dict)
    matrix: list[MatrixRow] = Field(default_factory=list)
    data_fractions: list[float] = Field(default_factory=list)
    #: add the control rows after the matrix's (:meth:`rows`): ``true``, ``none`` and
    #: ``shuffled``; ``"none"``, the ``none`` row only (no pretraining: it costs the task cells only)
    controls: bool | Literal["none"] = False
    executor: ExecutorConfig = ExecutorConfig()

    @field_validator("objectives", mode="before")
    @classmethod
    def _objectives_list(cls, value: Any) -> Any:
        # ``objectives: [itc, itm]`` is shorthand for weight 1 each.
        if isinstance(value, list):
            return {str(name): {} for name in value}
        if isinstance(value, Mapping):
            return {k: ({} if v is None else ({"weight": v} if isinstance(v, (int, float)) else v)) for k, v in value.items()}
        return value

    def active_tasks(self) -> list[str]:
        """The tasks that are columns of this run (``enabled``), in config order."""
        return [name for name, task in self.tasks.items() if task.enabled]

    def left_out_tasks(self) -> list[str]:
        """One line per configured task this run leaves out (``enabled: false``)."""
        return [f"task '{name}' is left out of this run{': ' + task.note if task.note else ''} "
                f"(--tasks all or --tasks {name} runs it)" for name, task in self.tasks.items() if not task.enabled]

    @field_validator("tasks", mode="before")
    @classmethod
    def _tasks_list(cls, value: Any) -> Any:
        if isinstance(value, list):
            return {str(name): {} for name in value}
        if isinstance(value, Mapping):
            return {k: ({} if v is None else v) for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _datasets_exist(self) -> "ExperimentConfig":
        names = set(self.datasets)
        refs = [("pretrain.dataset", self.pretrain.dataset)] + [
            (f"tasks.{t}.dataset", c.dataset) for t, c in self.tasks.items()
        ]
        for where, ref in refs:
            if ref not in names:
                raise ValueError(f"{where} names dataset '{ref}', which is not defined under datasets: ({', '.join(sorted(names))})")
        return self

    @model_validator(mode="after")
    def _row_names_unique(self) -> "ExperimentConfig":
        first: dict[str, int] = {}
        for i, row in enumerate(self.matrix, start=1):
            if row.name is None:
                continue
            if row.name in first:
                raise ValueError(f"matrix rows {first[row.name]} and {i} are both named '{row.name}'; "
                                 "a name labels one row: rename one of them")
            first[row.name] = i
        return self

    @model_validator(mode="after")
    def _row_models_valid(self) -> "ExperimentConfig":
        for row in self.matrix:
            try:
                self.with_model(row.model)
            except ValidationError as exc:
                err = exc.errors()[0]
                loc = ".".join(str(p) for p in err.get("loc", ()))
                raise ValueError(f"matrix row '{row.label}': model.{loc}: {err.get('msg', 'invalid value')}") from None
        return self

    def with_model(self, overrides: Mapping[str, Any]) -> "ExperimentConfig":
        """This experiment with ``model:`` overridden key by key (a matrix row's ``model``);
        a row naming another model (``name``) gets that model with the row's options alone."""
        if not overrides:
            return self
        overrides = normalise_model_section(overrides, "matrix row model")
        if overrides.get("name", self.model.name) != self.model.name:  # another family: its options only
            merged = {"name": overrides["name"], "options": dict(overrides.get("options") or {})}
        else:
            merged = deep_merge(self.model.model_dump(mode="json"), overrides)
        return self.model_copy(update={"model": ModelConfig.model_validate(merged)})

    def objective_names(self) -> list[str]:
        return list(self.objectives)

    @field_validator("controls", mode="before")
    @classmethod
    def _controls_value(cls, value: Any) -> Any:
        if value is None or isinstance(value, bool) or value == "none":
            return bool(value) if value is None else value
        raise ValueError(f"controls must be true (the none and shuffled rows), none (the none row only) "
                         f"or false, got {value!r}")

    @model_validator(mode="after")
    def _controls_possible(self) -> "ExperimentConfig":
        # controls: none (the default's) adds the no-pretraining row only when rows pretrain:
        # with pretrain.steps 0 every row already is the model as built, so it adds nothing
        if not self.controls or (self.controls == "none" and self.pretrain.steps == 0):
            return self
        if self.pretrain.steps == 0:
            raise ValueError("controls: true compares pretrained rows with the none control, but pretrain.steps is 0 "
                             "(--no-pretrain): no row pretrains; drop --controls")
        if self.controls is True and not self.objectives and "shuffled" not in {r.control for r in self.matrix}:
            raise ValueError("controls: true needs the experiment's objectives: (the shuffled control pretrains "
                             "with them); give objectives: [...] or --objectives")
        return self

    def rows(self) -> list[MatrixRow]:
        """The matrix rows: the explicit ``matrix`` or the single objective set;
        with ``controls``, then the control rows the matrix lacks (:meth:`control_rows`)."""
        rows = list(self.matrix) or [MatrixRow(objectives=self.objective_names())]
        adds = self.controls is True or (self.controls == "none" and self.pretrain.steps != 0)
        return rows + (self.control_rows(rows) if adds else [])

    def control_rows(self, rows: list[MatrixRow]) -> list[MatrixRow]:
        """The control rows ``controls: true`` adds to ``rows`` (a kind the rows
        already have is not added again): ``none (control)``, the experiment's
        model with no pretraining, and ``shuffled (control)``, the experiment's
        ``objectives:`` on shuffled pairs.  Both use the experiment's model (no
        row's ``model:`` overrides) and go through the same tasks."""
        have = {r.control for r in rows}
        out = []
        if "none" not in have:
            out.append(MatrixRow(name=CONTROL_ROWS["none"], objectives=[], control="none"))
        if "shuffled" not in have and self.controls != "none":
            out.append(MatrixRow(name=CONTROL_ROWS["shuffled"], objectives=self.objective_names(), control="shuffled"))
        return out


def _format_validation_error(source: str, exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err.get("loc", ()))
    kind = err.get("type", "")
    msg = err.get("msg", "invalid value")
    if kind == "extra_forbidden":
        parent = loc.rsplit(".", 1)[0] if "." in loc else ""
        model = ExperimentConfig
        try:
            for part in parent.split(".") if parent else []:
                model = model.model_fields[part].annotation  # type: ignore[assignment]
            allowed = ", ".join(model.model_fields)  # type: ignore[union-attr]
        except Exception:  # noqa: BLE001
            allowed = "see configs/default.yaml"
        return f"{source}: unknown key '{loc}'; allowed here: {allowed}"
    extra = f" (got {err.get('input')!r})" if kind != "value_error" and "input" in err else ""
    more = f" (+{len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    if kind == "value_error":  # our own validators' messages, without pydantic's "Value error, " prefix
        msg = msg.removeprefix("Value error, ")
    where = f"key '{loc}': " if err.get("loc") else ""  # a whole-config check names its keys itself
    return f"{source}: {where}{msg}{extra}{more}"


def parse_config(data: Mapping[str, Any] | None, source: str = "<config>") -> ExperimentConfig:
    """Validate a mapping into an :class:`ExperimentConfig`."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: the top level must be a mapping of keys, not {type(data).__name__}")
    try:
        return ExperimentConfig.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(source, exc)) from None


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file '{path}' does not exist", hint="pass an existing YAML file to --config")
    try:
        data = yaml.safe_load(read_text_file(path, "config file", ConfigError))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    return data or {}


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


#: top-level keys whose value in a child config replaces the base's value
#: (lists of things to run), rather than being merged into it
REPLACED_KEYS = ("objectives", "tasks", "matrix", "seeds", "data_fractions")


def default_config_path() -> Path:
    return CONFIG_DIR / "default.yaml"


def load_config(path: str | Path | None = None) -> ExperimentConfig:
    """Load an experiment YAML.  A file may say ``base: other.yaml`` (relative
    to itself, or a name under the packaged configs) to extend another."""
    raw = _load_with_base(Path(path) if path else default_config_path(), set())
    return parse_config(raw, str(path or default_config_path()))


def _load_with_base(path: Path, seen: set[Path]) -> dict[str, Any]:
    data = load_yaml(path)
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: the top level must be a mapping of keys")
    if isinstance(data.get("model"), Mapping):  # a legacy model: section merges into its base's options
        try:
            data["model"] = normalise_model_section(data["model"])
        except ValueError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    base = data.pop("base", None)
    if base is None:
        return dict(data)
    base_path = _find_base(path, str(base))
    if base_path.resolve() in seen:
        raise ConfigError(f"{path}: 'base: {base}' makes a cycle")
    seen.add(base_path.resolve())
    merged = deep_merge(_load_with_base(base_path, seen), data)
    for key in REPLACED_KEYS:  # a child names its own sets; it does not add to the base's
        if key in data:
            merged[key] = copy.deepcopy(data[key])
    return merged


def _find_base(path: Path, base: str) -> Path:
    """The file a config's ``base:`` names: relative to the config file first; else the
    packaged configs (``CONFIG_DIR``), by the same relative path from the folder of the
    packaged config of the same name (a user's copy of ``configs/datasets/x.yaml`` saying
    ``base: ../default.yaml`` finds ``CONFIG_DIR/default.yaml``), then ``CONFIG_DIR/base``,
    then by the base's file name."""
    here = path.parent / base
    if here.is_file():
        return here
    packaged = [p.parent / base for p in sorted(CONFIG_DIR.rglob(path.name))]
    for candidate in [*packaged, CONFIG_DIR / base, CONFIG_DIR / Path(base).name]:
        if candidate.is_file():
            return candidate
    raise ConfigError(f"{path}: 'base: {base}' names no file: looked at {here} and in the packaged configs {CONFIG_DIR}",
                      hint="give the base's path relative to this file, or the name of a packaged config")


def split_csv(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def apply_overrides(cfg: ExperimentConfig, *, objectives: str | None = None, tasks: str | None = None,
                    seeds: str | None = None, out: str | None = None, world: str | None = None,
                    data_fractions: str | None = None, steps: int | None = None,
                    device: str | None = None, checkpoint: str | None = None,
                    checkpoint_format: str | None = None, no_pretrain: bool = False,
                    controls: bool | None = None, source: str = "command line") -> ExperimentConfig:
    """Return a new config with CLI flags applied (flags win over the file)."""
    data = cfg.model_dump()
    if objectives is not None:
        names = split_csv(objectives)
        if not names:
            raise ConfigError(f"{source}: --objectives is empty", hint="give a comma-separated list, e.g. itc,itm")
        data["objectives"] = {n: data["objectives"].get(n, {}) for n in names}
        data["matrix"] = []
    if tasks is not None:
        names = split_csv(tasks)
        known = data["tasks"]
        if names == ["all"]:
            names = list(known)
        elif "all" in names:
            raise ConfigError(f"{source}: --tasks all cannot be combined with task names, got '{tasks}'",
                              hint="give --tasks all, or a comma-separated list of tasks")
        data["tasks"] = {n: {**known.get(n, {}), "enabled": True} for n in names}
    if seeds is not None:
        try:
            data["seeds"] = [int(s) for s in split_csv(seeds)]
        except ValueError:
            raise ConfigError(f"{source}: --seeds must be comma-separated integers, got '{seeds}'") from None
    if out is not None:
        data["output_dir"] = out
    if world is not None:
        ds = data["datasets"].setdefault("world", {"source": "world", "options": {}})
        ds["options"] = {**ds.get("options", {}), "preset": world}
    if data_fractions is not None:
        try:
            data["data_fractions"] = [float(f) for f in split_csv(data_fractions)]
        except ValueError:
            raise ConfigError(f"{source}: --data-fraction must be comma-separated numbers, got '{data_fractions}'") from None
    if steps is not None:
        data["pretrain"]["steps"] = steps
    if controls is not None:
        data["controls"] = controls
    if device is not None:
        data["device"] = device
    if checkpoint is not None or checkpoint_format is not None:
        opts = data["model"].setdefault("options", {})
        if checkpoint is not None:
            if not Path(checkpoint).is_file():
                raise ConfigError(f"{source}: --checkpoint '{checkpoint}' does not exist",
                                  hint="give the path of a .pth/.pt/.safetensors checkpoint file")
            opts["checkpoint"] = str(Path(checkpoint).resolve())
        if checkpoint_format is not None:
            opts["format"] = checkpoint_format
    if no_pretrain:
        if steps:
            raise ConfigError(f"{source}: --no-pretrain and --steps {steps} contradict each other",
                              hint="drop one of them")
        data["pretrain"]["steps"] = 0
        if objectives is None and not data["matrix"]:
            ckpt = data["model"].get("options", {}).get("checkpoint")
            data["matrix"] = [{"name": Path(ckpt).stem if ckpt else "none", "objectives": []}]
    return parse_config(data, source)
