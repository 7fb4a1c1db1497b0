"""What a run's columns can detect: the measured noise of each task column and
the seeds a difference of a given size needs (docs/results.md, "Reading a
leaderboard").

Reads finished run directories (a run with several seeds and a ``none``
control row: ``simla-bench run --controls --seeds 0,1,2``, or a matrix with a
``control: none`` row) and, per task column (its primary metric), prints:

* ``s_seed``: the pooled std across seeds over the rows with >= 2 seeds
  (pretraining and fine-tuning randomness), and how many rows it pools;
* ``se_boot``: the bootstrap standard error of the best row minus ``none``
  on the per-example scores averaged over the run's seeds (test-set noise);
* the minimum detectable effect (80% power, two-sided 5%) projected to 1, 3,
  5 and 10 seeds with ``se_boot`` held at its measured value, and the fewest
  seeds at which a difference of 2, 5 and 10 points becomes detectable
  (``-``: the test split's own noise is above that difference, more seeds do
  not help; a larger split does).

    .venv/bin/python benchmarks/detectable_effects.py RUN_DIR [RUN_DIR ...] [--name small]

Writes ``benchmarks/results/detectable_effects_<name>.json``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

SEEDS = (1, 3, 5, 10)
EFFECTS = (2.0, 5.0, 10.0)


def column_rows(board) -> list[dict]:
    """One dict per column with a ``none`` comparison: measured noise and projections."""
    from simla_bench.report.sensitivity import mde, seeds_for

    out = []
    for task, col in board.sensitivity.columns.items():
        if col.none is None or col.se_boot is None:
            continue
        out.append({
            "task": task, "metric": col.metric, "best_row": col.best_row, "best": col.best,
            "none": col.none.mean, "diff": col.none.diff, "p_value": col.none.p_value,
            "seeds_in_run": col.n_seeds, "seed_std": col.seed_std, "seed_std_rows": col.seed_std_rows,
            "se_boot": col.se_boot, "mde_in_run": col.mde,
            "mde_at": {str(n): mde(col.seed_std, n, col.se_boot) for n in SEEDS},
            "seeds_for": {f"{e:g}": seeds_for(e, col.seed_std, col.se_boot) for e in EFFECTS},
        })
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="+", type=Path)
    parser.add_argument("--name", default="run", help="label of the preset/budget, used in the JSON file name")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    from simla_bench.report import leaderboard
    from simla_bench.report.records import load_run_dirs

    loaded = load_run_dirs(args.run_dirs)
    board = leaderboard.build(loaded.records, n_boot=2000)
    if not board.sensitivity.has_controls:
        print("no none control row in these runs: run with --controls (and --seeds 0,1,2 for the seed noise)",
              file=sys.stderr)
        return 2
    rows = column_rows(board)
    C.print_table(
        f"what the columns can detect ({args.name})",
        ["task", "best - none", "p", "s_seed (rows)", "se_boot", *[f"MDE@{n}" for n in SEEDS],
         *[f"seeds for {e:g}" for e in EFFECTS]],
        [[r["task"], r["diff"], r["p_value"], f"{C.fmt(r['seed_std'])} ({r['seed_std_rows']})", r["se_boot"],
          *r["mde_at"].values(), *r["seeds_for"].values()] for r in rows],
        caption="MDE projected with se_boot held at its measured value; '-' in 'seeds for': the test split's "
                "noise alone is above that effect")
    path = C.write_result(f"detectable_effects_{args.name}", {"run_dirs": [str(p) for p in args.run_dirs],
                                                              "columns": rows}, out=args.out)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
