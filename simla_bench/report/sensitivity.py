"""Can a column tell rows apart?  The best row against the control rows, and
the minimum detectable effect (MDE) at the run's seeds.

For each task's primary metric, when the leaderboard has a ``none`` control
row (``run --controls``: the model with no pretraining, through the same task
adaptation):

* the best non-control row against ``none``: a paired bootstrap over test
  examples on the per-example scores averaged over the seeds both rows have
  (:func:`~simla_bench.report.bootstrap.compare_rows`, as the ``--baseline``
  marks); the column *separates* when the difference is in the metric's good
  direction and p < alpha (0.05);
* the MDE, the smallest true difference between two rows that a run with these
  seeds would detect with 80% power in a two-sided 5% test::

      MDE = (z_0.975 + z_0.8) * sqrt(2 * s_seed^2 / n_seeds + se_boot^2)

  ``s_seed``: the pooled sample std across seeds of the column's metric over the
  rows with >= 2 seeds (0, and said so, when every row has one seed: the MDE
  then counts test-set noise only), ``n_seeds``: the seeds of the comparison,
  ``se_boot``: the bootstrap standard error of the best-vs-none difference
  (from the same resamples);
* the same comparison against the ``shuffled`` control when the run has one.

A column whose best row does not separate from ``none`` is *marked*: the
renderers put :data:`MARK` on its header and one footnote line
(:meth:`ColumnSensitivity.note`) under the table.  Without a ``none`` row no
column is marked and the table says :data:`NO_CONTROLS` once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import TYPE_CHECKING, Any, Mapping

from simla_bench.report.bootstrap import compare_rows, per_example_by_seed

if TYPE_CHECKING:
    from simla_bench.report.leaderboard import Column, RowInfo, Stat

#: the mark on the header of a column that cannot tell its best row from no pretraining
MARK = "†"
#: the one line a report without a ``none`` control row shows
NO_CONTROLS = "no controls: run with --controls to know which columns can tell rows apart"
#: two-sided 5% test, 80% power
Z_ALPHA = NormalDist().inv_cdf(0.975)
Z_POWER = NormalDist().inv_cdf(0.8)


def mde(seed_std: float, n_seeds: int, se_boot: float) -> float:
    """The minimum detectable effect (metric units) of a paired row difference."""
    return (Z_ALPHA + Z_POWER) * math.sqrt(2.0 * seed_std ** 2 / max(1, n_seeds) + se_boot ** 2)


def seeds_for(effect: float, seed_std: float, se_boot: float, most: int = 1000) -> int | None:
    """The fewest seeds at which :func:`mde` is at most ``effect`` (the test-set
    term ``se_boot`` held fixed), or ``None`` when no number of seeds up to ``most``
    gets there (the test split itself is too small for that effect)."""
    if effect <= 0:
        return None
    left = (effect / (Z_ALPHA + Z_POWER)) ** 2 - se_boot ** 2
    if left <= 0:
        return None
    if seed_std == 0:
        return 1
    n = max(1, math.ceil(2.0 * seed_std ** 2 / left - 1e-12))
    return n if n <= most else None


def pooled_seed_std(stats: list["Stat"]) -> tuple[float, int]:
    """The pooled sample std across seeds over the stats with >= 2 seeds, and how many such rows there are."""
    several = [s for s in stats if s.n >= 2]
    dof = sum(s.n - 1 for s in several)
    if not dof:
        return 0.0, 0
    return math.sqrt(sum((s.n - 1) * s.std ** 2 for s in several) / dof), len(several)


@dataclass(frozen=True)
class ControlComparison:
    """The best row against one control row of the column."""

    control: str  # "none" / "shuffled"
    row: str  # the control row's label
    mean: float
    diff: float  # best row mean - control mean
    p_value: float | None  # None: no per-example scores to test
    separates: bool

    def to_json(self) -> dict[str, Any]:
        return {"row": self.row, "mean": self.mean, "diff": self.diff, "p_value": self.p_value,
                "separates": self.separates}


@dataclass(frozen=True)
class ColumnSensitivity:
    """One task's primary metric: its best row against the controls, and its MDE."""

    task: str
    metric: str
    direction: str
    best_row: str
    best: float
    none: ControlComparison | None
    shuffled: ControlComparison | None = None
    n_seeds: int = 0
    seed_std: float = 0.0
    seed_std_rows: int = 0  # rows with >= 2 seeds behind seed_std (0: seed noise unknown)
    se_boot: float | None = None
    mde: float | None = None

    @property
    def separates(self) -> bool | None:
        """Whether the best row beats ``none`` beyond noise (None: no ``none`` row in this column)."""
        return None if self.none is None else self.none.separates

    @property
    def marked(self) -> bool:
        return self.none is not None and not self.none.separates

    def note(self) -> str:
        """The footnote line of a marked column: what was compared and why it is noise."""
        if self.none is None:
            return f"{self.task}: no none control in this column"
        none = self.none
        text = f"{MARK} {self.task}: best row '{self.best_row}' {self.best:.2f} vs none {none.mean:.2f} ({none.diff:+.2f}"
        text += f", {p_text(none.p_value)})" if none.p_value is not None else ", no per-example scores to test)"
        if self.mde is not None:
            text += f", MDE {self.mde:.2f} at {_seeds_text(self.n_seeds)}"
            if not self.seed_std_rows:
                text += " (seed noise unknown with 1 seed per row: test-set noise only)"
        worse = none.diff < 0 if self.direction == "higher" else none.diff > 0
        return text + (" — no row beats no pretraining in this column" if worse else
                       " — differences in this column are noise")

    def to_json(self) -> dict[str, Any]:
        return {"metric": self.metric, "best_row": self.best_row, "best": self.best,
                "none": self.none.mean if self.none else None,
                "diff": self.none.diff if self.none else None,
                "p_value": self.none.p_value if self.none else None,
                "mde": self.mde, "n_seeds": self.n_seeds, "seed_std": self.seed_std,
                "seed_std_known": bool(self.seed_std_rows), "se_boot": self.se_boot,
                "separates": self.separates, "marked": self.marked,
                "shuffled": self.shuffled.to_json() if self.shuffled else None,
                "note": self.note() if self.marked else None}


