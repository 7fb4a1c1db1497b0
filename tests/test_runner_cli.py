"""``simla-bench run`` / ``report`` end to end with fake plugins: in-process
through click, and as a subprocess killed with SIGKILL mid-pretraining and
mid-task-list, then resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from simla_bench.cli import main
from simla_bench.registry import set_registry
from helpers.runner_fakes import FakeTask, config_data, fakes, make_registry  # noqa: F401 (fixture)

TESTS_DIR = Path(__file__).parent




def write_config(tmp_path, **over) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(config_data(tmp_path, **over)))
    return path


def test_cli_run_then_rerun_then_report(tmp_path, fakes):
    cfg = write_config(tmp_path)
    out = tmp_path / "out"
    runner = CliRunner()
    res = runner.invoke(main, ["run", "--config", str(cfg), "--out", str(out), "--seeds", "0,1", "--tasks", "toy"])
    assert res.exit_code == 0, res.output
    assert "leaderboard" in res.output and "toy test/acc" in res.output
    assert "2 cells computed, 0 reused" in res.output
    res = runner.invoke(main, ["run", "--config", str(cfg), "--out", str(out), "--seeds", "0,1", "--tasks", "toy",
                               "--quiet"])
    assert res.exit_code == 0 and "0 cells computed" not in res.output  # quiet: no summary line
    assert len(fakes.pretrain_calls) == 2  # only the first run pretrained
    res = runner.invoke(main, ["report", str(out), "--format", "json"])
    data = json.loads(res.output)
    assert data[0]["objectives"] == ["itc", "itm"] and data[0]["tasks"]["toy"]["test/acc"]["n"] == 2


def test_cli_objectives_override_and_jsonl_log(tmp_path, fakes):
    import simla_bench.plugins.observers as observers

    registry = make_registry()
    registry.add_plugin(observers)  # the built-in JSON-lines observer
    set_registry(registry)
    cfg = write_config(tmp_path)
    log = tmp_path / "events.jsonl"
    res = CliRunner().invoke(main, ["run", "--config", str(cfg), "--out", str(tmp_path / "o"), "--objectives", "itc",
                                    "--tasks", "toy", "--log-jsonl", str(log), "--steps", "4"])
    os.environ.pop("SIMLA_BENCH_JSONL", None)  # set by --log-jsonl for this process
    assert res.exit_code == 0, res.output
    assert fakes.pretrain_calls[0][0] == ("itc",)
    events = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["event"] for e in events] == ["run_start", "cell_finished", "run_finished"]
    assert events[1]["task"] == "toy" and events[1]["objectives"] == ["itc"]


def test_cli_bad_input_is_one_line(tmp_path, fakes):
    cfg = write_config(tmp_path)
    res = CliRunner().invoke(main, ["run", "--config", str(cfg), "--objectives", "itc,pls"])
    assert res.exit_code == 2 and "unknown objective 'pls'; did you mean 'psl'" in res.output
    assert "Traceback" not in res.output
    res = CliRunner().invoke(main, ["run", "--config", str(cfg), "--objectives", "itc", "--ablate"])
    assert res.exit_code == 2 and "give only one of them" in res.output


def test_cli_failing_row_exits_nonzero_and_keeps_others(tmp_path, fakes):
    cfg = write_config(tmp_path, objectives={"itc": {"options": {"nan_at": 2}}, "itm": {}},
                       matrix=[{"objectives": ["itc"]}, {"objectives": ["itm"]}])
    res = CliRunner().invoke(main, ["run", "--config", str(cfg), "--out", str(tmp_path / "o"), "--tasks", "toy"])
    assert res.exit_code == 1
    assert "failed: row 'itc' seed 0 stopped: objective 'itc' became nan at pretraining step 2" in res.output
    assert "itm" in res.output and len(list((tmp_path / "o" / "cells").glob("*.json"))) == 1


_SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
from helpers.runner_fakes import FakePipeline, make_registry
from simla_bench.registry import set_registry
from simla_bench.runner.pipeline import set_pipeline
set_registry(make_registry())
set_pipeline(FakePipeline(step_sleep={sleep}, slow_task="toy2", task_sleep=30.0))
from simla_bench.cli import main
main(["run", "--config", {cfg!r}, "--out", {out!r}])
"""


