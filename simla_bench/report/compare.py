"""Per-example comparison of two leaderboard rows on one task (``simla-bench
compare``, and the HTML report's tables): which test examples changed, which
way, and whether the wins outnumber the losses beyond chance.

Input: each row's :class:`~simla_bench.interfaces.Example` lists per seed
(read from the cells' saved predictions by ``Task.examples``).  Examples of
the two rows are paired by seed and ``id``; row ``a`` is the reference and
row ``b`` the one compared with it, so a *win* is an example on which ``b``
does better than ``a``.

What "changed" means (``by``):

* ``value``: the example's score under the task's primary metric differs
  (a VQA answer right in one row and wrong in the other, a grounding hit that
  flipped because the IoU crossed 0.5, an NLVR2 statement flipped);
* ``measure``: the finer per-example number differs (a retrieval query's
  ground-truth rank moved);
* ``auto`` (default), per pair: ``measure`` when both examples carry one and it
  is lower-is-better (a rank or an error: every move is a change), else
  ``value`` when both carry one (a thresholded measure such as the IoU changes
  only when the value flips), else ``measure``.  A pair with neither to
  compare is left out.

Better is the metric's direction for ``value`` (``direction`` of the primary
metric) and ``lower_is_better`` for ``measure``.  Changes are listed largest
first: by the size of the change of ``measure`` where both examples have one,
else of ``value`` (so a grounding flip from IoU 0.9 to 0.1 comes before one
from 0.55 to 0.45), ties by seed and id.

The test is an exact sign test on the discordant pairs (McNemar's exact test
for 0/1 outcomes): the two-sided binomial p of ``wins`` out of
``wins + losses`` at 1/2 (:func:`sign_test`, scipy's ``binomtest``).  With
several seeds it is given per seed and pooled: the pooled counts add every
seed's (seed, example) pairs, which treats the seeds' outcomes on one example
as separate trials (they are not independent: read the per-seed lines too).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from simla_bench.errors import UserError
from simla_bench.interfaces import Example
from simla_bench.report.leaderboard import RowInfo, UnknownBaselineError, find_row
from simla_bench.report.leaderboard import _rows as row_infos  # the leaderboard's rows and labels

BY = ("auto", "value", "measure")
_EPS = 1e-9


def sign_test(wins: int, losses: int) -> float | None:
    """Two-sided exact binomial p of ``wins`` among ``wins + losses`` discordant pairs
    at probability 1/2 (None when there is no discordant pair)."""
    n = wins + losses
    if n == 0:
        return None
    from scipy.stats import binomtest

    return float(binomtest(wins, n, 0.5, alternative="two-sided").pvalue)


@dataclass(frozen=True)
class Change:
    """One example on which the two rows differ (one seed)."""

    seed: int
    a: Example
    b: Example
    by: str  # "value" | "measure": what differs
    delta: float  # b - a of ``by`` in the better direction: > 0 means b is better (a win)
    size: float  # the ordering key: |change of measure| where both have one, else |change of value|

    @property
    def id(self) -> str:
        return self.a.id

    @property
    def win(self) -> bool:
        return self.delta > 0

    def to_json(self) -> dict[str, Any]:
        a, b = self.a, self.b
        return {"seed": self.seed, "id": a.id, "outcome": "win" if self.win else "loss", "by": self.by,
                "text": a.text or b.text, "truth": a.truth if a.truth is not None else b.truth,
                "images": list(a.images or b.images), "measure_name": a.measure_name or b.measure_name,
                "a": {"prediction": a.prediction, "value": a.value, "measure": a.measure, "detail": a.detail},
                "b": {"prediction": b.prediction, "value": b.value, "measure": b.measure, "detail": b.detail}}


@dataclass(frozen=True)
class Counts:
    """Wins and losses of ``b`` against ``a`` over paired examples, and the sign test."""

    wins: int
    losses: int
    paired: int  # examples present in both rows (changed or not)

    @property
    def unchanged(self) -> int:
        return self.paired - self.wins - self.losses

    @property
    def p_value(self) -> float | None:
        return sign_test(self.wins, self.losses)

    def to_json(self) -> dict[str, Any]:
        return {"wins": self.wins, "losses": self.losses, "unchanged": self.unchanged, "paired": self.paired,
                "p_value": self.p_value}


@dataclass
class Comparison:
    """Row ``b`` against row ``a`` on one task: the changed examples and the counts."""

    task: str
    row_a: str
    row_b: str
    metric: str
    direction: str
    changes: list[Change]
    per_seed: dict[int, Counts]
    only_a: int = 0  # (seed, id) pairs only row a has
    only_b: int = 0
    seeds_only_a: list[int] = field(default_factory=list)
    seeds_only_b: list[int] = field(default_factory=list)

    @property
    def seeds(self) -> list[int]:
        return sorted(self.per_seed)

    @property
    def pooled(self) -> Counts:
        c = self.per_seed.values()
        return Counts(sum(x.wins for x in c), sum(x.losses for x in c), sum(x.paired for x in c))

    def summary(self) -> str:
        """One line: the pooled counts and the sign test (and the seeds)."""
        p = self.pooled
        seeds = ", ".join(map(str, self.seeds))
        return (f"{self.row_b} vs {self.row_a} on {self.task} ({self.metric}): {p.wins} wins, {p.losses} losses, "
                f"{p.unchanged} unchanged of {p.paired} paired examples; sign test {p_text(p.p_value)} "
                f"(seed{'s' if len(self.seeds) != 1 else ''} {seeds}{', pooled' if len(self.seeds) > 1 else ''})")

    def lines(self) -> list[str]:
        """The lines shown with the table: :meth:`summary`, each seed's counts (several seeds),
        and what was left out (examples or seeds only one row has)."""
        out = [self.summary()]
        if len(self.seeds) > 1:
            out += [f"seed {s}: {c.wins} wins, {c.losses} losses, {c.unchanged} unchanged, sign test {p_text(c.p_value)}"
                    for s, c in sorted(self.per_seed.items())]
        if self.only_a or self.only_b:
            out.append(f"unpaired examples left out: {self.only_a} only in '{self.row_a}', "
                       f"{self.only_b} only in '{self.row_b}'")
        for row, seeds in ((self.row_a, self.seeds_only_a), (self.row_b, self.seeds_only_b)):
            if seeds:
                out.append(f"seeds only '{row}' has, left out: {', '.join(map(str, seeds))}")
        return out

    def to_json(self) -> dict[str, Any]:
        """The documented JSON form (docs/results.md, "Comparing two rows")."""
        return {"task": self.task, "metric": self.metric, "direction": self.direction,
                "a": self.row_a, "b": self.row_b, "seeds": self.seeds,
                "per_seed": {str(s): c.to_json() for s, c in sorted(self.per_seed.items())},
                "pooled": self.pooled.to_json(), "only_a": self.only_a, "only_b": self.only_b,
                "seeds_only_a": self.seeds_only_a, "seeds_only_b": self.seeds_only_b,
                "changes": [c.to_json() for c in self.changes]}


def shown(x: Any) -> str:
    """A prediction or truth as text: strings as they are, a list of strings joined, else compact JSON."""
    if x is None:
        return ""
    if isinstance(x, str):
        return x
    if isinstance(x, (list, tuple)) and all(isinstance(i, str) for i in x):
        return ", ".join(x)
    if isinstance(x, float):
        return f"{x:.4g}"
    try:
        return json.dumps(x, separators=(",", ":"), default=str)
    except (TypeError, ValueError):
        return str(x)


def side_text(ex: Example) -> str:
    """One row's side of a change: its prediction, and its measure (else its value)."""
    pred = shown(ex.prediction)
    if ex.measure is not None:
        return f"{pred} ({ex.measure_name or 'measure'} {ex.measure:.4g})".strip()
    return f"{pred} (score {ex.value:.4g})".strip() if ex.value is not None else pred


