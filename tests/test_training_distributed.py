"""torch.distributed (gloo, 2 CPU processes under torchrun): the same losses
as one process with the same global batch and seed, ITC negatives from both
ranks, the gather's gradient, rank-0-only checkpoint writing, and a 2-process
checkpoint resumed in 1 process.

Tolerance (toy model): losses agree to rtol 1e-5 and parameters to atol 1e-6
(the ranks' sums are reduced in a different order and with other thread
counts than one process; measured: losses <= 1e-7 relative, parameters
<= 3e-8 absolute).  The built-in model + ITC test (slow) uses rtol 1e-4 / atol 1e-5.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from simla_bench.training import pretrain
from helpers.training_dist_worker import DIST_PRETRAIN
from helpers.training_toys import ToyITC, toy_cfg, toy_model, toy_records

WORKER = Path(__file__).parent / "helpers" / "training_dist_worker.py"
STOP = 2


def _one_process(records, workdir, steps=DIST_PRETRAIN["steps"], stop=None):
    model = toy_model()
    model.online.drop.p = model.momentum.drop.p = 0.0
    itc = ToyITC()
    res = pretrain(toy_cfg(**{**DIST_PRETRAIN, "steps": steps}), {"toy_itc": (itc, 1.0)}, model, records,
                   workdir, seed=0, should_stop=(lambda s: s == stop) if stop else None)
    return res, itc


def _torchrun(mode, data, work, out, steps, stop):
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env["OMP_NUM_THREADS"] = "1"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(WORKER),
           mode, str(data), str(work), str(out), str(steps), str(stop)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]


@pytest.fixture(scope="module")
def two_procs(tmp_path_factory):
    base = tmp_path_factory.mktemp("dist")
    data, work, out = base / "data", base / "work", base / "out"
    out.mkdir()
    records = toy_records(data)
    _torchrun("toy", data, work, out, DIST_PRETRAIN["steps"], STOP)
    ranks = [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(2)]
    result = torch.load(out / "result.pt", weights_only=False)
    return {"records": records, "work": work, "ranks": ranks, "result": result, "base": base}


def test_two_processes_match_one_process(two_procs, tmp_path):
    one, _ = _one_process(two_procs["records"], tmp_path, stop=STOP)
    two = two_procs["result"]
    assert two["steps"] == STOP == one.steps
    assert len(two["curve"]) == STOP
    for a, b in zip(one.loss_curve, two["curve"]):
        assert a["step"] == b["step"] and a["lr"] == b["lr"]
        assert b["toy_itc"] == pytest.approx(a["toy_itc"], rel=1e-5)
    for k, v in one.model.state_dict().items():
        torch.testing.assert_close(two["state"][k], v, atol=1e-6, rtol=1e-5, msg=k)


def test_itc_sees_negatives_from_both_ranks(two_procs):
    batch, queue = DIST_PRETRAIN["batch_size"], ToyITC.defaults["queue"]
    for rank in two_procs["ranks"]:
        assert rank["world_size"] == 2
        # each rank holds 4 pairs but compares against all 8 texts of the global batch (+ queue)
        assert rank["key_counts"] and set(rank["key_counts"]) == {batch + queue}


def test_gather_gradient_equals_single_process(two_procs):
    for rank in two_procs["ranks"]:
        assert rank["gathered_rows"] == 6
        torch.testing.assert_close(rank["grad"], rank["ref"], atol=1e-6, rtol=1e-5)


def test_sharded_evaluation_gathers_back_in_order(two_procs):
    assert [r["shard"] for r in two_procs["ranks"]] == [(0, 4), (4, 7)]
    expected = torch.arange(14, dtype=torch.float32).view(7, 2) * 10
    for rank in two_procs["ranks"]:
        assert torch.equal(rank["uneven"], expected)


def test_only_rank0_writes_the_checkpoint(two_procs):
    files = sorted(p.name for p in two_procs["work"].iterdir())
    assert files == ["checkpoint.pt"]
    state = torch.load(two_procs["work"] / "checkpoint.pt", weights_only=False)
    assert state["world_size"] == 2 and len(state["rng"]) == 2 and state["step"] == STOP


def test_two_process_checkpoint_resumes_in_one_process(two_procs, tmp_path):
    import shutil

    work = tmp_path / "resume"
    shutil.copytree(two_procs["work"], work)
    resumed, itc = _one_process(two_procs["records"], work)
    full, _ = _one_process(two_procs["records"], tmp_path / "full")
    assert resumed.resumed_from == STOP and resumed.steps == DIST_PRETRAIN["steps"]
    assert set(itc.key_counts) == {DIST_PRETRAIN["batch_size"] + ToyITC.defaults["queue"]}
    for a, b in zip(full.loss_curve, resumed.loss_curve):
        assert a["step"] == b["step"]
        assert b["toy_itc"] == pytest.approx(a["toy_itc"], rel=1e-5)
    for k, v in full.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[k], v, atol=1e-6, rtol=1e-5, msg=k)


@pytest.mark.slow
def test_real_model_and_itc_match_one_process(tmp_path):
    """The built-in VLPModel + ITC (gathered momentum keys, consistent queue)."""
    from helpers.training_dist_worker import real_setup

    data, out = tmp_path / "data", tmp_path / "out"
    out.mkdir()
    records = toy_records(data, size=32)
    _torchrun("real", data, tmp_path / "work", out, 3, 0)
    two = torch.load(out / "result.pt", weights_only=False)
    cfg, model, itc = real_setup(records, 3)
    one = pretrain(cfg, {"itc": (itc, 1.0)}, model, records, tmp_path / "one", seed=0)
    assert [e["step"] for e in two["curve"]] == [1, 2, 3]
    for a, b in zip(one.loss_curve, two["curve"]):
        assert b["itc"] == pytest.approx(a["itc"], rel=1e-4)
    for k, v in one.model.state_dict().items():
        torch.testing.assert_close(two["state"][k], v, atol=1e-5, rtol=1e-4, msg=k)
