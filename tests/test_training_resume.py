"""Checkpoint/resume: stopping after k steps and continuing equals an
uninterrupted run exactly (loss curve, parameters, momentum, objective state)."""

import pytest
import torch

from simla_bench.training import pretrain
from simla_bench.training.checkpoint import load_checkpoint
from simla_bench.training.errors import CheckpointMismatchError
from helpers.training_toys import ToyITC, ToyNoise, toy_cfg, toy_model, toy_records


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    return toy_records(tmp_path_factory.mktemp("toy"))


def _objs():
    return {"toy_itc": (ToyITC(), 1.0), "toy_noise": (ToyNoise(), 0.5)}


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("stop_at", [3, 4])
def test_resume_is_bit_for_bit(records, tmp_path, stop_at):
    # 48 records / batch 8 -> 6 micro-batches per epoch; 8 steps cross an epoch boundary
    cfg = toy_cfg(steps=8, checkpoint_every=4, grad_accum=1)
    full_objs = _objs()
    full = pretrain(cfg, full_objs, toy_model(), records, tmp_path / "full", seed=3)

    part = pretrain(cfg, _objs(), toy_model(), records, tmp_path / "part", seed=3,
                    should_stop=lambda s: s == stop_at)
    assert part.steps == stop_at and part.resumed_from is None
    # a new process would rebuild model and objectives from scratch, with other RNG use in between
    torch.manual_seed(12345)
    torch.randn(100)
    objs = _objs()
    resumed = pretrain(cfg, objs, toy_model(seed=99), records, tmp_path / "part", seed=3)
    assert resumed.resumed_from == stop_at and resumed.steps == 8
    assert resumed.loss_curve == full.loss_curve  # exact float equality, every step
    a, b = _state(full.model), _state(resumed.model)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert torch.equal(objs["toy_itc"][0].queue, full_objs["toy_itc"][0].queue)


def test_resume_with_grad_accum_and_checkpoint_contents(records, tmp_path):
    cfg = toy_cfg(steps=5, checkpoint_every=2, grad_accum=2)
    full = pretrain(cfg, _objs(), toy_model(), records, tmp_path / "full", seed=1)
    pretrain(cfg, _objs(), toy_model(), records, tmp_path / "part", seed=1, should_stop=lambda s: s == 3)
    state = load_checkpoint(tmp_path / "part" / "checkpoint.pt")
    assert state["step"] == 3 and state["position"] == 6 and len(state["loss_curve"]) == 3
    assert {"model", "optimizer", "scheduler", "objectives", "rng"} <= set(state)
    assert state["objectives"]["toy_itc"]["queue"].shape == (8, 16)
    assert state["scheduler"]["step_count"] == 3
    resumed = pretrain(cfg, _objs(), toy_model(), records, tmp_path / "part", seed=1)
    assert resumed.loss_curve == full.loss_curve


def test_finished_run_is_not_retrained(records, tmp_path):
    cfg = toy_cfg(steps=2)
    first = pretrain(cfg, _objs(), toy_model(), records, tmp_path, seed=0)
    objs = _objs()
    again = pretrain(cfg, objs, toy_model(seed=5), records, tmp_path, seed=0)
    assert again.resumed_from == 2 and again.loss_curve == first.loss_curve
    assert objs["toy_itc"][0].calls == 0
    for p, q in zip(first.model.parameters(), again.model.parameters()):
        assert torch.equal(p, q)


def test_mismatched_checkpoint_is_refused(records, tmp_path):
    pretrain(toy_cfg(steps=2), _objs(), toy_model(), records, tmp_path, seed=0)
    with pytest.raises(CheckpointMismatchError, match="batch_size"):
        pretrain(toy_cfg(steps=2, batch_size=16), _objs(), toy_model(), records, tmp_path, seed=0)


def test_checkpoint_write_is_atomic(records, tmp_path):
    pretrain(toy_cfg(steps=2), _objs(), toy_model(), records, tmp_path, seed=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]  # no temp file left behind


def test_fp16_with_grad_scaler_resumes_exactly(records, tmp_path):
    cfg = toy_cfg(steps=4, checkpoint_every=2, precision="fp16")
    full = pretrain(cfg, _objs(), toy_model(), records, tmp_path / "full", seed=2)
    pretrain(cfg, _objs(), toy_model(), records, tmp_path / "part", seed=2, should_stop=lambda s: s == 2)
    state = load_checkpoint(tmp_path / "part" / "checkpoint.pt")
    assert state["scaler"] is not None and state["scaler"]["scale"] > 0
    resumed = pretrain(cfg, _objs(), toy_model(), records, tmp_path / "part", seed=2)
    assert resumed.loss_curve == full.loss_curve
    assert all(torch.isfinite(torch.tensor(e["loss"])) for e in full.loss_curve)
