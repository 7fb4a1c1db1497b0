"""Wall time and peak memory of ``simla-bench run`` (default) and ``run --ablate``.

Each run is a child process started in a fresh working directory, so the
default config's relative ``data/world`` and ``runs/`` start empty and world
generation is part of the first run.  Per child: wall seconds and peak RSS
(``os.wait4`` rusage of that child alone).  The breakdown comes from the
runner's own timings in the cell records (``pretrain.seconds`` per row,
``timings.task_seconds`` per task); world generation is timed by a separate
child that only prepares the same world; the rest (start-up, tokenizer,
model build, restores, report) is the remainder.  Then the same command is
run again (everything cached).

Targets (2 cores): default run <= 5 min and <= 4 GiB; cached rerun < 10 s.
``--ablate`` rows each pretrain and run every task: it takes much longer;
``--skip-ablate`` leaves it out and reports an estimate from the default
row's costs times the number of rows instead (marked as such).

    .venv/bin/python benchmarks/end_to_end.py --skip-ablate
    .venv/bin/python benchmarks/end_to_end.py --quick
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

TARGETS = {"default_wall_s": 300.0, "default_peak_rss_gib": 4.0, "cached_rerun_wall_s": 10.0}

QUICK_CONFIG = """\
base: {base}
name: quick
output_dir: runs/quick
pretrain: {{steps: 2, batch_size: 8, checkpoint_every: 1}}
datasets:
  world: {{source: world, options: {{preset: tiny, root: data/world, seed: 0}}}}
tasks:
  retrieval: {{dataset: world, options: {{max_steps: 1, k: 10, eval_splits: [test]}}}}
"""


def simla_bench_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("simla-bench")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "simla_bench"]


def run_child(cmd: list[str], cwd: Path, log: Path) -> dict:
    """Run ``cmd`` in ``cwd``; wall seconds, exit code and this child's peak RSS."""
    t0 = time.perf_counter()
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT, env={**os.environ, "COLUMNS": "160"})
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {"cmd": " ".join(cmd), "wall_s": wall, "peak_rss_gib": usage.ru_maxrss / 2**20,
            "user_s": usage.ru_utime, "sys_s": usage.ru_stime, "exit_code": proc.returncode, "log": str(log)}


def world_child(cwd: Path, config: Path | None, log: Path) -> dict:
    """Time the world preparation alone (same options as the run's config)."""
    code = (
        "import sys; sys.path.insert(0, %r); import _common as C\n"
        "from simla_bench.config import load_config\n"
        "cfg = load_config(%r)\n"
        "C.prepare_world(cfg)\n" % (str(Path(__file__).resolve().parent), str(config) if config else None)
    )
    return run_child([sys.executable, "-c", code], cwd, log)


def breakdown(run_dir: Path) -> dict:
    """Pretraining seconds per row and task seconds per cell from the cell records."""
    rows: dict[str, float] = {}
    tasks: dict[str, float] = {}
    n = 0
    from simla_bench.runner.store import RunStore

    for path, read in RunStore(run_dir).iter_records():
        if read.record is None:
            raise SystemExit(f"corrupt cell record {path}: {read.problem}")
        rec, t = read.record, read.record.timings
        n += 1
        if not t.pretrain_reused:
            rows[rec.row] = max(rows.get(rec.row, 0.0), t.pretrain_seconds or 0.0)
        tasks[f"{rec.task} ({rec.row})"] = t.task_seconds
    return {"cells": n, "pretrain_s": rows, "task_s": tasks}


