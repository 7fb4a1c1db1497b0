"""In-process fake plugins and a fake pipeline for the runner/report tests.

The fakes are small but honest: the fake "model" is a number that training
moves, the fake task scores examples against it with a per-example draw that
is shared by all rows (so rows are paired), and the fake pretraining loop
checkpoints and resumes.  tests/test_runner_fakes_contract.py checks that the
fakes follow the contract.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from simla_bench.config import parse_config
from simla_bench.hookspecs import hookimpl
from simla_bench.interfaces import DatasetSource, Objective, Task, TaskResult
from simla_bench.registry import Registry
from simla_bench.runner.pipeline import Pipeline, PretrainOutcome

# ---------------------------------------------------------------- components


class FakeSource(DatasetSource):
    """Pretraining pairs and a toy test set; the manifest checksum is its version."""

    provides = ("pretrain", "toy")
    defaults = {"version": "v1", "pairs": 40, "preset": "tiny", "root": "", "seed": 0}

    def prepare(self, progress=None):
        return {"checksum": f"fake-{self.options['version']}", "pairs": self.options["pairs"]}

    def load(self, kind, split):
        if kind == "pretrain":
            return [SimpleNamespace(caption=f"caption {i}", image_id=str(i)) for i in range(self.options["pairs"])]
        return list(range(60))


class FakeObjective(Objective):
    """A loss that decays with the step; ``nan_at`` makes it blow up."""

    needs = frozenset({"text"})
    defaults = {"rate": 0.1, "nan_at": -1}

    def loss(self, step):
        if step.step == self.options["nan_at"]:
            return float("nan")
        return math.exp(-self.options["rate"] * step.step) + 0.01 * len(self.name)


class FusionObjective(FakeObjective):
    needs = frozenset({"text", "fusion"})


class FakeTask(Task):
    """Accuracy of a fake model of 'quality' q: example i is right when u_i < q,
    with u_i drawn once per (seed, i), the same for every row (paired)."""

    version = "1"
    primary_metric = "test/acc"
    directions = {"acc": "higher", "loss": "lower"}
    needs = frozenset({"text"})
    defaults = {"n": 200, "fail": False, "sleep": 0.0}
    calls: list = []

    def run(self, ctx):
        FakeTask.calls.append((self.name, ctx.seed))
        time.sleep(self.options["sleep"])
        if self.options["fail"]:
            raise RuntimeError("the fake task was told to fail")
        q = ctx.model.quality
        rng = random.Random(1000 + ctx.seed)
        scores = [1.0 if rng.random() < q else 0.0 for _ in range(self.options["n"])]
        acc = 100.0 * sum(scores) / len(scores)
        return TaskResult({"test/acc": acc, "test/loss": 1.0 - q, "val/acc": acc - 1.0},
                          {"test/acc": scores})


class GroundingTask(FakeTask):
    needs = frozenset({"text", "fusion"})


class FakePlugin:
    SIMLA_BENCH_DIST = "fake-dist"

    def __init__(self, objectives=("itc", "itm", "mlm", "psl"), tasks=("toy", "toy2")):
        self.objectives = objectives
        self.tasks = tasks

    @hookimpl
    def register_models(self, register):
        # the real recipe validates model.options; the fake pipeline builds the model
        register("vlp", "simla_bench.plugins.models.vlp_plugin:VLPRecipe", "the vlp model's options")

    @hookimpl
    def register_objectives(self, register):
        for name in self.objectives:
            register(name, FusionObjective if name == "itm" else FakeObjective, f"fake {name}")

    @hookimpl
    def register_tasks(self, register):
        for name in self.tasks:
            register(name, FakeTask, f"fake {name}")
        register("grounding", GroundingTask, "fake grounding")

    @hookimpl
    def register_datasets(self, register):
        register("fakeworld", FakeSource, "fake data")


class Observer:
    def __init__(self):
        self.events = []

    @hookimpl
    def on_run_start(self, run):
        self.events.append(("start", run))

    @hookimpl
    def on_cell_finished(self, record):
        self.events.append(("cell", record))

    @hookimpl
    def on_run_finished(self, run, records):
        self.events.append(("finished", run, records))


def make_registry(observer=None) -> Registry:
    reg = Registry()
    reg.add_plugin(FakePlugin())
    if observer is not None:
        reg.add_plugin(observer)
    return reg


# ---------------------------------------------------------------- pipeline


class FakeModel:
    def __init__(self, caps):
        self.capabilities = frozenset(caps)
        self.quality = 0.3


class FakePipeline(Pipeline):
    """Pretraining moves ``model.quality`` by each objective's rate; checkpoints
    every ``checkpoint_every`` steps to ``workdir/checkpoint.pt`` and resumes."""

    def __init__(self, interrupt_at: int | None = None, step_sleep: float = 0.0, slow_task: str = "",
                 task_sleep: float = 0.0):
        self.interrupt_at = interrupt_at
        self.step_sleep = step_sleep
        self.slow_task, self.task_sleep = slow_task, task_sleep
        self.pretrain_calls: list[tuple] = []  # (objectives, seed, first step run)
        self.restored: list[int] = []  # seeds whose finished pretraining was restored

    def build_tokenizer(self, cfg, data, workdir):
        return "fake-tokenizer"

    def build_model(self, cfg, tokenizer):
        opts = {"layout": "single_stream", "fusion_layers": 2, **cfg.model.options}
        caps = {"text"} | ({"fusion"} if opts["layout"] == "single_stream" or opts["fusion_layers"] > 0 else set())
        return FakeModel(caps)

    def pretrain(self, cfg, objectives, model, records, workdir, seed, progress):
        ckpt = Path(workdir) / "checkpoint.pt"
        start, curve = 0, []
        if ckpt.exists():
            state = json.loads(ckpt.read_text())
            start, curve = state["step"], state["curve"]
        self.pretrain_calls.append((tuple(objectives), seed, start + 1))
        total = cfg.pretrain.steps
        for step in range(start + 1, total + 1):
            if self.interrupt_at is not None and step == self.interrupt_at:
                raise KeyboardInterrupt
            ctx = SimpleNamespace(step=step)
            losses = {name: obj.loss(ctx) * w for name, (obj, w) in objectives.items()}
            curve.append({"step": step, **losses})
            progress(step=step, total=total, losses=losses, pairs_per_s=100.0)
            if self.step_sleep:
                time.sleep(self.step_sleep)
            if step % cfg.pretrain.checkpoint_every == 0:
                tmp = ckpt.with_suffix(".tmp")
                tmp.write_text(json.dumps({"step": step, "curve": curve}))
                os.replace(tmp, ckpt)
        gain = sum(o.options["rate"] for o, _ in objectives.values())
        model.quality = min(0.95, 0.3 + gain + 0.02 * len(records) / 40 + 0.001 * seed)
        (Path(workdir) / "final.json").write_text(json.dumps({"quality": model.quality}))
        return PretrainOutcome(model, curve, total, 0.01)

    def run_task(self, task, ctx):
        if task.name == self.slow_task:
            time.sleep(self.task_sleep)
        return super().run_task(task, ctx)

    def restore(self, cfg, objectives, model, records, workdir, seed):
        self.restored.append(seed)
        model.quality = json.loads((Path(workdir) / "final.json").read_text())["quality"]
        return model


def config_data(tmp_path, **over):
    data = {
        "name": "fake", "seeds": [0], "output_dir": str(tmp_path / "run"),
        "datasets": {"world": {"source": "fakeworld", "options": {}}},
        "objectives": {"itc": {}, "itm": {}},
        "pretrain": {"steps": 6, "checkpoint_every": 2},
        "tasks": {"toy": {}, "toy2": {}},
    }
    data.update(over)
    return data


def make_config(tmp_path, **over):
    return parse_config(config_data(tmp_path, **over), "test")


def install_fake_registry() -> None:
    """Job set-up for submitit tests: the fake plugins as the process registry."""
    from simla_bench.registry import set_registry

    set_registry(make_registry())


@pytest.fixture
def fakes():
    """The fake registry and pipeline as the CLI's (yields the pipeline); reset afterwards."""
    from simla_bench.registry import set_registry
    from simla_bench.runner.pipeline import set_pipeline

    pipe = FakePipeline()
    set_registry(make_registry())
    set_pipeline(pipe)
    yield pipe
    set_registry(None)
    set_pipeline(None)