def start_run(tmp_path, cfg, out, sleep):
    script = _SCRIPT.format(tests=str(TESTS_DIR), sleep=sleep, cfg=str(cfg), out=str(out))
    return subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def wait_for(predicate, proc, timeout=30.0):
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return True
        if proc.poll() is not None:
            raise AssertionError(proc.stdout.read().decode())
        time.sleep(0.05)
    return False


def test_sigkill_mid_pretraining_then_resume(tmp_path, fakes):
    cfg = write_config(tmp_path, pretrain={"steps": 12, "checkpoint_every": 2}, tasks={"toy": {}})
    out = tmp_path / "out"
    proc = start_run(tmp_path, cfg, out, sleep=0.25)
    try:
        assert wait_for(lambda: list(out.glob("pretrain/*/checkpoint.pt")), proc)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not list(out.glob("cells/*.json")) and not list(out.glob("pretrain/*/final.pt"))
    res = CliRunner().invoke(main, ["run", "--config", str(cfg), "--out", str(out)])  # in-process, on the fakes
    assert res.exit_code == 0, res.output
    assert fakes.pretrain_calls[0][2] > 1  # resumed after a checkpoint, not from step 1
    assert len(list(out.glob("cells/*.json"))) == 1


def test_sigkill_mid_task_list_keeps_finished_cells(tmp_path, fakes):
    cfg = write_config(tmp_path)  # tasks toy, toy2; the subprocess's toy2 takes 30 s
    out = tmp_path / "out"
    proc = start_run(tmp_path, cfg, out, sleep=0.0)
    try:
        assert wait_for(lambda: list(out.glob("cells/*.json")), proc)
        time.sleep(0.2)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert len(list(out.glob("cells/*.json"))) == 1  # toy finished, toy2 was running
    FakeTask.calls.clear()
    res = CliRunner().invoke(main, ["run", "--config", str(cfg), "--out", str(out)])  # in-process, on the fakes
    assert res.exit_code == 0, res.output
    assert "1 cells computed, 1 reused" in res.output
    assert fakes.pretrain_calls == []  # the finished pretraining was reloaded
    assert FakeTask.calls == [("toy2", 0)]


def test_nproc_per_node_rebuilds_the_command_for_torchrun():
    import click

    from simla_bench.cli.run_cmd import run_command, torchrun_argv

    ctx = run_command.make_context("run", ["--objectives", "itc,itm", "--steps", "5", "--force", "--nproc-per-node", "2"])
    argv = torchrun_argv(2, ctx)
    assert argv[1:6] == ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m"]
    assert argv[6:8] == ["simla_bench", "run"]
    rest = argv[8:]
    assert rest[rest.index("--objectives") + 1] == "itc,itm" and rest[rest.index("--steps") + 1] == "5"
    assert "--force" in rest and "--quiet" not in rest and not any("nproc" in a for a in rest)
    assert isinstance(ctx, click.Context)


def test_ablate_alone_is_the_packaged_ablation_experiment_and_with_config_its_rows_only(tmp_path):
    from simla_bench.cli.run_cmd import _load_cfg
    from simla_bench.config import CONFIG_DIR, load_config

    packaged = load_config(CONFIG_DIR / "ablation.yaml")
    cfg = _load_cfg(None, True, None, None, None, "0,1,2", None, None, None, None, None)
    assert cfg.controls is True and cfg.output_dir == "runs/ablation" and cfg.seeds == [0, 1, 2]
    assert cfg.active_tasks() == packaged.active_tasks()
    assert [r.label for r in cfg.rows()][-2:] == ["none (control)", "shuffled (control)"]
    # with --config: that experiment's settings, the ablation's rows
    own = write_config(tmp_path)
    mixed = _load_cfg(str(own), True, None, None, None, None, None, None, None, None, None)
    assert [r.label for r in mixed.matrix] == [r.label for r in packaged.matrix]
    assert mixed.active_tasks() == load_config(own).active_tasks() and mixed.controls == load_config(own).controls