def measure(label: str, args_run: list[str], cwd: Path, config: Path | None, out_dir: str, logs: Path,
            world_s: float | None) -> dict:
    cmd = simla_bench_cmd() + ["run", "-q", *(["--config", str(config)] if config else []), *args_run]
    print(f"{label}: {' '.join(cmd)} (in {cwd}) ...", file=sys.stderr)
    first = run_child(cmd, cwd, logs / f"{label}-first.log")
    parts = breakdown(cwd / out_dir)
    print(f"{label}: cached rerun ...", file=sys.stderr)
    again = run_child(cmd, cwd, logs / f"{label}-rerun.log")
    accounted = (world_s or 0.0) + sum(parts["pretrain_s"].values()) + sum(parts["task_s"].values())
    return {"first": first, "rerun": again, "breakdown": parts, "world_generation_s": world_s,
            "other_s": first["wall_s"] - accounted}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    C.add_common_args(p)
    p.add_argument("--skip-ablate", action="store_true", help="do not run `run --ablate` (estimate it instead)")
    p.add_argument("--workdir", type=Path, default=None, help="fresh working directory (default: a temp dir)")
    args = p.parse_args(argv)
    quick = args.quick
    work = args.workdir or Path(tempfile.mkdtemp(prefix="simla-bench-e2e-"))
    work.mkdir(parents=True, exist_ok=True)
    logs = work / "logs"
    logs.mkdir(exist_ok=True)
    machine = C.machine("cpu")
    config = None
    if quick:
        config = work / "quick.yaml"
        config.write_text(QUICK_CONFIG.format(base=str(C.REPO / "configs" / "default.yaml")))
    from simla_bench.config import load_config

    cfg = load_config(config)
    out_dir = cfg.output_dir

    # world generation alone, in a sibling directory (same options, same machine)
    wdir = work / "world-only"
    wdir.mkdir(exist_ok=True)
    print("world generation alone ...", file=sys.stderr)
    world = world_child(wdir, config, logs / "world.log")
    default_dir = work / "default"
    default_dir.mkdir(exist_ok=True)
    default = measure("default", ["--tasks", "retrieval"] if quick else [], default_dir, config, out_dir, logs, world["wall_s"])

    ablate = None
    from simla_bench.config import CONFIG_DIR, load_yaml

    n_rows = len(load_yaml(CONFIG_DIR / "ablation.yaml")["matrix"])
    if not args.skip_ablate and not quick:
        ablate = measure("ablate", ["--ablate"], default_dir, config, "runs/ablation", logs, None)
        ablate["estimated"] = False
    else:
        # estimate: every row pretrains like the default row and runs the same tasks
        per_row = sum(default["breakdown"]["pretrain_s"].values()) + sum(default["breakdown"]["task_s"].values())
        distinct = n_rows - 1  # ALBEF's row is the same objective set as row 3 and runs once
        ablate = {"estimated": True, "rows": n_rows, "distinct_rows": distinct,
                  "estimate_wall_s": distinct * per_row + default["other_s"],
                  "note": "not run (--skip-ablate / --quick): distinct rows x the default row's pretraining + tasks"}

    d = default
    targets = {
        "default_wall_s": C.verdict(d["first"]["wall_s"], TARGETS["default_wall_s"], False),
        "default_peak_rss_gib": C.verdict(d["first"]["peak_rss_gib"], TARGETS["default_peak_rss_gib"], False),
        "cached_rerun_wall_s": C.verdict(d["rerun"]["wall_s"], TARGETS["cached_rerun_wall_s"], False),
    }
    rows = [["default run (fresh: world, pretraining, tasks, report)", d["first"]["wall_s"], d["first"]["peak_rss_gib"],
             d["first"]["exit_code"]],
            ["  world generation (separate child)", world["wall_s"], world["peak_rss_gib"], world["exit_code"]]]
    rows += [[f"  pretraining ({r})", s, None, None] for r, s in d["breakdown"]["pretrain_s"].items()]
    rows += [[f"  task {t}", s, None, None] for t, s in d["breakdown"]["task_s"].items()]
    rows += [["  start-up, tokenizer, model build, report (rest)", d["other_s"], None, None],
             ["default run, cached rerun", d["rerun"]["wall_s"], d["rerun"]["peak_rss_gib"], d["rerun"]["exit_code"]]]
    if ablate.get("estimated"):
        rows.append([f"run --ablate ({n_rows} rows), ESTIMATED, not run", ablate["estimate_wall_s"], None, None])
    else:
        rows += [["run --ablate (world cached)", ablate["first"]["wall_s"], ablate["first"]["peak_rss_gib"],
                  ablate["first"]["exit_code"]],
                 ["run --ablate, cached rerun", ablate["rerun"]["wall_s"], ablate["rerun"]["peak_rss_gib"],
                  ablate["rerun"]["exit_code"]]]
    C.print_table(f"simla-bench run end to end ({machine['cores']} cores, {machine['torch_threads']} torch threads)",
                  ["what", "wall s", "peak RSS GiB", "exit"], rows,
                  caption="targets: default <= 300 s: {} | <= 4 GiB: {} | cached rerun < 10 s: {}".format(
                      *["met" if targets[k]["met"] else "NOT met" for k in
                        ("default_wall_s", "default_peak_rss_gib", "cached_rerun_wall_s")]))
    payload = {"machine": machine, "quick": quick, "workdir": str(work), "world": world, "default": default,
               "ablate": ablate, "targets": targets}
    path = C.write_result("end_to_end", payload, args.out)
    print(f"wrote {path}", file=sys.stderr)
    if d["first"]["exit_code"] != 0:
        print(f"the default run failed (exit {d['first']['exit_code']}); see {d['first']['log']}", file=sys.stderr)
    return payload


if __name__ == "__main__":
    main()
