"""Expanding an experiment into the matrix, and checking it before any work.

A *row* is one objective set (with weights and options) at one pretraining
data fraction, with the row's own ``model:`` overrides if it has any; a *cell*
is (row, seed, task).  Rows whose objective sets are equal (order does not
matter) and whose data fraction and model overrides are equal are one row:
they would compute the same numbers, so they are merged and labelled with all
their names.

The checks here turn bad input into one-line :class:`UserError`s before any
data is generated: unknown objective/task names (with did-you-mean), bad
options, an empty objective set, and (once a model exists)
capabilities that an objective or task needs but the configured model lacks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from simla_bench.config import ExperimentConfig
from simla_bench.errors import ConfigError, UserError


class CapabilityError(UserError):
    """An objective or task needs a model part the configured model lacks."""


@dataclass(frozen=True)
class Row:
    """One objective set at one data fraction."""

    labels: tuple[str, ...]
    objectives: tuple[str, ...]  # in the order first given (display); keys sort them
    data_fraction: float = 1.0
    model_json: str = ""  # the row's model overrides as canonical JSON ("" = none)

    @property
    def model_overrides(self) -> dict[str, Any]:
        return json.loads(self.model_json) if self.model_json else {}

    @property
    def label(self) -> str:
        return " = ".join(self.labels)

    @property
    def objective_set(self) -> frozenset[str]:
        return frozenset(self.objectives)


@dataclass(frozen=True)
class Cell:
    row: Row
    seed: int
    task: str


@dataclass
class Matrix:
    rows: list[Row]
    seeds: list[int]
    tasks: list[str]
    notes: list[str] = field(default_factory=list)

    def cells(self) -> list[Cell]:
        return [Cell(r, s, t) for r in self.rows for s in self.seeds for t in self.tasks]


def _fraction_suffix(fraction: float, fractions: list[float]) -> str:
    if len(fractions) <= 1 and fraction == 1.0:
        return ""
    return f" @{fraction * 100:g}%"


def expand(cfg: ExperimentConfig) -> Matrix:
    """Rows x data fractions; duplicate objective sets merged."""
    fractions = list(cfg.data_fractions) or [cfg.pretrain.data_fraction]
    for f in fractions:
        if not 0.0 < f <= 1.0:
            raise ConfigError(f"data fraction {f} is outside (0, 1]", hint="use e.g. --data-fraction 0.1,0.25,1.0")
    if not cfg.seeds:
        raise ConfigError("no seeds to run", hint="give --seeds 0 or seeds: [0] in the config")
    if not cfg.tasks:
        raise ConfigError("no tasks to run", hint="give --tasks or a tasks: section in the config")
    evaluate_only = cfg.pretrain.steps == 0  # the model is evaluated as built / loaded
    if not cfg.matrix and not cfg.objectives and not evaluate_only:
        raise ConfigError("no pretraining objectives configured", hint="give --objectives itc,itm or an objectives: list")
    merged: dict[tuple[frozenset[str], float, str], Row] = {}
    notes: list[str] = []
    for mrow in cfg.rows():
        objectives = tuple(dict.fromkeys(mrow.objectives))
        if not objectives and not evaluate_only:
            raise ConfigError(f"matrix row '{mrow.label}' has no objectives", hint="list at least one objective, e.g. [itc]")
        model_json = model_key(mrow.model)
        for f in fractions:
            label = mrow.label + _fraction_suffix(f, fractions)
            key = (frozenset(objectives), float(f), model_json)
            if key in merged:
                old = merged[key]
                notes.append(f"row '{label}' is the same objective set and model as '{old.label}'; it is run once")
                merged[key] = Row(old.labels + (label,), old.objectives, old.data_fraction, model_json)
            else:
                merged[key] = Row((label,), objectives, float(f), model_json)
    return Matrix(list(merged.values()), list(dict.fromkeys(cfg.seeds)), list(cfg.tasks), notes)


def model_key(overrides: Mapping[str, Any]) -> str:
    """Canonical JSON of a row's model overrides ("" when there are none)."""
    return json.dumps(dict(overrides), sort_keys=True, separators=(",", ":")) if overrides else ""


def resolve_objectives(cfg: ExperimentConfig, row: Row) -> dict[str, dict[str, Any]]:
    """Weight and options of each objective of a row (config entry or defaults)."""
    out = {}
    for name in sorted(row.objectives):
        oc = cfg.objectives.get(name)
        out[name] = {"weight": oc.weight if oc else 1.0, "options": dict(oc.options) if oc else {}}
    return out


def check_names(cfg: ExperimentConfig, matrix: Matrix, registry) -> None:
    """Every objective and task resolves in the registry, and its options validate.

    Raises :class:`~simla_bench.errors.UnknownNameError` (with did-you-mean) or
    :class:`ConfigError`; loading the classes surfaces broken plugins early.
    """
    from simla_bench.assemble import model_recipe

    recipe = model_recipe(cfg.model, registry)  # validates model.options (ConfigError names the option)
    recipe.check()  # e.g. the checkpoint reads and has a known layout, before anything is written
    for row in matrix.rows:
        overrides = dict(row.model_overrides.get("options") or {})
        fixed = [k for k in recipe.row_fixed_options if k in overrides]
        if fixed:
            raise ConfigError(f"matrix row '{row.label}' cannot override model.options.{fixed[0]} (the rows of a "
                              f"run share one tokenizer); set it in the experiment's model: section")
        if overrides:
            model_recipe(cfg.with_model(row.model_overrides).model, registry)
    for name in sorted({o for r in matrix.rows for o in r.objectives}):
        cls = registry.load("objective", name)
        options = cfg.objectives[name].options if name in cfg.objectives else {}
        cls(name, options)  # validates options (ConfigError names the objective)
    for name in matrix.tasks:
        cls = registry.load("task", name)
        cls(name, cfg.tasks[name].options)


def _providers(registry, capability: str) -> list[str]:
    """Registered objectives whose ``needs`` include ``capability`` (they train it)."""
    found = []
    for entry in registry.list("objective"):
        try:
            cls = entry.load()
        except UserError:
            continue
        if capability in getattr(cls, "needs", ()):
            found.append(entry.name)
    return found


def check_capabilities(cfg: ExperimentConfig, matrix: Matrix, registry, capabilities: Iterable[str]) -> None:
    """Refuse objectives/tasks whose ``needs`` the configured model lacks."""
    from simla_bench.assemble import model_recipe

    have = frozenset(capabilities)
    recipe = model_recipe(cfg.model, registry)
    for kind, names in (("objective", sorted({o for r in matrix.rows for o in r.objectives})), ("task", matrix.tasks)):
        for name in names:
            needs = frozenset(getattr(registry.load(kind, name), "needs", ()))
            missing = sorted(needs - have)
            if not missing:
                continue
            cap = missing[0]
            providers = [p for p in _providers(registry, cap) if p != name]
            hint = f"the {recipe.describe()} has {', '.join(sorted(have)) or 'none'}"
            if cap in recipe.capability_hints:
                hint += f"; {cap}: {recipe.capability_hints[cap]}"
            if providers:
                hint += f"; objectives that train '{cap}': {', '.join(providers)}"
            raise CapabilityError(f"{kind} '{name}' needs the model capability '{cap}', which is missing", hint=hint)