def p_text(p: float | None) -> str:
    return "p=– (no discordant pair)" if p is None else f"p={p:.3g}"


def _num(x: float | None) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def change_of(a: Example, b: Example, *, direction: str = "higher", by: str = "auto") -> tuple[str, float] | None:
    """What differs between the paired examples and by how much in the better
    direction (``> 0``: ``b`` is better), or None when they do not differ (or
    cannot be compared)."""
    va, vb, ma, mb = _num(a.value), _num(b.value), _num(a.measure), _num(b.measure)
    has_v, has_m = va is not None and vb is not None, ma is not None and mb is not None
    if by == "auto":
        lower = a.lower_is_better or b.lower_is_better
        by = "measure" if has_m and (lower or not has_v) else "value"
    if by == "value" and has_v:
        d = (vb - va) * (1.0 if direction == "higher" else -1.0)
    elif by == "measure" and has_m:
        d = (mb - ma) * (-1.0 if (a.lower_is_better or b.lower_is_better) else 1.0)
    else:
        return None
    return (by, d) if abs(d) > _EPS else None


def _size(a: Example, b: Example) -> float:
    ma, mb, va, vb = _num(a.measure), _num(b.measure), _num(a.value), _num(b.value)
    if ma is not None and mb is not None:
        return abs(mb - ma)
    return abs(vb - va) if va is not None and vb is not None else 0.0


