"""Expanding an experiment into the matrix, and checking it before any work.

A *row* is one objective set (with weights and options) at one pretraining
data fraction, with the row's own ``model:`` overrides if it has any (and
``shuffle_pairs``: its pairs shuffled); a *cell* is (row, seed, task).  A row
without objectives (the ``none`` control) pretrains nothing: it is made once,
at data fraction 1 whatever the sweep, since no pretraining data reaches it.  A row's objectives are resolved here: the weight and
options a matrix row gives an objective, over the experiment's ``objectives:``
entry for it (:func:`row_objectives`).  Rows whose resolved objectives (names,
weights and options; order does not matter), data fraction and model
overrides are equal are one row: they would compute the same numbers, so they
are merged and labelled with all their names.  Distinct rows get distinct
labels: a ``name`` is the row's label (two rows may not share one, see
``config.py``); an automatic label (the objective names) that two distinct
rows would share gets the settings that tell them apart appended, e.g.
``itc,itm [layout=split]`` or ``itc,wpa [wpa.mode=ot]``.

The checks here turn bad input into one-line :class:`UserError`s before any
data is generated: unknown objective/task names (with did-you-mean), bad
options, an empty objective set, and (once a model exists)
capabilities that an objective needs but the configured model lacks.  A task
whose needs a row's model lacks is no error: its cells on that row are ``n/a``
(:func:`check_capabilities` says which, and why).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from simla_bench.config import ExperimentConfig, MatrixRow, deep_merge
from simla_bench.errors import ConfigError, UserError


class CapabilityError(UserError):
    """An objective or task needs a model part the configured model lacks."""


@dataclass(frozen=True)
class Row:
    """One objective set (with its weights and options) at one data fraction."""

    labels: tuple[str, ...]
    objectives: tuple[str, ...]  # in the order first given (display); keys sort them
    data_fraction: float = 1.0
    model_json: str = ""  # the row's model overrides as canonical JSON ("" = none)
    #: the resolved objectives ``{name: {weight, options}}`` as canonical JSON ("" = the
    #: experiment's ``objectives:`` entries, for rows made by hand)
    objective_json: str = ""
    #: pretraining captions deranged among the images (``MatrixRow.shuffle_pairs``)
    shuffle_pairs: bool = False
    #: ``none`` / ``shuffled`` for a control row ("" otherwise): for the records and the report
    control: str = ""

    @property
    def model_overrides(self) -> dict[str, Any]:
        return json.loads(self.model_json) if self.model_json else {}

    @property
    def label(self) -> str:
        return " = ".join(self.labels)

    @property
    def objective_set(self) -> frozenset[str]:
        return frozenset(self.objectives)

    @property
    def identity(self) -> tuple[str, float, str, bool]:
        """What makes two rows the same computation (not their labels, nor ``control``)."""
        return (self.objective_json or ",".join(sorted(self.objectives)), self.data_fraction, self.model_json,
                self.shuffle_pairs)


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
    """Rows x data fractions; rows that resolve to the same computation merged;
    distinct rows labelled distinctly."""
    fractions = list(cfg.data_fractions) or [cfg.pretrain.data_fraction]
    for f in fractions:
        if not 0.0 < f <= 1.0:
            raise ConfigError(f"data fraction {f} is outside (0, 1]", hint="use e.g. --data-fraction 0.1,0.25,1.0")
    if not cfg.seeds:
        raise ConfigError("no seeds to run", hint="give --seeds 0 or seeds: [0] in the config")
    if not cfg.active_tasks():
        raise ConfigError("no tasks to run", hint="give --tasks or a tasks: section in the config"
                          + (" (every configured task has enabled: false; --tasks all runs them)" if cfg.tasks else ""))
    evaluate_only = cfg.pretrain.steps == 0  # the model is evaluated as built / loaded
    if not cfg.matrix and not cfg.objectives and not evaluate_only:
        raise ConfigError("no pretraining objectives configured", hint="give --objectives itc,itm or an objectives: list")
    # one entry per distinct matrix row: (its labels, named?, objectives, resolved JSON, model JSON, settings)
    distinct: dict[tuple[str, str], dict[str, Any]] = {}
    notes: list[str] = cfg.left_out_tasks()
    for mrow in cfg.rows():
        objectives = tuple(mrow.objectives)
        if not objectives and not evaluate_only and mrow.control != "none" and not mrow.model:
            raise ConfigError(f"matrix row '{mrow.label}' has no objectives",
                              hint="list at least one objective, e.g. [itc] (a row that pretrains nothing on "
                                   "purpose is the none control: control: none, or a row with its own model: "
                                   "evaluated as loaded)")
        resolved = row_objectives(cfg, mrow)
        key = (_canonical(resolved), model_key(mrow.model), mrow.shuffle_pairs)
        if key in distinct:
            old = distinct[key]
            notes.append(f"row '{mrow.label}' is the same objectives and model as '{' = '.join(old['labels'])}'; "
                         "it is run once")
            old["labels"].append(mrow.label)
            old["named"] = old["named"] or mrow.name is not None
            old["control"] = old["control"] or mrow.control or ""
        else:
            distinct[key] = {"labels": [mrow.label], "named": mrow.name is not None, "objectives": objectives,
                             "objective_json": key[0], "model_json": key[1], "shuffle_pairs": mrow.shuffle_pairs,
                             "control": mrow.control or "", "settings": _row_settings(cfg, mrow, resolved)}
    entries = list(distinct.values())
    _distinct_labels(entries)
    rows = [Row(tuple(label + _fraction_suffix(f, fracs) for label in e["labels"]), e["objectives"], float(f),
                e["model_json"], e["objective_json"], e["shuffle_pairs"], e["control"])
            for e in entries for fracs in [fractions if e["objectives"] else [1.0]] for f in fracs]
    return Matrix(rows, list(dict.fromkeys(cfg.seeds)), cfg.active_tasks(), notes)


def _canonical(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)


def model_key(overrides: Mapping[str, Any]) -> str:
    """Canonical JSON of a row's model overrides ("" when there are none)."""
    return _canonical(dict(overrides)) if overrides else ""


