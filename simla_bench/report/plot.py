"""``--plot FILE.png``: the leaderboard as a figure (matplotlib, Agg backend).

Top panel: grouped bars, one group per task (its primary metric), one bar per
row, error bars = std over seeds.  When the run swept the pretraining data
fraction, one more panel per task draws the data-efficiency curve: primary
metric against data fraction, one line per objective set.

An n/a cell (the row's model lacks what the task needs) has no bar: ``n/a``
is written where it would stand.

Sensitivity: the bars of a column whose best row does not beat the ``none``
control beyond noise are hatched and its name gets ``†``; the footnote lines
(or the "no controls" line) are printed under the figure.
"""

from __future__ import annotations

from pathlib import Path

from simla_bench.report.leaderboard import Leaderboard
from simla_bench.report.sensitivity import MARK


def _label_na(ax, board: Leaderboard, row, cols, bars) -> None:
    """Write ``n/a`` where a bar is missing because the row's model cannot run the task."""
    for col, bar in zip(cols, bars):
        if board.na(row, col) is not None:
            ax.text(bar.get_x() + bar.get_width() / 2, 0, "n/a", rotation=90, ha="center", va="bottom",
                    fontsize="x-small", color="dimgray")


def _sweep(board: Leaderboard) -> bool:
    return len({r.data_fraction for r in board.rows}) > 1


def plot(board: Leaderboard, path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    import numpy as np

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cols = [c for c in board.columns if c.primary]
    sweep = _sweep(board)
    ncurve = len(cols) if sweep else 0
    notes = board.sensitivity.lines() if board.sensitivity is not None else []
    fig = plt.figure(figsize=(max(6.0, 1.2 * len(cols) * max(1, len(board.rows)) ** 0.5 + 3),
                              4.5 + (3.5 if sweep else 0) + 0.25 * len(notes)))
    grid = fig.add_gridspec(2 if sweep else 1, max(1, ncurve))
    ax = fig.add_subplot(grid[0, :])
    width = 0.8 / max(1, len(board.rows))
    x = np.arange(len(cols))
    for i, row in enumerate(board.rows):
        stats = [board.stat(row, c) for c in cols]
        means = [s.mean if s else np.nan for s in stats]
        stds = [s.std if s else 0.0 for s in stats]
        bars = ax.bar(x + (i - (len(board.rows) - 1) / 2) * width, means, width, yerr=stds, capsize=2, label=row.label)
        _hatch_marked(board, cols, bars)
        _label_na(ax, board, row, cols, bars)
    ax.set_xticks(x, [c.title + (f" {MARK}" if _marked(board, c) else "") for c in cols], rotation=10)
    ax.set_ylabel("score (mean over seeds)")
    ax.set_title("simla-bench leaderboard")
    ax.legend(fontsize="small", ncols=2 if len(board.rows) > 4 else 1)
    if sweep:
        groups: dict[tuple[str, ...], list] = {}
        for row in board.rows:
            groups.setdefault(row.objectives, []).append(row)
        for j, col in enumerate(cols):
            cax = fig.add_subplot(grid[1, j])
            for objectives, rows in groups.items():
                pts = sorted((r.data_fraction, board.stat(r, col)) for r in rows if board.stat(r, col) is not None)
                if not pts:
                    continue
                fr = [100 * p[0] for p in pts]
                cax.errorbar(fr, [p[1].mean for p in pts], yerr=[p[1].std for p in pts], marker="o", capsize=2,
                             label=",".join(objectives))
            cax.set_xscale("log")
            cax.set_xlabel("pretraining data (%)")
            cax.set_title(col.title, fontsize="small")
            if j == 0:
                cax.set_ylabel("score")
                cax.legend(fontsize="x-small")
    if notes:
        fig.text(0.01, 0.01, "\n".join(notes), fontsize="x-small", ha="left", va="bottom", wrap=True)
        fig.tight_layout(rect=(0, 0.3 * len(notes) / fig.get_figheight() + 0.02, 1, 1))
    else:
        fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _marked(board: Leaderboard, col) -> bool:
    return board.sensitivity is not None and board.sensitivity.marked(col)


def _hatch_marked(board: Leaderboard, cols, bars) -> None:
    """Hatch a row's bars in the columns that cannot tell rows apart."""
    for bar, col in zip(bars.patches, cols):
        if _marked(board, col):
            bar.set_hatch("//")