def compare_examples(a_by_seed: Mapping[int, Sequence[Example]], b_by_seed: Mapping[int, Sequence[Example]], *,
                     task: str = "", row_a: str = "a", row_b: str = "b", metric: str = "", direction: str = "higher",
                     by: str = "auto") -> Comparison:
    """Pair the two rows' examples by seed and id; the changes, largest first, and the counts per seed."""
    if by not in BY:
        raise UserError(f"unknown comparison '{by}'", hint=f"use one of {', '.join(BY)}")
    changes: list[Change] = []
    per_seed: dict[int, Counts] = {}
    only_a = only_b = 0
    for seed in sorted(set(a_by_seed) & set(b_by_seed)):
        a_ex = {e.id: e for e in a_by_seed[seed]}
        b_ex = {e.id: e for e in b_by_seed[seed]}
        only_a += len(a_ex.keys() - b_ex.keys())
        only_b += len(b_ex.keys() - a_ex.keys())
        wins = losses = paired = 0
        for key, a in a_ex.items():
            b = b_ex.get(key)
            if b is None:
                continue
            paired += 1
            found = change_of(a, b, direction=direction, by=by)
            if found is None:
                continue
            what, delta = found
            changes.append(Change(seed, a, b, what, delta, _size(a, b)))
            wins += delta > 0
            losses += delta < 0
        per_seed[seed] = Counts(wins, losses, paired)
    changes.sort(key=lambda c: (-c.size, c.seed, c.id))
    return Comparison(task, row_a, row_b, metric, direction, changes, per_seed, only_a, only_b,
                      sorted(set(a_by_seed) - set(b_by_seed)), sorted(set(b_by_seed) - set(a_by_seed)))


# ------------------------------------------------------------ rows and cells of loaded records
def _find(name: str, rows: Sequence[RowInfo]) -> RowInfo | None:
    try:  # by label, or by objective set (``itm,itc`` finds the row of objectives itc, itm)
        return find_row(list(rows), name.strip())
    except UnknownBaselineError:
        return None


def split_rows(names: Sequence[str], rows: Sequence[RowInfo]) -> list[str]:
    """The row names of ``--rows``: given twice (``--rows A --rows B``) as they are; given once
    as ``A,B``, split at the one comma where both sides name a row (labels such as
    ``itc,itm`` hold commas themselves)."""
    if len(names) != 1 or "," not in names[0]:
        return list(names)
    parts = names[0].split(",")
    splits = [(",".join(parts[:k]), ",".join(parts[k:])) for k in range(1, len(parts))]
    good = [s for s in splits if all(_find(x, rows) is not None for x in s)]
    if len(good) > 1:
        raise UserError(f"--rows '{names[0]}' can be split into two rows in {len(good)} ways",
                        hint="give each row on its own: --rows A --rows B")
    if good:
        return list(good[0])
    if _find(names[0], rows) is not None:
        return [names[0]]  # one row whose label holds commas
    raise UserError(f"--rows '{names[0]}' is not two rows of this run",
                    hint=f"rows: {'; '.join(r.label for r in rows)} (give each with its own --rows when unsure)")


