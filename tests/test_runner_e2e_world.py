"""``simla-bench run`` for real on the tiny generated world: the actual
dataset source, tokenizer, VLP model, trainer and tasks (slow: minutes on 2
CPU cores), then the cache on rerun and ``report``."""

from __future__ import annotations

import json

import pytest
import yaml
from click.testing import CliRunner

from simla_bench.cli import main


#: every task fine-tunes for two steps of 8 examples (retrieval re-ranks the top 10, the least R@10 allows)
FAST = {"epochs": 1.0, "max_steps": 2, "batch_size": 8}


def tiny_config(tmp_path, tasks):
    # tasks: the names of the tasks the test selects with --tasks (the base config lists all four)
    tasks = {t: {"options": {**FAST, "k": 10} if t == "retrieval" else dict(FAST)} for t in tasks}
    data = {
        "base": "default.yaml", "name": "e2e", "output_dir": str(tmp_path / "run"),
        "datasets": {"world": {"source": "world", "options": {"preset": "tiny", "root": str(tmp_path / "world"),
                                                              "seed": 0, "counts": {"pretrain": 40}}}},
        "pretrain": {"steps": 3, "batch_size": 8, "warmup_steps": 1, "checkpoint_every": 1},
        "tasks": tasks,
    }
    path = tmp_path / "e2e.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def run_args(tmp_path, objectives: str, tasks: list[str]) -> list[str]:
    """``simla-bench run`` of ``tasks`` on the tiny world, writing ``tmp_path / "run"``."""
    return ["run", "--config", str(tiny_config(tmp_path, tasks)), "--objectives", objectives,
            "--tasks", ",".join(tasks)]


@pytest.mark.slow
def test_cli_run_on_the_tiny_world_then_cache_then_report(tmp_path):
    out = tmp_path / "run"
    args = run_args(tmp_path, "itc,mlm", ["retrieval", "vqa"])
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    records = [json.loads(p.read_text()) for p in sorted((out / "cells").glob("*.json"))]
    assert sorted(r["task"] for r in records) == ["retrieval", "vqa"]
    for r in records:
        assert r["primary_metric"] in r["metrics"] and 0.0 <= r["metrics"][r["primary_metric"]] <= 100.0
        assert len(r["per_example"][r["primary_metric"]]) > 0
        assert r["pretrain"]["steps"] == 3 and set(r["pretrain"]["loss"]["losses"]) >= {"itc", "mlm"}
        assert r["versions"]["torch"] and r["data_manifest"]["world"]["checksum"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0 and "0 cells computed, 2 reused" in res.output
    res = CliRunner().invoke(main, ["report", str(out), "--format", "csv"])
    assert res.exit_code == 0 and "retrieval,test/r_mean" in res.output


@pytest.mark.slow
def test_resume_mid_task_list_restores_the_real_pretraining(tmp_path):
    out = tmp_path / "run"
    args = run_args(tmp_path, "itc,mlm", ["retrieval", "nlvr2"])
    res = CliRunner().invoke(main, args + ["--quiet"])
    assert res.exit_code == 0, res.output
    first = {json.loads(p.read_text())["task"]: p for p in (out / "cells").glob("*.json")}
    before = json.loads(first["nlvr2"].read_text())
    first["nlvr2"].unlink()  # as if the run had been killed during nlvr2
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert "reusing finished pretraining" in res.output and "1 cells computed, 1 reused" in res.output
    after = json.loads(first["nlvr2"].read_text())
    assert after["metrics"] == before["metrics"]  # the restored model is the same model
    assert after["timings"]["pretrain_reused"] is True


@pytest.mark.slow
def test_nproc_per_node_2_writes_once_and_one_process_reuses_it(tmp_path):
    import subprocess
    import sys

    cfg = tiny_config(tmp_path, ["retrieval"])
    out = tmp_path / "run"
    base = [sys.executable, "-m", "simla_bench", "run", "--config", str(cfg), "--objectives", "itc,itm",
            "--tasks", "retrieval", "--steps", "2"]
    proc = subprocess.run(base + ["--nproc-per-node", "2"], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("leaderboard") == 1  # printed by rank 0 only
    assert len(list((out / "cells").glob("*.json"))) == 1
    res = CliRunner().invoke(main, base[3:])  # one process: the cell key does not depend on the world size
    assert res.exit_code == 0 and "0 cells computed, 1 reused" in res.output
