"""Where the (row, seed) groups of a matrix run: in this process (the default)
or as submitit jobs, one per row and seed, on Slurm (``slurm``) or as local
subprocesses (``submitit_local``, for testing a cluster set-up on one machine).

Every job runs the ordinary :class:`~simla_bench.runner.matrix.MatrixRunner`
restricted to its row and seed, into the same run directory (records are
atomic, groups are locked), so ``report`` does not care where a cell ran.
The submitting process prepares the data, checks names and capabilities,
applies ``--force`` and waits for the jobs.  Slurm options come from the
config's ``executor.slurm`` mapping, passed to ``submitit.AutoExecutor``
(its parameter names: ``timeout_min``, ``gpus_per_node``, ``cpus_per_task``,
``mem_gb``, ``slurm_partition``, ``slurm_account``, ...).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping, Sequence


def run_group_job(cfg_data: Mapping[str, Any], run_dir: str, objectives: Sequence[str], fraction: float, seed: int,
                  pipeline: Any = None, setup: Callable[[], None] | None = None,
                  model_json: str = "", objective_json: str = "", shuffle_pairs: bool = False,
                  control: str = "") -> dict[str, Any]:
    """The job body: run one (row, seed) of the matrix into ``run_dir``."""
    from simla_bench.config import parse_config
    from simla_bench.registry import get_registry
    from simla_bench.runner.cells import Row
    from simla_bench.runner.matrix import MatrixRunner
    from simla_bench.runner.pipeline import get_pipeline
    from simla_bench.runner.progress import PlainProgress

    if setup is not None:
        setup()
    cfg = parse_config(dict(cfg_data), "submitted config")
    row = Row((",".join(objectives),), tuple(objectives), float(fraction), model_json, objective_json, shuffle_pairs,
              control)
    runner = MatrixRunner(cfg, get_registry(), pipeline or get_pipeline(), run_dir, progress=PlainProgress(),
                          rows=[row], seeds=[seed], notify_run=False)
    result = runner.run()
    return {"failures": result.failures, "computed": result.computed, "keys": [r["key"] for r in result.records]}


class SubmititExecutor:
    """Fan the groups out as submitit jobs and wait for them."""

    def __init__(self, kind: str, options: Mapping[str, Any] | None = None, pipeline: Any = None,
                 setup: Callable[[], None] | None = None):
        if kind not in ("slurm", "submitit_local"):
            raise ValueError(f"unknown submitit executor kind {kind!r}")
        self.kind = kind
        self.options = dict(options or {})
        self.pipeline = pipeline  # pickled into each job (tests pass fakes); None = the job's default
        self.setup = setup

    def _executor(self, folder: Path):
        import submitit

        if self.kind == "submitit_local":
            ex = submitit.LocalExecutor(folder=str(folder))
            ex.update_parameters(**{k: v for k, v in self.options.items() if k in ("timeout_min",)})
        else:
            ex = submitit.AutoExecutor(folder=str(folder), cluster="slurm")
            if self.options:
                ex.update_parameters(**self.options)
        return ex

    def run_groups(self, cfg_data: Mapping[str, Any], run_dir: Path, groups: list[tuple[Any, int]], progress) -> list[str]:
        folder = Path(run_dir) / "submitit"
        ex = self._executor(folder)
        jobs = [ex.submit(run_group_job, dict(cfg_data), str(run_dir), list(row.objectives), row.data_fraction, seed,
                          self.pipeline, self.setup, row.model_json, row.objective_json, row.shuffle_pairs,
                          row.control) for row, seed in groups]
        progress.info(f"submitted {len(jobs)} {self.kind} job(s): {', '.join(str(j.job_id) for j in jobs)}; "
                      f"logs under {folder}")
        failures: list[str] = []
        for (row, seed), job in zip(groups, jobs):
            try:
                out = job.result()
            except Exception as exc:  # noqa: BLE001 - one job's failure does not stop the others
                first = str(exc).strip().splitlines()
                failures.append(f"job {job.job_id} (row '{row.label}' seed {seed}) failed: "
                                f"{first[-1] if first else type(exc).__name__}; see {folder}")
                continue
            failures.extend(out["failures"])
        return failures


def make_executor(kind: str, options: Mapping[str, Any] | None = None) -> SubmititExecutor | None:
    """``local`` -> None (run in this process); otherwise a submitit executor."""
    return None if kind == "local" else SubmititExecutor(kind, options)