def row_objectives(cfg: ExperimentConfig, mrow: MatrixRow) -> dict[str, dict[str, Any]]:
    """Weight and options of each objective of a matrix row: the row's own
    weight when it gives one, else the experiment's ``objectives:`` entry's
    (else 1); the experiment's options with the row's merged over them key by key."""
    out = {}
    for name in sorted(mrow.objectives):
        own, base = mrow.objectives[name], cfg.objectives.get(name)
        weight = own.weight if own.weight is not None else (base.weight if base else 1.0)
        out[name] = {"weight": float(weight), "options": deep_merge(base.options if base else {}, own.options)}
    return out


def resolve_objectives(cfg: ExperimentConfig, row: Row) -> dict[str, dict[str, Any]]:
    """Weight and options of each objective of a row (as :func:`expand` resolved
    them; for a row made by hand, the config entry or the defaults)."""
    if row.objective_json:
        return json.loads(row.objective_json)
    out = {}
    for name in sorted(row.objectives):
        oc = cfg.objectives.get(name)
        out[name] = {"weight": oc.weight if oc else 1.0, "options": dict(oc.options) if oc else {}}
    return out


def _flat(prefix: str, value: Any) -> dict[str, str]:
    if isinstance(value, Mapping) and (value or not prefix):
        out: dict[str, str] = {}
        for k in sorted(value):
            out.update(_flat(f"{prefix}.{k}" if prefix else str(k), value[k]))
        return out
    return {prefix: json.dumps(value, default=str) if not isinstance(value, str) else value}


def _row_settings(cfg: ExperimentConfig, mrow: MatrixRow, resolved: Mapping[str, Any]) -> dict[str, str]:
    """What a row sets beyond its objective names, flattened (``layout=split``,
    ``wpa.mode=ot``, ``itm.weight=0.5``): the label suffix that tells rows apart."""
    settings = _flat("", dict(mrow.model.get("options") or {}))
    if mrow.shuffle_pairs:
        settings["shuffle_pairs"] = "true"
    for name in sorted(mrow.objectives):
        own = mrow.objectives[name]
        if own.weight is not None:
            settings[f"{name}.weight"] = f"{resolved[name]['weight']:g}"
        settings.update(_flat(name, own.options) if own.options else {})
    return settings


def _distinct_labels(entries: list[dict[str, Any]]) -> None:
    """Give distinct rows distinct labels: an automatic label two rows share
    gets the settings that differ between them appended (in place)."""
    for _ in range(2):  # a suffixed label may now meet another row's label once more
        by_label: dict[str, list[dict[str, Any]]] = {}
        for e in entries:
            by_label.setdefault(" = ".join(e["labels"]), []).append(e)
        clashes = [group for group in by_label.values() if len(group) > 1]
        if not clashes:
            return
        for group in clashes:
            keys = sorted({k for e in group for k in e["settings"]})
            differing = [k for k in keys if len({e["settings"].get(k) for e in group}) > 1]
            for e in group:
                if e["named"] and len(e["labels"]) == 1:
                    continue  # a user's name stays as written; the automatic labels move
                parts = [f"{k}={e['settings'][k]}" for k in differing if k in e["settings"]]
                if parts:
                    e["labels"] = [f"{label} [{', '.join(parts)}]" for label in e["labels"]]
    by_label = {}
    for i, e in enumerate(entries):  # still equal: a name that is another row's label, or equal settings
        label = " = ".join(e["labels"])
        if label in by_label:
            if e["named"] or by_label[label]["named"]:
                raise ConfigError(f"matrix row name '{label}' is also the label of another row of the matrix",
                                  hint="give that row another name (or name the other row too)")
            e["labels"] = [f"{lab} #{i + 1}" for lab in e["labels"]]
        by_label[label] = e


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
        family = row.model_overrides.get("name", cfg.model.name)
        fixed = [k for k in recipe.row_fixed_options if k in overrides] if family == cfg.model.name else []
        if fixed:
            raise ConfigError(f"matrix row '{row.label}' cannot override model.options.{fixed[0]} (the rows of a "
                              f"run share one tokenizer); set it in the experiment's model: section")
        if row.model_overrides:
            row_recipe = model_recipe(cfg.with_model(row.model_overrides).model, registry)
            if family != cfg.model.name:  # another model family (its own tokenizer): checked as the experiment's
                row_recipe.check()
    for row in matrix.rows:
        for name, resolved in resolve_objectives(cfg, row).items():
            cls = registry.load("objective", name)
            try:
                cls(name, resolved["options"])  # validates options (ConfigError names the objective)
            except ConfigError as exc:
                if len(matrix.rows) == 1:
                    raise
                raise ConfigError(f"matrix row '{row.label}': {exc.message}", hint=exc.hint) from None
    for name in matrix.tasks:
        cls = registry.load("task", name)
        cls(name, cfg.tasks[name].options)
        check_data_kind(cfg, registry, name, cls)


