"""Warmup + cosine LR schedule and the alpha ramp."""

import math

import pytest
import torch

from simla_bench.training.schedule import WarmupCosine, alpha_at


def _opt():
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)


def test_warmup_starts_low_and_reaches_peak():
    s = WarmupCosine(_opt(), lr=1e-4, min_lr=1e-5, warmup_steps=10, total_steps=100)
    assert s.lr_at(0) == pytest.approx(1e-5)
    assert s.lr_at(5) == pytest.approx(1e-5 + 0.5 * 9e-5)
    assert s.lr_at(10) == pytest.approx(1e-4)


def test_cosine_halfway_and_end():
    s = WarmupCosine(_opt(), lr=1e-4, min_lr=1e-5, warmup_steps=10, total_steps=100)
    assert s.lr_at(55) == pytest.approx(1e-5 + 0.5 * 9e-5)  # half of the cosine span
    assert s.lr_at(100) == pytest.approx(1e-5)
    assert s.lr_at(32) == pytest.approx(1e-5 + 0.5 * 9e-5 * (1 + math.cos(math.pi * 22 / 90)))
    values = [s.lr_at(i) for i in range(10, 101)]
    assert all(a >= b for a, b in zip(values, values[1:]))


def test_scheduler_sets_optimizer_lr_and_round_trips():
    opt = _opt()
    s = WarmupCosine(opt, lr=1.0, min_lr=0.0, warmup_steps=4, total_steps=8)
    assert opt.param_groups[0]["lr"] == 0.0
    for _ in range(3):
        s.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.75)
    opt2 = _opt()
    s2 = WarmupCosine(opt2, lr=1.0, min_lr=0.0, warmup_steps=4, total_steps=8)
    s2.load_state_dict(s.state_dict())
    assert opt2.param_groups[0]["lr"] == pytest.approx(0.75)


def test_no_warmup_starts_at_peak():
    s = WarmupCosine(_opt(), lr=2.0, min_lr=0.5, warmup_steps=0, total_steps=10)
    assert s.lr_at(0) == pytest.approx(2.0)
    assert s.lr_at(10) == pytest.approx(0.5)


def test_alpha_ramp():
    assert alpha_at(0, 0.4, 100) == 0.0
    assert alpha_at(50, 0.4, 100) == pytest.approx(0.2)
    assert alpha_at(100, 0.4, 100) == pytest.approx(0.4)
    assert alpha_at(500, 0.4, 100) == pytest.approx(0.4)
    assert alpha_at(0, 0.4, 0) == pytest.approx(0.4)