def resolve_row(name: str, rows: Sequence[RowInfo]) -> RowInfo:
    try:
        return find_row(list(rows), name.strip())
    except UnknownBaselineError as exc:
        rows_hint = f"rows: {'; '.join(r.label for r in rows)}"
        hint = rows_hint if exc.hint == rows_hint else f"{exc.hint} {rows_hint}"
        raise UserError(f"--rows: '{name}' names no row of this run", hint=hint) from None


def task_records(records: Sequence[Mapping[str, Any]], row: RowInfo, task: str) -> dict[int, Mapping[str, Any]]:
    """The records of one row and task, by seed; an n/a cell is a one-line error."""
    out = {}
    for r in records:
        if r["row_key"] == row.row_key and r["task"] == task:
            if r.get("not_applicable"):
                missing = ", ".join(r["not_applicable"].get("missing", ())) or "a capability"
                raise UserError(f"row '{row.label}' does not run task '{task}' (n/a: its model lacks {missing})",
                                hint="compare rows that ran the task")
            out[int(r["seed"])] = r
    if not out:
        raise UserError(f"row '{row.label}' has no finished '{task}' cell", hint="run the task for that row first")
    return out


def compare_rows(records: Sequence[Mapping[str, Any]], rows: Sequence[str], task: str,
                 load: Callable[[Mapping[str, Any]], list[Example]], *, by: str = "auto") -> Comparison:
    """``rows`` = [a, b] (names as ``--rows`` takes them) on ``task``; ``load`` reads one
    record's examples (``report.examples.cell_examples`` with the record's run directory)."""
    rows_all = row_infos(list(records))
    labels = [r.label for r in rows_all]
    if len(labels) < 2:
        raise UserError(f"the run has {len(labels)} row{'s' if len(labels) != 1 else ''}; compare needs two",
                        hint="give run directories with at least two rows")
    names = split_rows(rows, rows_all)
    if len(names) != 2:
        raise UserError(f"--rows names {len(names)} row{'s' if len(names) != 1 else ''}; compare needs two",
                        hint=f"e.g. --rows '{labels[0]}' --rows '{labels[1]}'")
    row_a, row_b = (resolve_row(n, rows_all) for n in names)
    if row_a.row_key == row_b.row_key:
        raise UserError(f"--rows names '{row_a.label}' twice", hint="give two different rows")
    tasks = list(dict.fromkeys(r["task"] for r in records))
    if task not in tasks:
        raise UserError(f"task '{task}' has no cells in this run", hint=f"tasks: {', '.join(tasks)}")
    recs_a, recs_b = task_records(records, row_a, task), task_records(records, row_b, task)
    common = sorted(set(recs_a) & set(recs_b))
    if not common:
        raise UserError(f"rows '{row_a.label}' and '{row_b.label}' share no seed on '{task}' "
                        f"(seeds {sorted(recs_a)} and {sorted(recs_b)})", hint="run both rows with the same --seeds")
    first = recs_a[common[0]]
    metric = first["primary_metric"]
    direction = "lower" if first.get("directions", {}).get(metric) == "lower" else "higher"
    a_ex = {s: load(recs_a[s]) for s in common}
    b_ex = {s: load(recs_b[s]) for s in common}
    out = compare_examples(a_ex, b_ex, task=task, row_a=row_a.label, row_b=row_b.label, metric=metric, direction=direction, by=by)
    out.seeds_only_a = sorted(set(recs_a) - set(recs_b))
    out.seeds_only_b = sorted(set(recs_b) - set(recs_a))
    return out


def examples_loader(run_dirs: Iterable[str | Path]) -> Callable[[Mapping[str, Any]], list[Example]]:
    """``load(record)``: the record's examples from the first of ``run_dirs`` holding its cell
    (:func:`simla_bench.report.examples.cell_examples`; records merged from several run
    directories each come from their own)."""
    from simla_bench.runner.store import RunStore

    stores = [RunStore(p) for p in run_dirs]
    dirs = [s.root for s in stores]

    def load(record: Mapping[str, Any]) -> list[Example]:
        from simla_bench.report.examples import cell_examples

        for store in stores:
            if store.record_path(record["key"]).is_file():
                return cell_examples(store.root, record)
        raise UserError(f"no run directory holds the cell {record['task']} [{record['row']}] seed {record['seed']}",
                        hint=f"run directories: {', '.join(map(str, dirs))}")

    return load
