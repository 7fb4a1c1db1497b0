"""Starting simla-bench on several processes, nodes or Slurm tasks.

For the CLI (``simla-bench run ... --nproc-per-node N``):

* :func:`launch` re-runs the same command under ``torchrun`` with ``N``
  processes on this node and returns its exit code;
* :func:`under_torchrun` says whether this process already is one of them (then
  the command runs normally: the trainer joins the process group itself);
* :func:`is_main_process` — write records, reports and logs only when true;
* :func:`distributed_session` — a context manager that joins the process group
  at the start of the command and leaves it cleanly at the end.

For Slurm through submitit, :func:`export_slurm_env` turns the Slurm task's
environment into the variables torch.distributed reads (``RANK``,
``WORLD_SIZE``, ``MASTER_ADDR``, ...).  Run ``python -m
simla_bench.training.launch`` under torchrun/srun to check a set-up: every
rank prints its rank and the result of an all-reduce.
"""

from __future__ import annotations

import os
import subprocess
import sys
from contextlib import contextmanager
from typing import Iterator, Sequence

from simla_bench.errors import UserError

_DIST_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
              "GROUP_RANK", "ROLE_RANK", "TORCHELASTIC_RUN_ID")


def under_torchrun() -> bool:
    """True in a process started by torchrun (or any launcher that sets RANK and WORLD_SIZE)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def is_main_process() -> bool:
    """Rank 0 (or a single process): the one that writes files."""
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return dist.get_rank() == 0
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    return os.environ.get("RANK", "0") == "0"


def strip_option(argv: Sequence[str], option: str = "--nproc-per-node") -> list[str]:
    """``argv`` without ``option VALUE`` / ``option=VALUE`` (so the relaunched command does not relaunch)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == option:
            skip = True
            continue
        if arg.startswith(option + "="):
            continue
        out.append(arg)
    return out


def torchrun_command(nproc_per_node: int, args: Sequence[str], module: str = "simla_bench", nnodes: int = 1,
                     node_rank: int = 0, rdzv_endpoint: str | None = None) -> list[str]:
    """The ``torchrun`` command line (as ``python -m torch.distributed.run``) for ``python -m module args``."""
    if nproc_per_node < 1:
        raise UserError(f"--nproc-per-node must be at least 1, got {nproc_per_node}")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc_per_node)]
    if nnodes == 1 and rdzv_endpoint is None:
        cmd.append("--standalone")
    else:
        if not rdzv_endpoint:
            raise UserError("several nodes need a rendezvous endpoint", hint="give HOST:PORT of the first node")
        cmd += ["--nnodes", str(nnodes), "--node-rank", str(node_rank), "--rdzv-backend", "c10d",
                "--rdzv-endpoint", rdzv_endpoint]
    return cmd + ["-m", module, *args]


def launch(nproc_per_node: int, args: Sequence[str], module: str = "simla_bench", **kwargs) -> int:
    """Run ``python -m module args`` under torchrun with ``nproc_per_node``
    processes on this node and return the exit code (the CLI exits with it).

    ``args`` is the command's own argv (e.g. ``sys.argv[1:]``); a
    ``--nproc-per-node`` option in it is removed.  Environment variables of an
    enclosing distributed job are cleared so the children form a new group."""
    env = {k: v for k, v in os.environ.items() if k not in _DIST_VARS}
    cmd = torchrun_command(nproc_per_node, strip_option(list(args)), module=module, **kwargs)
    return subprocess.call(cmd, env=env)


@contextmanager
def distributed_session(device: str = "auto") -> Iterator["object"]:
    """Join the torchrun process group (if any) for the length of a command."""
    from simla_bench.devices import resolve_device_name
    from simla_bench.training.distributed import init_from_env

    ctx = init_from_env("cuda" if resolve_device_name(device).startswith("cuda") else "cpu")
    try:
        yield ctx
    finally:
        ctx.close()


def export_slurm_env() -> None:
    """In a submitit/Slurm task: export RANK, WORLD_SIZE, LOCAL_RANK,
    MASTER_ADDR and MASTER_PORT from the Slurm job (one task per GPU)."""
    from submitit.helpers import TorchDistributedEnvironment

    TorchDistributedEnvironment().export(set_cuda_visible_devices=False)


def _self_check() -> None:
    import torch
    import torch.distributed as dist

    with distributed_session() as ctx:
        value = torch.tensor([float(ctx.rank + 1)])
        if ctx.active:
            if dist.get_backend() == "nccl":
                value = value.cuda()
            dist.all_reduce(value)
        expected = ctx.world_size * (ctx.world_size + 1) / 2
        backend = dist.get_backend() if ctx.active else "none"
        status = "ok" if float(value) == expected else f"FAILED (got {float(value)}, expected {expected})"
        print(f"rank {ctx.rank} of {ctx.world_size} (local {ctx.local_rank}, backend {backend}): all_reduce {status}",
              flush=True)


if __name__ == "__main__":
    _self_check()