@dataclass
class Sensitivity:
    """The columns' sensitivity, by task (only tasks with a best non-control row)."""

    columns: dict[str, ColumnSensitivity] = field(default_factory=dict)
    has_controls: bool = False  # a ``none`` control row is on the leaderboard

    def marked(self, col: "Column") -> bool:
        s = self.columns.get(col.task)
        return bool(col.primary and s is not None and s.marked)

    def lines(self) -> list[str]:
        """The lines under a table: one per marked column, or :data:`NO_CONTROLS`."""
        if not self.has_controls:
            return [NO_CONTROLS]
        return [s.note() for s in self.columns.values() if s.marked]

    def task_json(self, task: str) -> dict[str, Any]:
        """A task's ``sensitivity`` object in the report JSON."""
        if not self.has_controls:
            return {"separates": None, "marked": False, "note": NO_CONTROLS}
        s = self.columns.get(task)
        return s.to_json() if s else {"separates": None, "marked": False, "note": None}


def p_text(p: float) -> str:
    """``p=0.61``, ``p=0.004``, ``p<0.001``."""
    return "p<0.001" if p < 0.001 else f"p={p:.2f}" if p >= 0.01 else f"p={p:.3f}"


def _seeds_text(n: int) -> str:
    return f"{n} seed{'s' if n != 1 else ''}"


def _best(rows: list["RowInfo"], col: "Column", cells: Mapping) -> "RowInfo | None":
    present = [r for r in rows if not r.control and (r.row_key, col) in cells]
    if not present:
        return None
    return max(present, key=lambda r: col.sign * cells[(r.row_key, col)].mean)  # the first of equals


def assess(rows: list["RowInfo"], columns: list["Column"], cells: Mapping, by: Mapping[tuple[str, str], list[dict]],
           n_boot: int = 2000, boot_seed: int = 0, alpha: float = 0.05) -> Sensitivity:
    """The sensitivity of each (primary) column of a leaderboard: ``rows``/``cells``
    as :func:`~simla_bench.report.leaderboard.build` made them, ``by`` the records
    per ``(row_key, task)``."""
    controls = {kind: next((r for r in rows if r.control == kind), None) for kind in ("none", "shuffled")}
    out = Sensitivity(has_controls=controls["none"] is not None)
    if not out.has_controls:
        return out
    for col in columns:
        best = _best(rows, col, cells)
        if best is None:
            continue
        best_stat = cells[(best.row_key, col)]
        best_ex = per_example_by_seed(by.get((best.row_key, col.task), []), col.metric)
        seed_std, seed_rows = pooled_seed_std([cells[(r.row_key, col)] for r in rows if (r.row_key, col) in cells])
        compared: dict[str, ControlComparison | None] = {}
        n_seeds, se_boot = 0, None
        for kind, row in controls.items():
            stat = cells.get((row.row_key, col)) if row is not None else None
            if stat is None:
                compared[kind] = None
                continue
            diff = best_stat.mean - stat.mean
            res = compare_rows(best_ex, per_example_by_seed(by.get((row.row_key, col.task), []), col.metric),
                               n_boot=n_boot, seed=boot_seed)
            good = col.sign * diff > 0
            p = res.result.p_value if res else None
            compared[kind] = ControlComparison(kind, row.label, stat.mean, diff, p,
                                               bool(good and p is not None and p < alpha))
            if kind == "none":
                n_seeds = len(res.seeds) if res else min(best_stat.n, stat.n)
                se_boot = res.result.se if res else None
        out.columns[col.task] = ColumnSensitivity(
            col.task, col.metric, col.direction, best.label, best_stat.mean, compared["none"], compared["shuffled"],
            n_seeds, seed_std, seed_rows, se_boot, None if se_boot is None else mde(seed_std, n_seeds, se_boot))
    return out