def check_data_kind(cfg: ExperimentConfig, registry, task: str, cls) -> None:
    """The task's dataset provides the task's ``data_kind`` (a task that declares
    none reads no records through ``load`` and is not checked)."""
    kind = getattr(cls, "data_kind", "")
    if not kind:
        return
    dataset = cfg.tasks[task].dataset
    source = cfg.datasets[dataset].source
    provides = tuple(registry.load("dataset", source).provides)
    if kind not in provides:
        raise ConfigError(f"task '{task}' reads data kind '{kind}', which dataset '{dataset}' (source '{source}') "
                          f"does not provide (it provides: {', '.join(provides) or 'nothing'})",
                          hint=f"point tasks.{task}.dataset at a dataset that provides '{kind}'")


def merge_equivalent(cfg: ExperimentConfig, matrix: Matrix, registry) -> None:
    """Merge rows that differ only in spelling out defaults (``{itm: {options:
    {negatives: hard}}}`` next to plain ``itm``, ``model: {options: {layout:
    single_stream}}`` next to none): resolved with each component's defaults they
    compute the same, so they are one row (in place; after :func:`check_names`)."""
    from simla_bench.assemble import model_recipe

    def full_identity(row: Row) -> tuple[str, float, str, bool]:
        objectives = {name: {"weight": spec["weight"],
                             "options": registry.load("objective", name)(name, spec["options"]).options}
                      for name, spec in resolve_objectives(cfg, row).items()}
        model = model_recipe(cfg.with_model(row.model_overrides).model, registry)
        return (_canonical(objectives), row.data_fraction, _canonical({"name": model.name, "options": model.options}),
                row.shuffle_pairs)

    merged: dict[tuple[str, float, str, bool], Row] = {}
    for row in matrix.rows:
        key = full_identity(row)
        if key in merged:
            first = merged[key]
            matrix.notes.append(f"row '{row.label}' only spells out defaults of '{first.label}'; it is run once")
            merged[key] = dataclasses.replace(first, labels=first.labels + row.labels,
                                              control=first.control or row.control)
        else:
            merged[key] = row
    matrix.rows = list(merged.values())


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


def check_capabilities(cfg: ExperimentConfig, matrix: Matrix, registry,
                       capabilities: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Refuse objectives whose ``needs`` the configured model lacks; return the tasks it
    cannot serve, ``{task: {"model", "missing", "hint"}}``: their cells on these rows are
    ``n/a`` (the gaps and the hint text come from :mod:`simla_bench.training.needs`, as
    the trainer's own check; a task's needs are its instance's, with the config's options)."""
    from simla_bench.assemble import model_recipe
    from simla_bench.training.needs import how_to_get, missing_needs

    have = frozenset(capabilities)
    recipe = model_recipe(cfg.model, registry)
    objectives = sorted({o for r in matrix.rows for o in r.objectives})
    for name, missing in missing_needs({name: registry.load("objective", name) for name in objectives}, have).items():
        cap = missing[0]
        providers = [p for p in _providers(registry, cap) if p != name]
        hint = f"the {recipe.describe()} has {', '.join(sorted(have)) or 'none'}"
        if cap in recipe.capability_hints:
            hint += f"; {how_to_get([cap], recipe.capability_hints)}"
        if providers:
            hint += f"; objectives that train '{cap}': {', '.join(providers)}"
        raise CapabilityError(f"objective '{name}' needs the model capability '{cap}', which is missing", hint=hint)
    tasks = {name: registry.load("task", name)(name, cfg.tasks[name].options) for name in matrix.tasks}
    return {name: {"model": recipe.name, "missing": missing,
                   "hint": how_to_get(missing, recipe.capability_hints)}
            for name, missing in missing_needs(tasks, have).items()}

