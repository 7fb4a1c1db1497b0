"""The torchrun launcher the CLI uses for --nproc-per-node, and rank helpers."""

import sys

import pytest

from simla_bench.errors import UserError
from simla_bench.training.launch import (is_main_process, launch, strip_option, torchrun_command,
                                         under_torchrun)


def test_strip_option_removes_both_spellings():
    argv = ["run", "--nproc-per-node", "4", "--steps", "5", "--nproc-per-node=2", "--world", "tiny"]
    assert strip_option(argv) == ["run", "--steps", "5", "--world", "tiny"]


def test_torchrun_command_one_node():
    cmd = torchrun_command(4, ["run", "--world", "tiny"])
    assert cmd[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert cmd[3:] == ["--nproc-per-node", "4", "--standalone", "-m", "simla_bench", "run", "--world", "tiny"]


def test_torchrun_command_several_nodes():
    cmd = torchrun_command(8, ["run"], nnodes=2, node_rank=1, rdzv_endpoint="node0:29500")
    joined = " ".join(cmd)
    assert "--nnodes 2 --node-rank 1 --rdzv-backend c10d --rdzv-endpoint node0:29500" in joined
    assert "--standalone" not in cmd
    with pytest.raises(UserError, match="rendezvous"):
        torchrun_command(8, ["run"], nnodes=2)
    with pytest.raises(UserError, match="at least 1"):
        torchrun_command(0, ["run"])


def test_rank_helpers_follow_the_environment(monkeypatch):
    for var in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    assert not under_torchrun() and is_main_process()
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert under_torchrun() and not is_main_process()
    monkeypatch.setenv("RANK", "0")
    assert is_main_process()


@pytest.mark.slow
def test_launch_two_processes_self_check(capfd):
    assert launch(2, ["--nproc-per-node", "2"], module="simla_bench.training.launch") == 0
    out = capfd.readouterr().out
    assert "rank 0 of 2" in out and "rank 1 of 2" in out and out.count("all_reduce ok") == 2



@pytest.mark.slow
def test_submitit_tasks_form_a_process_group(tmp_path):
    import submitit

    def job():  # defined here so cloudpickle ships it by value to the tasks
        import torch
        import torch.distributed as dist

        from simla_bench.training.distributed import init_from_env
        from simla_bench.training.launch import export_slurm_env

        export_slurm_env()
        ctx = init_from_env("cpu")
        value = torch.tensor([ctx.rank + 1.0])
        dist.all_reduce(value)
        ctx.close()
        return ctx.rank, ctx.world_size, float(value)

    executor = submitit.AutoExecutor(folder=tmp_path / "logs", cluster="local")
    executor.update_parameters(nodes=1, tasks_per_node=2, timeout_min=5)
    results = executor.submit(job).results()
    assert sorted(results) == [(0, 2, 3.0), (1, 2, 3.0)]
