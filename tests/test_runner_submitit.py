"""Matrix cells through submitit's local executor (one job per row and seed)
write the same records as the local runner, into the same kind of run dir."""

from __future__ import annotations

import os
from pathlib import Path

from simla_bench.runner.executors import SubmititExecutor
from simla_bench.runner.matrix import MatrixRunner
from helpers.runner_fakes import FakePipeline, install_fake_registry, make_config, make_registry

TESTS_DIR = str(Path(__file__).parent)


def comparable(records):
    return sorted((r["key"], r["row"], r["seed"], r["task"], tuple(sorted(r["metrics"].items())),
                   tuple(r["per_example"]["test/acc"])) for r in records)


def test_two_rows_through_submitit_local_match_the_local_runner(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([TESTS_DIR, os.environ.get("PYTHONPATH", "")]))
    over = {"matrix": [{"objectives": ["itc"]}, {"objectives": ["itc", "itm"]}]}
    local = MatrixRunner(make_config(tmp_path, **over), make_registry(), FakePipeline(), tmp_path / "local").run()
    cfg = make_config(tmp_path, output_dir=str(tmp_path / "sub"), **over)
    executor = SubmititExecutor("submitit_local", {"timeout_min": 5}, pipeline=FakePipeline(),
                                setup=install_fake_registry)
    sub = MatrixRunner(cfg, make_registry(), FakePipeline(), cfg.output_dir, executor=executor).run()
    assert not local.failures and not sub.failures
    assert sub.computed == 4 and len(sub.records) == 4
    assert comparable(sub.records) == comparable(local.records)
    assert len(list((tmp_path / "sub" / "submitit").glob("*_result.pkl"))) == 2  # one job per row and seed
    again = MatrixRunner(cfg, make_registry(), FakePipeline(), cfg.output_dir, executor=executor).run()
    assert again.cached == 4 and again.computed == 0  # nothing resubmitted
