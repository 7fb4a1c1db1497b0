"""One training toolkit for pretraining and fine-tuning (issue 17): one LR
schedule, one parameter grouping, one seeding function, one device
resolution, one data subsetting, one contrastive loss; the runner seeds a task
cell once and makes no copy of the model (the task makes the one copy)."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch

from simla_bench.errors import ConfigError
from simla_bench.training import contrastive
from simla_bench.training import finetune as tune
from simla_bench.training import optim, seeding
from simla_bench.training.schedule import WarmupCosine, warmup_cosine


def _spy(monkeypatch, module, name):
    calls = []
    real = getattr(module, name)

    def spy(*args, **kwargs):
        calls.append((args, kwargs))
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, spy)
    return calls


def test_pretraining_and_fine_tuning_use_the_one_schedule(monkeypatch):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    s = WarmupCosine(opt, lr=1e-3, min_lr=1e-5, warmup_steps=10, total_steps=100)
    assert [s.lr_at(i) for i in range(101)] == [warmup_cosine(i, 100, 1e-3, 1e-5, 10) for i in range(101)]
    # the tasks' convention, kept: warmup step i trains at (i + 1) / warmup of the way up
    assert warmup_cosine(0, 100, 1e-3, 1e-5, 10, warmup_offset=1) == pytest.approx(1e-5 + (1e-3 - 1e-5) / 10)
    assert warmup_cosine(9, 100, 1e-3, 1e-5, 10, warmup_offset=1) == pytest.approx(1e-3)
    assert warmup_cosine(55, 100, 1e-3, 1e-5, 10, warmup_offset=1) == warmup_cosine(55, 100, 1e-3, 1e-5, 10)

    calls = _spy(monkeypatch, tune, "warmup_cosine")
    model = torch.nn.Linear(2, 1)
    tune.train_steps([model], lambda i: model(torch.ones(1, 2)).sum() ** 2, steps=3, lr=0.1, min_lr=0.01,
                     warmup_steps=2, weight_decay=0.0, grad_clip=0.0)
    assert [(a[0], k.get("warmup_offset")) for a, k in calls] == [(0, 1), (1, 1), (2, 1)]


class _WithTokens(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(3, 3))
        self.cls_token = torch.nn.Parameter(torch.ones(1, 1, 3))
        self.pos_embed = torch.nn.Parameter(torch.ones(1, 4, 3))
        self.norm = torch.nn.LayerNorm(3)
        self.temp = torch.nn.Parameter(torch.tensor(0.07))

    def no_weight_decay(self):
        return {"cls_token", "pos_embed"}


def _names(module, params):
    ids = {id(p) for p in params}
    return sorted(n for n, p in module.named_parameters() if id(p) in ids)


def test_one_param_grouping_with_the_two_documented_rules(monkeypatch):
    m = _WithTokens()
    pre = optim.param_groups(m, 0.05)
    assert _names(m, pre[0]["params"]) == ["weight"] and "lr_mult" not in pre[0]
    fin = optim.param_groups([m], 0.05, lr_mults=[2.0], no_decay_names=optim.FINETUNE_NO_DECAY)
    # fine-tuning keeps the tasks' rule: the CLS token is decayed, norms and position tables are not
    assert _names(m, fin[0]["params"]) == ["cls_token", "weight"] and fin[0]["lr_mult"] == 2.0
    assert _names(m, fin[1]["params"]) == ["norm.bias", "norm.weight", "pos_embed", "temp"]

    calls = _spy(monkeypatch, tune, "build_optimizer")
    head = torch.nn.Linear(3, 1)
    tune.train_steps([m, head], lambda i: (m.weight.sum() + head(m.weight).sum()) ** 2, steps=1, lr=0.1,
                     min_lr=0.0, warmup_steps=0, weight_decay=0.05, grad_clip=1.0, lr_mults=[1.0, 5.0])
    (args, kwargs), = calls
    assert kwargs["no_decay_names"] == optim.FINETUNE_NO_DECAY and kwargs["lr_mults"] == [1.0, 5.0]


def test_one_seeding_function_and_generator():
    seeding.seed_everything(3)
    a = (torch.rand(2), random.random(), np.random.rand())
    seeding.seed_everything(3)
    assert torch.equal(a[0], torch.rand(2)) and a[1] == random.random() and a[2] == np.random.rand()
    assert torch.equal(torch.randperm(9, generator=seeding.generator(4)),
                       torch.randperm(9, generator=seeding.generator(4)))


def test_one_device_resolution():
    from simla_bench.devices import resolve_device, resolve_device_name

    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device_name("auto") == resolve_device_name(None) == expected
    assert resolve_device("auto").type == expected and resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ConfigError, match="device 'gpu' is not one of"):
        resolve_device("gpu")


def test_the_runner_cuts_with_the_one_subset_function(tmp_path):
    from simla_bench.runner.pipeline import PreparedData, Pipeline
    from simla_bench.training.data import subset_records

    class Source:
        def load(self, kind, split):
            return list(range(50))

    records = Pipeline.pretrain_records(None, PreparedData("d", Source(), {}), 0.3)
    assert records == subset_records(list(range(50)), 0.3) and len(records) == 15


def test_a_task_cell_is_seeded_once_and_not_copied_by_the_runner(monkeypatch, tmp_path):
    from simla_bench.interfaces import TaskContext, TaskResult
    from simla_bench.runner.pipeline import DefaultPipeline

    seeds = _spy(monkeypatch, seeding, "seed_everything")
    model = torch.nn.Linear(2, 2)
    seen = {}

    class Probe:
        def run(self, ctx):
            seen["same"] = ctx.model is model
            return TaskResult(metrics={"m": 1.0})

    ctx = TaskContext(model=model, tokenizer=None, data=None, options={}, seed=7, device="cpu", workdir=tmp_path)
    DefaultPipeline().run_task(Probe(), ctx)
    assert seen["same"] and [a for a, _ in seeds] == [(7,)]


def test_task_fine_tuning_and_the_itc_objective_share_the_loss():
    from simla_bench.plugins.objectives import itc as itc_objective
    from simla_bench.tasks import itc_itm

    assert itc_itm.contrastive_loss is itc_objective.contrastive_loss is contrastive.contrastive_loss
    assert itc_itm.positive_targets is itc_objective.positive_targets is contrastive.positive_targets

    # the same features through the objective's itc_loss and the tasks' ITC path give the same loss
    torch.manual_seed(0)
    img, txt = torch.nn.functional.normalize(torch.randn(4, 8), dim=-1), torch.nn.functional.normalize(
        torch.randn(4, 8), dim=-1)
    idx = torch.tensor([0, 1, 1, 2])
    positives = idx[:, None] == idx[None, :]
    temp = contrastive.clamp_temperature(torch.tensor(0.07))
    objective = itc_objective.itc_loss(img, txt, img, txt, None, None, positives, temp, 0.0)
    t = contrastive.positive_targets(positives)
    task = contrastive.contrastive_loss(img @ txt.T / temp, txt @ img.T / temp, t, t)
    assert torch.equal(objective, task)
    manual = -(torch.log_softmax(img @ txt.T / temp, 1) * t).sum(1).mean() / 2 \
        - (torch.log_softmax(txt @ img.T / temp, 1) * t).sum(1).mean() / 2
    assert math.isclose(float(objective), float(manual), rel_tol=1e-6)
